"""The ledger's arithmetic: statuses from amounts, deposits, older records, what is refundable."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clinicpay.domain.appointment import Appointment, PaymentStatus
from clinicpay.domain.clinic import FixedDeposit, PercentDeposit, deposit_for
from clinicpay.domain.ledger import Payment, settled_status
from clinicpay.domain.money import Money, PositiveMoney

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def clp(amount: int) -> Money:
    return Money(amount=amount, currency="CLP")


@pytest.mark.parametrize(("paid", "refunded", "current", "expected"), [
    (0, 0, PaymentStatus.UNPAID, PaymentStatus.UNPAID),
    (0, 0, PaymentStatus.PENDING, PaymentStatus.PENDING),
    (0, 0, PaymentStatus.NOT_REQUIRED, PaymentStatus.NOT_REQUIRED),
    (7500, 0, PaymentStatus.UNPAID, PaymentStatus.DEPOSIT_PAID),
    (25000, 0, PaymentStatus.DEPOSIT_PAID, PaymentStatus.PAID),
    (30000, 0, PaymentStatus.PAID, PaymentStatus.PAID),  # paid twice: still paid, amount_paid says how much
    (25000, 1, PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED),
    (7500, 7500, PaymentStatus.DEPOSIT_PAID, PaymentStatus.REFUNDED),
    (25000, 25000, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED),
])
def test_the_status_follows_the_amounts(paid: int, refunded: int, current: PaymentStatus,
                                        expected: PaymentStatus) -> None:
    assert settled_status(clp(25000), clp(paid), clp(refunded), current) is expected


@pytest.mark.parametrize(("rule", "price", "expected"), [
    (PercentDeposit(type="percent", percent=30), clp(25000), clp(7500)),
    (PercentDeposit(type="percent", percent=33), clp(25001), clp(8250)),  # 8250.33 -> 8250
    (PercentDeposit(type="percent", percent=50), clp(25001), clp(12501)),  # 12500.5 -> half up
    (PercentDeposit(type="percent", percent=50), Money(amount=33333, currency="UAH"),
     Money(amount=16667, currency="UAH")),  # 166.665 UAH -> 166.67
    (PercentDeposit(type="percent", percent=1), clp(49), None),  # 0.49 peso rounds to nothing: no deposit
    (PercentDeposit(type="percent", percent=100), clp(25000), None),  # the whole price is no deposit
    (FixedDeposit(type="fixed", amount=PositiveMoney(amount=5000, currency="CLP")), clp(25000), clp(5000)),
    (FixedDeposit(type="fixed", amount=PositiveMoney(amount=30000, currency="CLP")), clp(25000), None),
    (FixedDeposit(type="fixed", amount=PositiveMoney(amount=5000, currency="EUR")), clp(25000), None),
    (None, clp(25000), None),
])
def test_deposits_in_integers_rounded_half_up(rule: FixedDeposit | PercentDeposit | None, price: Money,
                                              expected: Money | None) -> None:
    assert deposit_for(rule, price) == expected


def test_a_percent_outside_one_to_a_hundred_is_refused() -> None:
    with pytest.raises(ValueError):
        PercentDeposit(type="percent", percent=0)
    with pytest.raises(ValueError):
        PercentDeposit(type="percent", percent=101)


def _appointment(**fields: object) -> Appointment:
    return Appointment.model_validate({
        "appointment_id": "ap1", "clinic_id": "c1", "patient": {"id": "p1", "name": "Ana"}, "service_id": "s1",
        "starts_at": T0.isoformat(), "booked_by": "staff", "price": {"amount": 25000, "currency": "CLP"},
        "created_at": T0.isoformat(), **fields})


def test_an_appointment_paid_before_the_ledger_reads_as_one_payment_of_its_price() -> None:
    legacy = _appointment(payment_status="paid")
    assert legacy.amount_paid == clp(25000) and legacy.amount_refunded == clp(0)
    assert legacy.balance_due == clp(0)
    unpaid = _appointment(payment_status="unpaid")
    assert unpaid.amount_paid == clp(0) and unpaid.balance_due == clp(25000)


def test_the_balance_is_the_price_less_what_was_paid_and_a_refund_does_not_reopen_it() -> None:
    shown = _appointment(payment_status="partially_refunded", amount_paid={"amount": 25000, "currency": "CLP"},
                         amount_refunded={"amount": 5000, "currency": "CLP"})
    assert shown.balance_due == clp(0)
    dumped = shown.model_dump(mode="json")
    assert dumped["balance_due"] == {"amount": 0, "currency": "CLP"}


def test_what_is_refundable_counts_pending_refunds() -> None:
    payment = Payment(provider="fintoc", reference="pi_1", appointment_id="ap1", amount=clp(25000),
                      refunded=15000, refund_pending=5000, paid_at=T0)
    assert payment.refundable == clp(10000)
    view = payment.view()
    assert view["refunded"] == {"amount": 10000, "currency": "CLP"}
    assert view["refund_pending"] == {"amount": 5000, "currency": "CLP"}
