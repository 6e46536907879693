"""Cards on file: save (with consent), list, choose the default, remove, charge off-session.

No HTTP and no boto3 here: storage comes in through `CardDeps` (clinicpay.usecases.cards_ports),
the processor through the CardVault port. Tokens never leave this module except toward the vault.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from clinicpay.domain.card import Card, Charge, ChargeReason, Consent, ConsentGrant
from clinicpay.domain.clinic import Clinic
from clinicpay.domain.errors import (
    AlreadyPaid,
    Conflict,
    NotFound,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderUnavailable,
    ValidationFailed,
)
from clinicpay.domain.ids import id_from_digest, new_id
from clinicpay.domain.money import Money
from clinicpay.observability import logger, metrics
from clinicpay.ports.cards import ChargeResult, OffSessionCharge
from clinicpay.usecases.card_messages import tell_patient_charged
from clinicpay.usecases.cards_ports import CardDeps

if TYPE_CHECKING:
    from clinicpay.ports.cards import CardVault

# A claim on an appointment's charge that has not finished (the patient never completed the bank's
# authentication, or the answer was lost) may be taken over after this long, once that charge is
# cancelled at the processor (see _claim).
STALE_CLAIM = timedelta(minutes=15)
# Failures that say the processor never had the charge: a retry with the same key sends it again.
RESENDABLE_FAILURES = ("provider_unavailable", "not_created")


class ConsentRequired(ValidationFailed):
    code, default_message = "consent_required", "The patient's consent to keep and charge the card is required."


class NoConsentOnRecord(Conflict):
    code, default_message = "consent_required", "This card has no consent on record; it cannot be charged."


class NoCardOnFile(Conflict):
    code, default_message = "no_card_on_file", "The patient has no card on file."


class AlreadyCharged(Conflict):
    code, default_message = "already_charged", "This appointment already has a charge for that reason."


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def require_patient(deps: CardDeps, clinic_id: str, patient_id: str) -> dict[str, Any]:
    """The patient as this clinic knows them; another clinic's patient is simply not found."""
    patient = deps.patients.get(clinic_id, patient_id)
    if not patient:
        raise NotFound("No such patient.")
    return patient


def consent_from(grant: ConsentGrant, now: datetime, *, ip: str | None, user_agent: str | None) -> Consent:
    if grant.granted is not True:
        raise ConsentRequired()
    return Consent(granted_at=now, granted_by=grant.granted_by, channel=grant.channel,
                   text_version=grant.text_version, ip=ip, user_agent=(user_agent or "")[:512] or None)


def customer_for(deps: CardDeps, vault: CardVault, clinic_id: str, patient_id: str) -> str:
    existing = deps.cards.customer_ref(clinic_id, patient_id, vault.name)
    if existing:
        return existing
    created = vault.ensure_customer(clinic_id, patient_id)
    return deps.cards.keep_customer_ref(clinic_id, patient_id, vault.name, created)


def refresh_card_flag(deps: CardDeps, clinic_id: str, patient_id: str) -> int:
    """Keep the patient's `cards_on_file` (read by the booking flow, which may not read cards) in step."""
    cards, _ = deps.cards.list_cards(clinic_id, patient_id)
    deps.patients.set_cards_on_file(clinic_id, patient_id, len(cards))
    return len(cards)


def store_card(deps: CardDeps, card: Card) -> tuple[Card, bool]:
    """Save once (the first card becomes the default); returns the stored card and whether it is new."""
    created = deps.cards.put_card(card)
    if created:
        deps.cards.claim_default(card.clinic_id, card.patient_id, card.card_id)
        refresh_card_flag(deps, card.clinic_id, card.patient_id)
        metrics.add_metric(name="CardSaved", unit="Count", value=1)
        logger.info("card saved", extra={"clinic_id": card.clinic_id, "card_id": card.card_id,
                                         "channel": card.consent.channel.value if card.consent else None})
        return card, True
    stored = deps.cards.get_card(card.clinic_id, card.patient_id, card.card_id)
    if stored is None:
        raise Conflict("That card was removed from this patient's file.", code="card_removed")
    return stored, False


def view(deps: CardDeps, card: Card) -> dict[str, Any]:
    _, default_id = deps.cards.list_cards(card.clinic_id, card.patient_id)
    return card.view(is_default=card.card_id == default_id)


# ---------------------------------------------------------------------------- save, list, default, remove
def save_card(deps: CardDeps, clinic_id: str, patient_id: str, token: str, grant: ConsentGrant, *,
              ip: str | None = None, user_agent: str | None = None) -> dict[str, Any]:
    """A token made on the processor's own page or field (never a card number) becomes a card on
    file, with the consent staff report. No consent, no card: nothing is attached without it."""
    now = deps.clock()
    consent = consent_from(grant, now, ip=ip, user_agent=user_agent)
    require_patient(deps, clinic_id, patient_id)
    vault = deps.vault_for(deps.provider)
    existing = deps.cards.find_card_by_token(vault.name, token)
    if existing and (existing.clinic_id, existing.patient_id) != (clinic_id, patient_id):
        raise Conflict("That payment method is on another patient's file.", code="payment_method_not_usable")
    customer = customer_for(deps, vault, clinic_id, patient_id)
    described = vault.attach_card(token, customer)
    # The same token on the same file keeps its card id (one minted as hex before ids lost their digits too).
    card_id = existing.card_id if existing else id_from_digest("card", clinic_id, patient_id, described.token, length=20)
    card = Card(card_id=card_id, clinic_id=clinic_id,
                patient_id=patient_id, provider=vault.name, token=described.token, customer_ref=customer,
                brand=described.brand, last4=described.last4, exp_month=described.exp_month,
                exp_year=described.exp_year, consent=consent, created_at=now)
    stored, _ = store_card(deps, card)
    return view(deps, stored)


def list_cards(deps: CardDeps, clinic_id: str, patient_id: str) -> list[dict[str, Any]]:
    require_patient(deps, clinic_id, patient_id)
    cards, default_id = deps.cards.list_cards(clinic_id, patient_id)
    return [card.view(is_default=card.card_id == default_id) for card in cards]


def _card(deps: CardDeps, clinic_id: str, patient_id: str, card_id: str) -> Card:
    card = deps.cards.get_card(clinic_id, patient_id, card_id)
    if card is None:
        raise NotFound("No such card.")
    return card


def set_default(deps: CardDeps, clinic_id: str, patient_id: str, card_id: str) -> dict[str, Any]:
    require_patient(deps, clinic_id, patient_id)
    card = _card(deps, clinic_id, patient_id, card_id)
    deps.cards.set_default(clinic_id, patient_id, card_id)
    return card.view(is_default=True)


def remove_card(deps: CardDeps, clinic_id: str, patient_id: str, card_id: str) -> None:
    """Take the card out of use, detach it at the processor, then forget the token. A failure at the
    processor puts the card back (listed, retryable). A removed default hands the role to the newest
    remaining card. The processor's own `detached` event for it then finds nothing left to do."""
    require_patient(deps, clinic_id, patient_id)
    card = deps.cards.get_card(clinic_id, patient_id, card_id, removing_too=True)
    if card is None or not deps.cards.begin_removal(card):
        raise NotFound("No such card.")
    try:
        deps.vault_for(card.provider).detach_card(card.token)
    except Exception:
        deps.cards.abort_removal(card)
        raise
    forget_card(deps, card)
    logger.info("card removed", extra={"clinic_id": clinic_id, "card_id": card_id})


def forget_card(deps: CardDeps, card: Card) -> None:
    cards, default_id = deps.cards.list_cards(card.clinic_id, card.patient_id)
    remaining = [c for c in cards if c.card_id != card.card_id]
    newest = max(remaining, key=lambda c: c.created_at).card_id if remaining else None
    was_default = default_id == card.card_id
    deps.cards.remove_card(card, was_default=was_default, new_default=newest if was_default else None,
                           removed_at=deps.clock())
    refresh_card_flag(deps, card.clinic_id, card.patient_id)


# ---------------------------------------------------------------------------- charges
def charge_card(deps: CardDeps, clinic_id: str, patient_id: str, *, reason: ChargeReason, amount: Money | None,
                card_id: str | None, appointment_id: str | None, idempotency_key: str | None) -> dict[str, Any]:
    """Charge a card on file with the patient absent (an off-session PaymentIntent at Stripe).

    The charge id comes from the caller's Idempotency-Key when there is one, and the processor's
    idempotency key from the charge id, so a retried request reaches the same processor payment.
    Without a key, an appointment still gets at most one live charge per reason.

    An answer we did not get (a timeout, Stripe's 409 for a key in flight, a 5xx after retries) is
    not a failure: the charge stays `processing` (undecided), its appointment claim held, until the
    processor's event, our asking (card_reconcile) or a retry with the same key settles it.
    """
    now = deps.clock()
    require_patient(deps, clinic_id, patient_id)
    charge_id = id_from_digest("ch", clinic_id, patient_id, idempotency_key) if idempotency_key else new_id("ch", 12)
    stored = deps.cards.get_charge(clinic_id, patient_id, charge_id)
    if stored is None and idempotency_key:
        # Charge ids made from a key were hex before ids lost their digits: a retry of a request
        # first sent before that change must find its charge, or it would reach the processor
        # under a new idempotency key.
        legacy = deps.cards.get_charge(clinic_id, patient_id, "ch_" + _digest(clinic_id, patient_id, idempotency_key)[:24])
        if legacy is not None:
            stored, charge_id = legacy, legacy.charge_id
    if stored is not None and not _to_send(stored):
        return stored.view()  # the same request again: the same answer (even once the appointment is paid)
    clinic = deps.clinics.get(clinic_id)
    if stored is not None:
        # Sent again exactly as first sent (its card, its amount): Stripe refuses a key reused with
        # other parameters, and the first attempt may have charged.
        charge, found = stored, deps.cards.get_card(clinic_id, patient_id, stored.card_id, removing_too=True)
        if found is None:
            return stored.view()  # its card is gone: its event or reconciliation says what the first attempt did
        card = found
    else:
        charge, card = _new_charge(deps, clinic, patient_id, charge_id, now, reason=reason, amount=amount,
                                   card_id=card_id, appointment_id=appointment_id)
    target = stored or charge
    if target.appointment_id and target.reason is not ChargeReason.OTHER:
        _claim(deps, target, now)
    if stored is None and not deps.cards.create_charge(charge, check_at=now + deps.check_after):
        stored = deps.cards.get_charge(clinic_id, patient_id, charge_id)  # a concurrent twin got here first
        if stored is not None and not _to_send(stored):
            return stored.view()
    if stored is not None and stored.status == "failed":
        deps.cards.reopen_charge(stored, now)  # never reached the processor: send it again, same key
    return _send(deps, clinic.name, clinic.locale, card, stored or charge)


def _new_charge(deps: CardDeps, clinic: Clinic, patient_id: str, charge_id: str, now: datetime, *,
                reason: ChargeReason, amount: Money | None, card_id: str | None,
                appointment_id: str | None) -> tuple[Charge, Card]:
    appointment = _appointment(deps, clinic.clinic_id, patient_id, appointment_id, reason)
    amount = _amount(deps, clinic.clinic_id, reason, amount, appointment)
    if amount.currency != clinic.currency:
        raise ValidationFailed(details=[{"field": "amount.currency", "message": f"must be {clinic.currency}"}])
    card = _charge_card(deps, clinic.clinic_id, patient_id, card_id)
    charge = Charge(charge_id=charge_id, clinic_id=clinic.clinic_id, patient_id=patient_id, card_id=card.card_id,
                    amount=amount, reason=reason, appointment_id=appointment_id, provider=card.provider,
                    customer_ref=card.customer_ref, card_brand=card.brand, card_last4=card.last4,
                    created_at=now, updated_at=now)
    return charge, card


def _to_send(charge: Charge) -> bool:
    """A stored charge a retry (same Idempotency-Key) sends to the processor again: never answered,
    undecided, or failed without reaching it. The processor's idempotency replays whatever the
    first attempt did, so a second payment is impossible."""
    if charge.status is None:
        return True
    if charge.status == "processing":
        return charge.undecided and not charge.reference
    return charge.status == "failed" and charge.failure_code in RESENDABLE_FAILURES


def _send(deps: CardDeps, clinic_name: str, locale: str, card: Card, charge: Charge) -> dict[str, Any]:
    vault = deps.vault_for(card.provider)
    reason, appointment_id = charge.reason, charge.appointment_id
    description = f"{clinic_name}: {reason.value.replace('_', ' ')}" + (f" {appointment_id}" if appointment_id else "")
    request = OffSessionCharge(
        clinic_id=charge.clinic_id, patient_id=charge.patient_id, charge_id=charge.charge_id,
        customer_ref=card.customer_ref, card_token=card.token, amount=charge.amount, description=description[:300],
        idempotency_key=f"clinicpay-{charge.clinic_id}-charge-{charge.charge_id}",
        return_url=charge_return_url(deps, locale),
        metadata={"reason": reason.value, **({"appointment_id": appointment_id} if appointment_id else {})})
    try:
        result = vault.charge(request)
    except ProviderOutcomeUnknown:
        # Stripe may have charged the card: processing, claim held, settled by its event or our asking.
        at = deps.clock()
        deps.cards.mark_undecided(charge, at, check_at=at + deps.check_after)
        metrics.add_metric(name="ChargeUndecided", unit="Count", value=1)
        logger.warning("card charge undecided", extra={"clinic_id": charge.clinic_id, "charge_id": charge.charge_id})
        stored = deps.cards.get_charge(charge.clinic_id, charge.patient_id, charge.charge_id) or charge
        return stored.view()
    except ProviderUnavailable:
        # Nothing reached the processor this time: nothing was charged by this attempt. A charge
        # never sent before fails (the same request may be sent again); one that an earlier attempt
        # may have made keeps what it is (undecided, or what its event said meanwhile).
        if deps.cards.mark_not_sent(charge, deps.clock()):
            deps.cards.update_appointment_claim(charge, "failed")
            raise
        now_stored = deps.cards.get_charge(charge.clinic_id, charge.patient_id, charge.charge_id)
        if now_stored is None or now_stored.status is None:
            raise
        return now_stored.view()
    except ProviderError as error:
        if charge.undecided:
            # A retry refused while an earlier attempt may have charged: that attempt decides.
            logger.warning("card charge retry refused", extra={"clinic_id": charge.clinic_id,
                                                               "charge_id": charge.charge_id, "error_code": error.code})
            return (deps.cards.get_charge(charge.clinic_id, charge.patient_id, charge.charge_id) or charge).view()
        # The processor refused the request itself (not the card): nothing was charged.
        apply_charge_result(deps, charge, ChargeResult(status="failed", failure_code=error.code), deps.clock())
        raise
    settled, _ = apply_charge_result(deps, charge, result, deps.clock())
    logger.info("card charged", extra={"clinic_id": charge.clinic_id, "charge_id": charge.charge_id,
                                       "status": result.status, "failure_code": result.failure_code,
                                       "payment_reference": result.reference})
    metrics.add_metric(name=f"Charge_{result.status}", unit="Count", value=1)
    return settled.view()


def _claim(deps: CardDeps, charge: Charge, now: datetime) -> None:
    """Hold the appointment's one live charge for this reason, or say why not. A claim left by a
    charge that has not finished after STALE_CLAIM (its patient never authenticated, or its answer
    was lost) is taken over only once that charge is over at the processor: we cancel it there
    first; if it completed meanwhile (the patient finished 3-D Secure), it wins and this one is
    refused, so one appointment and reason never gets two live charges."""
    if deps.cards.claim_appointment_charge(charge):
        return
    claim = deps.cards.appointment_claim(charge)
    if claim is None or claim.get("status") != "pending":
        if claim is not None and claim.get("status") == "failed" and deps.cards.claim_appointment_charge(charge):
            return  # the other charge failed between our two reads
        raise _already(charge, claim)
    if datetime.fromisoformat(str(claim["claimed_at"])) >= now - STALE_CLAIM:
        raise _already(charge, claim)
    old = deps.cards.get_charge(charge.clinic_id, charge.patient_id, str(claim["charge_id"]))
    if not end_stale_charge(deps, old):
        raise _already(charge, deps.cards.appointment_claim(charge))
    if not deps.cards.take_over_claim(charge, claim):
        raise _already(charge, deps.cards.appointment_claim(charge))
    metrics.add_metric(name="ChargeClaimTakenOver", unit="Count", value=1)
    logger.info("stale charge claim taken over", extra={"clinic_id": charge.clinic_id, "charge_id": charge.charge_id,
                                                        "previous_charge_id": claim["charge_id"]})


def _already(charge: Charge, claim: dict[str, Any] | None) -> Conflict:
    status = (claim or {}).get("status")
    if status == "succeeded" and charge.reason is ChargeReason.APPOINTMENT:
        return AlreadyPaid()
    details = [{"charge_id": claim.get("charge_id"), "status": status}] if claim else []
    if status == "pending":
        return AlreadyCharged("This appointment has a charge for that reason that is still processing or awaiting "
                              "the patient's authentication.", details=details)
    return AlreadyCharged(details=details)


def end_stale_charge(deps: CardDeps, old: Charge | None) -> bool:
    """Make sure a charge that has not finished never completes: True when it is over (failed or
    cancelled at the processor, or never made), False when it succeeded or is still going."""
    if old is None:
        return True  # its request died before recording it: it was never sent
    if old.status in ("succeeded", "failed"):
        return old.status == "failed"
    vault = deps.vault_for(old.provider)
    cancel_key = f"clinicpay-{old.clinic_id}-cancel-{old.charge_id}"
    if old.reference:
        result = vault.cancel_charge(old.reference, idempotency_key=cancel_key)
    else:
        customer = old.customer_ref or deps.cards.customer_ref(old.clinic_id, old.patient_id, old.provider)
        found = vault.find_charge(customer, old.charge_id, old.created_at) if customer else None
        if found is None or not found.charge_reference:
            result = ChargeResult(status="failed", failure_code="not_created")
        elif found.kind in ("charge_failed", "charge_succeeded"):  # already over: nothing to cancel
            result = ChargeResult(status="failed" if found.kind == "charge_failed" else "succeeded",
                                  reference=found.charge_reference, failure_code=found.failure_code)
        else:
            result = vault.cancel_charge(found.charge_reference, idempotency_key=cancel_key)
    apply_charge_result(deps, old, result, deps.clock())
    logger.info("stale charge ended", extra={"clinic_id": old.clinic_id, "charge_id": old.charge_id,
                                             "status": result.status, "failure_code": result.failure_code})
    return result.status == "failed"


def get_charge(deps: CardDeps, clinic_id: str, patient_id: str, charge_id: str) -> dict[str, Any]:
    require_patient(deps, clinic_id, patient_id)
    charge = deps.cards.get_charge(clinic_id, patient_id, charge_id)
    if charge is None:
        raise NotFound("No such charge.")
    return charge.view()


def list_charges(deps: CardDeps, clinic_id: str, patient_id: str) -> list[dict[str, Any]]:
    """The patient's charges at this clinic, newest first (another clinic's patient: not found), each
    with its refunds (oldest first; failed ones included: the history staff answer questions from)."""
    require_patient(deps, clinic_id, patient_id)
    refunds = deps.cards.refunds_by_charge(clinic_id, patient_id)
    return [{**charge.view(), "refunds": [r.view() for r in refunds.get(charge.charge_id, [])]}
            for charge in deps.cards.list_charges(clinic_id, patient_id)]


def charge_return_url(deps: CardDeps, locale: str) -> str:
    return f"{deps.public_base_url.rstrip('/')}/cards/authentication-complete?lang={locale}"


def apply_charge_result(deps: CardDeps, charge: Charge, result: ChargeResult, at: datetime) -> tuple[Charge, bool]:
    """Record a processor outcome (the immediate answer, a webhook, or our asking) and what follows
    from it: the appointment claim, and for an appointment's own charge the appointment paid.
    Returns the stored charge and whether this outcome changed it (False: stale or already succeeded).
    The one call whose write moved the charge to succeeded tells the patient (usecases/card_messages.py)."""
    # Not final (awaiting the patient's authentication, processing): asked about after a few minutes
    # should its event not come, then less and less often (card_reconcile).
    final = result.status in ("succeeded", "failed")
    changed = deps.cards.settle_charge(charge, result, at, check_at=None if final else at + deps.check_after)
    stored = deps.cards.get_charge(charge.clinic_id, charge.patient_id, charge.charge_id) or charge
    if not changed:
        return stored, False
    claim = {"succeeded": "succeeded", "failed": "failed"}.get(result.status, "pending")
    deps.cards.update_appointment_claim(stored, claim)
    if result.status == "succeeded" and stored.appointment_id and stored.reason is ChargeReason.APPOINTMENT:
        paid = deps.appointments.mark_paid(charge.clinic_id, stored.appointment_id, {
            "provider": stored.provider, "reference": result.reference or stored.reference,
            "amount": stored.amount.model_dump(), "paid_at": at.isoformat()})
        logger.info("appointment paid by card on file" if paid else "appointment was already paid",
                    extra={"clinic_id": charge.clinic_id, "appointment_id": stored.appointment_id,
                           "charge_id": stored.charge_id})
    if result.status == "succeeded":
        tell_patient_charged(deps, stored)
    return stored, True


def _appointment(deps: CardDeps, clinic_id: str, patient_id: str, appointment_id: str | None,
                 reason: ChargeReason) -> dict[str, Any] | None:
    if not appointment_id:
        if reason is ChargeReason.NO_SHOW:
            raise ValidationFailed(details=[{"field": "appointment_id", "message": "a no-show charge names the appointment"}])
        return None
    appointment = deps.appointments.get(clinic_id, appointment_id)
    if not appointment or (appointment.get("patient") or {}).get("id") != patient_id:
        raise NotFound("No such appointment for this patient.")
    if reason is ChargeReason.APPOINTMENT and appointment.get("payment_status") in ("paid", "partially_refunded",
                                                                                   "refunded"):
        raise AlreadyPaid()
    if reason is ChargeReason.APPOINTMENT and appointment.get("status") == "cancelled":
        # As its link: a cancelled appointment's price is not taken (a late-cancel fee is a charge of its own).
        raise Conflict("The appointment is cancelled: its price is not charged.", code="appointment_cancelled")
    return appointment


def _amount(deps: CardDeps, clinic_id: str, reason: ChargeReason, amount: Money | None,
            appointment: dict[str, Any] | None) -> Money:
    if amount is None and reason is ChargeReason.NO_SHOW and appointment is not None:
        fee = deps.clinics.get_service(clinic_id, str(appointment.get("service_id"))).no_show_fee
        if fee is None or fee.amount <= 0:
            raise ValidationFailed("The service has no no-show fee; give the amount.", code="no_show_fee_not_set")
        return fee
    if amount is None and reason is ChargeReason.APPOINTMENT and appointment is not None:
        amount = Money.model_validate(appointment["price"])
    if amount is None:
        raise ValidationFailed(details=[{"field": "amount", "message": "required"}])
    if amount.amount <= 0:
        raise ValidationFailed("A charge must be more than zero.", code="invalid_amount",
                               details=[{"field": "amount.amount", "message": "must be greater than 0"}])
    return amount


def _charge_card(deps: CardDeps, clinic_id: str, patient_id: str, card_id: str | None) -> Card:
    if card_id:
        card = _card(deps, clinic_id, patient_id, card_id)
    else:
        cards, default_id = deps.cards.list_cards(clinic_id, patient_id)
        chosen = next((c for c in cards if c.card_id == default_id), None)
        if chosen is None:
            raise NoCardOnFile()
        card = chosen
    if card.consent is None:
        raise NoConsentOnRecord()
    return card

