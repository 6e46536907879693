"""Refunds: money given back from a payment we recorded (a link payment: Fintoc payment intent,
Stripe payment intent, monobank invoice; a card charge and a QR payment take the same request). The
ledger reserves the amount on the payment row BEFORE the provider call, so concurrent clicks can never
give back more than was paid (usecases/refunds.py)."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from clinicpay.domain.model import Model
from clinicpay.domain.money import Money


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
