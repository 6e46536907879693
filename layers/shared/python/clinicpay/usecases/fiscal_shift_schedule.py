"""Fiscal shifts that open and close by themselves, and shifts left open too long.

A clinic may set `fiscal_shift_schedule: {open: "08:00", close: "20:00"}` (its own time zone; a close
before the open spans midnight). The `shift-schedule` job runs every 15 minutes over the clinics
with a schedule (one shard of them per invocation): at the first run after an open time it opens
the shift (and sends the receipts waiting for it); at the first run after a close time it sends what
waits, then closes the shift. Each boundary is acted on once (claimed on the clinic's SHIFTSCHED
item, so overlapping runs never both act), and a person who opens or closes by hand in between is
not overruled until the next boundary. A Checkbox shift may not last 24 hours, so whatever the
schedule says, a shift open for MAX_SHIFT_AGE is closed (and opened again when the schedule wants
it open).

The daily check reports shifts left open past REPORT_AFTER (log line, metric
`FiscalShiftOpenTooLong` per clinic, and in its result), after asking the register whether they
really still are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as day_time
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from clinicpay.domain.clinic import Clinic, ClinicSettings, ShiftSchedule
from clinicpay.domain.errors import ClinicpayError, GatewayNotConfigured
from clinicpay.domain.fiscal import ShiftNotOpen, ShiftState
from clinicpay.domain.qr import iso
from clinicpay.observability import logger, metrics
from clinicpay.ports.qr import ShiftStore
from clinicpay.usecases import fiscal_shift
from clinicpay.usecases.fiscalization import Clock, RegisterFactory, fiscalize_waiting

if TYPE_CHECKING:
    from clinicpay.ports.qr import QrStore

# The 15-minute job closes a shift this old, so even one missed run closes it before 24 hours.
MAX_SHIFT_AGE = timedelta(hours=23, minutes=15)
REPORT_AFTER = timedelta(hours=23)
# What one clinic's receipts may take before its scheduled close (the rest wait for the next shift).
BEFORE_CLOSE_BUDGET_SECONDS = 10.0


class ScheduledClinics(Protocol):
    def scheduled_shift_clinics(self, shard: int) -> list[tuple[str, ClinicSettings]]: ...

    def get(self, clinic_id: str) -> Clinic: ...


class ScheduleMemory(ShiftStore, Protocol):
    def schedule_done(self, clinic_id: str) -> dict[str, str]: ...

    def claim_boundary(self, clinic_id: str, action: str, boundary: str) -> bool: ...

    def release_boundary(self, clinic_id: str, action: str, boundary: str, previous: str | None) -> None: ...

    def open_shifts(self, shard: int) -> list[tuple[str, ShiftState, str]]: ...


@dataclass
class ShiftScheduleDeps:
    clinics: ScheduledClinics
    shifts: ScheduleMemory
    store: QrStore
    registers: RegisterFactory
    clock: Clock
    deadline: float | None = None  # time.monotonic(): start no clinic after it


def boundaries(schedule: ShiftSchedule, zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    """The latest scheduled open and close moments at or before `now`, in the clinic's zone."""
    local_day = now.astimezone(zone).date()

    def latest(hhmm: str) -> datetime:
        at = day_time.fromisoformat(hhmm)
        for back in (0, 1, 2):
            moment = datetime.combine(local_day - timedelta(days=back), at, tzinfo=zone)
            if moment <= now:
                return moment
        return datetime.combine(date.min, at, tzinfo=zone)  # unreachable: yesterday's is always past

    return latest(schedule.open), latest(schedule.close)


def run_shift_schedule(deps: ShiftScheduleDeps, shard: int, now: datetime) -> dict[str, Any]:
    """Open and close the shifts of one shard's scheduled clinics that are due now."""
    actions: dict[str, str] = {}
    for clinic_id, settings in deps.clinics.scheduled_shift_clinics(shard):
        schedule = settings.fiscal_shift_schedule
        if schedule is None:
            continue
        if deps.deadline is not None and time.monotonic() > deps.deadline:
            actions[clinic_id] = "not_reached"
            continue
        try:
            zone = ZoneInfo(deps.clinics.get(clinic_id).timezone)
            actions[clinic_id] = _one_clinic(deps, clinic_id, schedule, zone, now)
        except GatewayNotConfigured:
            actions[clinic_id] = "not_configured"
        except ClinicpayError as error:
            # Checkbox down or storage busy: the boundary is not taken, the next run tries again.
            logger.warning("scheduled shift change did not happen", extra={"clinic_id": clinic_id,
                                                                          "error_code": error.code})
            actions[clinic_id] = f"unavailable:{error.code}"
    result = {"job": "shift-schedule", "shard": shard, "clinics": actions}
    logger.info("shift schedule run", extra={"shard": shard, "clinics": len(actions),
                                             "changed": sum(1 for a in actions.values() if a in ("opened", "closed"))})
    return result


def _one_clinic(deps: ShiftScheduleDeps, clinic_id: str, schedule: ShiftSchedule, zone: ZoneInfo,
                now: datetime) -> str:
    last_open, last_close = boundaries(schedule, zone, now)
    inside = last_open > last_close
    register = deps.registers(clinic_id)
    state = register.current_shift()
    action = "none"
    if state.status in ("OPENED", "CREATED", "OPENING") and _age(state, now) >= MAX_SHIFT_AGE:
        _send_waiting(deps, clinic_id)
        state = ShiftState.model_validate(fiscal_shift.close_shift(deps.shifts, deps.registers, clinic_id,
                                                                   deps.clock)["shift"])
        logger.warning("fiscal shift closed before 24 hours", extra={"clinic_id": clinic_id})
        action = "closed_24h"
        if inside:
            fiscal_shift.open_shift(deps.shifts, deps.store, deps.registers, clinic_id, deps.clock)
            return "reopened_24h"
    done = deps.shifts.schedule_done(clinic_id)
    if inside and done.get("open") != iso(last_open):
        boundary = iso(last_open)
        if not deps.shifts.claim_boundary(clinic_id, "open", boundary):
            return action
        if state.is_open:
            return "already_open"
        try:
            opened = fiscal_shift.open_shift(deps.shifts, deps.store, deps.registers, clinic_id, deps.clock)
        except ClinicpayError:
            deps.shifts.release_boundary(clinic_id, "open", boundary, done.get("open"))
            raise
        logger.info("fiscal shift opened on schedule", extra={"clinic_id": clinic_id,
                                                              "status": opened["shift"]["status"]})
        return "opened" if opened["shift"]["status"] == "OPENED" else f"opening:{opened['shift']['status']}"
    if not inside and done.get("close") != iso(last_close):
        boundary = iso(last_close)
        if not deps.shifts.claim_boundary(clinic_id, "close", boundary):
            return action
        if not state.is_open:
            return "already_closed" if action == "none" else action
        _send_waiting(deps, clinic_id)
        try:
            fiscal_shift.close_shift(deps.shifts, deps.registers, clinic_id, deps.clock)
        except ShiftNotOpen:
            return "already_closed"
        except ClinicpayError:
            deps.shifts.release_boundary(clinic_id, "close", boundary, done.get("close"))
            raise
        logger.info("fiscal shift closed on schedule", extra={"clinic_id": clinic_id})
        return "closed"
    return action


def _send_waiting(deps: ShiftScheduleDeps, clinic_id: str) -> None:
    """Receipts still waiting go out while the shift is open; what does not fit waits for the next."""
    until = time.monotonic() + BEFORE_CLOSE_BUDGET_SECONDS
    if deps.deadline is not None:
        until = min(until, deps.deadline)
    fiscalize_waiting(deps.store, deps.registers, clock=deps.clock, clinic_id=clinic_id, respect_backoff=False,
                      deadline=until)


def _age(state: ShiftState, now: datetime) -> timedelta:
    if not state.opened_at:
        return timedelta(0)
    try:
        opened = datetime.fromisoformat(state.opened_at.replace("Z", "+00:00"))
    except ValueError:
        return timedelta(0)
    return now - opened if opened.tzinfo else timedelta(0)


# --- the daily check's part ----------------------------------------------------------------------

MetricSink = Callable[[str, int], None]


def emit_long_open(clinic_id: str, hours: int) -> None:
    with single_metric(name="FiscalShiftOpenTooLong", unit=MetricUnit.Count, value=1,
                       namespace=metrics.namespace) as metric:
        metric.add_dimension(name="clinic_id", value=clinic_id)
    del hours  # in the log line


def shifts_open_too_long(shifts: ScheduleMemory, registers: RegisterFactory, clock: Clock, *, shard: int,
                         now: datetime, emit: MetricSink = emit_long_open) -> list[dict[str, Any]]:
    """Shifts we last saw open for more than REPORT_AFTER, still open at the register: reported."""
    found = []
    for clinic_id, seen, _ in shifts.open_shifts(shard):
        if _age(seen, now) < REPORT_AFTER:
            continue
        try:
            current = registers(clinic_id).current_shift()
            fiscal_shift.remember(shifts, clinic_id, current, clock)
        except ClinicpayError as error:
            logger.info("register not asked about a long shift", extra={"clinic_id": clinic_id,
                                                                        "error_code": error.code})
            current = seen  # what we know is what we report
        if current.status not in ("OPENED", "CREATED", "OPENING", "CLOSING") or _age(current, now) < REPORT_AFTER:
            continue
        hours = int(_age(current, now).total_seconds() // 3600)
        row = {"clinic_id": clinic_id, "shift_id": current.shift_id, "opened_at": current.opened_at,
               "open_hours": hours}
        logger.warning("fiscal shift open for more than 23 hours", extra=row)
        emit(clinic_id, hours)
        found.append(row)
    return found
