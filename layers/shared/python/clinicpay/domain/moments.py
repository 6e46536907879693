"""Date-times as the API takes them: RFC 3339 text only, between the years 2000 and 2100.

Pydantic would also read `0`, `1.5` or `"1700000000"` as Unix timestamps; a client that sent one
of those meant something else, so it is refused (422) instead of booking an appointment in 1970.
The years bound what arithmetic does with them (a reminder 24 hours before 0001-01-01 overflows).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

# The offset may be missing here: the use cases refuse a naive time with their own, clearer message.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})?$")


def _rfc3339_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("expected an RFC 3339 date-time, e.g. 2031-03-14T10:30:00-03:00")
    return value


def _plausible(value: datetime) -> datetime:
    if not 2000 <= value.year <= 2100:
        raise ValueError("expected a date-time between the years 2000 and 2100")
    return value


Moment = Annotated[datetime, BeforeValidator(_rfc3339_text), AfterValidator(_plausible)]
