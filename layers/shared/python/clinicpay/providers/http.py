"""The one HTTP client every provider adapter uses: stdlib only, timeouts, bounded retries.

It uses urllib rather than requests to keep cold starts short. 5xx, 429 and network failures
become ProviderUnavailable (nothing was decided, retry later); other 4xx become ProviderError
with only the provider's error code kept, never its body (it may echo what we sent).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from pydantic import BaseModel, ValidationError

from clinicpay.domain.errors import ProviderError, ProviderUnavailable
from clinicpay.observability import logger


@dataclass
class HttpResponse:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class ProviderHttpError(ProviderError):
    def __init__(self, provider: str, status: int, payload: Any):
        self.http_status = status
        self.payload = payload
        super().__init__(f"{provider} refused the request (HTTP {status}).")


def request(provider: str, method: str, url: str, *, headers: dict[str, str] | None = None,
            json_body: Any = None, form: dict[str, Any] | list[tuple[str, Any]] | None = None,
            timeout: float = 8.0, attempts: int = 3, retry_post: bool = False) -> HttpResponse:
    """Send one request. POSTs are retried only when the caller says the provider dedupes them
    (an Idempotency-Key or a client-chosen id), so a retry can never make a second payment."""
    data = None
    all_headers = {"Accept": "application/json", **(headers or {})}
    if json_body is not None:
        data = json.dumps(json_body).encode()
        all_headers["Content-Type"] = "application/json"
    elif form is not None:
        data = urlencode(form).encode()
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
    may_retry = method in ("GET", "DELETE") or retry_post
    tries = attempts if may_retry else 1
    last: Exception | None = None
    for attempt in range(tries):
        if attempt:
            time.sleep(min(0.2 * 2**attempt, 2.0))
        req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return HttpResponse(resp.status, resp.read(), dict(resp.headers.items()))
        except urllib.error.HTTPError as error:
            body = error.read()
            if error.code >= 500 or error.code == 429:
                last = error
                logger.warning("provider unavailable", extra={"provider": provider, "http_status": error.code})
                continue
            try:
                payload = json.loads(body or b"null")
            except ValueError:
                payload = None
            raise ProviderHttpError(provider, error.code, payload) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            last = error
            logger.warning("provider unreachable", extra={"provider": provider, "error_class": type(error).__name__})
            continue
    raise ProviderUnavailable(f"{provider} is not answering; try again shortly.") from last


Model = TypeVar("Model", bound=BaseModel)


def parse_as(provider: str, model: type[Model], payload: Any) -> Model:
    """A provider answer as its wire model; an unexpected shape is a ProviderError."""
    try:
        return model.model_validate(payload)
    except ValidationError:
        # The validation error would echo the payload; keep it out of messages and logs.
        raise ProviderError(f"{provider} answered with an unexpected shape.") from None


def path_segment(value: str) -> str:
    # Ids come from the provider or from our tables; quoting keeps a crafted one inside its segment.
    return quote(value, safe="")
