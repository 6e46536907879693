"""In-memory fakes of the ports the card use cases take (clinicpay.usecases.cards_ports, CardVault).

They keep the same promises as the DynamoDB repositories (conditional writes, a charge that
succeeded stays succeeded, an older fact never overwrites a newer one), so the use cases can be
tested for behaviour without AWS or a network.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from clinicpay.domain.card import Card, CardRefund, CardSetup, Charge, Dispute, SetupStatus
from clinicpay.domain.clinic import Clinic, ClinicSettings, Locale, Service
from clinicpay.domain.errors import ConditionFailed, NotFound
from clinicpay.domain.money import Money
from clinicpay.notify.builtin import Text
from clinicpay.ports import (
    CardEvent,
    CardSetupRequest,
    CardSetupSession,
    ChargeResult,
    OffSessionCharge,
    OutgoingMessage,
    RefundObservation,
    RefundRequest,
    RefundResult,
    VaultCard,
)
from clinicpay.repositories.shards import shard_of
from clinicpay.usecases.cards_ports import CardDeps


class FakeCardStore:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cards: dict[tuple[str, str, str], dict[str, Any]] = {}  # (clinic, patient, card) -> {card, status}
        self.defaults: dict[tuple[str, str], str] = {}
        self.customers: dict[tuple[str, str, str], str] = {}
        self.setups: dict[tuple[str, str, str], CardSetup] = {}
        self.charges: dict[tuple[str, str, str], Charge] = {}
        self.charge_meta: dict[str, dict[str, Any]] = {}
        self.claims: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.events: dict[tuple[str, str, str], str] = {}
        self.reasons: dict[tuple[str, str, str], str | None] = {}
        self.refunds: dict[tuple[str, str, str], CardRefund] = {}
        self.notices: set[tuple[str, str, str]] = set()
        self.recon: dict[tuple[str, str, str, str], dict[str, Any]] = {}  # (kind, clinic, patient, id) -> at, attempts

    def list_cards(self, clinic_id: str, patient_id: str) -> tuple[list[Card], str | None]:
        found = [v["card"] for (c, p, _), v in self.cards.items() if (c, p) == (clinic_id, patient_id)
                 and v["status"] == "active"]
        return sorted(found, key=lambda card: card.created_at), self.defaults.get((clinic_id, patient_id))

    def get_card(self, clinic_id: str, patient_id: str, card_id: str, *, removing_too: bool = False) -> Card | None:
        entry = self.cards.get((clinic_id, patient_id, card_id))
        wanted = ("active", "removing") if removing_too else ("active",)
        return entry["card"] if entry and entry["status"] in wanted else None

    def begin_removal(self, card: Card) -> bool:
        entry = self.cards.get((card.clinic_id, card.patient_id, card.card_id))
        if not entry or entry["status"] not in ("active", "removing"):
            return False
        entry["status"] = "removing"
        return True

    def abort_removal(self, card: Card) -> None:
        entry = self.cards[(card.clinic_id, card.patient_id, card.card_id)]
        if entry["status"] == "removing":
            entry["status"] = "active"

    def find_card_by_token(self, provider: str, token: str) -> Card | None:
        return next((v["card"] for v in self.cards.values() if v["status"] == "active" and v["card"].token == token
                     and v["card"].provider == provider), None)

    def put_card(self, card: Card) -> bool:
        key = (card.clinic_id, card.patient_id, card.card_id)
        if key in self.cards:
            return False
        self.cards[key] = {"card": card, "status": "active"}
        return True

    def claim_default(self, clinic_id: str, patient_id: str, card_id: str) -> bool:
        if (clinic_id, patient_id) in self.defaults:
            return False
        self.defaults[(clinic_id, patient_id)] = card_id
        return True

    def set_default(self, clinic_id: str, patient_id: str, card_id: str) -> None:
        if self.get_card(clinic_id, patient_id, card_id) is None:
            raise ConditionFailed()
        self.defaults[(clinic_id, patient_id)] = card_id

    def remove_card(self, card: Card, *, was_default: bool, new_default: str | None, removed_at: datetime) -> None:
        key = (card.clinic_id, card.patient_id, card.card_id)
        if self.cards.get(key, {}).get("status") not in ("active", "removing"):
            raise ConditionFailed()
        if was_default and self.defaults.get(key[:2]) != card.card_id:
            raise ConditionFailed()
        self.cards[key] = {"card": card.model_copy(update={"token": ""}), "status": "removed"}
        if was_default:
            if new_default:
                self.defaults[key[:2]] = new_default
            else:
                self.defaults.pop(key[:2], None)

    def customer_ref(self, clinic_id: str, patient_id: str, provider: str) -> str | None:
        return self.customers.get((clinic_id, patient_id, provider))

    def keep_customer_ref(self, clinic_id: str, patient_id: str, provider: str, customer_ref: str) -> str:
        return self.customers.setdefault((clinic_id, patient_id, provider), customer_ref)

    def put_setup(self, setup: CardSetup) -> None:
        key = (setup.clinic_id, setup.patient_id, setup.setup_ref)
        if key in self.setups:
            raise ConditionFailed()
        self.setups[key] = setup

    def attach_session(self, setup: CardSetup, session_id: str, setup_id: str | None) -> None:
        key = (setup.clinic_id, setup.patient_id, setup.setup_ref)
        self.setups[key] = self.setups[key].model_copy(update={"session_id": session_id, "setup_id": setup_id})

    def get_setup(self, clinic_id: str, patient_id: str, setup_ref: str) -> CardSetup | None:
        return self.setups.get((clinic_id, patient_id, setup_ref))

    def find_setup(self, provider: str, setup_id: str) -> CardSetup | None:
        return next((s for s in self.setups.values() if s.setup_id == setup_id and s.provider == provider), None)

    def finish_setup(self, setup: CardSetup, status: SetupStatus, at: datetime) -> bool:
        key = (setup.clinic_id, setup.patient_id, setup.setup_ref)
        if self.setups[key].status is not SetupStatus.OPEN:
            return False
        self.setups[key] = self.setups[key].model_copy(update={"status": status})
        return True

    def create_charge(self, charge: Charge, *, check_at: datetime) -> bool:
        key = (charge.clinic_id, charge.patient_id, charge.charge_id)
        if key in self.charges:
            return False
        self.charges[key] = charge
        self.recon[("CHARGE", *key)] = {"at": check_at, "attempts": 0}
        return True

    def get_charge(self, clinic_id: str, patient_id: str, charge_id: str) -> Charge | None:
        return self.charges.get((clinic_id, patient_id, charge_id))

    def list_charges(self, clinic_id: str, patient_id: str) -> list[Charge]:
        found = [c for (cl, p, _), c in self.charges.items() if (cl, p) == (clinic_id, patient_id)]
        return sorted(found, key=lambda c: c.created_at, reverse=True)

    def find_charge(self, provider: str, reference: str) -> Charge | None:
        return next((c for c in self.charges.values() if c.reference == reference and c.provider == provider), None)

    def settle_charge(self, charge: Charge, result: ChargeResult, at: datetime, *,
                      check_at: datetime | None = None) -> bool:
        with self.lock:  # one conditional write, as DynamoDB applies it
            return self._settle_charge(charge, result, at, check_at=check_at)

    def _settle_charge(self, charge: Charge, result: ChargeResult, at: datetime, *,
                       check_at: datetime | None = None) -> bool:
        key = (charge.clinic_id, charge.patient_id, charge.charge_id)
        stored = self.charges.get(key)
        if stored is None:
            return False
        last = self.charge_meta.get(charge.charge_id, {}).get("status_at")
        if stored.status == "succeeded" or (result.status != "succeeded" and last is not None and last > at):
            return False
        if result.status == "succeeded" and stored.told_at is not None:
            return False
        self.charges[key] = stored.model_copy(update={
            "status": result.status, "failure_code": result.failure_code, "action_url": result.action_url,
            "reference": result.reference or stored.reference, "updated_at": at, "undecided": False,
            **({"told_at": at} if result.status == "succeeded" else {})})
        self.charge_meta[charge.charge_id] = {"status_at": at}
        if result.status in ("succeeded", "failed") or check_at is None:
            self.recon.pop(("CHARGE", *key), None)
        else:
            self.recon[("CHARGE", *key)] = {"at": check_at, "attempts": 0}
        return True

    def mark_undecided(self, charge: Charge, at: datetime, *, check_at: datetime) -> bool:
        key = (charge.clinic_id, charge.patient_id, charge.charge_id)
        stored = self.charges.get(key)
        if stored is None or not (stored.status is None or (stored.status == "processing" and stored.undecided)):
            return False
        self.charges[key] = stored.model_copy(update={"status": "processing", "undecided": True, "updated_at": at})
        self.recon[("CHARGE", *key)] = {"at": check_at, "attempts": 0}
        return True

    def mark_not_sent(self, charge: Charge, at: datetime) -> bool:
        key = (charge.clinic_id, charge.patient_id, charge.charge_id)
        stored = self.charges.get(key)
        if stored is None or stored.status is not None:
            return False
        self.charges[key] = stored.model_copy(update={"status": "failed", "failure_code": "provider_unavailable"})
        self.charge_meta[charge.charge_id] = {"status_at": at}
        self.recon.pop(("CHARGE", *key), None)
        return True

    def reopen_charge(self, charge: Charge, at: datetime) -> bool:
        key = (charge.clinic_id, charge.patient_id, charge.charge_id)
        stored = self.charges.get(key)
        if stored is None or stored.status != "failed" or stored.failure_code not in ("provider_unavailable", "not_created"):
            return False
        self.charges[key] = stored.model_copy(update={"status": None, "failure_code": None})
        self.charge_meta.pop(charge.charge_id, None)
        return True

    def _claim_key(self, charge: Charge) -> tuple[str, str, str, str]:
        return (charge.clinic_id, charge.patient_id, charge.appointment_id or "", charge.reason.value)

    def claim_appointment_charge(self, charge: Charge) -> bool:
        key = self._claim_key(charge)
        claim = self.claims.get(key)
        ours = claim is not None and claim["charge_id"] == charge.charge_id and claim["status"] != "succeeded"
        if claim and claim["status"] != "failed" and not ours:
            return False
        self.claims[key] = {"charge_id": charge.charge_id, "status": "pending", "claimed_at": charge.created_at.isoformat()}
        return True

    def appointment_claim(self, charge: Charge) -> dict[str, Any] | None:
        claim = self.claims.get(self._claim_key(charge))
        return dict(claim) if claim else None

    def take_over_claim(self, charge: Charge, claim: dict[str, Any]) -> bool:
        key = self._claim_key(charge)
        current = self.claims.get(key)
        if current is None or current["charge_id"] != claim["charge_id"] or current["claimed_at"] != claim["claimed_at"] \
                or current["status"] == "succeeded":
            return False
        self.claims[key] = {"charge_id": charge.charge_id, "status": "pending", "claimed_at": charge.created_at.isoformat()}
        return True

    def record_dispute(self, charge: Charge, dispute: Dispute) -> str:
        key = (charge.clinic_id, charge.patient_id, charge.charge_id)
        stored = self.charges[key]
        if stored.dispute is None or stored.dispute.dispute_id != dispute.dispute_id:
            self.charges[key] = stored.model_copy(update={"dispute": dispute})
            return "opened"
        if stored.dispute.updated_at <= dispute.updated_at:
            self.charges[key] = stored.model_copy(update={"dispute": dispute})
            return "updated"
        return "stale"

    # ---------------------------------------------------------------- refunds (reserved on the charge)
    def reserve_refund(self, refund: CardRefund, charge: Charge, *, check_at: datetime) -> str:
        key = (refund.clinic_id, refund.patient_id, refund.refund_id)
        existing = self.refunds.get(key)
        if existing is not None and not (existing.status == "failed" and existing.failure_code == "provider_unavailable"):
            return "exists"
        ckey = (charge.clinic_id, charge.patient_id, charge.charge_id)
        stored = self.charges[ckey]
        if stored.status != "succeeded" or stored.amount_refunded > charge.amount.amount - refund.amount.amount:
            return "exceeds"
        self.charges[ckey] = stored.model_copy(update={"amount_refunded": stored.amount_refunded + refund.amount.amount})
        self.refunds[key] = refund
        self.recon[("REFUND", *key)] = {"at": check_at, "attempts": 0}
        return "reserved"

    def get_refund(self, clinic_id: str, patient_id: str, refund_id: str) -> CardRefund | None:
        return self.refunds.get((clinic_id, patient_id, refund_id))

    def find_refund(self, provider: str, provider_refund_id: str) -> CardRefund | None:
        return next((r for r in self.refunds.values() if r.provider_refund_id == provider_refund_id), None)

    def refunds_by_charge(self, clinic_id: str, patient_id: str) -> dict[str, list[CardRefund]]:
        found: dict[str, list[CardRefund]] = {}
        for (c, p, _), refund in sorted(self.refunds.items(), key=lambda pair: pair[1].created_at):
            if (c, p) == (clinic_id, patient_id):
                found.setdefault(refund.charge_id, []).append(refund)
        return found

    def list_refunds(self, clinic_id: str, patient_id: str, charge_id: str) -> list[CardRefund]:
        return sorted((r for (c, p, _), r in self.refunds.items() if (c, p) == (clinic_id, patient_id)
                       and r.charge_id == charge_id), key=lambda r: r.created_at)

    def settle_refund(self, refund: CardRefund, *, status: str, at: datetime, provider_refund_id: str | None = None,
                      failure_code: str | None = None, check_at: datetime | None = None) -> bool:
        key = (refund.clinic_id, refund.patient_id, refund.refund_id)
        stored = self.refunds.get(key)
        allowed = ("pending", "succeeded") if status == "failed" else ("pending",)
        if stored is None or stored.status not in allowed:
            return False
        self.refunds[key] = stored.model_copy(update={
            "status": status, "updated_at": at, "undecided": False,
            "provider_refund_id": provider_refund_id or stored.provider_refund_id,
            "failure_code": failure_code or stored.failure_code})
        if status == "failed":
            ckey = (refund.clinic_id, refund.patient_id, refund.charge_id)
            charge = self.charges[ckey]
            self.charges[ckey] = charge.model_copy(update={"amount_refunded": charge.amount_refunded - stored.amount.amount})
        if status == "pending" and check_at is not None:
            self.recon[("REFUND", *key)] = {"at": check_at, "attempts": 0}
        else:
            self.recon.pop(("REFUND", *key), None)
        return True

    def mark_refund_undecided(self, refund: CardRefund, at: datetime, *, check_at: datetime) -> bool:
        key = (refund.clinic_id, refund.patient_id, refund.refund_id)
        stored = self.refunds.get(key)
        if stored is None or stored.status != "pending" or stored.provider_refund_id:
            return False
        self.refunds[key] = stored.model_copy(update={"undecided": True})
        self.recon[("REFUND", *key)] = {"at": check_at, "attempts": 0}
        return True

    def claim_refund_notice(self, refund: CardRefund, at: datetime) -> bool:
        key = (refund.clinic_id, refund.patient_id, refund.refund_id)
        if key in self.notices:
            return False
        self.notices.add(key)
        return True

    # ---------------------------------------------------------------- reconciliation index
    def awaiting_provider(self, shard: int, due_by: datetime, *, clinic_id: str | None = None,
                          limit: int = 100) -> list[dict[str, Any]]:
        found = []
        for (kind, clinic, patient, object_id), entry in sorted(self.recon.items(), key=lambda kv: kv[1]["at"]):
            if entry["at"] > due_by or shard_of(clinic) != shard or (clinic_id and clinic != clinic_id):
                continue
            stored = (self.charges if kind == "CHARGE" else self.refunds)[(clinic, patient, object_id)]
            found.append({**stored.model_dump(mode="json"), "pk": (clinic, patient), "sk": f"{kind}#{object_id}",
                          "recon_at": entry["at"].isoformat(), "recon_attempts": entry["attempts"]})
        return found[:limit]

    def check_again(self, item: dict[str, Any], *, was: str, at: datetime) -> bool:
        kind, object_id = item["sk"].split("#", 1)
        key = (kind, *item["pk"], object_id)
        entry = self.recon.get(key)
        if entry is None or entry["at"].isoformat() != was:
            return False
        self.recon[key] = {"at": at, "attempts": entry["attempts"] + 1}
        return True

    def update_appointment_claim(self, charge: Charge, status: str) -> None:
        key = (charge.clinic_id, charge.patient_id, charge.appointment_id or "", charge.reason.value)
        claim = self.claims.get(key)
        if claim and claim["charge_id"] == charge.charge_id and claim["status"] != "succeeded":
            claim["status"] = status

    # Event records are per clinic, like EVENT#{clinic}#{provider}#{event_id}.
    def event_seen(self, clinic_id: str, provider: str, event_id: str) -> bool:
        return (clinic_id, provider, event_id) in self.events

    def record_event(self, clinic_id: str, provider: str, event_id: str, *, kind: str, outcome: str,
                     reason: str | None = None, at: datetime) -> bool:
        if (clinic_id, provider, event_id) in self.events:
            return False
        self.events[(clinic_id, provider, event_id)] = outcome
        self.reasons[(clinic_id, provider, event_id)] = reason
        return True


class FakeVault:
    name = "stripe"

    def __init__(self) -> None:
        self.customers = 0
        self.cards: dict[str, VaultCard] = {}
        self.attached: dict[str, str] = {}
        self.detached: list[str] = []
        self.setups: list[CardSetupRequest] = []
        self.charges: list[OffSessionCharge] = []
        self.outcomes: list[ChargeResult] = []  # what the next charges answer (default: succeeded)
        self.by_key: dict[str, ChargeResult] = {}
        self.intents: dict[str, dict[str, Any]] = {}  # reference -> {status, request}: the processor's side
        self.now: Any = lambda: datetime.now(UTC)  # the World's clock once it has one
        self.cancelled: list[str] = []
        self.refund_requests: list[RefundRequest] = []
        self.refund_outcomes: list[RefundResult] = []
        self.refunded_by_key: dict[str, RefundResult] = {}
        self.refunds_at: dict[str, list[RefundObservation]] = {}  # reference -> refunds, as the processor lists them

    def add_card(self, token: str, brand: str = "visa", last4: str = "4242") -> str:
        self.cards[token] = VaultCard(token=token, brand=brand, last4=last4, exp_month=12, exp_year=2034)
        return token

    def ensure_customer(self, clinic_id: str, patient_id: str, *, existing: str | None = None) -> str:
        if existing:
            return existing
        self.customers += 1
        return f"cus_{self.customers}"

    def start_setup(self, request: CardSetupRequest) -> CardSetupSession:
        self.setups.append(request)
        return CardSetupSession(session_id=f"cs_{len(self.setups)}", setup_id=f"seti_{len(self.setups)}",
                                url=f"https://processor.test/checkout/cs_{len(self.setups)}")

    def attach_card(self, token: str, customer_ref: str) -> VaultCard:
        self.attached[token] = customer_ref
        return self.cards[token]

    def detach_card(self, token: str) -> None:
        self.detached.append(token)

    def charge(self, request: OffSessionCharge) -> ChargeResult:
        # Like Stripe: the same idempotency key gets the first answer, never a second payment.
        if request.idempotency_key in self.by_key:
            return self.by_key[request.idempotency_key]
        self.charges.append(request)
        result = self.outcomes.pop(0) if self.outcomes else ChargeResult(
            status="succeeded", reference=f"pi_{len(self.charges)}")
        self.by_key[request.idempotency_key] = result
        if result.reference:
            self.intents[result.reference] = {"status": result.status, "request": request}
        return result

    def cancel_charge(self, reference: str, *, idempotency_key: str) -> ChargeResult:
        intent = self.intents[reference]
        if intent["status"] in ("requires_action", "processing_cancelable"):
            intent["status"] = "failed"
            self.cancelled.append(reference)
            return ChargeResult(status="failed", reference=reference, failure_code="canceled")
        return ChargeResult(status=intent["status"] if intent["status"] != "processing_cancelable" else "processing",
                            reference=reference)

    def _observed(self, reference: str) -> CardEvent:
        intent = self.intents[reference]
        request: OffSessionCharge = intent["request"]
        kind = {"succeeded": "charge_succeeded", "failed": "charge_failed", "requires_action": "charge_requires_action",
                "processing": "charge_processing"}[intent["status"]]
        return CardEvent(provider="stripe", event_id=f"observed_{reference}_{intent['status']}", kind=kind,
                         occurred_at=self.now(), charge_reference=reference, amount=request.amount,
                         metadata={**request.metadata, "clinic_id": request.clinic_id, "patient_id": request.patient_id,
                                   "clinicpay_charge_id": request.charge_id})

    def observe_charge(self, reference: str) -> CardEvent:
        return self._observed(reference)

    def find_charge(self, customer_ref: str, charge_id: str, created_after: datetime) -> CardEvent | None:
        found = next((ref for ref, i in self.intents.items() if i["request"].charge_id == charge_id), None)
        return self._observed(found) if found else None

    def observe_refunds(self, reference: str) -> list[CardEvent]:
        return [CardEvent(provider="stripe", event_id=f"observed_{r.provider_refund_id}_{r.status}", kind="refund_updated",
                          occurred_at=self.now(), charge_reference=reference, refund=r)
                for r in self.refunds_at.get(reference, [])]

    def refund(self, request: RefundRequest) -> RefundResult:
        if request.idempotency_key in self.refunded_by_key:
            return self.refunded_by_key[request.idempotency_key]
        self.refund_requests.append(request)
        result = self.refund_outcomes.pop(0) if self.refund_outcomes else RefundResult(
            status="succeeded", provider_refund_id=f"re_{len(self.refund_requests)}")
        self.refunded_by_key[request.idempotency_key] = result
        if result.provider_refund_id:
            self.refunds_at.setdefault(request.payment_reference, []).append(RefundObservation(
                provider_refund_id=result.provider_refund_id, payment_reference=request.payment_reference,
                amount=request.amount, status=result.status,
                metadata={"clinic_id": request.clinic_id, "clinicpay_refund_id": request.refund_id}))
        return result

    def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> list[CardEvent]:
        raise AssertionError("not used by the unit tests: Stripe webhooks are exercised against the sandbox")


class FakeAppointments:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def add(self, clinic_id: str, appointment_id: str, patient_id: str, *, service_id: str = "consulta",
            price: int = 8000, status: str = "confirmed", payment_status: str = "not_required") -> None:
        self.items[(clinic_id, appointment_id)] = {
            "appointment_id": appointment_id, "patient": {"id": patient_id}, "service_id": service_id,
            "price": {"amount": price, "currency": "CAD"}, "status": status, "payment_status": payment_status}

    def get(self, clinic_id: str, appointment_id: str) -> dict[str, Any] | None:
        item = self.items.get((clinic_id, appointment_id))
        return copy.deepcopy(item) if item else None

    def mark_paid(self, clinic_id: str, appointment_id: str, payment: dict[str, Any]) -> bool:
        item = self.items.get((clinic_id, appointment_id))
        if not item or item["payment_status"] in ("paid", "partially_refunded", "refunded"):
            return False
        item.update(payment_status="paid", payment=payment)
        return True

    def apply_refund(self, clinic_id: str, appointment_id: str, *, payment_reference: str, refund_id: str,
                     amount: Money) -> bool:
        return self._move(clinic_id, appointment_id, payment_reference, refund_id, amount, +1)

    def revert_refund(self, clinic_id: str, appointment_id: str, *, payment_reference: str, refund_id: str,
                      amount: Money) -> bool:
        return self._move(clinic_id, appointment_id, payment_reference, refund_id, amount, -1)

    def _move(self, clinic_id: str, appointment_id: str, reference: str, refund_id: str, amount: Money, sign: int) -> bool:
        item = self.items.get((clinic_id, appointment_id))
        if not item or (item.get("payment") or {}).get("reference") != reference:
            return False
        ids = item.setdefault("refund_ids", set())
        if (refund_id in ids) == (sign > 0):
            return False
        paid = item["payment"]["amount"]["amount"]
        total = (item.get("amount_refunded") or {}).get("amount", 0) + sign * amount.amount
        ids.add(refund_id) if sign > 0 else ids.discard(refund_id)
        item["amount_refunded"] = {"amount": total, "currency": amount.currency}
        item["payment_status"] = "paid" if total == 0 else "refunded" if total == paid else "partially_refunded"
        return True

    def record_dispute(self, clinic_id: str, appointment_id: str, *, payment_reference: str,
                       dispute: dict[str, Any]) -> bool:
        item = self.items.get((clinic_id, appointment_id))
        if not item or (item.get("payment") or {}).get("reference") != payment_reference:
            return False
        item["dispute"] = dispute
        return True

    def paid_by(self, clinic_id: str, provider: str, reference: str) -> str | None:
        return next((aid for (c, aid), item in self.items.items() if c == clinic_id
                     and (item.get("payment") or {}).get("reference") == reference), None)

    def confirm_awaiting_card(self, clinic_id: str, patient_id: str) -> list[str]:
        confirmed = []
        for (clinic, appointment_id), item in self.items.items():
            if clinic == clinic_id and item["patient"]["id"] == patient_id and item["status"] == "awaiting_card":
                item["status"] = "confirmed"
                confirmed.append(appointment_id)
        return confirmed


class FakePatients:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def add(self, clinic_id: str, patient_id: str, **details: Any) -> None:
        self.items[(clinic_id, patient_id)] = {"patient_id": patient_id, "name": "Ana Tremblay", **details}

    def get(self, clinic_id: str, patient_id: str) -> dict[str, Any] | None:
        return self.items.get((clinic_id, patient_id))

    def set_cards_on_file(self, clinic_id: str, patient_id: str, count: int) -> None:
        self.items.setdefault((clinic_id, patient_id), {})["cards_on_file"] = count


class FakeClinics:
    def __init__(self) -> None:
        self.clinics: dict[str, Clinic] = {}
        self.services: dict[tuple[str, str], Service] = {}
        self.settings: dict[str, ClinicSettings] = {}

    def add(self, clinic_id: str, *, locale: str = "en", org_id: str | None = None) -> None:
        self.clinics[clinic_id] = Clinic(clinic_id=clinic_id, name="Clinique Laval", country="CA", currency="CAD",
                                         timezone="America/Toronto", locale=Locale(locale), org_id=org_id,
                                         created_at="2026-01-01T00:00:00+00:00")

    def add_service(self, clinic_id: str, service_id: str, *, no_show_fee: int | None) -> None:
        self.services[(clinic_id, service_id)] = Service(
            service_id=service_id, name="Consultation", price=Money(amount=8000, currency="CAD"),
            no_show_fee=Money(amount=no_show_fee, currency="CAD") if no_show_fee is not None else None)

    def get(self, clinic_id: str) -> Clinic:
        if clinic_id not in self.clinics:
            raise NotFound("No such clinic.")
        return self.clinics[clinic_id]

    def get_settings(self, clinic_id: str) -> ClinicSettings:
        return self.settings.get(clinic_id) or ClinicSettings()

    def get_service(self, clinic_id: str, service_id: str) -> Service:
        if (clinic_id, service_id) not in self.services:
            raise NotFound("No such service.")
        return self.services[(clinic_id, service_id)]


class FakeCardRequests:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def create(self, clinic_id: str, patient_id: str, channel: str, now: str, *,
               appointment_id: str | None = None, expires_at_epoch: int | None = None,
               token: str | None = None) -> str:
        token = token or f"tok_{len(self.items) + 1:020d}"
        self.items[token] = {"clinic_id": clinic_id, "patient_id": patient_id, "channel": channel, "status": "open",
                             "appointment_id": appointment_id, "ttl": expires_at_epoch}
        return token

    def get(self, token: str) -> dict[str, Any]:
        if token not in self.items:
            raise NotFound("This card link is not valid.")
        return dict(self.items[token])

    def mark_completed(self, token: str, now: str) -> None:
        self.items[token]["status"] = "completed"


class FakeNotifier:
    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    def send(self, message: OutgoingMessage) -> str:
        self.sent.append(message)
        return f"msg-{len(self.sent)}"


class FakeTemplates:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str, str, str], Text] = {}

    def get(self, owner: str, kind: str, channel: str, locale: str) -> Text | None:
        return self.items.get((owner, kind, channel, locale))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)  # every reading is a new instant, as in life
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class World:
    """One clinic (`cl_a`, CAD) with a patient `p-1`, and everything the use cases need, faked."""

    def __init__(self) -> None:
        self.cards = FakeCardStore()
        self.vault = FakeVault()
        self.appointments = FakeAppointments()
        self.patients = FakePatients()
        self.clinics = FakeClinics()
        self.requests = FakeCardRequests()
        self.notifier = FakeNotifier()
        self.templates = FakeTemplates()
        self.clock = Clock()
        self.vault.now = self.clock
        self.clinics.add("cl_a")
        self.clinics.add("cl_b")
        self.clinics.add_service("cl_a", "consulta", no_show_fee=2500)
        self.patients.add("cl_a", "p-1", email="ana@example.ca", phone="+15145550100", locale="fr")
        self.deps = CardDeps(cards=self.cards, vault_for=lambda _provider: self.vault, appointments=self.appointments,
                             patients=self.patients, clinics=self.clinics, card_requests=self.requests,
                             public_base_url="https://pay.example", notifier=self.notifier, templates=self.templates,
                             clock=self.clock)
