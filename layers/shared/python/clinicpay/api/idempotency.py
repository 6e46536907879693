"""`Idempotency-Key` for mutating requests: the same key and body return the first response.

Keyed on the header plus method, path and caller credential, so two clinics choosing the same key
never collide; a request without the header is not deduplicated at all (two identical bookings are
two bookings). Only a success (2xx, 3xx) is remembered: a 4xx or 5xx changed nothing, so a retry with
the same key runs again (a 429's retry after the wait books; a 503's once the provider is back), and a
refused caller (no key, another clinic's key) leaves nothing behind. Nor is any answer that asks the
caller to come back (`Retry-After`), such as a card charge still processing (202): its outcome is not
decided yet, and the retry is how the caller learns it. A remembered answer is given back only while
the key that earned it has not been revoked: a key revoked since then gets a 401.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from clinicpay import deadline
from clinicpay.api.resolver import edge_checked, edge_refusal, error_dict, harden

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

_KEY = ('headers."idempotency-key" && [headers."idempotency-key", requestContext.http.method, rawPath, '
        'headers.authorization || headers."x-clinic-key" || `""`]')


class _NotRemembered(Exception):
    def __init__(self, response: dict[str, Any]):
        self.response = response


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"error": {"code": code, "message": message, "details": []}})}


@lru_cache(maxsize=1)
def _idempotency() -> tuple[Any, Any, Any, Any]:
    """The Powertools idempotency utility, loaded on the first mutating request: reads (most of the
    traffic, e.g. patients opening links) never pay for importing it."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    from clinicpay.settings import get_settings

    config = IdempotencyConfig(event_key_jmespath=_KEY, payload_validation_jmespath="body",
                               raise_on_no_idempotency_key=False, expires_after_seconds=24 * 3600)
    # Bounded like every AWS client of ours, but not guarded: Powertools would turn a refused call
    # into its own persistence error, which no handler maps to our error shape.
    decorator = idempotent(config=config, persistence_store=DynamoDBPersistenceLayer(
        table_name=get_settings().idempotency_table, boto_config=deadline.aws_config()))
    return decorator, IdempotencyValidationError, IdempotencyAlreadyInProgressError, config


def _revoked_credential(event: dict[str, Any]) -> dict[str, Any] | None:
    """A 401 when the request presents a key that has been revoked.

    The route's own check (the resolver's `access=`) runs only when the request is not a replay, so
    without this a key revoked after its first request could still read that request's answer back
    for 24 hours. Only a revoked key is refused here: a header that never was a key earned nothing
    on a keyed route (a 401 is not remembered), and on a link-token route it is not the credential,
    so its answers replay as before. A live key costs nothing more (the key cache the resolver uses
    next); only a key that is not live costs a read."""
    from clinicpay.api.auth import bearer
    from clinicpay.domain.errors import StorageUnavailable, Unauthorized
    from clinicpay.repositories.keys import KeyRepository, hash_key
    from clinicpay.settings import get_settings

    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    token = headers.get("x-clinic-key") or bearer(headers)
    if not token:
        return None
    keys = KeyRepository(get_settings().keys_table)
    try:
        if keys.find(hash_key(token)) is not None or not keys.revoked(hash_key(token)):
            return None
    except StorageUnavailable as unavailable:
        return harden(error_dict(unavailable))
    return harden(error_dict(Unauthorized()))


def idempotent_http(resolve: Handler) -> Handler:
    def remembered(event: dict[str, Any], context: Any) -> dict[str, Any]:
        response = resolve(event, context)
        status = int(response.get("statusCode", 200))
        come_back = any(name.lower() == "retry-after" for name in response.get("headers") or {})
        if status >= 400 or come_back:  # a 4xx/5xx decided nothing; a come-back answer nothing yet
            raise _NotRemembered(response)
        return response

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        # A request carrying card data (or too large, too deep, not UTF-8) is refused before anything,
        # even a hash of it, is stored.
        refused = edge_refusal(event)
        if refused:
            return refused
        with edge_checked(event):
            return _keyed(event, context)

    def _keyed(event: dict[str, Any], context: Any) -> dict[str, Any]:
        method = event.get("requestContext", {}).get("http", {}).get("method")
        if method in ("GET", "HEAD") or "idempotency-key" not in (event.get("headers") or {}):
            return resolve(event, context)
        revoked = _revoked_credential(event)
        if revoked:
            return revoked
        decorator, reused_error, in_progress_error, _ = _idempotency()
        try:
            return decorator(remembered)(event, context)  # type: ignore[no-any-return]
        except _NotRemembered as outcome:
            return outcome.response
        except reused_error:
            return _error(422, "idempotency_key_reused", "That Idempotency-Key was used with a different body.")
        except in_progress_error:
            return _error(409, "request_in_progress", "A request with that Idempotency-Key is still running.")

    return handler
