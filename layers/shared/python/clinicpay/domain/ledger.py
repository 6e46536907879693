"""An appointment's money: the payments that came in and the refunds that went back.

Each payment is a row of its own (`PAYMENT#{provider}#{reference}`: a link payment, or
`PAYMENT#desk#{id}` for money taken at the desk) that knows how much of it was given back; each
refund is an item that names the payment it gives money back from. The appointment carries the
totals (`amount_paid`, `amount_refunded`) and the status derived from them, written in the same
transaction as the row that changes them, so the two never disagree.

Integer minor units throughout; nothing here touches storage.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict

from clinicpay.domain.appointment import settled_status as settled_status  # next to the statuses (a link's page loads no ledger)
from clinicpay.domain.model import Model
from clinicpay.domain.money import Money

DESK = "desk"  # the provider name of a payment taken at the clinic's desk


class PaymentMethod(StrEnum):
    ONLINE = "online"  # through a provider (link payment): refunds go back through it
    DESK = "desk"  # taken at the desk: refunded at the desk, recorded here


class Payment(Model):
    """One payment row. `refunded` counts every refund that is not failed (succeeded and still
    pending), so `refundable` is what a new refund may still take; `refund_pending` is the part
    not yet confirmed."""

    model_config = ConfigDict(extra="ignore")

    provider: str
    reference: str
    appointment_id: str
    amount: Money
    refunded: int = 0
    refund_pending: int = 0
    method: PaymentMethod = PaymentMethod.ONLINE
    fee: Money | None = None
    paid_at: datetime
    note: str | None = None
    pending_refunds: frozenset[str] = frozenset()  # ids of the refunds still pending on it

    @property
    def refundable(self) -> Money:
        return Money(amount=max(0, self.amount.amount - self.refunded), currency=self.amount.currency)

    def view(self) -> dict[str, object]:
        return {
            "provider": self.provider, "reference": self.reference, "method": self.method.value,
            "amount": self.amount.model_dump(), "fee": self.fee.model_dump() if self.fee else None,
            "refunded": Money(amount=self.refunded - self.refund_pending, currency=self.amount.currency).model_dump(),
            "refund_pending": Money(amount=self.refund_pending, currency=self.amount.currency).model_dump(),
            "refundable": self.refundable.model_dump(), "paid_at": self.paid_at.isoformat(), "note": self.note,
        }


RefundStatus = Literal["pending", "succeeded", "failed"]
RefundSource = Literal["staff", "provider"]


class Refund(Model):
    model_config = ConfigDict(extra="ignore")

    refund_id: str
    clinic_id: str
    appointment_id: str
    provider: str
    payment_reference: str
    amount: Money
    status: RefundStatus
    source: RefundSource = "staff"  # provider: started at the provider's dashboard, learnt from its event
    reason: str | None = None
    provider_refund_id: str | None = None
    failure_code: str | None = None
    created_at: datetime
    updated_at: datetime | None = None

    def view(self) -> dict[str, object]:
        return {
            "refund_id": self.refund_id, "status": self.status, "amount": self.amount.model_dump(),
            "provider": self.provider, "payment_reference": self.payment_reference, "source": self.source,
            "reason": self.reason, "provider_refund_id": self.provider_refund_id,
            "failure_code": self.failure_code, "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }
