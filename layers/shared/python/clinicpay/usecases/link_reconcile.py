"""Reconciliation of payment links: a provider webhook that never came is not a lost payment.

Every provider session `/pay` stores gets a watch in the same write (repositories/link_watches.py).
`run_link_reconcile` takes one shard's watches that are due, and for each:

- the appointment is settled and this session is its current one (the webhook came, as it nearly
  always does): the watch is closed without asking anyone (the webhook path writes nothing here);
- otherwise the watch is claimed (moved to its next ask, so a shard run twice asks once), the
  provider is asked about the session with the clinic's own credentials (Fintoc checkout session,
  monobank invoice, Stripe Checkout Session) and the answer is applied through the webhook's own
  code (usecases/payment_events.py): exactly once per clinic, only for a session stored on one of
  this clinic's appointments and for the amount asked, and a webhook arriving afterwards is a
  duplicate or finds the appointment paid;
- a settled answer (paid, expired, failed for good) closes the watch; money underway (`pending`)
  is watched longer; no answer (timeout, 5xx, a refusal) leaves the watch for its next ask; a session
  the provider still calls open after its expiry has passed is given up (logged).

An expired or failed session leaves the appointment unpaid, its session cleared: the patient's next
click on the link makes a new one. The clinic is the watch's own key, never something the provider
said, and the provider is asked with that clinic's credentials.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from clinicpay.domain.appointment import PaymentStatus
from clinicpay.domain.clinic import Provider
from clinicpay.domain.errors import ClinicpayError
from clinicpay.observability import logger, metrics
from clinicpay.repositories.appointments import StoredAppointment
from clinicpay.repositories.link_watches import UNDERWAY_WATCH, LinkWatch

if TYPE_CHECKING:
    from clinicpay.ports.payments import PaymentEvent, PaymentGateway

JOB = "link-reconcile"
# Kinds of answer that move an appointment (as their webhooks would); the rest change nothing.
APPLIED_KINDS = frozenset({"succeeded", "failed", "expired", "pending", "refunded"})
# Statuses an appointment has once money came in (or none was asked).
SETTLED = frozenset({PaymentStatus.DEPOSIT_PAID, PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED,
                     PaymentStatus.REFUNDED, PaymentStatus.NOT_REQUIRED})
# How long past its end a watch keeps being asked while the provider does not answer at all.
UNANSWERED_GRACE = timedelta(days=1)


class WatchStore(Protocol):
    def due(self, shard: int, now: datetime, *, limit: int = 100,
            after: dict[str, Any] | None = None) -> tuple[list[LinkWatch], dict[str, Any] | None]: ...

    def claim(self, watch: LinkWatch, now: datetime, *, watch_until: datetime | None = None) -> LinkWatch | None: ...

    def extend(self, watch: LinkWatch, until: datetime) -> LinkWatch: ...

    def close(self, watch: LinkWatch, outcome: str, now: datetime) -> bool: ...


class AppointmentReader(Protocol):
    def get_many(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], StoredAppointment]: ...


@dataclass
class LinkReconcileDeps:
    watches: WatchStore
    appointments: AppointmentReader
    gateway_for: Callable[[str, Provider], PaymentGateway]  # the clinic's own credentials
    apply: Callable[[str, list[PaymentEvent]], list[str]]  # the webhooks' path (payment_events)
    has_time: Callable[[], bool] = field(default=lambda: True)


def run_link_reconcile(deps: LinkReconcileDeps, shard: int, now: datetime) -> dict[str, Any]:
    """Ask the providers about one shard's due link sessions; apply each answer as its webhook."""
    outcomes: Counter[str] = Counter()
    gateways: dict[tuple[str, str], PaymentGateway | ClinicpayError] = {}
    due = asked = 0
    after: dict[str, Any] | None = None
    while True:
        watches, after = deps.watches.due(shard, now, after=after)
        due += len(watches)
        stored = deps.appointments.get_many([(w.clinic_id, w.appointment_id) for w in watches]) if watches else {}
        for watch in watches:
            if not deps.has_time():
                outcomes["not_reached"] += 1  # still due: the next run takes it
                continue
            outcome, was_asked = _reconcile_one(deps, watch, stored.get((watch.clinic_id, watch.appointment_id)),
                                                now, gateways)
            asked += was_asked
            outcomes[outcome] += 1
        if after is None or not deps.has_time():
            break
    result = {"job": JOB, "shard": shard, "due": due, "asked": asked, "outcomes": dict(outcomes)}
    logger.info("link reconciliation done", extra={k: v for k, v in result.items() if k != "job"})
    return result


def _reconcile_one(deps: LinkReconcileDeps, watch: LinkWatch, stored: StoredAppointment | None, now: datetime,
                   gateways: dict[tuple[str, str], PaymentGateway | ClinicpayError]) -> tuple[str, bool]:
    log = {"clinic_id": watch.clinic_id, "appointment_id": watch.appointment_id, "provider": watch.provider,
           "session_id": watch.session_id}
    if stored is None:
        deps.watches.close(watch, "no_appointment", now)
        return "no_appointment", False
    if _paid_through(stored, watch):
        # Its webhook came: nothing to ask. (A replaced session, or one left open while the money
        # came another way, e.g. at the desk, is still asked about: a patient may have paid both.)
        deps.watches.close(watch, "settled_before", now)
        return "settled_before", False
    claimed = deps.watches.claim(watch, now)
    if claimed is None:
        return "taken", False  # another run of this shard has it
    gateway = _gateway(deps, watch, gateways)
    if isinstance(gateway, ClinicpayError):
        return _unanswered(deps, claimed, now, gateway, log), False
    try:
        answer = gateway.session_status(watch.session_id)
    except ClinicpayError as error:
        # No answer is not a "no": the watch waits for its next ask.
        return _unanswered(deps, claimed, now, error, log), True
    event = answer.event
    applied = deps.apply(watch.clinic_id, [event])[0] if event.kind in APPLIED_KINDS else "waiting"
    outcome = f"{event.kind}:{applied}"
    if answer.settled:
        deps.watches.close(claimed, outcome, now)
    elif event.kind == "pending":
        deps.watches.extend(claimed, claimed.created_at + UNDERWAY_WATCH)
    elif now >= claimed.watch_until:
        # Past its expiry and the provider still calls it open: stop asking, say so.
        logger.warning("link session still open after its expiry: no longer watched", extra=log)
        deps.watches.close(claimed, f"gave_up:{event.kind}", now)
        outcome = "gave_up"
    logger.info("link session reconciled", extra={**log, "kind": event.kind, "outcome": applied,
                                                  "settled": answer.settled})
    return outcome, True


def _paid_through(stored: StoredAppointment, watch: LinkWatch) -> bool:
    """Whether the appointment's money came through this very session: its last online payment
    (recorded by the paying transaction, webhook or ours) names it. A deposit paid before a balance
    session, a desk payment, or a payment recorded before sessions were named, proves nothing about
    a session: it is asked about (a wrong "yes" would lose a payment, a wrong "no" costs one GET)."""
    if stored.appointment.payment_status is PaymentStatus.NOT_REQUIRED:
        return True
    return stored.appointment.payment_status in SETTLED and stored.paid_session_id == watch.session_id


def _gateway(deps: LinkReconcileDeps, watch: LinkWatch,
             gateways: dict[tuple[str, str], PaymentGateway | ClinicpayError]) -> PaymentGateway | ClinicpayError:
    key = (watch.clinic_id, watch.provider)
    if key not in gateways:
        try:
            gateways[key] = deps.gateway_for(watch.clinic_id, Provider(watch.provider))
        except ClinicpayError as error:  # GatewayNotConfigured, or its secret unreadable now
            gateways[key] = error
    return gateways[key]


def _unanswered(deps: LinkReconcileDeps, claimed: LinkWatch, now: datetime, error: ClinicpayError,
                log: dict[str, Any]) -> str:
    if now >= claimed.watch_until + UNANSWERED_GRACE:
        logger.error("link session never answered for: no longer watched", extra={**log, "error_code": error.code})
        # A payment we may never learn of (revoked credentials, a provider down for a day): a person looks.
        metrics.add_metric(name="LinkWatchGivenUp", unit="Count", value=1)
        deps.watches.close(claimed, f"gave_up:{error.code}", now)
        return "gave_up"
    logger.info("provider did not answer about a link session", extra={**log, "error_code": error.code})
    return "unanswered"
