"""Make the local SES or SNS refuse the next sends, the way AWS refuses them when it throttles.

    refuse_next("sns", count=2, code="Throttled")     the next two SMS are refused (HTTP 400/429-like)
    refuse_next("ses", count=1, code="TooManyRequestsException")
    clear()

Also served as `POST /_local/aws-faults {"service": "ses"|"sns", "count": n, "code": "..."}` and
`DELETE /_local/aws-faults` (local/tools.py). moto itself refuses an email from an unverified
sender (MessageRejected): delete the sender's identity to see that path. The wrappers sit on moto's
backend classes, so they survive /moto-api/reset; a refused send is not recorded by moto.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Literal

Service = Literal["ses", "sns"]

_lock = threading.Lock()
_pending: dict[str, list[str]] = {"ses": [], "sns": []}  # error codes still to answer, in order


def refuse_next(service: Service, count: int = 1, code: str | None = None) -> None:
    if service not in _pending:
        raise ValueError(f"service must be ses or sns, not {service!r}")
    _install()
    default = "TooManyRequestsException" if service == "ses" else "Throttled"
    with _lock:
        _pending[service] += [code or default] * count


def clear() -> None:
    with _lock:
        for codes in _pending.values():
            codes.clear()


def pending() -> dict[str, int]:
    with _lock:
        return {service: len(codes) for service, codes in _pending.items()}


def _next_refusal(service: str) -> str | None:
    with _lock:
        return _pending[service].pop(0) if _pending[service] else None


def _install() -> None:
    from moto.ses.exceptions import SesError
    from moto.ses.models import SESBackend
    from moto.sns.exceptions import SNSException
    from moto.sns.models import SNSBackend

    # moto serializes an error by the service its exception class belongs to
    errors = {"ses": SesError, "sns": SNSException}

    def refusing(service: str, method: Callable[..., Any]) -> Callable[..., Any]:
        if getattr(method, "_clinicpay_faults", False):
            return method

        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            code = _next_refusal(service)
            if code is not None:
                raise errors[service](code, f"Refused by the local fault hook ({code})")
            return method(*args, **kwargs)

        wrapper._clinicpay_faults = True  # type: ignore[attr-defined]
        return wrapper

    with _lock:
        for cls, service, names in ((SESBackend, "ses", ("send_email", "send_raw_email")), (SNSBackend, "sns", ("publish",))):
            for name in names:
                setattr(cls, name, refusing(service, getattr(cls, name)))
