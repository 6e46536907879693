"""What the stack has sent (emails through SES, SMS through SNS), for tests that run in-process."""

from __future__ import annotations

from typing import Any

from local.tools import Outbox

_outbox: Outbox | None = None


def messages(to: str | None = None) -> list[dict[str, Any]]:
    global _outbox
    if _outbox is None:
        _outbox = Outbox()
    return _outbox.messages(to)
