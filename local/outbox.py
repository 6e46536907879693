"""What the stack has sent: emails (SES) and SMS (SNS), read from the embedded moto backends."""

from __future__ import annotations

from typing import Any

REGION = "us-east-1"


def messages(to: str | None = None) -> list[dict[str, Any]]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends
    from moto.sns.models import sns_backends

    found: list[dict[str, Any]] = []
    for message in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages:
        for address in message.destinations.get("ToAddresses", []):
            found.append({"channel": "email", "to": address, "subject": message.subject, "body": message.body})
    for number, body in list(sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages.values()):
        found.append({"channel": "sms", "to": number, "subject": None, "body": body})
    return [m for m in found if to is None or m["to"] == to]
