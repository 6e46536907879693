"""Refunds of card charges and Stripe link payments, and disputes (issue 9), through the handler,
moto and the Stripe sandbox; concurrent clicks at the use case with threads against both."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from clinicpay.api.route_groups import function_module
from clinicpay.domain.errors import ClinicpayError
from clinicpay.domain.money import Money
from clinicpay.ports import RefundRequest
from clinicpay.providers.stripe.adapter import StripeGateway
from clinicpay.settings import get_settings
from clinicpay.usecases import card_refunds
from local import apigw, iam, outbox
from tests.support.cards import VISA, book, new_clinic, patient_path, save_card, settle, type_card, wait_for
from tests.support.clinics import ClinicKeys
from tests.support.env import TestStack
from tests.support.ownership import event_records

EMAIL = "ana@example.ca"


@pytest.fixture
def clinic(stack: TestStack) -> ClinicKeys:
    return new_clinic(stack)


@pytest.fixture
def paid(clinic: ClinicKeys) -> dict[str, Any]:
    """An appointment (8000 CAD) paid by charging the card on file: the charge."""
    appointment = book(clinic, "p-1")
    save_card(clinic, "p-1", VISA)
    charged = clinic.staff().post(patient_path(clinic, "p-1", "/charges"), json={
        "reason": "appointment", "appointment_id": appointment["appointment_id"]})
    assert charged.status == 201 and charged.json()["status"] == "succeeded", charged.body
    settle()
    return {**charged.json(), "appointment": appointment}


def refund(clinic: ClinicKeys, charge_id: str, body: dict[str, Any] | None = None, *, key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key else None
    return clinic.staff().post(patient_path(clinic, "p-1", f"/charges/{charge_id}/refunds"), json=body, headers=headers)


def charge_view(clinic: ClinicKeys, charge_id: str) -> dict[str, Any]:
    return dict(clinic.staff().get(patient_path(clinic, "p-1", f"/charges/{charge_id}")).json())


def appointment_of(clinic: ClinicKeys, appointment_id: str) -> dict[str, Any]:
    return dict(clinic.staff().get(clinic.path(f"/appointments/{appointment_id}")).json())


def cad(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "CAD"}


def stripe_refunds(stack: TestStack, clinic: ClinicKeys) -> list[dict[str, Any]]:
    key = f"sk_test_{clinic.clinic_id.replace('-', '_')}"
    listed = requests.get(f"{stack.sandbox_url('stripe')}/v1/refunds", params={"limit": 100},
                          headers={"Authorization": f"Bearer {key}"}, timeout=10)
    return list(listed.json()["data"])


def refund_messages() -> list[dict[str, Any]]:
    return [m for m in outbox.messages(to=EMAIL) if "refund" in (m["subject"] or "").lower()]


def control(stack: TestStack, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = requests.post(f"{stack.sandbox_url('stripe')}/_control/{path}", json=body or {}, timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


# ------------------------------------------------------------------ staff refunds of card charges
def test_a_full_refund_is_reflected_on_the_charge_and_the_appointment_and_the_patient_is_told(
        clinic: ClinicKeys, stack: TestStack, paid: dict[str, Any]) -> None:
    made = refund(clinic, paid["charge_id"], {"reason": "requested_by_customer"})
    assert made.status == 201, made.body
    body = made.json()
    assert body["status"] == "succeeded" and body["amount"] == cad(8000) and body["source"] == "staff"
    view = charge_view(clinic, paid["charge_id"])
    assert view["status"] == "refunded" and view["amount_refunded"] == cad(8000)
    appointment = appointment_of(clinic, paid["appointment"]["appointment_id"])
    assert appointment["payment_status"] == "refunded" and appointment["amount_refunded"] == cad(8000)
    [at_stripe] = stripe_refunds(stack, clinic)
    assert (at_stripe["amount"], at_stripe["reason"], at_stripe["status"]) == (8000, "requested_by_customer", "succeeded")
    assert at_stripe["metadata"] == {"clinic_id": clinic.clinic_id, "clinicpay_refund_id": body["refund_id"],
                                     "clinicpay_source": "card_charge"}
    settle()  # charge.refunded arrives and finds everything counted
    [told] = refund_messages()
    assert "80.00 CAD" in told["body"] and told["channel"] == "email"
    # The appointment's own refund route sends staff to the charge (one ledger: the money is the charge's)
    aid = paid["appointment"]["appointment_id"]
    elsewhere = clinic.staff().post(clinic.path(f"/appointments/{aid}/refunds"), json={})
    assert elsewhere.status == 409 and elsewhere.json()["error"]["code"] == "refund_through_charge", elsewhere.body
    # Nothing is left: another refund is refused before Stripe is asked
    again = refund(clinic, paid["charge_id"])
    assert again.status == 409 and again.json()["error"]["code"] == "refund_exceeds_remaining"
    assert again.json()["error"]["details"][0]["refundable"] == cad(0)
    assert len(stripe_refunds(stack, clinic)) == 1


def test_partial_refunds_add_up_and_are_listed(clinic: ClinicKeys, stack: TestStack, paid: dict[str, Any]) -> None:
    first = refund(clinic, paid["charge_id"], {"amount": cad(3000)}, key="r-1")
    assert first.status == 201 and first.json()["status"] == "succeeded"
    assert charge_view(clinic, paid["charge_id"])["status"] == "partially_refunded"
    assert appointment_of(clinic, paid["appointment"]["appointment_id"])["payment_status"] == "partially_refunded"
    too_much = refund(clinic, paid["charge_id"], {"amount": cad(6000)})
    assert too_much.status == 409 and too_much.json()["error"]["details"][0]["refundable"] == cad(5000)
    rest = refund(clinic, paid["charge_id"], key="r-2")  # no amount: what is left
    assert rest.json()["amount"] == cad(5000)
    listed = clinic.staff().get(patient_path(clinic, "p-1", f"/charges/{paid['charge_id']}/refunds")).json()["refunds"]
    assert [(r["amount"]["amount"], r["status"]) for r in listed] == [(3000, "succeeded"), (5000, "succeeded")]
    # and the patient's charge list carries each charge's refunds (one read, no call per charge)
    charges = clinic.staff().get(patient_path(clinic, "p-1", "/charges")).json()["charges"]
    shown = next(c for c in charges if c["charge_id"] == paid["charge_id"])
    assert [(r["amount"]["amount"], r["status"]) for r in shown["refunds"]] == [(3000, "succeeded"), (5000, "succeeded")]
    assert refund(clinic, paid["charge_id"], {"amount": {"amount": 100, "currency": "EUR"}}).status == 422
    assert refund(clinic, paid["charge_id"], {"amount": cad(0)}).status == 422


def test_only_a_charge_that_succeeded_can_be_refunded_and_only_by_its_clinic(clinic: ClinicKeys, stack: TestStack,
                                                                             paid: dict[str, Any]) -> None:
    other = new_clinic(stack)
    assert other.staff().post(patient_path(other, "p-1", f"/charges/{paid['charge_id']}/refunds")).status == 404
    assert refund(clinic, "ch_nosuchcharge").status == 404
    declined_card = save_card(clinic, "p-1", "4000008260003178")  # insufficient funds off-session
    declined = clinic.staff().post(patient_path(clinic, "p-1", "/charges"), json={
        "reason": "other", "amount": cad(1000), "card_id": declined_card["card_id"]}).json()
    assert declined["status"] == "failed"
    refused = refund(clinic, declined["charge_id"])
    assert refused.status == 409 and refused.json()["error"]["code"] == "charge_not_refundable"


def run_concurrently(clinic_id: str, calls: list[dict[str, Any]], charge_id: str) -> list[Any]:
    """Each call a refund use case on its own thread, as tokenize runs it (its role, its deps)."""
    apigw.handler_for("TokenizeFunction")
    dependencies = function_module(apigw._modules["TokenizeFunction"].__file__, "dependencies")

    def one(call: dict[str, Any]) -> Any:
        with iam.invoking("TokenizeFunction"):
            try:
                return card_refunds.refund_charge(dependencies.card_deps(clinic_id), clinic_id, "p-1", charge_id,
                                                  amount=call.get("amount"), reason=None,
                                                  idempotency_key=call.get("key"))
            except ClinicpayError as error:
                return error.code

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(one, calls))


def test_concurrent_clicks_refund_once(clinic: ClinicKeys, stack: TestStack, paid: dict[str, Any]) -> None:
    # Twelve clicks on "refund all" at once: six the same click retried (one key), six without a key
    calls = [{"key": "refund-all"}] * 6 + [{}] * 6
    results = run_concurrently(clinic.clinic_id, calls, paid["charge_id"])
    refunds = {r["refund_id"] for r in results if isinstance(r, dict)}
    refused = Counter(r for r in results if isinstance(r, str))
    at_stripe = stripe_refunds(stack, clinic)
    print(f"\nconcurrent full-refund clicks: {len(calls)} clicks -> {len(refunds)} refund recorded, "
          f"{len(at_stripe)} at Stripe ({sum(r['amount'] for r in at_stripe)} of 8000 CAD cents), refused: {dict(refused)}")
    assert len(refunds) == 1 and len(at_stripe) == 1 and at_stripe[0]["amount"] == 8000
    assert set(refused) <= {"refund_exceeds_remaining", "state_conflict"}
    assert charge_view(clinic, paid["charge_id"])["amount_refunded"] == cad(8000)
    settle()
    assert appointment_of(clinic, paid["appointment"]["appointment_id"])["amount_refunded"] == cad(8000)


def test_concurrent_partial_refunds_never_exceed_the_charge(clinic: ClinicKeys, stack: TestStack,
                                                            paid: dict[str, Any]) -> None:
    # Ten different 10.00 refunds at once on an 80.00 charge: eight fit
    calls = [{"key": f"part-{n}", "amount": Money(amount=1000, currency="CAD")} for n in range(10)]
    results = run_concurrently(clinic.clinic_id, calls, paid["charge_id"])
    made = [r for r in results if isinstance(r, dict) and r["status"] == "succeeded"]
    at_stripe = stripe_refunds(stack, clinic)
    print(f"\nconcurrent partial refunds: 10 x 1000 on 8000 -> {len(made)} made, {len(at_stripe)} at Stripe, "
          f"{sum(r['amount'] for r in at_stripe)} refunded")
    assert len(made) == 8 and len(at_stripe) == 8 and sum(r["amount"] for r in at_stripe) == 8000
    assert [r for r in results if isinstance(r, str)] == ["refund_exceeds_remaining"] * 2
    settle()
    appointment = appointment_of(clinic, paid["appointment"]["appointment_id"])
    assert appointment["payment_status"] == "refunded" and appointment["amount_refunded"] == cad(8000)


# ------------------------------------------------------------------ what Stripe says later
def test_a_pending_refund_settles_by_its_event_and_the_patient_is_told_then(clinic: ClinicKeys, stack: TestStack,
                                                                           paid: dict[str, Any]) -> None:
    control(stack, "refunds/next", {"status": "pending"})
    made = refund(clinic, paid["charge_id"], {"amount": cad(2500)})
    assert made.status == 201 and made.json()["status"] == "pending"
    settle()
    assert refund_messages() == [] and charge_view(clinic, paid["charge_id"])["amount_refunded"] == cad(2500)
    [at_stripe] = stripe_refunds(stack, clinic)
    control(stack, f"refunds/{at_stripe['id']}/settle", {"status": "succeeded"})
    settle()
    listed = clinic.staff().get(patient_path(clinic, "p-1", f"/charges/{paid['charge_id']}/refunds")).json()["refunds"]
    assert listed[0]["status"] == "succeeded"
    assert len(refund_messages()) == 1
    assert appointment_of(clinic, paid["appointment"]["appointment_id"])["amount_refunded"] == cad(2500)


def test_a_refund_that_fails_after_it_succeeded_is_given_back(clinic: ClinicKeys, stack: TestStack,
                                                            paid: dict[str, Any]) -> None:
    refund(clinic, paid["charge_id"], {"amount": cad(3000)})
    [at_stripe] = stripe_refunds(stack, clinic)
    control(stack, f"refunds/{at_stripe['id']}/settle", {"status": "failed", "failure_reason": "expired_or_canceled_card"})
    settle()
    [listed] = clinic.staff().get(patient_path(clinic, "p-1", f"/charges/{paid['charge_id']}/refunds")).json()["refunds"]
    assert listed["status"] == "failed" and listed["failure_code"] == "expired_or_canceled_card"
    view = charge_view(clinic, paid["charge_id"])
    assert view["status"] == "succeeded" and view["amount_refunded"] == cad(0)
    appointment = appointment_of(clinic, paid["appointment"]["appointment_id"])
    assert appointment["payment_status"] == "paid" and appointment["amount_refunded"] == cad(0)
    assert refund(clinic, paid["charge_id"]).json()["amount"] == cad(8000)  # all of it is refundable again


def test_a_refund_made_in_the_stripe_dashboard_is_recorded_once_and_told(clinic: ClinicKeys, stack: TestStack,
                                                                        paid: dict[str, Any]) -> None:
    control(stack, "dashboard/refunds", {"payment_intent": paid_reference(clinic, paid), "amount": 2000})
    settle()
    [listed] = clinic.staff().get(patient_path(clinic, "p-1", f"/charges/{paid['charge_id']}/refunds")).json()["refunds"]
    assert (listed["source"], listed["status"], listed["amount"]) == ("processor", "succeeded", cad(2000))
    assert appointment_of(clinic, paid["appointment"]["appointment_id"])["payment_status"] == "partially_refunded"
    assert len(refund_messages()) == 1
    # The same event delivered again changes nothing
    [event] = list(requests.get(f"{stack.sandbox_url('stripe')}/_control/events",
                                       params={"type": "charge.refunded"}, timeout=10).json()["events"])
    requests.post(f"{stack.sandbox_url('stripe')}/_control/redeliver/{event['id']}", timeout=10)
    settle()
    assert charge_view(clinic, paid["charge_id"])["amount_refunded"] == cad(2000) and len(refund_messages()) == 1
    # And staff can refund only what is left
    assert refund(clinic, paid["charge_id"]).json()["amount"] == cad(6000)


def paid_reference(clinic: ClinicKeys, paid: dict[str, Any]) -> str:
    return str(appointment_of(clinic, paid["appointment"]["appointment_id"])["payment"]["reference"])


def test_a_refund_whose_answer_was_lost_stays_pending_and_its_event_settles_it(clinic: ClinicKeys, stack: TestStack,
                                                                              paid: dict[str, Any]) -> None:
    requests.post(f"{stack.sandbox_url('stripe')}/_control/fail-next",
                  json={"status": "hold", "seconds": 20, "path": "/v1/refunds"}, timeout=10)
    made = refund(clinic, paid["charge_id"], key="lost-answer")
    assert made.status == 202 and made.json()["status"] == "pending" and made.json()["undecided"] is True
    assert made.headers["Retry-After"] and made.headers["Location"].endswith("/refunds")
    assert refund(clinic, paid["charge_id"], {"amount": cad(1)}).status == 409  # all of it is reserved
    requests.post(f"{stack.sandbox_url('stripe')}/_control/release", timeout=10)
    # Stripe's charge.refunded names no refund: we ask for the charge's refunds and find ours by its metadata
    wait_for(lambda: clinic.staff().get(patient_path(clinic, "p-1", f"/charges/{paid['charge_id']}/refunds"))
             .json()["refunds"][0]["status"] == "succeeded")
    settle()
    assert len(stripe_refunds(stack, clinic)) == 1 and len(refund_messages()) == 1
    assert refund(clinic, paid["charge_id"], key="lost-answer").json()["status"] == "succeeded"  # same click, same refund


# ------------------------------------------------------------------ disputes
def test_a_dispute_shows_on_the_charge_and_its_appointment(clinic: ClinicKeys, stack: TestStack,
                                                           paid: dict[str, Any]) -> None:
    opened = control(stack, "disputes", {"payment_intent": paid_reference(clinic, paid), "reason": "fraudulent"})
    settle()
    view = charge_view(clinic, paid["charge_id"])
    assert view["dispute"] == {"dispute_id": opened["id"], "status": "needs_response", "amount": cad(8000),
                               "reason": "fraudulent"}
    control(stack, f"disputes/{opened['id']}/update", {"status": "under_review"})
    control(stack, f"disputes/{opened['id']}/close", {"status": "lost"})
    settle()
    assert charge_view(clinic, paid["charge_id"])["dispute"]["status"] == "lost"
    assert appointment_of(clinic, paid["appointment"]["appointment_id"])["dispute"]["status"] == "lost"
    # A disputed charge cannot be refunded at Stripe while open; this one is closed now
    records = [r for r in event_records(clinic.clinic_id, table="CardsTable") if "dispute" in str(r.get("kind"))]
    assert {r["outcome"] for r in records} == {"applied"} and len(records) == 3


# ------------------------------------------------------------------ Stripe payment links (RefundingGateway)
def test_the_stripe_link_gateway_refunds_a_checkout_payment(clinic: ClinicKeys, stack: TestStack) -> None:
    key = f"sk_test_{clinic.clinic_id.replace('-', '_')}"
    gateway = StripeGateway({"secret_key": key, "webhook_secret": "whsec_x"}, get_settings())
    session = requests.post(f"{stack.sandbox_url('stripe')}/v1/checkout/sessions", headers={"Authorization": f"Bearer {key}"},
                            data=[("mode", "payment"), ("success_url", "https://clinic.example/ok"),
                                  ("line_items[0][quantity]", "1"), ("line_items[0][price_data][currency]", "cad"),
                                  ("line_items[0][price_data][unit_amount]", "8000"),
                                  ("line_items[0][price_data][product_data][name]", "Consultation"),
                                  ("metadata[clinic_id]", clinic.clinic_id), ("metadata[appointment_id]", "ap_link"),
                                  ("payment_intent_data[metadata][clinic_id]", clinic.clinic_id),
                                  ("payment_intent_data[metadata][appointment_id]", "ap_link")], timeout=10).json()
    assert type_card(session["url"], VISA).status_code == 303
    intent = requests.get(f"{stack.sandbox_url('stripe')}/v1/checkout/sessions/{session['id']}",
                          headers={"Authorization": f"Bearer {key}"}, timeout=10).json()["payment_intent"]

    def ask(refund_id: str, amount: int, reason: str | None = None) -> Any:
        return gateway.refund(RefundRequest(clinic_id=clinic.clinic_id, refund_id=refund_id, payment_reference=intent,
                                            amount=Money(amount=amount, currency="CAD"), reason=reason,
                                            idempotency_key=f"clinicpay-{clinic.clinic_id}-refund-{refund_id}"))

    first = ask("rf_one", 3000, "requested_by_customer")
    assert first.status == "succeeded" and first.provider_refund_id and first.provider_refund_id.startswith("re_")
    assert ask("rf_one", 3000, "requested_by_customer").provider_refund_id == first.provider_refund_id  # same key
    too_much = ask("rf_two", 6000)
    assert (too_much.status, too_much.failure_code, too_much.provider_refund_id) == ("failed", "amount_too_large", None)
    assert ask("rf_three", 5000).status == "succeeded"
    assert ask("rf_four", 1).failure_code == "charge_already_refunded"
    assert [r["amount"] for r in stripe_refunds(stack, clinic)] == [5000, 3000]


def test_link_refund_events_reach_the_appointments_ledger_as_refunded(clinic: ClinicKeys) -> None:
    """A Stripe refund of a link payment is not a card charge's: the card side leaves it, and the
    link side gets a `refunded` payment event naming the PaymentIntent and the refund."""
    from clinicpay.providers.stripe import adapter

    raw = {"id": "evt_1", "object": "event", "type": "charge.refund.updated", "created": 1795428000,
           "data": {"object": {"id": "re_9", "object": "refund", "amount": 3000, "currency": "cad",
                               "payment_intent": "pi_9", "status": "succeeded",
                               "metadata": {"clinic_id": clinic.clinic_id, "clinicpay_refund_id": "rf_9"}}}}
    [event] = [adapter._payment_event(adapter.schemas.Event.model_validate(raw))]
    assert event.kind == "refunded" and event.payment_reference == "pi_9" and event.amount == Money(amount=3000,
                                                                                                       currency="CAD")
    assert event.details["refund_id"] == "re_9" and event.details["refund_status"] == "succeeded"
    assert event.details["clinicpay_refund_id"] == "rf_9"


def test_a_dispute_of_a_payment_through_our_link_shows_on_its_appointment(clinic: ClinicKeys, stack: TestStack) -> None:
    from tests.support.api import ApiClient
    from tests.support.clinics import add_service

    add_service(clinic, "online", 12000, "CAD", online=True)
    clinic.admin().patch(clinic.path("/settings"), json={"default_gateway": "stripe"})
    booked = book(clinic, "p-1", service="online")
    token = booked["payment_link"]["url"].rsplit("/", 1)[1]
    assert type_card(ApiClient().get(f"/pay/{token}").headers["Location"], VISA).status_code == 303
    settle()
    paid = appointment_of(clinic, booked["appointment_id"])
    assert paid["payment_status"] == "paid"
    opened = control(stack, "disputes", {"payment_intent": paid["payment"]["reference"], "reason": "product_not_received"})
    settle()
    dispute = appointment_of(clinic, booked["appointment_id"])["dispute"]
    assert (dispute["dispute_id"], dispute["status"], dispute["reason"]) == (opened["id"], "needs_response",
                                                                            "product_not_received")
    # A refund of it made in the Dashboard is not a card charge's: the cards side leaves it to the ledger
    control(stack, f"disputes/{opened['id']}/close", {"status": "won"})
    control(stack, "dashboard/refunds", {"payment_intent": paid["payment"]["reference"], "amount": 2000})
    settle()
    assert appointment_of(clinic, booked["appointment_id"])["dispute"]["status"] == "won"
    card_side = {r["kind"]: r["outcome"] for r in event_records(clinic.clinic_id, table="CardsTable")
                 if r["kind"] in ("charge_refunded", "dispute_updated")}
    assert card_side == {"charge_refunded": "not_a_card_charge", "dispute_updated": "applied"}
    # ... it reaches the appointment's ledger: `charge.refunded` names no refund, so the webhook asks
    # Stripe for the PaymentIntent's refunds and applies the Dashboard's one, once
    link_side = [r for r in event_records(clinic.clinic_id) if r["kind"].startswith("refund")]
    assert [(r["kind"], r["outcome"]) for r in link_side] == [("refund_succeeded", "applied")]
    refunded = appointment_of(clinic, booked["appointment_id"])
    assert (refunded["payment_status"], refunded["amount_refunded"]) == (
        "partially_refunded", {"amount": 2000, "currency": "CAD"})


def test_a_payment_through_our_stripe_link_is_refunded_through_the_appointment_ledger(
        clinic: ClinicKeys, stack: TestStack) -> None:
    """One ledger: the appointment refund route gives back a Stripe link payment through the
    StripeGateway (reserved on its payment row first), and Stripe's events about that refund are
    recognised as ours (our refund id in its metadata), never counted a second time."""
    from tests.support.api import ApiClient
    from tests.support.clinics import add_service

    add_service(clinic, "online", 12000, "CAD", online=True)
    clinic.admin().patch(clinic.path("/settings"), json={"default_gateway": "stripe"})
    booked = book(clinic, "p-1", service="online")
    aid = booked["appointment_id"]
    token = booked["payment_link"]["url"].rsplit("/", 1)[1]
    assert type_card(ApiClient().get(f"/pay/{token}").headers["Location"], VISA).status_code == 303
    settle()
    reference = appointment_of(clinic, aid)["payment"]["reference"]

    # When staff refund part of it, twice with the same Idempotency-Key
    answers = [clinic.staff().post(clinic.path(f"/appointments/{aid}/refunds"),
                                   json={"amount": cad(3000), "reason": "requested_by_customer"},
                                   headers={"Idempotency-Key": "refund-once"}) for _ in range(2)]
    settle()

    # Then one Stripe refund of that PaymentIntent, the appointment partly refunded, the patient told once
    assert answers[0].status == 201, answers[0].body
    assert answers[1].json()["refund_id"] == answers[0].json()["refund_id"]
    at_stripe = [r for r in stripe_refunds(stack, clinic) if r["payment_intent"] == reference]
    assert [(r["amount"], r["metadata"].get("clinicpay_source")) for r in at_stripe] == [(3000, "payment_link")]
    after = appointment_of(clinic, aid)
    assert (after["payment_status"], after["amount_refunded"]) == ("partially_refunded", cad(3000))
    listed = clinic.staff().get(clinic.path(f"/appointments/{aid}/refunds")).json()["refunds"]
    assert [(r["status"], r["amount"]["amount"]) for r in listed] == [("succeeded", 3000)]
    assert len([m for m in refund_messages() if m.get("channel") == "email"]) == 1
