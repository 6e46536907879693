"""Scheduled fiscal shifts, the 24-hour rule, long-open reports, and reconciliation of QR invoices
whose webhooks never came: use cases with fakes (no AWS, no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from clinicpay.domain.clinic import Clinic, ClinicSettings, ShiftSchedule
from clinicpay.domain.fiscal import FiscalStatus, ShiftState
from clinicpay.domain.money import Money
from clinicpay.domain.qr import CancelEntry, CardPayment, InvoiceStatus, InvoiceUpdate, QrRegisterInfo, qr_reference
from clinicpay.usecases import qr_registers
from clinicpay.usecases.fiscal_shift_schedule import (
    ShiftScheduleDeps,
    boundaries,
    run_shift_schedule,
    shifts_open_too_long,
)
from clinicpay.usecases.qr_reconcile import ReconcileDeps, reconcile_qr_invoices
from tests.unit.usecases.qr_fakes import FakeAcquirer, FakeQrStore, FakeRegister, FakeShiftStore

CLINIC = "cl_kyiv"
KYIV = ZoneInfo("Europe/Kyiv")
SCHEDULE = ShiftSchedule(open="08:00", close="20:00")


def kyiv(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=KYIV)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class TimedRegister(FakeRegister):
    """A register whose shifts know when they opened (as Checkbox's do)."""

    def __init__(self, clock: Clock, *, open_since: datetime | None = None):
        super().__init__(shift_open=open_since is not None)
        self.clock = clock
        self.opens = self.closes = 0
        if open_since is not None:
            self.shift = ShiftState(status="OPENED", shift_id="s0", opened_at=open_since.isoformat())

    def open_shift(self) -> ShiftState:
        self.opens += 1
        self.shift = ShiftState(status="OPENED", shift_id=f"s{self.opens}", opened_at=self.clock().isoformat())
        return self.shift

    def close_shift(self) -> ShiftState:
        self.closes += 1
        return super().close_shift()


class Memory(FakeShiftStore):
    def __init__(self) -> None:
        super().__init__()
        self.done: dict[str, str] = {}

    def schedule_done(self, clinic_id: str) -> dict[str, str]:
        return dict(self.done)

    def claim_boundary(self, clinic_id: str, action: str, boundary: str) -> bool:
        if self.done.get(action, "") >= boundary:
            return False
        self.done[action] = boundary
        return True

    def release_boundary(self, clinic_id: str, action: str, boundary: str, previous: str | None) -> None:
        if previous:
            self.done[action] = previous
        else:
            self.done.pop(action, None)

    def open_shifts(self, shard: int) -> list[tuple[str, ShiftState, str]]:
        return [(CLINIC, self.state[0], "")] if self.state and self.state[0].is_open else []


class Clinics:
    def __init__(self, schedule: ShiftSchedule | None = SCHEDULE):
        self.schedule = schedule

    def scheduled_shift_clinics(self, shard: int) -> list[tuple[str, ClinicSettings]]:
        return [(CLINIC, ClinicSettings(fiscal_shift_schedule=self.schedule))]

    def get(self, clinic_id: str) -> Clinic:
        return Clinic(clinic_id=clinic_id, name="Клініка", country="UA", currency="UAH", timezone="Europe/Kyiv",
                      locale="uk", created_at="2026-01-01T00:00:00+00:00")


def deps(register: TimedRegister, clock: Clock, memory: Memory, store: FakeQrStore | None = None,
         clinics: Clinics | None = None) -> ShiftScheduleDeps:
    return ShiftScheduleDeps(clinics=clinics or Clinics(), shifts=memory, store=store or FakeQrStore(),
                             registers=lambda _: register, clock=clock)


def test_boundaries_are_the_latest_open_and_close_in_the_clinics_zone() -> None:
    assert boundaries(SCHEDULE, KYIV, kyiv(23, 9)) == (kyiv(23, 8), kyiv(22, 20))
    assert boundaries(SCHEDULE, KYIV, kyiv(23, 21)) == (kyiv(23, 8), kyiv(23, 20))
    night = ShiftSchedule(open="20:00", close="06:00")  # spans midnight
    assert boundaries(night, KYIV, kyiv(24, 1)) == (kyiv(23, 20), kyiv(23, 6))


def test_the_shift_opens_at_the_first_run_after_its_time_once_and_sends_what_waits() -> None:
    clock = Clock(kyiv(23, 8, 5))
    register, memory = TimedRegister(clock), Memory()
    store = _store_with_waiting_payment()
    # When the run after 08:00 and the one after it
    first = run_shift_schedule(deps(register, clock, memory, store), 0, clock.now)
    clock.now = kyiv(23, 8, 20)
    second = run_shift_schedule(deps(register, clock, memory, store), 0, clock.now)
    # Then it opened once and the waiting payment got its receipt
    assert first["clinics"] == {CLINIC: "opened"} and second["clinics"] == {CLINIC: "none"}
    assert register.opens == 1 and len(register.done) == 1


def test_a_person_who_closes_the_shift_inside_the_window_is_not_overruled_until_the_next_open() -> None:
    clock = Clock(kyiv(23, 8, 5))
    register, memory = TimedRegister(clock), Memory()
    run_shift_schedule(deps(register, clock, memory), 0, clock.now)
    register.close_shift()  # by hand, at lunch
    clock.now = kyiv(23, 13)
    assert run_shift_schedule(deps(register, clock, memory), 0, clock.now)["clinics"] == {CLINIC: "none"}
    assert not register.shift.is_open
    clock.now = kyiv(24, 8, 1)
    assert run_shift_schedule(deps(register, clock, memory), 0, clock.now)["clinics"] == {CLINIC: "opened"}


def test_the_shift_closes_at_the_first_run_after_its_close_time_after_sending_what_waits() -> None:
    clock = Clock(kyiv(23, 8, 5))
    register, memory = TimedRegister(clock), Memory()
    store = FakeQrStore()
    run_shift_schedule(deps(register, clock, memory, store), 0, clock.now)
    _pay(store)  # paid while the register was briefly down: waits
    clock.now = kyiv(23, 20, 7)
    result = run_shift_schedule(deps(register, clock, memory, store), 0, clock.now)
    assert result["clinics"] == {CLINIC: "closed"} and not register.shift.is_open
    assert len(register.done) == 1  # sent before the close
    assert run_shift_schedule(deps(register, clock, memory, store), 0, kyiv(23, 20, 22))["clinics"] == {
        CLINIC: "none"}


def test_a_shift_never_lasts_24_hours_whatever_the_schedule_says() -> None:
    # Given a shift a person opened at 07:00 yesterday and a schedule that wants it open now
    clock = Clock(kyiv(23, 6, 30))
    register, memory = TimedRegister(clock, open_since=kyiv(22, 7, 0)), Memory()
    schedule = ShiftSchedule(open="06:00", close="05:59")  # open all day long
    # When
    result = run_shift_schedule(deps(register, clock, memory, clinics=Clinics(schedule)), 0, clock.now)
    # Then it was closed (Z report) and opened again: a new shift
    assert result["clinics"] == {CLINIC: "reopened_24h"}
    assert register.closes == 1 and register.opens == 1 and register.shift.opened_at == clock.now.isoformat()


def test_the_daily_check_reports_shifts_open_past_23_hours_that_are_still_open() -> None:
    clock = Clock(kyiv(23, 9))
    register, memory = TimedRegister(clock, open_since=kyiv(22, 9, 30)), Memory()
    memory.save_shift(CLINIC, register.shift, expected_version=None, updated_at="x")
    emitted: dict[str, int] = {}
    rows = shifts_open_too_long(memory, lambda _: register, clock, shard=0, now=clock.now, emit=emitted.__setitem__)
    assert [(r["clinic_id"], r["open_hours"]) for r in rows] == [(CLINIC, 23)] and emitted == {CLINIC: 23}
    register.close_shift()  # closed at the register meanwhile (Checkbox's own app)
    assert shifts_open_too_long(memory, lambda _: register, clock, shard=0, now=clock.now, emit=emitted.__setitem__) == []


# --- reconciliation -----------------------------------------------------------------------------------

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _status(invoice_id: str, status: str, second: int, amount: int, *, cancels: list[CancelEntry] | None = None,
            modified: bool = True) -> InvoiceUpdate:
    moment = T0 + timedelta(seconds=second)
    return InvoiceUpdate(invoice_id=invoice_id, status=InvoiceStatus(status), modified_at=moment,
                         modified_raw=moment.strftime("%Y-%m-%dT%H:%M:%SZ") if modified else None,
                         amount=Money(amount=amount, currency="UAH"), invoice_amount=Money(amount=amount, currency="UAH"),
                         reference=qr_reference("qr1", None, CLINIC),
                         card=CardPayment(masked_pan="444403******1902"), cancels=cancels or [])


def test_reconciliation_after_every_webhook_was_dropped_brings_each_invoice_to_its_true_state() -> None:
    # Given ten amounts put on registers whose webhooks never came: paid, failed, expired, reversed
    store, acquirer, register = FakeQrStore(), FakeAcquirer([]), FakeRegister()
    _registers(store)
    truth = ["success"] * 5 + ["failure", "expired", "reversed", "created", "success"]
    for n, status in enumerate(truth):
        invoice_id = qr_registers.put_amount(store, acquirer, CLINIC, "qr1", Money(amount=1000 * (n + 1), currency="UAH"),
                                             appointment_id=None, description=None, webhook_url="https://x",
                                             now=T0)["invoice_id"]
        cancels = [CancelEntry(status="success", amount=Money(amount=1000 * (n + 1), currency="UAH"),
                               created_raw="2026-11-23T10:09:00Z")] if status == "reversed" else []
        acquirer.statuses = {**getattr(acquirer, "statuses", {}),
                             invoice_id: _status(invoice_id, status, 30, 1000 * (n + 1), cancels=cancels,
                                                 modified=n % 2 == 0)}
    reconcile = ReconcileDeps(store=store, acquirers=lambda _: acquirer, registers=lambda _: register,
                              fiscal_mode=lambda _: "clinicpay", clock=lambda: T0 + timedelta(minutes=10))
    # When too early nothing is asked; a few minutes later everything is
    early = reconcile_qr_invoices(reconcile, clinic_id=CLINIC, now=T0 + timedelta(minutes=1))
    result = reconcile_qr_invoices(reconcile, clinic_id=CLINIC, now=T0 + timedelta(minutes=10))
    again = reconcile_qr_invoices(reconcile, clinic_id=CLINIC, now=T0 + timedelta(minutes=20))
    # Then: seven payments recorded (six paid, one paid then reversed), each with its sale receipt,
    # the reversed one with its return; failed and expired invoices decided; the unpaid one still asked
    assert early["asked"] == 0 and result["asked"] == 10
    assert len(store.by_id) == 7
    assert all(p.fiscal_status is FiscalStatus.FISCALIZED for p in store.by_id.values())
    assert len(register.done_of("SELL")) == 7 and len(register.done_of("RETURN")) == 1
    assert again["asked"] == 1  # only the invoice still waiting for its patient


def test_a_refund_monobank_never_received_fails_after_a_while_and_its_reservation_is_released() -> None:
    from clinicpay.domain.errors import ProviderOutcomeUnknown
    from clinicpay.usecases import qr_payments, qr_refunds
    from tests.unit.usecases.qr_fakes import FakeRefunds

    store, acquirer = FakeQrStore(), FakeAcquirer([])
    _registers(store)
    invoice_id = qr_registers.put_amount(store, acquirer, CLINIC, "qr1", Money(amount=5000, currency="UAH"),
                                         appointment_id=None, description=None, webhook_url="https://x", now=T0)["invoice_id"]
    decision = qr_payments.receive(store, lambda _: None, CLINIC, _status(invoice_id, "success", 5, 5000), T0)
    assert decision.payment is not None
    qr_refunds.refund_payment(store, lambda: FakeRefunds(raises=ProviderOutcomeUnknown()), CLINIC,
                              decision.payment.payment_id, refund_id="qrr_lost", amount=None, reason=None, now=T0)
    acquirer.statuses = {invoice_id: _status(invoice_id, "success", 5, 5000)}  # monobank lists no cancel
    reconcile = ReconcileDeps(store=store, acquirers=lambda _: acquirer, registers=lambda _: FakeRegister(),
                              fiscal_mode=lambda _: "clinicpay", clock=lambda: T0)
    reconcile_qr_invoices(reconcile, clinic_id=CLINIC, now=T0 + timedelta(minutes=10))
    assert store.get_refund(CLINIC, decision.payment.payment_id, "qrr_lost").status == "pending"  # type: ignore[union-attr]
    reconcile_qr_invoices(reconcile, clinic_id=CLINIC, now=T0 + timedelta(minutes=45))
    lost = store.get_refund(CLINIC, decision.payment.payment_id, "qrr_lost")
    payment = store.get_payment(CLINIC, decision.payment.payment_id)
    assert lost is not None and lost.status == "failed" and lost.failure_code == "not_received_by_provider"
    assert payment is not None and payment.refunded == 0


def _registers(store: FakeQrStore) -> None:
    qr_registers.sync_registers(store, FakeAcquirer([QrRegisterInfo(qr_id="qr1", amount_type="merchant",
                                                                    page_url="https://pay.example/qr1")]), CLINIC, T0)


def _pay(store: FakeQrStore) -> None:
    from clinicpay.usecases import qr_payments

    _registers(store)
    assert qr_payments.apply_invoice_update(store, CLINIC, _status("inv_w", "success", 5, 5000), T0) is not None


def _store_with_waiting_payment() -> FakeQrStore:
    store = FakeQrStore()
    _pay(store)
    return store


@pytest.mark.parametrize("text", ["8:00", "24:00", "08:60", "0800"])
def test_a_schedule_time_is_hh_mm(text: str) -> None:
    with pytest.raises(ValueError):
        ShiftSchedule(open=text, close="20:00")
