"""QR refunds and their return receipts, as use cases with fakes (no AWS, no network)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from clinicpay.domain.errors import NotFound, ProviderOutcomeUnknown, ProviderUnavailable, ValidationFailed
from clinicpay.domain.fiscal import FiscalStatus
from clinicpay.domain.money import Money
from clinicpay.domain.qr import (
    REVERSAL_KEY,
    BasketLine,
    CancelEntry,
    CardPayment,
    InvoiceStatus,
    InvoiceUpdate,
    QrRegisterInfo,
    qr_reference,
    refund_lines,
)
from clinicpay.ports import ProviderFiscalCheck
from clinicpay.usecases import qr_payments, qr_refunds, qr_registers
from clinicpay.usecases.fiscalization import (
    Outcome,
    fiscalize_payment,
    fiscalize_returns,
    fiscalize_waiting,
    return_receipt_for,
)
from clinicpay.usecases.qr_refunds import NothingToRefund, RefundExceedsBalance, RefundRefused
from tests.unit.usecases.qr_fakes import FakeAcquirer, FakeQrStore, FakeRefunds, FakeRegister

CLINIC = "cl_kyiv"
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
PAID = 85000


def at(second: int) -> str:
    return (T0 + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%SZ")


def update(status: str, second: int, *, cancels: list[CancelEntry] | None = None, final: int | None = None,
           modified: bool = True) -> InvoiceUpdate:
    """A monobank report about inv_1 (85000 paid on register qr1)."""
    moment = T0 + timedelta(seconds=second)
    return InvoiceUpdate(
        invoice_id="inv_1", status=InvoiceStatus(status), modified_at=moment,
        modified_raw=at(second) if modified else None, created_raw=at(0),
        amount=Money(amount=PAID, currency="UAH"), invoice_amount=Money(amount=PAID, currency="UAH"),
        final_amount=Money(amount=PAID if final is None else final, currency="UAH"),
        reference=qr_reference("qr1", "ap1", CLINIC),
        card=CardPayment(masked_pan="444403******1902", approval_code="662476", rrn="060189181768"),
        cancels=cancels or [])


def cancel(amount: int, status: str = "success", *, ext_ref: str | None = None, second: int = 30) -> CancelEntry:
    return CancelEntry(status=status, amount=Money(amount=amount, currency="UAH"), created_raw=at(second),  # type: ignore[arg-type]
                       modified_raw=at(second + 1), ext_ref=ext_ref, approval_code="111111", rrn="222222222222")


def receive(store: FakeQrStore, report: InvoiceUpdate) -> qr_payments.QrDecision:
    return qr_payments.receive(store, lambda _: None, CLINIC, report, T0)


def paid(store: FakeQrStore) -> str:
    decision = receive(store, update("success", 5))
    assert decision.payment is not None
    return decision.payment.payment_id


def refund(store: FakeQrStore, gateway: FakeRefunds, payment_id: str, amount: int | None = None,
           key: str | None = None) -> qr_refunds.RefundOutcome:
    return qr_refunds.refund_payment(store, lambda: gateway, CLINIC, payment_id,
                                     refund_id=qr_refunds.refund_id_for(CLINIC, payment_id, key),
                                     amount=Money(amount=amount, currency="UAH") if amount is not None else None,
                                     reason=None, now=T0)


# --- staff refunds -----------------------------------------------------------------------------------

def test_a_full_refund_reserves_asks_monobank_once_with_our_id_and_settles() -> None:
    store_ = _store()
    payment_id = paid(store_)
    gateway = FakeRefunds("succeeded")
    # When
    outcome = refund(store_, gateway, payment_id)
    # Then
    [asked] = gateway.requests
    assert asked.payment_reference == "inv_1" and asked.amount.amount == PAID and asked.refund_id == outcome.refund.refund_id
    assert asked.idempotency_key == f"clinicpay-{CLINIC}-refund-{asked.refund_id}" and asked.fiscal_items is None
    assert outcome.refund.status == "succeeded" and outcome.refund.fiscal_status is FiscalStatus.PENDING
    assert outcome.payment.refunded == PAID and outcome.payment.refunded_settled == PAID
    assert outcome.payment.row()["refund_status"] == "refunded"


def test_twenty_concurrent_full_refund_clicks_give_the_money_back_once() -> None:
    # Given twenty clicks, each with its own Idempotency-Key, all past the first read at once
    store_ = _store()
    payment_id = paid(store_)
    gateway = FakeRefunds("succeeded")
    start = threading.Barrier(20)

    def click(n: int) -> str:
        start.wait()
        try:
            return refund(store_, gateway, payment_id, key=f"click-{n}").refund.status
        except (RefundExceedsBalance, NothingToRefund) as refused:
            return refused.code

    # When
    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(click, range(20)))
    # Then
    assert outcomes.count("succeeded") == 1, outcomes
    assert set(outcomes) <= {"succeeded", "refund_exceeds_balance", "nothing_to_refund"}
    assert len(gateway.requests) == 1
    payment = store_.get_payment(CLINIC, payment_id)
    assert payment is not None and payment.refunded == PAID and payment.refunded_settled == PAID


def test_the_same_idempotency_key_twenty_times_at_once_is_one_refund_and_one_monobank_call() -> None:
    store_ = _store()
    payment_id = paid(store_)
    gateway = FakeRefunds("succeeded")
    start = threading.Barrier(20)

    def click(_: int) -> str:
        start.wait()
        return refund(store_, gateway, payment_id, 30000, key="dialog-1").refund.refund_id

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = set(pool.map(click, range(20)))
    assert len(ids) == 1 and len(gateway.requests) == 1
    assert len(store_.refunds(CLINIC, payment_id)) == 1
    payment = store_.get_payment(CLINIC, payment_id)
    assert payment is not None and payment.refunded == 30000


def test_partial_refunds_add_up_and_never_pass_what_was_paid() -> None:
    store_ = _store()
    payment_id = paid(store_)
    gateway = FakeRefunds("succeeded")
    refund(store_, gateway, payment_id, 30000)
    refund(store_, gateway, payment_id, 50000)
    with pytest.raises(RefundExceedsBalance):
        refund(store_, gateway, payment_id, 5001)
    last = refund(store_, gateway, payment_id)  # no amount: what is left
    assert last.refund.amount.amount == 5000 and last.payment.row()["refund_status"] == "refunded"
    with pytest.raises(NothingToRefund):
        refund(store_, gateway, payment_id)
    assert [r.amount.amount for r in gateway.requests] == [30000, 50000, 5000]


@pytest.mark.parametrize("amount", [0, -1])
def test_a_refund_of_nothing_is_refused_before_anything_is_asked(amount: int) -> None:
    store_ = _store()
    payment_id = paid(store_)
    gateway = FakeRefunds()
    with pytest.raises((ValidationFailed, ValueError)):
        refund(store_, gateway, payment_id, amount)
    assert gateway.requests == [] and store_.refunds(CLINIC, payment_id) == []


def test_a_refund_in_another_currency_is_a_422() -> None:
    store_ = _store()
    payment_id = paid(store_)
    with pytest.raises(ValidationFailed):
        qr_refunds.refund_payment(store_, lambda: FakeRefunds(), CLINIC, payment_id, refund_id="qrr_x",
                                  amount=Money(amount=100, currency="EUR"), reason=None, now=T0)


def test_an_unknown_payment_is_a_404() -> None:
    with pytest.raises(NotFound):
        refund(_store(), FakeRefunds(), "qrp_nope")


def test_a_refusal_releases_the_reservation_and_stays_the_answer_for_that_key() -> None:
    store_ = _store()
    payment_id = paid(store_)
    refused = FakeRefunds("failed")
    with pytest.raises(RefundRefused):
        refund(store_, refused, payment_id, key="k1")
    payment = store_.get_payment(CLINIC, payment_id)
    assert payment is not None and payment.refunded == 0
    [failed] = store_.refunds(CLINIC, payment_id)
    assert failed.status == "failed" and failed.failure_code == "BAD_REQUEST"
    # monobank saw that extRef: the same key is the same refused refund, never asked again
    agreeing = FakeRefunds("succeeded")
    with pytest.raises(RefundRefused):
        refund(store_, agreeing, payment_id, key="k1")
    assert agreeing.requests == []


def test_a_refund_monobank_never_received_may_be_asked_again_with_the_same_key() -> None:
    store_ = _store()
    payment_id = paid(store_)
    with pytest.raises(ProviderUnavailable):
        refund(store_, FakeRefunds(raises=ProviderUnavailable()), payment_id, key="k1")
    # When the same dialog (key) tries again and monobank answers now
    again = refund(store_, FakeRefunds("succeeded"), payment_id, key="k1")
    # Then it is the same refund, now succeeded, reserved once
    [only] = store_.refunds(CLINIC, payment_id)
    assert again.refund.refund_id == only.refund_id and again.refund.status == "succeeded"
    assert again.payment.refunded == PAID


def test_a_lost_answer_leaves_the_refund_pending_and_reserved_never_failed() -> None:
    store_ = _store()
    payment_id = paid(store_)
    outcome = refund(store_, FakeRefunds(raises=ProviderOutcomeUnknown()), payment_id, 40000)
    assert outcome.refund.status == "pending"
    assert outcome.payment.refunded == 40000 and outcome.payment.refunded_settled == 0
    assert outcome.payment.row()["refund_pending"]["amount"] == 40000
    # and it cannot be refunded twice meanwhile
    with pytest.raises(RefundExceedsBalance):
        refund(store_, FakeRefunds(), payment_id, 45001)


def test_monobank_unreachable_before_sending_releases_the_reservation() -> None:
    store_ = _store()
    payment_id = paid(store_)
    with pytest.raises(ProviderUnavailable):
        refund(store_, FakeRefunds(raises=ProviderUnavailable()), payment_id)
    payment = store_.get_payment(CLINIC, payment_id)
    assert payment is not None and payment.refunded == 0


def test_a_payment_monobank_fiscalizes_is_refunded_with_items_for_its_return_receipt() -> None:
    store_ = _store()
    decision = qr_payments.receive(store_, lambda _: None, CLINIC, update("success", 5), T0, lambda: "monobank")
    assert decision.payment is not None and decision.payment.fiscal_status is FiscalStatus.EXTERNAL
    gateway = FakeRefunds("succeeded")
    outcome = refund(store_, gateway, decision.payment.payment_id, 30000)
    assert gateway.requests[0].fiscal_items == [{"name": "Консультація", "qty": 1, "sum": 30000, "code": "ap1"}]
    assert outcome.refund.fiscal_status is FiscalStatus.EXTERNAL  # monobank makes the return receipt


# --- what monobank reports -----------------------------------------------------------------------------

def test_our_pending_refund_is_settled_by_the_cancel_list_entry_with_our_ext_ref() -> None:
    store_ = _store()
    payment_id = paid(store_)
    pending = refund(store_, FakeRefunds(raises=ProviderOutcomeUnknown()), payment_id, 30000).refund
    # When monobank's webhook lists it, succeeded
    receive(store_, update("success", 40, cancels=[cancel(30000, ext_ref=pending.refund_id)], final=55000))
    # Then
    [settled] = store_.refunds(CLINIC, payment_id)
    assert settled.refund_id == pending.refund_id and settled.status == "succeeded"
    assert settled.card.rrn == "222222222222"  # the refund's own RRN for its return receipt
    payment = store_.get_payment(CLINIC, payment_id)
    assert payment is not None and payment.refunded_settled == 30000 and payment.row()["refund_status"] == "partially_refunded"


def test_a_failed_cancel_entry_releases_our_reservation() -> None:
    store_ = _store()
    payment_id = paid(store_)
    pending = refund(store_, FakeRefunds("pending"), payment_id, 30000).refund
    receive(store_, update("success", 40, cancels=[cancel(30000, "failure", ext_ref=pending.refund_id)]))
    [failed] = store_.refunds(CLINIC, payment_id)
    payment = store_.get_payment(CLINIC, payment_id)
    assert failed.status == "failed" and payment is not None and payment.refunded == 0


def test_twenty_duplicate_reversed_reports_make_one_refund_and_one_return_receipt() -> None:
    # Given a fiscalized payment monobank then reverses in its cabinet
    store_ = _store()
    payment_id = paid(store_)
    register = FakeRegister()
    assert fiscalize_payment(store_, lambda _: register, CLINIC, payment_id, clock=lambda: T0).outcome is Outcome.FISCALIZED
    reversed_ = update("reversed", 60, cancels=[cancel(PAID)], final=0)
    start = threading.Barrier(22)

    def webhook(_: int) -> None:
        start.wait()
        decision = receive(store_, reversed_)
        assert decision.payment is not None
        fiscalize_returns(store_, lambda _: register, decision.payment, clock=lambda: T0)

    def job() -> None:
        start.wait()
        fiscalize_waiting(store_, lambda _: register, clock=lambda: T0, respect_backoff=False)

    # When twenty copies of the webhook, a sweep and a manual retry of the sale all arrive at once
    with ThreadPoolExecutor(max_workers=22) as pool:
        futures = [pool.submit(webhook, n) for n in range(20)] + [pool.submit(job)]
        futures.append(pool.submit(lambda: (start.wait(), fiscalize_payment(store_, lambda _: register, CLINIC,
                                                                            payment_id, clock=lambda: T0))))
        for future in futures:
            future.result()
    fiscalize_waiting(store_, lambda _: register, clock=lambda: T0, respect_backoff=False)
    # Then one refund, one return receipt, referring to the sale
    [refunded] = store_.refunds(CLINIC, payment_id)
    assert refunded.source == "monobank" and refunded.amount.amount == PAID
    assert refunded.fiscal_status is FiscalStatus.FISCALIZED
    assert len(register.done_of("SELL")) == 1 and len(register.done_of("RETURN")) == 1
    sale = register.done_of("SELL")[0]
    assert register.related[register.done_of("RETURN")[0].receipt_id] == sale.receipt_id


def test_a_reversal_before_the_sale_receipt_ends_with_a_sale_then_a_return_of_the_full_amount() -> None:
    # Given the shift is closed: the payment waits for its sale receipt, then is reversed
    store_ = _store()
    payment_id = paid(store_)
    closed = FakeRegister(shift_open=False)
    assert fiscalize_payment(store_, lambda _: closed, CLINIC, payment_id, clock=lambda: T0).outcome is Outcome.SHIFT_CLOSED
    decision = receive(store_, update("reversed", 60, final=0))
    waiting = fiscalize_returns(store_, lambda _: closed, decision.payment, clock=lambda: T0)  # type: ignore[arg-type]
    assert [r.outcome for r in waiting] == [Outcome.WAITING_FOR_SALE]
    assert waiting[0].doc is not None and waiting[0].doc.last_error == "waiting_for_sale_receipt"  # visibly
    # When the shift opens and the sweep runs
    closed.open_shift()
    report = fiscalize_waiting(store_, lambda _: closed, clock=lambda: T0, respect_backoff=False)
    # Then: a sale of what was paid, then its return: together what the clinic kept (nothing)
    assert report.remaining == 0
    sales, returns = closed.done_of("SELL"), closed.done_of("RETURN")
    assert len(sales) == 1 and len(returns) == 1
    assert closed.amounts[sales[0].receipt_id] == PAID and closed.amounts[returns[0].receipt_id] == PAID
    [reversal] = store_.refunds(CLINIC, payment_id)
    assert reversal.cancel_key == REVERSAL_KEY


def test_a_partial_refund_before_the_sale_receipt_ends_with_the_full_sale_and_a_return_of_the_part() -> None:
    store_ = _store()
    payment_id = paid(store_)
    register = FakeRegister(shift_open=False)
    fiscalize_payment(store_, lambda _: register, CLINIC, payment_id, clock=lambda: T0)
    receive(store_, update("success", 60, cancels=[cancel(20000)], final=65000))
    register.open_shift()
    fiscalize_waiting(store_, lambda _: register, clock=lambda: T0, respect_backoff=False)
    assert [register.amounts[r.receipt_id] for r in register.done_of("SELL")] == [PAID]
    assert [register.amounts[r.receipt_id] for r in register.done_of("RETURN")] == [20000]


def test_a_return_waits_visibly_for_its_sale_and_goes_out_right_after_it() -> None:
    store_ = _store()
    payment_id = paid(store_)
    register = FakeRegister()
    register.down = True
    fiscalize_payment(store_, lambda _: register, CLINIC, payment_id, clock=lambda: T0)
    receive(store_, update("success", 60, cancels=[cancel(20000)]))
    [waiting] = store_.refunds(CLINIC, payment_id)
    payment = store_.get_payment(CLINIC, payment_id)
    assert payment is not None
    with pytest.raises(Exception, match="sale receipt"):
        return_receipt_for(waiting, payment)
    calls = register.sell_calls
    sweep = fiscalize_waiting(store_, lambda _: register, clock=lambda: T0, respect_backoff=False)
    # the clinic's register is down: asked once, both documents wait
    assert sweep.clinics[CLINIC].reasons == {"unavailable": 2} and register.sell_calls == calls + 1
    # When the register is back and the sale goes through, its return follows in the same call
    register.down = False
    result = fiscalize_payment(store_, lambda _: register, CLINIC, payment_id, clock=lambda: T0,
                               respect_backoff=False)
    assert result.outcome is Outcome.FISCALIZED and [r.outcome for r in result.returns] == [Outcome.FISCALIZED]


def test_a_late_first_success_records_what_was_paid_not_what_is_left() -> None:
    # Given the first webhook monobank manages to deliver is a `success` after a partial refund
    store_ = _store()
    decision = receive(store_, update("success", 90, cancels=[cancel(20000)], final=65000))
    # Then the sale is of the full 850.00 and the refund of 200.00 is recorded on its own
    assert decision.payment is not None and decision.payment.amount.amount == PAID
    register = FakeRegister()
    fiscalize_payment(store_, lambda _: register, CLINIC, decision.payment.payment_id, clock=lambda: T0)
    assert [register.amounts[r.receipt_id] for r in register.done_of("SELL")] == [PAID]
    assert [register.amounts[r.receipt_id] for r in register.done_of("RETURN")] == [20000]


def test_each_cancel_entry_is_recorded_once_whatever_the_order_of_reports() -> None:
    store_ = _store()
    payment_id = paid(store_)
    first = update("success", 40, cancels=[cancel(10000, second=30)], final=75000)
    both = update("success", 50, cancels=[cancel(10000, second=30), cancel(20000, second=45)], final=55000)
    for report in (both, first, both, first):
        receive(store_, report)
    assert sorted(r.amount.amount for r in store_.refunds(CLINIC, payment_id)) == [10000, 20000]
    payment = store_.get_payment(CLINIC, payment_id)
    assert payment is not None and payment.refunded_settled == 30000


def test_a_reversal_reported_before_the_entry_that_names_it_is_never_counted_twice() -> None:
    store_ = _store()
    payment_id = paid(store_)
    receive(store_, update("reversed", 60, final=0))  # no cancelList
    receive(store_, update("reversed", 61, cancels=[cancel(PAID)], final=0))  # the same money, named
    refunds = store_.refunds(CLINIC, payment_id)
    payment = store_.get_payment(CLINIC, payment_id)
    assert [r.cancel_key for r in refunds] == [REVERSAL_KEY]
    assert payment is not None and payment.refunded == PAID and payment.refunded_settled == PAID


def test_a_reversal_settles_our_pending_refund_instead_of_adding_one() -> None:
    store_ = _store()
    payment_id = paid(store_)
    ours = refund(store_, FakeRefunds(raises=ProviderOutcomeUnknown()), payment_id).refund
    receive(store_, update("reversed", 60, final=0))
    [only] = store_.refunds(CLINIC, payment_id)
    assert only.refund_id == ours.refund_id and only.status == "succeeded"


def test_a_reversal_that_arrives_before_the_success_records_the_payment_and_its_refund() -> None:
    store_ = _store()
    decision = receive(store_, update("reversed", 60, cancels=[cancel(PAID)], final=0))
    receive(store_, update("success", 5))
    assert decision.payment is not None and decision.payment.amount.amount == PAID
    [only] = store_.refunds(CLINIC, decision.payment.payment_id)
    assert only.amount.amount == PAID and decision.payment.row()["refunded"] is True


def test_reports_without_modified_date_are_applied_once_and_ordered_by_status() -> None:
    store_ = _store()
    receive(store_, update("success", 5, modified=False))
    receive(store_, update("processing", 3, modified=False))  # arrives late: never undoes the success
    receive(store_, update("success", 5, modified=False))
    invoice = store_.get_invoice(CLINIC, "inv_1")
    assert invoice is not None and invoice.status is InvoiceStatus.SUCCESS
    assert len(store_.by_id) == 1


# --- who fiscalizes ------------------------------------------------------------------------------------

def test_a_sale_monobank_already_fiscalized_gets_no_receipt_of_ours_and_shows_theirs() -> None:
    store_ = _store()
    payment_id = paid(store_)
    acquirer = FakeAcquirer([])
    acquirer.checks = {"inv_1": [ProviderFiscalCheck(id="mono-1", type="sale", status="done", source="monopay",
                                                     tax_url="https://cabinet.tax.gov.ua/cashregs/check?id=1")]}
    register = FakeRegister()
    result = fiscalize_payment(store_, lambda _: register, CLINIC, payment_id, clock=lambda: T0,
                               checks=lambda _: acquirer)
    assert result.outcome is Outcome.EXTERNAL and register.sell_calls == 0
    payment = store_.get_payment(CLINIC, payment_id)
    assert payment is not None and payment.fiscalized_by == "monobank" and payment.receipt is not None
    assert payment.row()["fiscal_status"] == "external" and payment.row()["receipt"]["source"] == "monopay"
    # its returns are monobank's too
    receive(store_, update("success", 60, cancels=[cancel(20000)]))
    [returned] = store_.refunds(CLINIC, payment_id)
    assert returned.fiscal_status is FiscalStatus.EXTERNAL and register.sell_calls == 0


def test_a_failed_monobank_receipt_does_not_stop_ours() -> None:
    store_ = _store()
    payment_id = paid(store_)
    acquirer = FakeAcquirer([])
    acquirer.checks = {"inv_1": [ProviderFiscalCheck(id="mono-1", type="sale", status="failed", source="checkbox")]}
    register = FakeRegister()
    assert fiscalize_payment(store_, lambda _: register, CLINIC, payment_id, clock=lambda: T0,
                             checks=lambda _: acquirer).outcome is Outcome.FISCALIZED


def test_a_clinic_that_fiscalizes_elsewhere_gets_no_receipts_from_us() -> None:
    store_ = _store()
    decision = qr_payments.receive(store_, lambda _: None, CLINIC, update("success", 5), T0, lambda: "none")
    assert decision.payment is not None and decision.payment.fiscal_status is FiscalStatus.NOT_REQUIRED
    assert store_.awaiting(CLINIC)[0] == []
    qr_payments.receive(store_, lambda _: None, CLINIC, update("reversed", 60, final=0), T0, lambda: "none")
    assert [r.fiscal_status for r in store_.refunds(CLINIC, decision.payment.payment_id)] == [FiscalStatus.NOT_REQUIRED]
    assert store_.awaiting(CLINIC)[0] == []


# --- refund lines -----------------------------------------------------------------------------------

def test_refund_lines_name_what_is_returned_and_never_more_of_a_line_than_was_sold() -> None:
    basket = [BasketLine(name="A", code="a", qty=2, unit_price=100), BasketLine(name="B", code="b", qty=1, unit_price=300)]
    assert refund_lines(basket, 500, []) == basket
    first = refund_lines(basket, 250, [])
    assert [(line.code, line.total) for line in first] == [("a", 200), ("b", 50)]
    assert [(line.code, line.total) for line in refund_lines(basket, 250, first)] == [("b", 250)]


def _store() -> FakeQrStore:
    store_ = FakeQrStore()
    acquirer = FakeAcquirer([QrRegisterInfo(qr_id="qr1", amount_type="merchant", page_url="https://pay.example/qr1")])
    qr_registers.sync_registers(store_, acquirer, CLINIC, T0)
    qr_registers.put_amount(store_, FakeAcquirer([]), CLINIC, "qr1", Money(amount=PAID, currency="UAH"),
                            appointment_id="ap1", description="Консультація", webhook_url="https://x", now=T0)
    return store_
