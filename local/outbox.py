"""What the stack has sent (emails through SES, SMS through SNS), for tests that run in-process."""

from __future__ import annotations

from typing import Any

from local.tools import Outbox, install_message_tags

_outbox: Outbox | None = None

# From the first send on, not from the first look: an email's text part (and its kind and language)
# is only known to the sender, and a test may look only after the sends it checks.
install_message_tags()


def messages(to: str | None = None) -> list[dict[str, Any]]:
    global _outbox
    if _outbox is None:
        _outbox = Outbox()
    return _outbox.messages(to)
