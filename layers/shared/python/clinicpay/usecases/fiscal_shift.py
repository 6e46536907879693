"""The fiscal shift, through the API: status, open, close. Once a shift is open (by us, or seen open
for the first time), the payments waiting for it are fiscalized."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from clinicpay.domain.fiscal import ShiftState
from clinicpay.domain.qr import iso
from clinicpay.observability import logger
from clinicpay.usecases.fiscalization import Clock, RegisterFactory, fiscalize_waiting

if TYPE_CHECKING:
    from clinicpay.ports.qr import FiscalRegister, QrStore, ShiftStore


def remember(shifts: ShiftStore, clinic_id: str, state: ShiftState, clock: Clock) -> bool:
    """Store what the register said; True when this is the first time we see the shift open."""
    stored = shifts.get_shift(clinic_id)
    previous, version = (stored[0], stored[1]) if stored else (None, None)
    just_opened = state.is_open and (previous is None or not previous.is_open or previous.shift_id != state.shift_id)
    if previous != state:
        # A concurrent save saw the same register a moment apart; either answer is fine to keep.
        shifts.save_shift(clinic_id, state, expected_version=version, updated_at=iso(clock()))
    return just_opened


def _view(state: ShiftState, report: dict[str, Any] | None) -> dict[str, Any]:
    view: dict[str, Any] = {"shift": state.model_dump()}
    if report is not None:
        view["fiscalized"] = report["fiscalized"]
        view["still_pending"] = report["remaining"]
    return view


# Staff wait for the answer: stop starting receipts after this; the rest stay pending (and due) for
# the scheduled retry, and the answer says how many.
AFTER_OPEN_BUDGET_SECONDS = 15.0


def _after_open(store: QrStore, registers: RegisterFactory, clinic_id: str, clock: Clock) -> dict[str, Any]:
    # The shift is what they were waiting for: no backoff applies.
    report = fiscalize_waiting(store, registers, clock=clock, clinic_id=clinic_id, respect_backoff=False,
                               deadline=time.monotonic() + AFTER_OPEN_BUDGET_SECONDS).view()
    logger.info("waiting payments sent after the shift opened",
                extra={"clinic_id": clinic_id, "fiscalized": report["fiscalized"], "remaining": report["remaining"]})
    return report


def shift_status(shifts: ShiftStore, store: QrStore, registers: RegisterFactory, clinic_id: str,
                 clock: Clock) -> dict[str, Any]:
    register: FiscalRegister = registers(clinic_id)
    state = register.current_shift()
    report = _after_open(store, registers, clinic_id, clock) if remember(shifts, clinic_id, state, clock) else None
    return _view(state, report)


def open_shift(shifts: ShiftStore, store: QrStore, registers: RegisterFactory, clinic_id: str,
               clock: Clock) -> dict[str, Any]:
    state = registers(clinic_id).open_shift()
    remember(shifts, clinic_id, state, clock)
    logger.info("fiscal shift open requested", extra={"clinic_id": clinic_id, "status": state.status})
    report = _after_open(store, registers, clinic_id, clock) if state.is_open else None
    return _view(state, report)


def close_shift(shifts: ShiftStore, registers: RegisterFactory, clinic_id: str, clock: Clock) -> dict[str, Any]:
    state = registers(clinic_id).close_shift()
    remember(shifts, clinic_id, state, clock)
    logger.info("fiscal shift close requested", extra={"clinic_id": clinic_id, "status": state.status})
    return _view(state, None)
