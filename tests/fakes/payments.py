"""In-memory fakes with the same methods as the repositories and ports the payment-link use cases use."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clinicpay.domain.appointment import PaymentRecord, PaymentStatus, ProviderSession
from clinicpay.domain.clinic import Clinic, ClinicSettings, Service
from clinicpay.domain.errors import NotFound, ProviderUnavailable
from clinicpay.domain.ledger import settled_status
from clinicpay.domain.money import Money
from clinicpay.notify.builtin import Text
from clinicpay.ports import CheckoutRequest, CheckoutSession, OutgoingMessage, PaymentEvent
from clinicpay.repositories.appointments import EventAttempt, StoredAppointment, ask_key


@dataclass
class FakeAppointments:
    stored: dict[tuple[str, str], StoredAppointment] = field(default_factory=dict)
    links: dict[str, tuple[str, str]] = field(default_factory=dict)
    events: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str | None] = field(default_factory=dict)
    payments: list[dict[str, Any]] = field(default_factory=list)
    last_event_at: dict[str, datetime] = field(default_factory=dict)

    def add(self, stored: StoredAppointment) -> None:
        a = stored.appointment
        self.stored[(a.clinic_id, a.appointment_id)] = stored
        if stored.link_token:
            self.links[stored.link_token] = (a.clinic_id, a.appointment_id)

    def get(self, clinic_id: str, appointment_id: str, *, consistent: bool = False) -> StoredAppointment:
        if (clinic_id, appointment_id) not in self.stored:
            raise NotFound()
        return self.stored[(clinic_id, appointment_id)]

    def find_link(self, token: str) -> tuple[str, str] | None:
        return self.links.get(token)

    def get_many(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], StoredAppointment]:
        return {key: self.stored[key] for key in keys if key in self.stored}

    def save_session(self, clinic_id: str, appointment_id: str, session: ProviderSession, expected_attempts: int,
                     *, expected_version: int = 0, now: datetime | None = None) -> bool:
        stored = self.stored[(clinic_id, appointment_id)]
        if stored.session_attempts != expected_attempts or stored.ledger_version != expected_version:
            return False
        stored.session, stored.session_attempts = session, expected_attempts + 1
        stored.session_ids = stored.session_ids | {session.session_id}
        if session.amount is not None:
            stored.session_asks = stored.session_asks | {ask_key(session.session_id, session.amount)}
        return True

    # Events are kept per clinic, like the real records (EVENT#{clinic}#{provider}#{event_id}).
    def _event_key(self, clinic_id: str, event: PaymentEvent) -> str:
        return f"{clinic_id}#{event.provider}#{event.event_id}"

    def record_event(self, clinic_id: str, event: PaymentEvent, outcome: str, reason: str | None = None) -> bool:
        key = self._event_key(clinic_id, event)
        if key in self.events:
            return False
        self.events[key] = outcome
        self.reasons[key] = reason
        return True

    def _owned(self, clinic_id: str, event: PaymentEvent) -> StoredAppointment | None:
        """The appointment if the event may touch it (the real condition), else None."""
        stored = self.stored.get((clinic_id, event.appointment_id or ""))
        if stored is None or not stored.owns_session(event.session_id):
            return None
        if event.amount and not stored.asked(event.session_id, event.amount):
            return None
        return stored

    def apply_paid(self, clinic_id: str, event: PaymentEvent) -> EventAttempt:
        if self._event_key(clinic_id, event) in self.events:
            return EventAttempt("duplicate")
        if any(p["reference"] == event.payment_reference for p in self.payments):
            return EventAttempt("already_applied")
        stored = self._owned(clinic_id, event)
        if stored is None or event.amount is None:
            return EventAttempt("refused", self.stored.get((clinic_id, event.appointment_id or "")))
        self.events[self._event_key(clinic_id, event)] = "applied"
        appointment = stored.appointment
        appointment.amount_paid = Money(amount=appointment.amount_paid.amount + event.amount.amount,
                                        currency=appointment.price.currency)
        appointment.payment_status = settled_status(appointment.price, appointment.amount_paid,
                                                    appointment.amount_refunded, appointment.payment_status)
        appointment.payment = PaymentRecord(provider=event.provider, reference=event.payment_reference or "",
                                            amount=event.amount, fee=event.fee, paid_at=event.occurred_at)
        stored.paid_session_id = event.session_id
        stored.ledger_version += 1
        self.payments.append({"reference": event.payment_reference})
        return EventAttempt("applied")

    def apply_status(self, clinic_id: str, event: PaymentEvent, *, to_status: str | None,
                     clear_session_id: str | None = None) -> EventAttempt:
        if self._event_key(clinic_id, event) in self.events:
            return EventAttempt("duplicate")
        stored = self._owned(clinic_id, event)
        refused = EventAttempt("refused", self.stored.get((clinic_id, event.appointment_id or "")))
        if stored is None or stored.appointment.payment_status not in (PaymentStatus.UNPAID, PaymentStatus.PENDING):
            return refused
        last = self.last_event_at.get(stored.appointment.appointment_id)
        if last and last > event.occurred_at:
            return refused
        if clear_session_id and (not stored.session or stored.session.session_id != clear_session_id):
            return refused
        self.events[self._event_key(clinic_id, event)] = "applied"
        self.last_event_at[stored.appointment.appointment_id] = event.occurred_at
        if to_status:
            stored.appointment.payment_status = PaymentStatus(to_status)
        if clear_session_id:
            stored.session = None
        return EventAttempt("applied")


@dataclass
class FakeClinics:
    clinic: Clinic
    settings: ClinicSettings
    services: dict[str, Service]
    gateways: list[str] = field(default_factory=lambda: ["fintoc"])

    def get(self, clinic_id: str) -> Clinic:
        return self.clinic

    def get_settings(self, clinic_id: str) -> ClinicSettings:
        return self.settings

    def get_service(self, clinic_id: str, service_id: str) -> Service:
        return self.services[service_id]

    def list_gateways(self, clinic_id: str) -> list[dict[str, Any]]:
        return [{"provider": g} for g in self.gateways]


@dataclass
class FakeGateway:
    name: str = "fintoc"
    down: bool = False
    requests: list[CheckoutRequest] = field(default_factory=list)
    expires_at: datetime | None = None

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        if self.down:
            raise ProviderUnavailable()
        self.requests.append(request)
        number = len(self.requests)
        return CheckoutSession(provider=self.name, session_id=f"cs_{number}", url=f"https://pay.example/cs_{number}",
                               expires_at=self.expires_at)

    def parse_webhook(self, raw_body: bytes, headers: Any) -> list[PaymentEvent]:
        return []


@dataclass
class FakeNotifier:
    sent: list[OutgoingMessage] = field(default_factory=list)
    failing: bool = False

    def send(self, message: OutgoingMessage) -> str:
        if self.failing:
            raise ProviderUnavailable()
        self.sent.append(message)
        return f"msg-{len(self.sent)}"


@dataclass
class FakeTemplates:
    texts: dict[tuple[str, str, str, str], Text] = field(default_factory=dict)

    def get(self, owner: str, kind: str, channel: str, locale: str) -> Text | None:
        return self.texts.get((owner, kind, channel, locale))
