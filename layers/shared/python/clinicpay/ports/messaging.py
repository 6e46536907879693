"""Messaging: a message to a patient (email or SMS) and what sends it."""

from __future__ import annotations

from typing import Literal, Protocol

from clinicpay.domain.model import Model


class OutgoingMessage(Model):
    channel: Literal["email", "sms"]
    to: str
    subject: str | None = None
    body: str  # the plain text: the SMS, or the email's text part (its HTML part is made from it)
    kind: str
    clinic_id: str
    locale: str | None = None  # the language it is written in (the HTML part's `lang`)


class Notifier(Protocol):
    def send(self, message: OutgoingMessage) -> str:
        """Send one message; returns the transport's message id."""
        ...
