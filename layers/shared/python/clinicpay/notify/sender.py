"""The Notifier adapter: SES v2 for email (rendered here; moto has no SES templates), SNS for SMS."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from clinicpay import deadline
from clinicpay.domain.errors import ProviderUnavailable
from clinicpay.observability import logger
from clinicpay.ports import OutgoingMessage


@lru_cache(maxsize=1)
def _ses() -> Any:
    return deadline.guard(boto3.client("sesv2", config=deadline.aws_config()))


@lru_cache(maxsize=1)
def _sns() -> Any:
    return deadline.guard(boto3.client("sns", config=deadline.aws_config()))


class AwsNotifier:
    def __init__(self, sender: str):
        self._sender = sender

    def send(self, message: OutgoingMessage) -> str:
        try:
            if message.channel == "email":
                response = _ses().send_email(
                    FromEmailAddress=self._sender,
                    Destination={"ToAddresses": [message.to]},
                    Content={"Simple": {"Subject": {"Data": message.subject or "", "Charset": "UTF-8"},
                                        "Body": {"Text": {"Data": message.body, "Charset": "UTF-8"}}}},
                )
            else:
                response = _sns().publish(PhoneNumber=message.to, Message=message.body,
                                          MessageAttributes={"AWS.SNS.SMS.SMSType": {
                                              "DataType": "String", "StringValue": "Transactional"}})
        except (ClientError, BotoCoreError) as error:
            logger.warning("message not sent", extra={"channel": message.channel, "kind": message.kind,
                                                      "error_class": type(error).__name__})
            raise ProviderUnavailable("The message could not be sent; try again.") from None
        message_id = str(response.get("MessageId", ""))
        logger.info("message sent", extra={"channel": message.channel, "kind": message.kind,
                                           "clinic_id": message.clinic_id, "message_id": message_id})
        return message_id
