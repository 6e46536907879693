"""The port between a message and SES/SNS, for the retry job: one send, nothing kept."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from clinicpay.ports.messaging import OutgoingMessage


class MessageRefused(Exception):
    """SES or SNS did not take the message. `permanent`: the message itself is invalid (a malformed
    address or number), so sending it again can never work."""

    def __init__(self, code: str, *, permanent: bool):
        super().__init__(code)
        self.code = code
        self.permanent = permanent


class Transport(Protocol):
    def deliver(self, message: OutgoingMessage) -> str:
        """Send one message; returns the transport's message id or raises MessageRefused."""
        ...
