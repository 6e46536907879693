"""QR payments and their fiscal receipts, as use cases with fakes (no AWS, no network)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from clinicpay.domain.errors import ConditionFailed, Conflict, NotFound, ValidationFailed
from clinicpay.domain.fiscal import BACKOFF_CAP, FiscalStatus, next_attempt
from clinicpay.domain.money import Money
from clinicpay.domain.qr import CardPayment, InvoiceStatus, InvoiceUpdate, QrRegisterInfo, payment_id_for, qr_reference
from clinicpay.usecases import fiscal_check, fiscal_shift, qr_payments, qr_registers
from clinicpay.usecases.fiscalization import Outcome, fiscalize_payment, fiscalize_waiting, receipt_for
from tests.unit.usecases.qr_fakes import FakeAcquirer, FakeQrStore, FakeRegister, FakeShiftStore, RejectingRegister

CLINIC = "cl_kyiv"
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
UAH = Money(amount=85000, currency="UAH")


class Clock:
    def __init__(self, start: datetime = T0):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def update(invoice_id: str, status: str, second: int, *, amount: int = 85000, qr_id: str | None = "qr1",
           appointment_id: str | None = "ap1") -> InvoiceUpdate:
    moment = T0 + timedelta(seconds=second)
    card = CardPayment(masked_pan="444403******1902", approval_code="662476", rrn="060189181768") \
        if status == "success" else None
    return InvoiceUpdate(invoice_id=invoice_id, status=InvoiceStatus(status), modified_at=moment,
                         modified_raw=moment.strftime("%Y-%m-%dT%H:%M:%SZ"), amount=Money(amount=amount, currency="UAH"),
                         invoice_amount=Money(amount=amount, currency="UAH"),
                         reference=qr_reference(qr_id, appointment_id, CLINIC) if qr_id else None, card=card)


@pytest.fixture
def store() -> FakeQrStore:
    store = FakeQrStore()
    acquirer = FakeAcquirer([QrRegisterInfo(qr_id="qr1", short_qr_id="AB12", amount_type="merchant",
                                            page_url="https://pay.example/qr1"),
                             QrRegisterInfo(qr_id="qr2", amount_type="client", page_url="https://pay.example/qr2")])
    qr_registers.sync_registers(store, acquirer, CLINIC, T0)
    return store


def paid(store: FakeQrStore, invoice_id: str = "inv_1", **kwargs: object) -> str:
    payment = qr_payments.apply_invoice_update(store, CLINIC, update(invoice_id, "success", 5, **kwargs), T0)  # type: ignore[arg-type]
    assert payment is not None
    return payment.payment_id


# --- putting amounts on registers ------------------------------------------------------------------

def test_an_amount_goes_on_a_merchant_register_with_our_reference_a_basket_and_our_webhook(store: FakeQrStore) -> None:
    # Given
    acquirer = FakeAcquirer([])
    # When
    result = qr_registers.put_amount(store, acquirer, CLINIC, "qr1", UAH, appointment_id="ap1", description=None,
                                     webhook_url="https://api.example/webhooks/monobank/cl_kyiv", now=T0,
                                     appointment_exists=lambda _: True)
    # Then
    sent = acquirer.amounts[0]
    assert sent.qr_id == "qr1" and sent.amount == UAH and sent.reference == "qr:qr1:ap1:cl_kyiv"  # names the clinic too
    assert [(line.qty, line.unit_price) for line in sent.basket] == [(1, 85000)]
    assert sent.webhook_url.endswith("/webhooks/monobank/cl_kyiv")
    register = store.get_register(CLINIC, "qr1")
    assert register is not None and register.current_invoice_id == result["invoice_id"] and register.current_amount == UAH
    assert store.get_invoice(CLINIC, result["invoice_id"]) is not None


@pytest.mark.parametrize(("qr_id", "amount", "error"), [
    ("qr1", Money(amount=85000, currency="EUR"), ValidationFailed),
    ("qr2", UAH, Conflict),  # the payer types the sum on a `client` register
    ("nope", UAH, NotFound),
])
def test_an_amount_is_refused_in_another_currency_on_a_client_register_or_an_unknown_one(
        store: FakeQrStore, qr_id: str, amount: Money, error: type[Exception]) -> None:
    # When / Then
    with pytest.raises(error):
        qr_registers.put_amount(store, FakeAcquirer([]), CLINIC, qr_id, amount, appointment_id=None, description=None,
                                webhook_url="https://x", now=T0)


def test_an_amount_for_an_unknown_appointment_is_a_404_and_nothing_reaches_monobank(store: FakeQrStore) -> None:
    acquirer = FakeAcquirer([])
    with pytest.raises(NotFound):
        qr_registers.put_amount(store, acquirer, CLINIC, "qr1", UAH, appointment_id="ghost", description=None,
                                webhook_url="https://x", now=T0, appointment_exists=lambda _: False)
    assert acquirer.amounts == []


# --- webhooks: exactly one payment, newest status wins ------------------------------------------------

def test_the_same_paid_webhook_twenty_times_at_once_makes_one_payment_with_one_receipt_id(store: FakeQrStore) -> None:
    # When
    with ThreadPoolExecutor(max_workers=20) as pool:
        payments = list(pool.map(lambda _: qr_payments.apply_invoice_update(store, CLINIC, update("inv_1", "success", 5),
                                                                            T0), range(20)))
    # Then
    assert len(store.by_id) == 1
    assert {p.receipt_id for p in payments if p} == {store.by_id[(CLINIC, "qrp_inv_1")].receipt_id}


def test_a_processing_that_arrives_after_success_changes_nothing(store: FakeQrStore) -> None:
    # Given an invoice we put on a register, paid
    qr_registers.put_amount(store, FakeAcquirer([]), CLINIC, "qr1", UAH, appointment_id="ap1", description=None,
                            webhook_url="https://x", now=T0)
    qr_payments.apply_invoice_update(store, CLINIC, update("inv_1", "success", 6), T0)
    # When the older `processing` arrives last
    result = qr_payments.apply_invoice_update(store, CLINIC, update("inv_1", "processing", 5), T0)
    # Then
    invoice = store.get_invoice(CLINIC, "inv_1")
    assert result is None and invoice is not None and invoice.status is InvoiceStatus.SUCCESS
    assert store.get_payment(CLINIC, "qrp_inv_1") is not None


def test_a_success_and_a_processing_with_the_same_second_keep_success(store: FakeQrStore) -> None:
    qr_registers.put_amount(store, FakeAcquirer([]), CLINIC, "qr1", UAH, appointment_id=None, description=None,
                            webhook_url="https://x", now=T0)
    qr_payments.apply_invoice_update(store, CLINIC, update("inv_1", "success", 5), T0)
    qr_payments.apply_invoice_update(store, CLINIC, update("inv_1", "processing", 5), T0)
    invoice = store.get_invoice(CLINIC, "inv_1")
    assert invoice is not None and invoice.status is InvoiceStatus.SUCCESS


class Monobank:
    """What monobank answers to invoice/status with this clinic's token: the invoices it knows."""

    def __init__(self, *known: InvoiceUpdate):
        self.known = {u.invoice_id: u for u in known}
        self.asked: list[str] = []

    def __call__(self, invoice_id: str) -> InvoiceUpdate | None:
        self.asked.append(invoice_id)
        return self.known.get(invoice_id)


def test_a_paid_invoice_without_our_record_is_a_qr_payment_once_monobank_confirms_it(store: FakeQrStore) -> None:
    # Given monobank answered the create but our write was lost: only the reference tells
    incoming = update("inv_lost", "success", 5, qr_id="qr1", appointment_id="ap9")
    monobank = Monobank(incoming)
    # When
    decision = qr_payments.receive(store, monobank, CLINIC, incoming, T0)
    # Then monobank was asked once, with this clinic's token, and its answer made the payment
    assert monobank.asked == ["inv_lost"]
    payment = decision.payment
    assert decision.route == "qr" and payment is not None and payment.qr_id == "qr1" and payment.appointment_id == "ap9"
    assert [(line.qty, line.unit_price) for line in payment.basket] == [(1, 85000)]
    # and a repeat finds the payment it made: no second question, no second payment
    again = qr_payments.receive(store, monobank, CLINIC, incoming, T0).payment
    assert again is not None and again.receipt_id == payment.receipt_id
    assert monobank.asked == ["inv_lost"] and len(store.by_id) == 1


def test_a_reference_that_only_looks_like_ours_is_foreign_when_monobank_does_not_know_the_invoice(
        store: FakeQrStore) -> None:
    # Given another merchant's paid invoice whose reference copies ours (monobank signs it all the same)
    incoming = update("inv_theirs", "success", 5, qr_id="qr1")
    monobank = Monobank()  # our token: monobank has no such invoice for us
    # When
    decision = qr_payments.receive(store, monobank, CLINIC, incoming, T0)
    # Then
    assert (decision.route, decision.outcome, decision.reason) == ("qr", "foreign", "not_at_provider")
    assert store.by_id == {} and store.events[(CLINIC, incoming.event_id)] == ("foreign", "not_at_provider")


@pytest.mark.parametrize(("reference", "reason"), [("qr:qr_not_ours::" + CLINIC, "unknown_object"),
                                                   ("qr:qr1::cl_other_branch", "other_clinic")])
def test_a_reference_naming_another_register_or_clinic_is_foreign_without_asking_monobank(
        store: FakeQrStore, reference: str, reason: str) -> None:
    incoming = update("inv_x", "success", 5).model_copy(update={"reference": reference})
    monobank = Monobank(incoming)
    decision = qr_payments.receive(store, monobank, CLINIC, incoming, T0)
    assert (decision.outcome, decision.reason) == ("foreign", reason)
    assert monobank.asked == [] and store.by_id == {}


def test_our_invoice_paid_with_another_amount_or_currency_is_foreign(store: FakeQrStore) -> None:
    qr_registers.put_amount(store, FakeAcquirer([]), CLINIC, "qr1", UAH, appointment_id=None, description=None,
                            webhook_url="https://x", now=T0)
    other_amount = update("inv_1", "success", 5, amount=100)
    other_currency = update("inv_1", "success", 6).model_copy(update={"invoice_amount": Money(amount=85000,
                                                                                               currency="USD")})
    for incoming in (other_amount, other_currency):
        decision = qr_payments.receive(store, Monobank(), CLINIC, incoming, T0)
        assert (decision.outcome, decision.reason) == ("foreign", "amount_mismatch")
    assert store.by_id == {}
    register = store.get_register(CLINIC, "qr1")
    assert register is not None and register.current_invoice_id == "inv_1"  # still waiting for the patient


def test_a_payment_on_a_register_whose_amount_is_set_in_the_app_is_recorded_once_monobank_confirms_it(
        store: FakeQrStore) -> None:
    # Given a payer-amount register (qr2, "client") and monobank's own invoice for a payment on it
    incoming = update("inv_app", "success", 5, amount=12345, qr_id=None)
    monobank = Monobank(incoming)
    # When
    decision = qr_payments.receive(store, monobank, CLINIC, incoming, T0)
    # Then
    assert monobank.asked == ["inv_app"]
    assert decision.payment is not None and decision.payment.qr_id == "qr2"
    assert decision.payment.amount == Money(amount=12345, currency="UAH")
    # and the same kind of invoice monobank does not know for us is foreign
    stranger = update("inv_stranger", "success", 5, amount=500, qr_id=None)
    assert qr_payments.receive(store, monobank, CLINIC, stranger, T0).outcome == "foreign"
    assert set(store.by_id) == {(CLINIC, "qrp_inv_app")}


def test_an_unknown_invoice_that_is_not_paid_asks_monobank_nothing(store: FakeQrStore) -> None:
    monobank = Monobank()
    for status in ("processing", "failure", "created"):
        decision = qr_payments.receive(store, monobank, CLINIC, update("inv_q", status, 5, qr_id=None), T0)
        assert (decision.route, decision.outcome) == ("qr", "ignored")
    assert monobank.asked == []


def test_an_invoice_with_another_reference_goes_to_the_payment_links(store: FakeQrStore) -> None:
    incoming = update("inv_link", "success", 5).model_copy(update={"reference": "ap_123"})
    assert qr_payments.receive(store, Monobank(), CLINIC, incoming, T0).route == "link"


def test_a_paid_payment_becomes_a_cashless_receipt_in_kopecks_and_thousandths(store: FakeQrStore) -> None:
    payment = store.get_payment(CLINIC, paid(store))
    assert payment is not None
    receipt = receipt_for(payment)
    assert receipt.receipt_id == payment.receipt_id
    assert [(g.price, g.quantity) for g in receipt.goods] == [(85000, 1000)]
    assert receipt.payment.value == 85000
    assert (receipt.payment.card_mask, receipt.payment.auth_code, receipt.payment.rrn) == (
        "444403******1902", "662476", "060189181768")


# --- fiscalization --------------------------------------------------------------------------------------

def test_a_paid_payment_is_fiscalized_and_leaves_the_waiting_list(store: FakeQrStore) -> None:
    register = FakeRegister()
    payment_id = paid(store)
    result = fiscalize_payment(store, lambda _: register, CLINIC, payment_id, clock=Clock())
    assert result.outcome is Outcome.FISCALIZED
    assert result.payment is not None and result.payment.receipt is not None
    assert result.payment.receipt.fiscal_code == "FC1" and result.payment.row()["fiscal_status"] == "fiscalized"
    assert store.awaiting(CLINIC)[0] == []


def test_many_actors_at_once_make_exactly_one_receipt(store: FakeQrStore) -> None:
    # Given a register that is slow, so the attempts overlap
    register = FakeRegister()
    gate = threading.Event()
    register.on_sell = lambda: gate.wait(0.2)
    payment_id = paid(store)
    # When webhooks, the daily check and a person all try at once
    with ThreadPoolExecutor(max_workers=22) as pool:
        outcomes = list(pool.map(lambda i: fiscalize_payment(store, lambda _: register, CLINIC, payment_id, clock=Clock(),
                                                             allow_failed=i == 0, respect_backoff=i != 1).outcome,
                                 range(22)))
    # Then
    assert register.sell_calls == 1 and len(register.done) == 1
    assert outcomes.count(Outcome.FISCALIZED) == 1
    assert set(outcomes) <= {Outcome.FISCALIZED, Outcome.IN_PROGRESS, Outcome.ALREADY_FISCALIZED}


def test_with_the_shift_closed_the_payment_waits_visibly_and_goes_out_when_staff_open_the_shift(store: FakeQrStore) -> None:
    # Given
    register = FakeRegister(shift_open=False)
    payment_id = paid(store)
    # When
    first = fiscalize_payment(store, lambda _: register, CLINIC, payment_id, clock=Clock())
    # Then it waits, and says why
    assert first.outcome is Outcome.SHIFT_CLOSED
    row = store.by_id[(CLINIC, payment_id)].row()
    assert row["fiscal_status"] == "pending" and row["fiscal"]["last_error"] == "fiscal_shift_closed"
    # When staff open the shift
    opened = fiscal_shift.open_shift(FakeShiftStore(), store, lambda _: register, CLINIC, Clock())
    # Then
    assert opened["shift"]["status"] == "OPENED" and opened["fiscalized"] == 1 and opened["still_pending"] == 0
    assert store.by_id[(CLINIC, payment_id)].fiscal_status is FiscalStatus.FISCALIZED


def test_a_register_that_is_down_leaves_the_payment_pending_with_a_bounded_backoff(store: FakeQrStore) -> None:
    # Given
    register = FakeRegister()
    register.down = True
    clock = Clock()
    payment_id = paid(store)
    # When
    result = fiscalize_payment(store, lambda _: register, CLINIC, payment_id, clock=clock)
    # Then
    payment = store.by_id[(CLINIC, payment_id)]
    assert result.outcome is Outcome.UNAVAILABLE
    assert payment.fiscal_status is FiscalStatus.PENDING and payment.attempts == 1
    assert payment.last_error == "provider_unavailable" and payment.next_attempt_at == "2026-11-23T10:01:00+00:00"
    # And a sweep before that time does not knock again; after it, it does
    assert fiscalize_payment(store, lambda _: register, CLINIC, payment_id, clock=clock).outcome is Outcome.NOT_DUE
    register.down = False
    clock.now += timedelta(minutes=2)
    assert fiscal_check.retry_due(store, lambda _: register, clock=clock)["fiscalized"] == 1


def test_the_backoff_doubles_and_stops_at_an_hour() -> None:
    assert [next_attempt(T0, n) - T0 for n in (1, 2, 3)] == [timedelta(minutes=1), timedelta(minutes=2),
                                                            timedelta(minutes=4)]
    assert next_attempt(T0, 50) - T0 == BACKOFF_CAP


def test_a_receipt_in_error_fails_and_a_person_gets_it_fiscalized_under_a_new_receipt_id(store: FakeQrStore) -> None:
    # Given the tax service refuses the first receipt
    register = FakeRegister()
    register.error_next = 1
    payment_id = paid(store)
    first_receipt = store.by_id[(CLINIC, payment_id)].receipt_id
    failed = fiscalize_payment(store, lambda _: register, CLINIC, payment_id, clock=Clock())
    assert failed.outcome is Outcome.FAILED and failed.payment is not None
    assert failed.payment.row()["fiscal_status"] == "failed" and failed.payment.receipt_id != first_receipt
    # And no automatic sweep retries it
    assert fiscalize_waiting(store, lambda _: register, clock=Clock()).clinics[CLINIC].reasons == {"failed": 1}
    # When a person asks
    manual = fiscalize_payment(store, lambda _: register, CLINIC, payment_id, clock=Clock(), allow_failed=True,
                               respect_backoff=False)
    # Then
    assert manual.outcome is Outcome.FISCALIZED and len(register.done) == 1
    assert manual.payment is not None and manual.payment.failed_receipt_ids == [first_receipt]


def test_a_fiscalized_payment_is_never_sent_again(store: FakeQrStore) -> None:
    register = FakeRegister()
    payment_id = paid(store)
    fiscalize_payment(store, lambda _: register, CLINIC, payment_id, clock=Clock())
    again = fiscalize_payment(store, lambda _: register, CLINIC, payment_id, clock=Clock(), allow_failed=True,
                              respect_backoff=False)
    assert again.outcome is Outcome.ALREADY_FISCALIZED and register.sell_calls == 1


def test_a_receipt_still_processing_is_looked_at_again_soon_under_the_same_id(store: FakeQrStore) -> None:
    register = FakeRegister()
    register.processing_next = 1
    clock = Clock()
    payment_id = paid(store)
    first = fiscalize_payment(store, lambda _: register, CLINIC, payment_id, clock=clock)
    assert first.outcome is Outcome.PROCESSING and first.payment is not None
    assert first.payment.last_error == "receipt_processing"
    # The register would now answer DONE for that same id
    register.receipts[first.payment.receipt_id] = register.receipts[first.payment.receipt_id].model_copy(
        update={"state": "DONE", "fiscal_code": "FC7"})
    clock.now += timedelta(seconds=31)
    assert fiscalize_payment(store, lambda _: register, CLINIC, payment_id, clock=clock).outcome is Outcome.FISCALIZED
    assert len(register.receipts) == 1


def test_a_refused_receipt_fails_visibly(store: FakeQrStore) -> None:
    payment_id = paid(store)
    result = fiscalize_payment(store, lambda _: RejectingRegister(), CLINIC, payment_id, clock=Clock())
    assert result.outcome is Outcome.FAILED
    assert store.by_id[(CLINIC, payment_id)].last_error.startswith("fiscal_receipt_rejected")  # type: ignore[union-attr]


def test_a_crashed_attempt_is_taken_over_once_its_lease_lapses(store: FakeQrStore) -> None:
    # Given someone claimed the payment and vanished
    payment_id = paid(store)
    store.claim_doc(CLINIC, f"QRPAY#{payment_id}", token="dead", now="2026-11-23T10:00:00+00:00",
                        lease_until="2026-11-23T10:01:30+00:00", allow_failed=False, respect_backoff=True)
    register = FakeRegister()
    # Then nobody else may, until the lease lapses
    assert fiscalize_payment(store, lambda _: register, CLINIC, payment_id, clock=Clock()).outcome is Outcome.IN_PROGRESS
    later = Clock(T0 + timedelta(minutes=2))
    assert fiscalize_payment(store, lambda _: register, CLINIC, payment_id, clock=later).outcome is Outcome.FISCALIZED


def test_unknown_payment_is_a_404(store: FakeQrStore) -> None:
    with pytest.raises(NotFound):
        fiscalize_payment(store, lambda _: FakeRegister(), CLINIC, "qrp_nope", clock=Clock())


# --- sweeps and the daily check --------------------------------------------------------------------------

def test_a_closed_shift_is_asked_once_per_clinic_per_sweep_not_once_per_payment(store: FakeQrStore) -> None:
    register = FakeRegister(shift_open=False)
    for n in range(5):
        paid(store, f"inv_{n}")
    report = fiscalize_waiting(store, lambda _: register, clock=Clock(), respect_backoff=False)
    assert register.sell_calls == 1
    assert report.clinics[CLINIC].view() == {"waiting": 5, "fiscalized": 0, "remaining": 5,
                                             "reasons": {"shift_closed": 5}}


def test_the_daily_check_fiscalizes_what_it_can_and_reports_the_rest_per_clinic(store: FakeQrStore) -> None:
    # Given one clinic whose register works and one whose shift is closed
    working, closed = FakeRegister(), FakeRegister(shift_open=False)
    paid(store, "inv_a")
    other = qr_payments.apply_invoice_update(store, "cl_lviv", update("inv_b", "success", 5), T0)
    assert other is not None
    metrics: dict[str, int] = {}
    # When
    result = fiscal_check.unfiscalized_check(store, lambda cid: working if cid == CLINIC else closed, clock=Clock(),
                                             emit=metrics.__setitem__)
    # Then
    assert result["fiscalized"] == 1 and result["remaining"] == 1 and result["items_read"] == 2
    assert metrics == {CLINIC: 0, "cl_lviv": 1}


def test_a_reversed_payment_is_marked_refunded_in_the_report(store: FakeQrStore) -> None:
    payment_id = paid(store)
    qr_payments.apply_invoice_update(store, CLINIC, update("inv_1", "reversed", 60), T0)
    assert store.by_id[(CLINIC, payment_id)].row().get("refunded") is True


def test_payment_ids_follow_the_invoice_so_a_second_one_cannot_exist() -> None:
    assert payment_id_for("p2_9ZgpZVsl3") == "qrp_p2_9ZgpZVsl3"


def test_a_stale_register_version_is_a_conflict(store: FakeQrStore) -> None:
    register = store.get_register(CLINIC, "qr1")
    assert register is not None
    store.clear_register_amount(CLINIC, "qr1", None)  # bumps the version
    from clinicpay.domain.qr import QrInvoice

    with pytest.raises(ConditionFailed):
        store.set_register_amount(register, QrInvoice(clinic_id=CLINIC, invoice_id="x", qr_id="qr1", amount=UAH,
                                                      basket=[], created_at="t"))


def test_a_reversal_that_overtakes_the_success_still_marks_the_payment_refunded(store: FakeQrStore) -> None:
    qr_registers.put_amount(store, FakeAcquirer([]), CLINIC, "qr1", UAH, appointment_id=None, description=None,
                            webhook_url="https://x", now=T0)
    qr_payments.apply_invoice_update(store, CLINIC, update("inv_1", "reversed", 60), T0)
    payment = qr_payments.apply_invoice_update(store, CLINIC, update("inv_1", "success", 5), T0)
    assert payment is not None and payment.row().get("refunded") is True
