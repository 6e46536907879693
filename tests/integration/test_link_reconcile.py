"""Reconciliation of payment links whose provider webhooks never came (issue 9 item 3): real handlers,
moto, and the Fintoc, monobank and Stripe sandboxes with every webhook held back."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests

from clinicpay.providers.registry import link_gateway
from clinicpay.repositories.appointments import AppointmentRepository
from clinicpay.repositories.link_watches import LinkWatchRepository
from clinicpay.repositories.shards import all_shards, key_of, shard_of
from clinicpay.settings import get_settings
from clinicpay.usecases.link_reconcile import LinkReconcileDeps, run_link_reconcile
from clinicpay.usecases.payment_events import apply_payment_events
from local import apigw, outbox
from tests.support.api import ApiClient
from tests.support.cards import INSUFFICIENT_FUNDS, VISA, connect_stripe, settle, type_card
from tests.support.clinics import ClinicKeys, add_service, connect_fintoc, create_clinic
from tests.support.env import TestStack
from tests.support.ownership import foreign, hold

T = 15


@dataclass
class LinkClinic:
    keys: ClinicKeys
    provider: str
    sandbox: str
    price: int
    receiver: dict[str, str]  # where a held webhook goes: endpoint_id (Fintoc, Stripe) or url (monobank)
    secret_key: str = ""

    @property
    def clinic_id(self) -> str:
        return self.keys.clinic_id

    def book(self, n: int) -> tuple[str, str]:
        """Book appointment n and open its link as the patient does: (appointment id, checkout url)."""
        starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()
        created = self.keys.staff().post(self.keys.path("/appointments"), json={
            "appointment_id": f"ap-{n:02d}", "patient": {"id": f"p-{n}", "name": "Ana", "email": email(self, n)},
            "service_id": "consulta", "starts_at": starts, "booked_by": "staff"})
        assert created.status == 201, created.body
        opened = ApiClient().get(f"/pay/{created.json()['payment_link']['url'].rsplit('/', 1)[1]}")
        assert opened.status in (302, 303), opened.body
        return f"ap-{n:02d}", str(opened.headers["Location"])

    def appointment(self, appointment_id: str) -> dict[str, Any]:
        return dict(self.keys.staff().get(self.keys.path(f"/appointments/{appointment_id}")).json())


def email(clinic: LinkClinic, n: int) -> str:
    return f"{clinic.provider}-{n}@example.com"


def fintoc_clinic(stack: TestStack, secret_key: str = "sk_test_recon", name: str = "Clínica Sur") -> LinkClinic:
    keys = create_clinic(name=name)
    connect_fintoc(keys, stack.sandbox_url("fintoc"), stack.base_url, secret_key=secret_key)
    keys.admin().patch(keys.path("/settings"), json={"default_gateway": "fintoc"})
    add_service(keys, "consulta", 25000)
    endpoints = requests.get(f"{stack.sandbox_url('fintoc')}/v1/webhook_endpoints", timeout=T,
                             headers={"Authorization": secret_key}).json()
    endpoint_id = next(e["id"] for e in endpoints if e["url"].endswith(f"/webhooks/fintoc/{keys.clinic_id}"))
    return LinkClinic(keys, "fintoc", stack.sandbox_url("fintoc"), 25000, {"endpoint_id": endpoint_id}, secret_key)


def monobank_clinic(stack: TestStack) -> LinkClinic:
    keys = create_clinic(country="UA", currency="UAH", timezone="Europe/Kyiv", locale="uk", name="Клініка")
    assert keys.admin().put(keys.path("/gateways/monobank"), json={"token": "mono_recon"}).status == 200
    keys.admin().patch(keys.path("/settings"), json={"default_gateway": "monobank"})
    add_service(keys, "consulta", 85000, "UAH")
    return LinkClinic(keys, "monobank", stack.sandbox_url("monobank"), 85000,
                      {"url": f"{stack.base_url}/webhooks/monobank/{keys.clinic_id}"})


def stripe_clinic(stack: TestStack) -> LinkClinic:
    keys = create_clinic(country="CA", currency="CAD", timezone="America/Toronto", locale="en", name="Clinique Est")
    connect_stripe(keys, stack.sandbox_url("stripe"), stack.base_url, secret_key="sk_test_recon_stripe")
    endpoints = requests.get(f"{stack.sandbox_url('stripe')}/v1/webhook_endpoints", timeout=T,
                             headers={"Authorization": "Bearer sk_test_recon_stripe"}).json()["data"]
    endpoint_id = next(e["id"] for e in endpoints if e["url"].endswith(f"/webhooks/stripe/{keys.clinic_id}"))
    add_service(keys, "consulta", 12000, "CAD")
    keys.admin().patch(keys.path("/settings"), json={"default_gateway": "stripe"})
    return LinkClinic(keys, "stripe", stack.sandbox_url("stripe"), 12000, {"endpoint_id": endpoint_id})


def act(clinic: LinkClinic, checkout: str, what: str) -> None:
    """What the patient (or time) does to the session at the provider; every webhook stays held."""
    session_id = checkout.rstrip("/").rsplit("/", 1)[1]
    if what == "open":
        return
    if clinic.provider == "fintoc":
        url = f"{clinic.sandbox}/_control/sessions/{session_id}/expire-now" if what == "expired" else \
            f"{checkout}/{'pay' if what == 'paid' else 'fail'}"
        assert requests.post(url, allow_redirects=False, timeout=T).status_code in (200, 303)
    elif clinic.provider == "monobank":
        action = {"paid": "pay", "failed": "fail", "expired": "expire"}[what]
        answer = requests.post(f"{clinic.sandbox}/_control/invoices/{session_id}/{action}", json={"deliver": False},
                               timeout=T)
        assert answer.status_code == 200, answer.text
    elif what == "expired":
        assert requests.post(f"{clinic.sandbox}/_control/checkout/sessions/{session_id}/expire-now",
                             timeout=T).status_code == 200
    else:
        # a declined card leaves Stripe's session open for another try
        assert type_card(checkout, VISA if what == "paid" else INSUFFICIENT_FUNDS).status_code == (
            303 if what == "paid" else 402)


def reconcile(*, minutes_later: int) -> dict[str, Any]:
    """The job's use case with the function's own wiring, every shard, as if `minutes_later` had passed."""
    table = get_settings().app_table
    repo = AppointmentRepository(table)
    deps = LinkReconcileDeps(watches=LinkWatchRepository(table), appointments=repo, gateway_for=link_gateway,
                             apply=lambda cid, events: apply_payment_events(cid, events, repo))
    now = datetime.now(UTC) + timedelta(minutes=minutes_later)
    total: Counter[str] = Counter()
    asked = 0
    for shard in all_shards():
        result = run_link_reconcile(deps, shard, now)
        total.update(result["outcomes"])
        asked += result["asked"]
    return {"asked": asked, "outcomes": dict(total)}


def held_events(clinic: LinkClinic, session_ids: set[str]) -> list[str]:
    """The webhooks the sandbox made for these sessions and never sent."""
    rows = requests.get(f"{clinic.sandbox}/_control/events", timeout=T).json()["events"]
    if clinic.provider == "monobank":
        return [r["event_id"] for r in rows if r["invoice_id"] in session_ids]
    if clinic.provider == "stripe":
        return [r["id"] for r in rows if r["data"]["object"].get("id") in session_ids
                or r["data"]["object"].get("metadata", {}).get("clinic_id") == clinic.clinic_id]
    import json

    found = []
    for row in rows:
        data = json.loads(row["body"])["data"]
        if data.get("id") in session_ids or data.get("metadata", {}).get("checkout_session_id") in session_ids:
            found.append(row["id"])
    return found


def deliver_late(clinic: LinkClinic, event_id: str) -> None:
    """One held webhook to our endpoint, now. Our answer must be 200; none at all means the sandbox
    stopped waiting (Fintoc's 2 s, a loaded machine) while our handler still ran to its end."""
    answer = requests.post(f"{clinic.sandbox}/_control/deliver/{event_id}", json=clinic.receiver, timeout=T)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status_code"] in (200, None), answer.text


def watches(clinic_id: str) -> list[dict[str, Any]]:
    items = boto3.resource("dynamodb").Table("AppointmentsTable").scan()["Items"]
    return [i for i in items if i["pk"] == f"CLINIC#{clinic_id}" and str(i["sk"]).startswith("LINKWATCH#")]


KINDS = ["paid", "paid", "paid", "failed", "paid", "expired", "paid", "open"]


def test_fifty_link_payments_whose_webhooks_were_all_dropped_end_in_their_true_state(stack: TestStack) -> None:
    # Given three clinics taking link payments through Fintoc, monobank and Stripe Checkout, whose
    # providers deliver no webhook at all
    settle(stack.sandbox_url("stripe"))
    clinics = [fintoc_clinic(stack), monobank_clinic(stack), stripe_clinic(stack)]
    for clinic in clinics:
        hold(clinic.sandbox)
    # and fifty appointments, each link opened, then paid, failed, expired or left open
    truth: dict[tuple[str, str], str] = {}
    sessions: dict[str, set[str]] = {c.provider: set() for c in clinics}
    n = 0
    for clinic in clinics:
        for _ in range(17 if clinic.provider != "stripe" else 16):
            appointment_id, checkout = clinic.book(n)
            what = KINDS[n % len(KINDS)]
            act(clinic, checkout, what)
            truth[(clinic.provider, appointment_id)] = what
            sessions[clinic.provider].add(checkout.rstrip("/").rsplit("/", 1)[1])
            n += 1
    assert len(truth) == 50
    by_provider = {c.provider: c for c in clinics}
    assert all(by_provider[p].appointment(a)["payment_status"] == "unpaid" for p, a in truth)  # nothing reached us
    sent_before = {(p, a): len(outbox.messages(to=email(by_provider[p], int(a[3:])))) for p, a in truth}

    # When the job runs, too early: the webhooks may still be on their way, nobody is asked
    assert reconcile(minutes_later=1)["asked"] == 0
    # then a few minutes later (the webhooks still held: it learns only by asking)
    result = reconcile(minutes_later=10)
    assert result["asked"] == 50

    # Then every appointment is in its true state: paid ones paid, each with its receipt, once
    states = {key: by_provider[key[0]].appointment(key[1]) for key in truth}
    for key, what in truth.items():
        assert states[key]["payment_status"] == ("paid" if what == "paid" else "unpaid"), (key, what, states[key])
    paid = [k for k, what in truth.items() if what == "paid"]
    assert len(paid) == 32
    for key in paid:
        assert states[key]["payment"]["amount"]["amount"] == by_provider[key[0]].price
    receipts = {(p, a): len(outbox.messages(to=email(by_provider[p], int(a[3:])))) - sent_before[(p, a)]
                for p, a in truth}
    assert {k: v for k, v in receipts.items() if v} == dict.fromkeys(paid, 1)
    rows = [i for i in boto3.resource("dynamodb").Table("AppointmentsTable").scan()["Items"]
            if str(i["sk"]).startswith("PAYMENT#")]
    assert len(rows) == 32
    # the watches of settled sessions are closed; open ones (and Fintoc's failed attempt, which the
    # patient may retry in the same session) still wait for their next ask
    waiting = Counter(truth[(c.provider, str(w["appointment_id"]))] for c in clinics for w in watches(c.clinic_id)
                      if "due_pk" in w)
    assert waiting == {"open": 6, "failed": 4}  # 2 Fintoc and 2 Stripe failed tries: their sessions stay open
    outcomes = Counter(w.get("outcome") for c in clinics for w in watches(c.clinic_id) if "due_pk" not in w)
    assert outcomes == {"succeeded:applied": 32, "expired:applied": 6, "failed:applied": 2}  # monobank's failures

    # And the held webhooks, delivered late, change nothing: no second payment, no second receipt
    late: Counter[str] = Counter()
    for clinic in clinics:
        hold(clinic.sandbox, False)
        for event_id in held_events(clinic, sessions[clinic.provider]):
            deliver_late(clinic, event_id)
            late[clinic.provider] += 1
    # (at least each paid session's own event reached us, late)
    assert all(late[p] >= sum(1 for (q, _), what in truth.items() if q == p and what == "paid") for p in late)
    assert set(late) == {"fintoc", "monobank", "stripe"}
    settle(stack.sandbox_url("stripe"))
    time.sleep(3)  # a handler the sandbox stopped waiting for finishes (see deliver_late)
    after = {key: by_provider[key[0]].appointment(key[1])["payment_status"] for key in truth}
    assert after == {key: states[key]["payment_status"] for key in truth}
    assert [i for i in boto3.resource("dynamodb").Table("AppointmentsTable").scan()["Items"]
            if str(i["sk"]).startswith("PAYMENT#")].__len__() == 32
    assert all(len(outbox.messages(to=email(by_provider[p], int(a[3:])))) - sent_before[(p, a)] == receipts[(p, a)]
               for p, a in truth)
    # and the next run asks only about the sessions still open
    assert reconcile(minutes_later=30)["asked"] == 10


def test_a_watch_in_one_clinics_keys_never_pays_another_clinic(stack: TestStack) -> None:
    # Two clinics of one owner on one Fintoc account; the webhooks never come
    north = fintoc_clinic(stack, secret_key="sk_test_owner", name="Norte")
    south = fintoc_clinic(stack, secret_key="sk_test_owner", name="Sur")
    hold(north.sandbox)
    appointment_id, checkout = south.book(1)
    act(south, checkout, "paid")
    north.book(1)  # north has an appointment of the same id, unpaid
    session_id = checkout.rsplit("/", 1)[1]
    # a watch in NORTH's keys naming SOUTH's paid session (as a bug or a hostile write might leave)
    table = boto3.resource("dynamodb").Table("AppointmentsTable")
    due = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    table.put_item(Item={"pk": f"CLINIC#{north.clinic_id}", "sk": f"LINKWATCH#fintoc#{session_id}",
                         "clinic_id": north.clinic_id, "appointment_id": appointment_id, "provider": "fintoc",
                         "session_id": session_id, "created_at": due, "watch_until": "2099-01-01T00:00:00+00:00",
                         "asks": 0, "due_pk": key_of("LINKWATCH", shard_of(north.clinic_id)),
                         "due_sk": f"{due}#{north.clinic_id}#fintoc#{session_id}"})
    result = reconcile(minutes_later=10)
    # north asked Fintoc with its own key, and Fintoc's answer names south: foreign to north
    assert north.appointment(appointment_id)["payment_status"] == "unpaid"
    assert list(foreign(north.clinic_id).values()) == ["other_clinic"]
    # south's own watch paid south, once
    assert south.appointment(appointment_id)["payment_status"] == "paid"
    # (and north's own session, opened but not paid, waits for its patient)
    assert result["outcomes"] == {"succeeded:foreign": 1, "succeeded:applied": 1, "ignored:waiting": 1}


def test_the_job_runs_under_the_functions_role_and_pays_what_it_learns(stack: TestStack) -> None:
    clinic = fintoc_clinic(stack)
    hold(clinic.sandbox)
    appointment_id, checkout = clinic.book(1)
    act(clinic, checkout, "paid")
    # nothing is old enough to ask about yet
    first = apigw.invoke_job("link-reconcile")
    assert first["job"] == "link-reconcile" and first["asked"] == 0 and first["due"] == 0
    # a few minutes later (the watch's next ask moved into the past)
    make_due(clinic)
    result = apigw.invoke_job("link-reconcile")
    assert result["asked"] == 1 and result["outcomes"] == {"succeeded:applied": 1}
    assert clinic.appointment(appointment_id)["payment_status"] == "paid"


def make_due(clinic: LinkClinic) -> None:
    """Move the clinic's watch's next ask into the past (as if minutes had passed)."""
    table = boto3.resource("dynamodb").Table("AppointmentsTable")
    [watch] = watches(clinic.clinic_id)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    table.update_item(Key={"pk": watch["pk"], "sk": watch["sk"]}, UpdateExpression="SET due_sk = :d",
                      ExpressionAttributeValues={":d": past + str(watch["due_sk"])[len(past):]})


@pytest.mark.parametrize("fault", [{"status": "503", "count": 3}, {"status": "timeout", "count": 3, "seconds": 20}])
def test_a_provider_that_does_not_answer_leaves_the_watch_for_the_next_run(stack: TestStack,
                                                                           fault: dict[str, Any]) -> None:
    clinic = fintoc_clinic(stack)
    hold(clinic.sandbox)
    appointment_id, checkout = clinic.book(1)
    act(clinic, checkout, "paid")
    make_due(clinic)
    assert requests.post(f"{clinic.sandbox}/_control/fail-next", json=fault, timeout=T).status_code == 200
    # a 10 s invocation: the ask gets what is left of it after our own writes' reserve, no more
    started = datetime.now(UTC)
    result = apigw.invoke_job("link-reconcile", timeout=10)
    assert (datetime.now(UTC) - started) < timedelta(seconds=10)
    assert result["outcomes"] == {"unanswered": 1}
    assert clinic.appointment(appointment_id)["payment_status"] == "unpaid"
    [watch] = watches(clinic.clinic_id)
    assert "due_pk" in watch and watch["asks"] == 1
    # the provider answers again: the next ask pays it
    from local.sandboxes.fintoc import FAULTS

    FAULTS.clear()
    make_due(clinic)
    assert apigw.invoke_job("link-reconcile")["outcomes"] == {"succeeded:applied": 1}
    assert clinic.appointment(appointment_id)["payment_status"] == "paid"


def test_sessions_stored_before_the_deploy_get_their_watch_from_the_operator_script(stack: TestStack) -> None:
    from ops.watch_open_link_sessions import watch_open_sessions

    clinic = fintoc_clinic(stack)
    hold(clinic.sandbox)
    appointment_id, checkout = clinic.book(1)
    act(clinic, checkout, "paid")
    clinic.book(2)  # opened, never paid
    # as stored before link reconciliation: no watches
    table = boto3.resource("dynamodb").Table("AppointmentsTable")
    for watch in watches(clinic.clinic_id):
        table.delete_item(Key={"pk": watch["pk"], "sk": watch["sk"]})
    dry = watch_open_sessions("AppointmentsTable", apply=False)
    assert (dry.watched, dry.already) == (2, 0) and watches(clinic.clinic_id) == []
    done = watch_open_sessions("AppointmentsTable", apply=True)
    assert (done.watched, done.already) == (2, 0)
    again = watch_open_sessions("AppointmentsTable", apply=True)
    assert (again.watched, again.already) == (0, 2)
    # due at once: the job pays the one that was paid
    result = apigw.invoke_job("link-reconcile")
    assert result["outcomes"] == {"succeeded:applied": 1, "ignored:waiting": 1}
    assert clinic.appointment(appointment_id)["payment_status"] == "paid"


def test_a_deposit_and_then_its_balance_both_lost_by_webhook_are_each_applied_once(stack: TestStack) -> None:
    # The ledger (deposits): the link asks the deposit first, then, once staff send it, the balance,
    # each in a session of its own; Fintoc delivers neither payment's webhook
    clinic = fintoc_clinic(stack)
    add_service(clinic.keys, "consulta", 25000, deposit={"type": "percent", "percent": 30})
    hold(clinic.sandbox)
    appointment_id, deposit_checkout = clinic.book(1)
    act(clinic, deposit_checkout, "paid")
    assert reconcile(minutes_later=10)["outcomes"] == {"succeeded:applied": 1}
    shown = clinic.appointment(appointment_id)
    assert shown["payment_status"] == "deposit_paid" and shown["amount_paid"]["amount"] == 7500
    sent = clinic.keys.staff().post(clinic.keys.path(f"/appointments/{appointment_id}/payment-link/send"),
                                    json={"purpose": "balance"})
    assert sent.status == 202, sent.body
    opened = ApiClient().get(f"/pay/{shown['payment_link']['url'].rsplit('/', 1)[1]}")
    balance_checkout = str(opened.headers["Location"])
    assert balance_checkout != deposit_checkout
    act(clinic, balance_checkout, "paid")
    # the deposit's watch is closed; the balance's is asked about and applied on top of the deposit
    assert reconcile(minutes_later=10)["outcomes"] == {"succeeded:applied": 1}
    shown = clinic.appointment(appointment_id)
    assert shown["payment_status"] == "paid" and shown["amount_paid"]["amount"] == 25000
    # and the held webhooks, late, change nothing
    hold(clinic.sandbox, False)
    session_ids = {deposit_checkout.rsplit("/", 1)[1], balance_checkout.rsplit("/", 1)[1]}
    for event_id in held_events(clinic, session_ids):
        deliver_late(clinic, event_id)
    time.sleep(3)  # see deliver_late
    again = clinic.appointment(appointment_id)
    assert (again["payment_status"], again["amount_paid"]) == ("paid", shown["amount_paid"])
    rows = [i for i in boto3.resource("dynamodb").Table("AppointmentsTable").scan()["Items"]
            if str(i["sk"]).startswith("PAYMENT#")]
    assert len(rows) == 2
