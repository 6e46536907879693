"""monobank: a valid X-Sign proves monobank sent a webhook, not whose invoice it is (issue 8, items 1,
2 and 6). One key signs every merchant's webhooks, so another merchant's invoice, replayed to our
endpoint with a reference that looks like ours, must change nothing; an invoice we hold no record of
counts only once monobank, asked with THIS clinic's token, knows it. Two clinics of one owner on one
merchant token each get their own payments once, whichever endpoint hears first. Forged signatures
cost at most one /pubkey call a minute.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from local.sandboxes.common import credential_digest
from local.sandboxes.monobank import sign as monobank_sign
from tests.support.api import ApiClient
from tests.support.clinics import add_service, create_clinic
from tests.support.env import TestStack
from tests.support.ownership import deliver, foreign, hold, let_a_minute_pass
from tests.support.qr import Checkbox, Monobank, QrClinic, wait_for

PRICE = 85000
T = 15


def ua_clinic(stack: TestStack, token: str, name: str) -> QrClinic:
    """A Ukrainian clinic with link payments and QR registers on monobank merchant `token`."""
    keys = create_clinic(country="UA", currency="UAH", timezone="Europe/Kyiv", locale="uk", name=name)
    license_key = f"lic_{keys.clinic_id}"
    for provider, body in (("monobank", {"token": token}), ("checkbox", {"license_key": license_key, "pin_code": "1234"})):
        assert keys.admin().put(keys.path(f"/gateways/{provider}"), json=body).status == 200
    keys.admin().patch(keys.path("/settings"), json={"default_gateway": "monobank"})
    add_service(keys, "consulta", PRICE, "UAH")
    return QrClinic(keys, Monobank(stack.sandbox_url("monobank"), token), Checkbox(stack.sandbox_url("checkbox"),
                                                                                   license_key))


@pytest.fixture
def mono(stack: TestStack) -> str:
    return stack.sandbox_url("monobank")


@pytest.fixture
def shared(stack: TestStack) -> tuple[QrClinic, QrClinic]:
    """Two branches of one owner on one monobank merchant."""
    return ua_clinic(stack, "mono_owner_shared", "Філія Центр"), ua_clinic(stack, "mono_owner_shared", "Філія Лівий берег")


@pytest.fixture
def clinic(stack: TestStack) -> QrClinic:
    return ua_clinic(stack, "mono_clinic_own", "Клініка")


def url_of(stack: TestStack, clinic: QrClinic) -> str:
    return f"{stack.base_url}/webhooks/monobank/{clinic.clinic_id}"


def book(clinic: QrClinic, appointment_id: str) -> str:
    """Book, and open the link as the patient does: returns the invoice we created and stored."""
    created = clinic.staff().post(clinic.path("/appointments"), json={
        "appointment_id": appointment_id, "patient": {"id": "p-1", "name": "Олена"}, "service_id": "consulta",
        "starts_at": "2030-01-10T10:00:00+02:00", "booked_by": "staff"})
    assert created.status == 201, created.body
    token = created.json()["payment_link"]["url"].rsplit("/", 1)[1]
    opened = ApiClient().get(f"/pay/{token}")
    assert opened.status == 303, opened.body
    return str(opened.headers["Location"]).rsplit("/", 1)[1]


def appointment(clinic: QrClinic, appointment_id: str) -> dict[str, Any]:
    return dict(clinic.staff().get(clinic.path(f"/appointments/{appointment_id}")).json())


def pay_held(mono: str, invoice_id: str) -> list[str]:
    """The patient pays; monobank's two webhooks (processing, success) are held. Their event ids."""
    answer = requests.post(f"{mono}/_control/invoices/{invoice_id}/pay", json={}, timeout=T)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["events"])


def stranger_invoice(mono: str, reference: str | None, amount: int = PRICE) -> dict[str, Any]:
    """Another merchant's paid invoice: its signed `success` webhook, as monobank made it."""
    token = "mono_somebody_else"
    info = {"reference": reference, "destination": "Оплата"} if reference else {"destination": "Оплата"}
    created = requests.post(f"{mono}/api/merchant/invoice/create", headers={"X-Token": token}, timeout=T,
                            json={"amount": amount, "ccy": 980, "merchantPaymInfo": info}).json()
    requests.post(f"{mono}/_control/invoices/{created['invoiceId']}/pay", json={"deliver": False}, timeout=T)
    events = requests.get(f"{mono}/_control/events", params={"invoice_id": created["invoiceId"]}, timeout=T).json()
    return dict(next(e for e in events["events"] if e["status"] == "success"))


def status_calls(mono: str, token: str) -> int:
    """How often invoice/status was asked with this merchant token."""
    return int(requests.get(f"{mono}/_control/calls", timeout=T, params={
        "path": "/api/merchant/invoice/status", "credential": credential_digest(token)}).json()["count"])


def pubkey_calls(mono: str, token: str) -> int:
    return int(requests.get(f"{mono}/_control/calls", timeout=T, params={
        "path": "/api/merchant/pubkey", "credential": credential_digest(token)}).json()["count"])


def qr_items(clinic_id: str, prefix: str) -> list[dict[str, Any]]:
    items = boto3.resource("dynamodb").Table("AppointmentsTable").scan()["Items"]
    return [i for i in items if i["pk"] == f"CLINIC#{clinic_id}" and str(i["sk"]).startswith(prefix)]


# --- link payments: two branches on one merchant --------------------------------------------------------

@pytest.mark.parametrize("owner_first", [True, False], ids=["owner-endpoint-first", "other-endpoint-first"])
def test_two_branches_on_one_merchant_each_get_their_own_link_payment_in_either_order(
        stack: TestStack, mono: str, shared: tuple[QrClinic, QrClinic], owner_first: bool) -> None:
    centre, left_bank = shared
    hold(mono)
    # Given the same appointment id in both branches, each patient paying their own invoice
    invoices = {c.clinic_id: book(c, "ap-shared-1") for c in shared}
    events = {c.clinic_id: pay_held(mono, invoices[c.clinic_id]) for c in shared}
    # When every webhook reaches both branches' endpoints, in the order under test
    answers = []
    for owner, other in ((centre, left_bank), (left_bank, centre)):
        for event_id in events[owner.clinic_id]:
            for receiver in ((owner, other) if owner_first else (other, owner)):
                answers.append(deliver(mono, event_id, url=url_of(stack, receiver)))
    # Then all were acknowledged, each branch is paid once by its own invoice
    assert answers == [200] * 8
    for branch in shared:
        paid = appointment(branch, "ap-shared-1")
        assert paid["payment_status"] == "paid" and paid["payment"]["reference"] == invoices[branch.clinic_id]
        assert [i["reference"] for i in qr_items(branch.clinic_id, "PAYMENT#")] == [invoices[branch.clinic_id]]
    # and each recorded the other's two webhooks (processing, success) as foreign
    for branch, other in ((centre, left_bank), (left_bank, centre)):
        assert foreign(branch.clinic_id) == dict.fromkeys(events[other.clinic_id], "unknown_session")


def test_eight_link_payments_on_a_shared_merchant_all_land_in_their_own_branch(
        stack: TestStack, mono: str, shared: tuple[QrClinic, QrClinic]) -> None:
    # Every webhook of the merchant reaches both endpoints, automatically this time
    assert requests.post(f"{mono}/_control/also-notify", timeout=T, json={
        "token": "mono_owner_shared", "urls": [url_of(stack, c) for c in shared]}).ok
    ids = [f"ap-{n}" for n in range(4)]
    for branch in shared:
        for appointment_id in ids:
            invoice_id = book(branch, appointment_id)
            requests.post(f"{mono}/_control/invoices/{invoice_id}/pay", json={}, timeout=T)
    wait_for(lambda: all(appointment(b, a)["payment_status"] == "paid" for b in shared for a in ids), timeout=40)
    assert len({appointment(b, a)["payment"]["reference"] for b in shared for a in ids}) == 8
    for branch in shared:
        wait_for(lambda b=branch: len(foreign(b.clinic_id)) == 8, timeout=40)  # type: ignore[misc]


# --- link payments: another merchant's invoice ----------------------------------------------------------

def test_another_merchants_invoice_replayed_with_our_appointment_and_price_pays_nothing(
        mono: str, clinic: QrClinic) -> None:
    book(clinic, "ap-1")
    success = stranger_invoice(mono, reference="ap-1")  # the right appointment id, the right amount
    answer = clinic.send_webhook(success["body"], success["x_sign"])
    assert answer.status == 200 and answer.json()["kind"] == "link" and answer.json()["outcomes"] == ["foreign"]
    assert foreign(clinic.clinic_id) == {success["event_id"]: "unknown_session"}
    assert appointment(clinic, "ap-1")["payment_status"] == "unpaid"
    assert status_calls(mono, "mono_clinic_own") == 0  # the stored invoice id decides: no call out


def test_our_invoice_reported_with_another_amount_pays_nothing(mono: str, clinic: QrClinic) -> None:
    hold(mono)
    invoice_id = book(clinic, "ap-1")
    pay_held(mono, invoice_id)
    success = next(e for e in clinic.monobank.events(invoice_id) if e["status"] == "success")
    # a change of its own (another modifiedDate), signed by monobank, for 1.00 UAH
    reported = json.loads(success["body"])
    reported.update(amount=100, finalAmount=100, modifiedDate=reported["modifiedDate"].replace("Z", "") + ".5Z")
    body = json.dumps(reported, indent=2, ensure_ascii=False).encode()
    answer = clinic.send_webhook(body, monobank_sign(body))
    assert answer.status == 200 and answer.json()["outcomes"] == ["foreign"]
    assert list(foreign(clinic.clinic_id).values()) == ["amount_mismatch"]
    assert appointment(clinic, "ap-1")["payment_status"] == "unpaid"
    # while the genuine one pays
    assert clinic.send_webhook(success["body"], success["x_sign"]).json()["outcomes"] == ["applied"]


# --- QR payments ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("reference", ["qr:{qr}::{clinic}", "qr:{qr}:", "qr:{qr}:ap-1"])
def test_another_merchants_invoice_with_a_reference_like_ours_is_foreign_after_asking_monobank_once(
        mono: str, clinic: QrClinic, reference: str) -> None:
    clinic.open_shift()
    qr_id = clinic.merchant_register()
    success = stranger_invoice(mono, reference=reference.format(qr=qr_id, clinic=clinic.clinic_id))
    # When it is replayed to our endpoint, twice
    first, again = (clinic.send_webhook(success["body"], success["x_sign"]) for _ in range(2))
    # Then monobank, asked once with our token, did not know it: nothing recorded, no receipt
    assert first.status == 200 and (first.json()["kind"], first.json()["outcome"]) == ("qr", "foreign")
    assert again.status == 200 and again.json()["outcome"] == "duplicate"
    assert status_calls(mono, "mono_clinic_own") == 1
    assert foreign(clinic.clinic_id) == {success["event_id"]: "not_at_provider"}
    assert clinic.report() == [] and qr_items(clinic.clinic_id, "QRPAY#") == []
    assert clinic.checkbox.receipts() == []


def test_a_reference_naming_a_register_we_do_not_have_is_foreign_without_asking(mono: str, clinic: QrClinic) -> None:
    clinic.sync()
    success = stranger_invoice(mono, reference=f"qr:qr_not_ours::{clinic.clinic_id}")
    answer = clinic.send_webhook(success["body"], success["x_sign"])
    assert answer.json()["outcome"] == "foreign" and status_calls(mono, "mono_clinic_own") == 0
    assert foreign(clinic.clinic_id) == {success["event_id"]: "unknown_object"}


def test_a_payment_on_a_fixed_amount_register_is_recorded_once_monobank_confirms_it(
        stack: TestStack, mono: str, clinic: QrClinic) -> None:
    # Given a register whose amount was set in monobank's app, posting to our endpoint
    clinic.open_shift()
    clinic.sync()
    fixed = requests.post(f"{mono}/_control/registers", timeout=T, json={
        "token": "mono_clinic_own", "amountType": "fix", "amount": 30000, "webHookUrl": url_of(stack, clinic)}).json()
    assert any(r["qr_id"] == fixed["qrId"] and r["amount_type"] == "fix" for r in clinic.sync())
    # When a patient pays it
    paid = requests.post(f"{mono}/_control/qr/{fixed['qrId']}/pay", json={}, timeout=T).json()["invoice"]
    # Then the payment is recorded (confirmed with our token, once) and fiscalized
    row = clinic.wait_fiscalized(f"qrp_{paid['invoiceId']}")
    # monobank's invoice does not say which register: with two whose amount is set elsewhere (this
    # one and the sandbox's payer-amount register) it is not guessed
    assert row["amount"] == {"amount": 30000, "currency": "UAH"} and row["qr_id"] is None
    assert status_calls(mono, "mono_clinic_own") == 1
    assert len(clinic.checkbox.receipts()) == 1
    # and the same kind of payment on another merchant's register, replayed to us, is foreign
    requests.get(f"{mono}/api/merchant/qr/list", headers={"X-Token": "mono_somebody_else"}, timeout=T)
    theirs = requests.post(f"{mono}/_control/registers", timeout=T, json={
        "token": "mono_somebody_else", "amountType": "fix", "amount": 30000}).json()
    hold(mono)
    events = requests.post(f"{mono}/_control/qr/{theirs['qrId']}/pay", json={}, timeout=T).json()["events"]
    assert [deliver(mono, e, url=url_of(stack, clinic)) for e in events] == [200, 200]
    assert status_calls(mono, "mono_clinic_own") == 2
    assert list(foreign(clinic.clinic_id).values()) == ["not_at_provider"]
    assert [r["payment_id"] for r in clinic.report()] == [f"qrp_{paid['invoiceId']}"]


@pytest.mark.parametrize("owner_first", [True, False], ids=["owner-endpoint-first", "other-endpoint-first"])
def test_a_qr_payment_of_one_branch_is_foreign_at_the_other_on_a_shared_merchant(
        stack: TestStack, mono: str, shared: tuple[QrClinic, QrClinic], owner_first: bool) -> None:
    centre, left_bank = shared
    centre.open_shift()
    left_bank.sync()  # both branches list the merchant's registers
    hold(mono)
    invoice_id = centre.put_amount(centre.merchant_register(), 42000)["invoice_id"]
    events = pay_held(mono, invoice_id)
    order = (centre, left_bank) if owner_first else (left_bank, centre)
    answers = [deliver(mono, e, url=url_of(stack, c)) for e in events for c in order]
    assert answers == [200] * 4
    assert [r["payment_id"] for r in centre.report()] == [f"qrp_{invoice_id}"]
    assert left_bank.report() == [] and qr_items(left_bank.clinic_id, "QRPAY#") == []
    # the reference names the centre: the left bank sees that without asking monobank
    assert foreign(left_bank.clinic_id) == dict.fromkeys(events, "other_clinic")
    assert status_calls(mono, "mono_owner_shared") == 0


# --- forged signatures -------------------------------------------------------------------------------

def test_a_thousand_forged_webhooks_fetch_the_public_key_at_most_once_and_a_rotation_still_verifies(
        mono: str, clinic: QrClinic) -> None:
    # Given our key cache is warm (a genuine webhook verified)
    hold(mono)
    invoice_id = book(clinic, "ap-1")
    pay_held(mono, invoice_id)
    processing, success = clinic.monobank.events(invoice_id)
    assert clinic.send_webhook(processing["body"], processing["x_sign"]).status == 200
    before = pubkey_calls(mono, "mono_clinic_own")
    assert before == 1
    # When a thousand well-formed deliveries signed with someone else's key arrive
    forger = ec.generate_private_key(ec.SECP256R1())
    body = success["body"].encode()
    forged = base64.b64encode(forger.sign(body, ec.ECDSA(hashes.SHA256()))).decode()
    answers = [clinic.send_webhook(body, forged).status for _ in range(1000)]
    # Then each is refused and monobank's /pubkey was called once (for a possible rotation)
    assert answers == [401] * 1000
    assert pubkey_calls(mono, "mono_clinic_own") == before + 1
    assert appointment(clinic, "ap-1")["payment_status"] == "pending"
    # And when monobank rotates its key within that minute, its webhooks wait for the minute to end
    clinic.monobank.rotate_key()
    resigned = monobank_sign(body)
    assert clinic.send_webhook(body, resigned).status == 401
    let_a_minute_pass()
    answer = clinic.send_webhook(body, resigned)
    assert answer.status == 200 and answer.json()["outcomes"] == ["applied"]
    assert pubkey_calls(mono, "mono_clinic_own") == before + 2
    assert appointment(clinic, "ap-1")["payment_status"] == "paid"


def test_forged_webhooks_never_push_us_into_monobanks_rate_limit(mono: str, clinic: QrClinic) -> None:
    # monobank allows few /pubkey calls; a flood of forgeries over three "minutes" stays within them
    assert requests.post(f"{mono}/_control/pubkey-limit", json={"calls": 4, "per_seconds": 3600}, timeout=T).ok
    hold(mono)
    invoice_id = book(clinic, "ap-1")
    pay_held(mono, invoice_id)
    processing, success = clinic.monobank.events(invoice_id)
    assert clinic.send_webhook(processing["body"], processing["x_sign"]).status == 200
    forger = ec.generate_private_key(ec.SECP256R1())
    forged = base64.b64encode(forger.sign(b"{}", ec.ECDSA(hashes.SHA256()))).decode()
    for _ in range(3):
        assert {clinic.send_webhook(b"{}", forged).status for _ in range(200)} == {401}
        let_a_minute_pass()
    assert pubkey_calls(mono, "mono_clinic_own") == 4  # the first fetch, then one a minute
    # so the genuine webhook still verifies with the key we hold
    assert clinic.send_webhook(success["body"], success["x_sign"]).json()["outcomes"] == ["applied"]
    assert json.loads(success["body"])["status"] == "success"
