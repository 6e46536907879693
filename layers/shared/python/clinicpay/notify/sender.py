"""The Notifier adapter: SES v2 for email (rendered here; moto has no SES templates), SNS for SMS.

A message SES or SNS refuses for a passing reason (throttled, sending quota or pause, the sender not
verified yet, a 5xx, no answer) is not lost: `AwsNotifier.send` keeps it in the message outbox
(repositories/message_outbox.py) and answers with its outbox id (`ob_...`), as a mail server
answers "queued"; the `message-retry` job (usecases/message_retry.py) sends it later, once. Only a
message SES/SNS calls invalid in itself (a malformed address or number, a body too long) is refused
to the caller, as before (ProviderUnavailable).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from clinicpay import deadline
from clinicpay.domain.errors import ClinicpayError, ProviderUnavailable
from clinicpay.notify.html import email_html
from clinicpay.notify.transport import MessageRefused
from clinicpay.observability import logger, metrics

if TYPE_CHECKING:
    from clinicpay.ports.messaging import OutgoingMessage
    from clinicpay.repositories.message_outbox import MessageOutbox

# Refusals about the message itself: sending it again can never work. SES v2 answers a malformed
# address with BadRequestException (moto, like SES v1, with InvalidParameterValue); SNS answers a
# malformed phone number or an oversized SMS with InvalidParameter.
PERMANENT_CODES = frozenset({"BadRequestException", "InvalidParameterValue", "InvalidParameter",
                             "InvalidParameterException", "ValidationError", "ValidationException"})
FIRST_RETRY_AFTER = timedelta(minutes=1)


@lru_cache(maxsize=1)
def _ses() -> Any:
    return deadline.guard(boto3.client("sesv2", config=deadline.aws_config()))


def _our_hosts() -> frozenset[str]:
    """The hosts whose addresses an email may show as links: our public pages (/pay, cards, receipts).
    Read per message (settings are cached already), so a changed setting is never stale here."""
    from urllib.parse import urlsplit

    from clinicpay.settings import get_settings

    return frozenset({urlsplit(get_settings().public_base_url).netloc.lower()})


@lru_cache(maxsize=1)
def _sns() -> Any:
    return deadline.guard(boto3.client("sns", config=deadline.aws_config()))


class AwsTransport:
    """One SES/SNS call per message, nothing kept: what the retry job sends with."""

    def __init__(self, sender: str):
        self._sender = sender

    def deliver(self, message: OutgoingMessage) -> str:
        try:
            if message.channel == "email":
                # Both parts: SES sends them as multipart/alternative; clients that show no
                # HTML (or patients who chose text) read the text part.
                html = email_html(message.subject or "", message.body, message.locale, link_hosts=_our_hosts())
                response = _ses().send_email(
                    FromEmailAddress=self._sender,
                    Destination={"ToAddresses": [message.to]},
                    Content={"Simple": {"Subject": {"Data": message.subject or "", "Charset": "UTF-8"},
                                        "Body": {"Text": {"Data": message.body, "Charset": "UTF-8"},
                                                 "Html": {"Data": html, "Charset": "UTF-8"}}}},
                )
            else:
                response = _sns().publish(PhoneNumber=message.to, Message=message.body,
                                          MessageAttributes={"AWS.SNS.SMS.SMSType": {
                                              "DataType": "String", "StringValue": "Transactional"}})
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code") or "ClientError")
            raise MessageRefused(code, permanent=code in PERMANENT_CODES) from None
        except BotoCoreError as error:
            # No answer (a timeout may still have delivered it: a retry can then send it twice,
            # which we prefer to a payment link never sent), or no time left to ask.
            raise MessageRefused(type(error).__name__, permanent=False) from None
        return str(response.get("MessageId", ""))


class AwsNotifier:
    def __init__(self, sender: str, outbox: MessageOutbox | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._transport = AwsTransport(sender)
        self._outbox = outbox  # built on first need, on the settings' table
        self._clock = clock

    def send(self, message: OutgoingMessage) -> str:
        """Send now, or keep for the retry job; returns the SES/SNS message id or the outbox id."""
        try:
            message_id = self._transport.deliver(message)
        except MessageRefused as refusal:
            extra = {"channel": message.channel, "kind": message.kind, "clinic_id": message.clinic_id,
                     "error_class": refusal.code}
            if refusal.permanent:
                logger.warning("message not sent", extra=extra)
                raise ProviderUnavailable("The message could not be sent; try again.") from None
            return self._keep(message, refusal.code, extra)
        logger.info("message sent", extra={"channel": message.channel, "kind": message.kind,
                                           "clinic_id": message.clinic_id, "message_id": message_id})
        return message_id

    def _keep(self, message: OutgoingMessage, code: str, extra: dict[str, Any]) -> str:
        now = self._clock()
        try:
            outbox_id = self._store().keep(message, error=code, now=now, next_attempt_at=now + FIRST_RETRY_AFTER)
        except ClinicpayError:
            logger.warning("message not sent and not kept", extra=extra)
            raise ProviderUnavailable("The message could not be sent; try again.") from None
        metrics.add_metric(name="MessageKeptForRetry", unit="Count", value=1)
        logger.warning("message refused for now; kept for the message-retry job", extra={**extra, "outbox_id": outbox_id})
        return outbox_id

    def _store(self) -> MessageOutbox:
        if self._outbox is None:
            from clinicpay.repositories.message_outbox import MessageOutbox
            from clinicpay.settings import get_settings

            self._outbox = MessageOutbox(get_settings().app_table)
        return self._outbox
