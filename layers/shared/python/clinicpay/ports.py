"""Ports: what the use cases need from the outside world, one per capability (not per provider).

Adapters live in `clinicpay.providers.<name>`; tests use fakes that implement the same Protocols.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import Field

from clinicpay.domain.model import Model
from clinicpay.domain.money import Money


class CheckoutRequest(Model):
    clinic_id: str
    appointment_id: str
    amount: Money
    description: str
    customer_email: str | None = None
    success_url: str
    cancel_url: str
    # Stable per (appointment, attempt) so a retried create never makes a second provider session.
    idempotency_key: str
    webhook_url: str
    metadata: dict[str, str] = Field(default_factory=dict)


class CheckoutSession(Model):
    provider: str
    session_id: str
    url: str
    expires_at: datetime | None = None


PaymentEventKind = Literal["succeeded", "failed", "pending", "expired", "refunded", "ignored"]


class RefundNotice(Model):
    """What a provider event says about one refund: one we asked for (the provider echoes our
    `refund_id`), or one started at the provider's dashboard (no refund id of ours)."""

    payment_reference: str  # the provider's payment id the refund gives money back from
    amount: Money
    status: Literal["pending", "succeeded", "failed"]
    provider_refund_id: str | None = None
    refund_id: str | None = None  # ours, from the metadata we sent when we created it
    failure_code: str | None = None


class PaymentEvent(Model):
    """A verified provider event, in provider-neutral terms."""

    provider: str
    event_id: str  # what repeats of the same delivery share: the dedupe key
    kind: PaymentEventKind
    occurred_at: datetime  # orders events: an older one never undoes a newer one
    session_id: str | None = None  # checkout session / invoice the event is about
    payment_reference: str | None = None  # the provider's payment id, kept on the appointment
    appointment_id: str | None = None
    amount: Money | None = None
    fee: Money | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    refund: RefundNotice | None = None  # kind "refunded": the refund, for the ledger (usecases/refunds.py)


class SessionAnswer(Model):
    """What a provider says when asked about one of our checkout sessions (link reconciliation):
    the answer as the event its webhook would have carried, and whether the session is settled
    (paid, expired, failed for good: nothing more will happen to it, so we stop asking)."""

    event: PaymentEvent
    settled: bool


def asked_event_id(session_id: str, kind: str, payment_reference: str | None) -> str:
    """The event id of an answer we asked for, where the provider's answer carries no event id:
    the same answer asked twice is one event (recorded once per clinic, like a repeated webhook)."""
    return f"asked:{session_id}:{kind}:{payment_reference or '-'}"


class PaymentGateway(Protocol):
    """A provider that can sit behind `/pay/{token}` and tells us by webhook how it went."""

    name: str

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession: ...

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> list[PaymentEvent]:
        """Verify the signature over the raw bytes, then translate. Raises InvalidSignature."""
        ...

    def session_status(self, session_id: str) -> SessionAnswer:
        """Ask the provider how the session stands (a GET: nothing changes). The event's kind is
        `ignored` while nothing has happened yet. Raises a ClinicpayError when there is no answer."""
        ...


# ---------------------------------------------------------------- refunds
# Money given back from a payment we recorded (a link payment: Fintoc payment intent, Stripe payment
# intent, monobank invoice). The ledger reserves the amount on the payment row BEFORE this call, so
# concurrent clicks can never give back more than was paid (usecases/refunds.py).


class RefundRequest(Model):
    clinic_id: str
    refund_id: str  # ours, minted with domain/ids.py before the first provider call, reused on retries
    payment_reference: str  # the provider's payment id (Fintoc payment intent, Stripe payment intent, monobank invoiceId)
    amount: Money  # what to give back now (partial allowed), minor units
    idempotency_key: str  # f"clinicpay-{clinic_id}-refund-{refund_id}"
    reason: str | None = None
    fiscal_items: list[dict[str, Any]] | None = None  # monobank `items` when its fiscalization is on


class RefundResult(Model):
    provider_refund_id: str | None = None
    status: Literal["pending", "succeeded", "failed"]
    failure_code: str | None = None


class RefundingGateway(Protocol):
    """A link gateway that can give money back. A refusal (the provider decided: no) is a result
    with status "failed"; ProviderOutcomeUnknown (a timeout, a 5xx after retries) is raised and
    leaves the refund pending until the provider's event or our asking settles it; a plain
    ProviderUnavailable means nothing was sent."""

    name: str

    def refund(self, request: RefundRequest) -> RefundResult: ...


class RefundLookup(Protocol):
    """A refunding gateway that can also be asked what became of a refund (the reconciliation job,
    when the provider's answer or event never came): the provider's refund by its id when we know
    it, else the one our metadata names; None when the provider has no such refund."""

    # Whether a refund the provider never received may be sent again under the same key (the
    # provider deduplicates it); False: it is only released once it is surely not coming.
    refund_resend_safe: bool

    def find_refund(self, request: RefundRequest, provider_refund_id: str | None) -> RefundResult | None: ...


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


# ---------------------------------------------------------------- cards on file
# The card processor behind `tokenize` (Stripe today; Adyen would be one more adapter). Card numbers
# never cross this port: a card is entered on the processor's own page and comes back as a token.


class VaultCard(Model):
    """A saved card as the processor describes it. `token` is the processor's reusable reference
    (a Stripe PaymentMethod id): stored to charge later, never returned by our API nor logged."""

    token: str = Field(repr=False)
    brand: str
    last4: str
    exp_month: int
    exp_year: int


class CardSetupRequest(Model):
    clinic_id: str
    patient_id: str
    customer_ref: str
    setup_ref: str  # our id for this attempt; the processor hands it back in its events
    success_url: str
    cancel_url: str
    locale: str | None = None
    idempotency_key: str


class CardSetupSession(Model):
    session_id: str  # the hosted page (Stripe Checkout Session)
    setup_id: str | None = None  # the processor's setup object (Stripe SetupIntent), when known now
    url: str
    expires_at: datetime | None = None


class OffSessionCharge(Model):
    clinic_id: str
    patient_id: str
    charge_id: str
    customer_ref: str
    card_token: str = Field(repr=False)
    amount: Money
    description: str
    # Stable per charge, so a retry (ours or the caller's) never charges twice.
    idempotency_key: str
    # Where a patient who completes an authentication the bank asked for lands afterwards.
    return_url: str
    metadata: dict[str, str] = Field(default_factory=dict)


ChargeStatus = Literal["succeeded", "requires_action", "failed", "processing"]


class ChargeResult(Model):
    status: ChargeStatus
    reference: str | None = None  # the processor's payment id (Stripe PaymentIntent)
    failure_code: str | None = None  # e.g. insufficient_funds, authentication_required
    action_url: str | None = None  # a page where the patient completes authentication


CardEventKind = Literal["setup_succeeded", "setup_failed", "charge_succeeded", "charge_failed",
                        "charge_requires_action", "charge_processing", "charge_refunded", "refund_updated",
                        "dispute_updated", "card_detached", "ignored"]


class RefundObservation(Model):
    """One refund as the processor reports it (its event, or our asking): ours, or one started in
    the processor's dashboard."""

    provider_refund_id: str
    payment_reference: str | None = None  # the payment it gives money back from (Stripe PaymentIntent)
    amount: Money | None = None
    status: Literal["pending", "succeeded", "failed"]
    failure_code: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)  # the refund's own (ours carry our refund id)


class DisputeObservation(Model):
    """A cardholder's dispute (chargeback) of a payment, as the processor reports it."""

    dispute_id: str
    payment_reference: str | None = None
    amount: Money | None = None
    reason: str | None = None
    status: str  # the processor's own: needs_response, under_review, won, lost, warning_* ...


class CardEvent(Model):
    """A verified processor event about cards or off-session charges, in neutral terms. Also what
    our own asking (reconciliation) observed, so both take one code path."""

    provider: str
    event_id: str
    kind: CardEventKind
    occurred_at: datetime
    setup_id: str | None = None
    card_token: str | None = Field(default=None, repr=False)
    customer_ref: str | None = None
    charge_reference: str | None = None
    amount: Money | None = None  # what a charge event says was charged
    failure_code: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    refunded_total: Money | None = None  # charge_refunded: all the processor has given back on the payment
    refund: RefundObservation | None = None  # refund_updated
    dispute: DisputeObservation | None = None  # dispute_updated


class CardVault(Protocol):
    """Saves cards at a processor and charges them later, off-session."""

    name: str

    def ensure_customer(self, clinic_id: str, patient_id: str, *, existing: str | None = None) -> str:
        """The processor's customer for this patient: `existing` when given, else a new one."""
        ...

    def start_setup(self, request: CardSetupRequest) -> CardSetupSession:
        """A hosted page where the patient enters a card to be saved for later charges."""
        ...

    def attach_card(self, token: str, customer_ref: str) -> VaultCard:
        """Attach a token made on the processor's own page/field to the customer; describe the card."""
        ...

    def detach_card(self, token: str) -> None:
        """Make the token unusable at the processor. Detaching twice is not an error."""
        ...

    def charge(self, request: OffSessionCharge) -> ChargeResult:
        """Charge a saved card with the patient absent. A decline is a result, not an exception.
        Raises ProviderOutcomeUnknown when the processor may have charged and did not say."""
        ...

    def cancel_charge(self, reference: str, *, idempotency_key: str) -> ChargeResult:
        """Cancel a charge that has not completed. Returns the charge as it stands after: `failed`
        when cancelled (or already failed), `succeeded` when it completed first, anything else
        when it can no longer be cancelled but has not finished."""
        ...

    def observe_charge(self, reference: str) -> CardEvent:
        """Ask the processor how a charge stands, as the event that state would have sent."""
        ...

    def find_charge(self, customer_ref: str, charge_id: str, created_after: datetime) -> CardEvent | None:
        """A charge we may have created (our id in its metadata) without learning its reference,
        as `observe_charge` would report it; None when the processor has no such charge."""
        ...

    def observe_refunds(self, reference: str) -> list[CardEvent]:
        """Every refund of a charge, as the events that report them."""
        ...

    def refund(self, request: RefundRequest) -> RefundResult:
        """Give money back from a charge. A refusal is a `failed` result; ProviderOutcomeUnknown
        when the processor may have refunded and did not say."""
        ...

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> list[CardEvent]:
        """Verify the signature over the raw bytes, then translate. Raises InvalidSignature."""
        ...


# --- QR payments and fiscal receipts (issue 4) ------------------------------------------------
# Names only for the type checker: `from __future__ import annotations` keeps these lazy at runtime.
if TYPE_CHECKING:
    from clinicpay.domain.fiscal import FiscalStatus, Receipt, ReceiptRequest, ReceiptResult, ShiftState
    from clinicpay.domain.qr import (
        FiscalDoc,
        InvoiceUpdate,
        QrAmountRequest,
        QrInvoice,
        QrPayment,
        QrRefund,
        QrRegister,
        QrRegisterInfo,
        QrReportFilters,
        Undecided,
    )


class QrAcquirer(Protocol):
    """An acquirer with QR cash registers the patient scans (monobank)."""

    name: str

    def list_registers(self) -> list[QrRegisterInfo]: ...

    def put_amount(self, request: QrAmountRequest) -> str:
        """Create an invoice on the register; returns the acquirer's invoice id."""
        ...

    def reset_amount(self, qr_id: str) -> None: ...

    def invoice_status(self, invoice_id: str) -> InvoiceUpdate: ...

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> InvoiceUpdate:
        """Verify the signature over the raw bytes, then translate. Raises InvalidSignature."""
        ...

    def refund(self, request: RefundRequest) -> RefundResult:
        """Give money back from a paid invoice (invoice/cancel). ProviderOutcomeUnknown: undecided."""
        ...

    def fiscal_checks(self, invoice_id: str) -> list[ProviderFiscalCheck]:
        """The receipts the acquirer itself made for an invoice (its own fiscalization)."""
        ...


class ProviderFiscalCheck(Model):
    """A receipt an acquirer made itself (monobank's fiscal-checks): its Checkbox link or monopay PRRO."""

    id: str
    type: Literal["sale", "return"]
    status: str  # new, process, done, failed
    source: Literal["checkbox", "monopay"]
    tax_url: str | None = None
    status_description: str | None = None

    @property
    def made(self) -> bool:
        """Made or being made: it counts, so ours would be a second one. Only `failed` does not."""
        return self.status != "failed"


class FiscalRegister(Protocol):
    """A software cash register (pRRO) that turns card payments into fiscal receipts (Checkbox)."""

    def current_shift(self) -> ShiftState: ...

    def open_shift(self) -> ShiftState: ...

    def close_shift(self) -> ShiftState: ...

    def sell(self, receipt: ReceiptRequest) -> ReceiptResult:
        """Register the receipt under `receipt.receipt_id` (a repeat returns the first) and wait a
        bounded time for its outcome. Raises ShiftClosed, FiscalRejected, FiscalRegisterBusy or
        ProviderUnavailable; a receipt still in progress comes back with state PROCESSING."""
        ...

    def get_receipt(self, receipt_id: str) -> ReceiptResult | None: ...


class QrStore(Protocol):
    """Persistence of QR registers, QR invoices and QR payments; every change is conditional."""

    def put_registers(self, clinic_id: str, registers: list[QrRegisterInfo], synced_at: str) -> list[QrRegister]: ...

    def list_registers(self, clinic_id: str) -> list[QrRegister]: ...

    def get_register(self, clinic_id: str, qr_id: str) -> QrRegister | None: ...

    def set_register_amount(self, register: QrRegister, invoice: QrInvoice) -> None: ...

    def clear_register_amount(self, clinic_id: str, qr_id: str, invoice_id: str | None) -> bool: ...

    def put_invoice(self, invoice: QrInvoice) -> None: ...

    def get_invoice(self, clinic_id: str, invoice_id: str) -> QrInvoice | None: ...

    def invoice_and_payment(self, clinic_id: str, invoice_id: str) -> tuple[QrInvoice | None, QrPayment | None]: ...

    def event_recorded(self, clinic_id: str, event_id: str) -> bool: ...

    def record_event(self, clinic_id: str, event_id: str, *, kind: str, outcome: str, reason: str | None,
                     at: datetime) -> bool: ...

    def advance_invoice(self, clinic_id: str, update: InvoiceUpdate) -> bool: ...

    def create_payment(self, payment: QrPayment) -> bool: ...

    def get_payment(self, clinic_id: str, payment_id: str) -> QrPayment | None: ...

    def advance_payment_invoice_status(self, clinic_id: str, payment_id: str, update: InvoiceUpdate) -> bool: ...

    # Fiscal documents (a payment's sale receipt, a refund's return receipt), by `doc_key`:
    # `QRPAY#{payment_id}` or `QRREF#{payment_id}#{refund_id}` (clinicpay.domain.qr.doc_key).
    def get_doc(self, clinic_id: str, key: str) -> FiscalDoc | None: ...

    def claim_doc(self, clinic_id: str, key: str, *, token: str, now: str, lease_until: str,
                  allow_failed: bool, respect_backoff: bool) -> FiscalDoc: ...

    def complete_doc(self, clinic_id: str, key: str, receipt: Receipt | None, *, status: FiscalStatus | None = None,
                     token: str | None = None, fiscalized_by: str | None = None) -> bool:
        """-> fiscalized with its receipt (only for the receipt id it holds), out of the waiting
        index; or, with `status` (external, not_required), settled by the claim's holder (`token`)
        without a receipt of ours."""
        ...

    def release_doc(self, clinic_id: str, key: str, *, token: str, status: FiscalStatus,
                    last_error: str | None, next_attempt_at: str | None,
                    new_receipt_id: str | None = None, failed_receipt_id: str | None = None) -> bool: ...

    def awaiting(self, clinic_id: str | None = None, *, shard: int | None = None,
                 limit: int | None = None) -> tuple[list[FiscalDoc], int]:
        """Documents (sale and return) that await their receipt (the sparse index only): a clinic's,
        one shard's (repositories/shards.py), or every one; returns them and items read."""
        ...

    # Refunds of a payment: each recorded once (its key), never above what is left of the payment.
    def refunds(self, clinic_id: str, payment_id: str) -> list[QrRefund]: ...

    def get_refund(self, clinic_id: str, payment_id: str, refund_id: str) -> QrRefund | None: ...

    def record_refund(self, payment: QrPayment, refund: QrRefund, *, now: str) -> bool:
        """Reserve the refund's amount on the payment and store it, in one transaction. False when
        it was recorded before; ConditionFailed when the payment has not that much left."""
        ...

    def settle_refund(self, refund: QrRefund, *, status: str, now: str, failure_code: str | None = None,
                      fiscal_status: FiscalStatus | None = None, card: Any = None) -> bool:
        """pending -> succeeded (the payment's settled amount grows; the return receipt becomes due
        when `fiscal_status` is PENDING) or failed (the reservation is released)."""
        ...

    def retry_refund(self, payment: QrPayment, refund: QrRefund, *, now: str) -> bool:
        """failed -> pending again, reserving its amount again (the same refund id is asked again)."""
        ...

    def undecided(self, clinic_id: str | None = None, *, shard: int | None = None,
                  older_than: str | None = None) -> list[Undecided]:
        """QR invoices and refunds of ours still undecided (a sparse index), oldest first."""
        ...

    def payments(self, clinic_id: str, filters: QrReportFilters) -> list[QrPayment]: ...

    def clinic_refunds(self, clinic_id: str) -> list[QrRefund]: ...


class ShiftStore(Protocol):
    def get_shift(self, clinic_id: str) -> tuple[ShiftState, int] | None: ...

    def save_shift(self, clinic_id: str, state: ShiftState, *, expected_version: int | None, updated_at: str) -> bool: ...
