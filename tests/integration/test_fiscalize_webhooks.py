"""monobank and Checkbox webhooks for QR payments: verified on the raw bytes, applied once, in order."""

from __future__ import annotations

import base64
import json

import boto3
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from clinicpay import secrets
from clinicpay.providers.checkbox.signature import compute_signature
from tests.support.api import ApiClient
from tests.support.env import TestStack
from tests.support.qr import (
    QrClinic,
    create_qr_clinic,
    wait_for,
)


@pytest.fixture
def clinic(stack: TestStack) -> QrClinic:
    clinic = create_qr_clinic(stack.sandbox_url("monobank"), stack.sandbox_url("checkbox"))
    clinic.open_shift()
    return clinic


def qr_items(clinic_id: str) -> list[dict]:
    table = boto3.resource("dynamodb").Table("AppointmentsTable")
    return [i for i in table.scan()["Items"] if i["pk"] == f"CLINIC#{clinic_id}" and str(i["sk"]).startswith("QR")]


def paid_but_undelivered(clinic: QrClinic) -> tuple[str, dict]:
    invoice_id = clinic.put_amount(clinic.merchant_register(), 85000)["invoice_id"]
    clinic.monobank.pay(invoice_id, deliver=False)
    return invoice_id, clinic.monobank.event(invoice_id, "success")


def test_a_forged_webhook_is_a_401_and_changes_nothing(clinic: QrClinic) -> None:
    # Given a genuine paid event, and an attacker with their own P-256 key
    invoice_id, success = paid_but_undelivered(clinic)
    before = qr_items(clinic.clinic_id)
    forger = ec.generate_private_key(ec.SECP256R1())
    forged_sign = base64.b64encode(forger.sign(success["body"].encode(), ec.ECDSA(hashes.SHA256()))).decode()
    # When
    answers = [clinic.send_webhook(success["body"], forged_sign), clinic.send_webhook(success["body"], None),
               clinic.send_webhook(success["body"], "bm90IGEgc2lnbmF0dXJl")]
    # Then
    assert [a.status for a in answers] == [401, 401, 401]
    assert all(a.json()["error"]["code"] == "invalid_signature" for a in answers)
    assert qr_items(clinic.clinic_id) == before and clinic.report() == []


def test_a_tampered_body_with_a_genuine_signature_is_a_401_and_changes_nothing(clinic: QrClinic) -> None:
    invoice_id, success = paid_but_undelivered(clinic)
    before = qr_items(clinic.clinic_id)
    tampered = success["body"].replace('"amount": 85000', '"amount": 100', 1)
    assert tampered != success["body"]
    compact = json.dumps(json.loads(success["body"]), separators=(",", ":"))
    assert clinic.send_webhook(tampered, success["x_sign"]).status == 401
    assert clinic.send_webhook(compact, success["x_sign"]).status == 401  # same JSON, other bytes
    assert clinic.send_webhook(success["body"] + "\n", success["x_sign"]).status == 401
    assert qr_items(clinic.clinic_id) == before


def test_a_webhook_for_an_unknown_clinic_is_a_404(clinic: QrClinic) -> None:
    _, success = paid_but_undelivered(clinic)
    answer = ApiClient().post("/webhooks/monobank/cl_nobody", raw=success["body"].encode(),
                              headers={"X-Sign": success["x_sign"], "Content-Type": "application/json"})
    assert answer.status == 404


def test_after_monobank_rotates_its_key_the_new_key_is_fetched_once_and_webhooks_verify(clinic: QrClinic) -> None:
    # Given our cached key from a first webhook
    first, success = paid_but_undelivered(clinic)
    assert clinic.send_webhook(success["body"], success["x_sign"]).status == 200
    # When monobank rotates and signs the next one with the new key
    clinic.monobank.rotate_key()
    second, success2 = paid_but_undelivered(clinic)
    answer = clinic.send_webhook(success2["body"], success2["x_sign"])
    # Then
    assert answer.status == 200 and answer.json()["fiscal_status"] == "fiscalized"


def test_an_old_processing_delivered_after_success_does_not_undo_it(clinic: QrClinic) -> None:
    # Given monobank delivered success first
    invoice_id, success = paid_but_undelivered(clinic)
    processing = clinic.monobank.event(invoice_id, "processing")
    assert clinic.send_webhook(success["body"], success["x_sign"]).status == 200
    # When the older processing arrives (the sandbox redelivers it, signed, to our URL)
    clinic.monobank.redeliver(processing["event_id"])
    wait_for(lambda: any(d["status"] == "processing" and d["status_code"] == 200
                         for d in clinic.monobank.deliveries(invoice_id)))
    # Then the invoice is still paid and the payment untouched
    [invoice] = [i for i in qr_items(clinic.clinic_id) if i["sk"] == f"QRINV#{invoice_id}"]
    assert invoice["status"] == "success"
    assert clinic.payment(f"qrp_{invoice_id}")["fiscal_status"] == "fiscalized"


def test_a_failed_payment_makes_no_qr_payment_and_frees_the_register(clinic: QrClinic) -> None:
    qr_id = clinic.merchant_register()
    invoice_id = clinic.put_amount(qr_id, 4000)["invoice_id"]
    clinic.monobank.pay(invoice_id, action="fail")
    wait_for(lambda: len([d for d in clinic.monobank.deliveries(invoice_id) if d["status_code"] == 200]) == 2)
    assert clinic.report() == []
    register = next(r for r in clinic.staff().get(clinic.path("/qr-registers")).json()["registers"] if r["qr_id"] == qr_id)
    assert register["current_invoice_id"] is None


def test_an_invoice_that_is_not_a_qr_one_goes_to_the_link_payments(clinic: QrClinic) -> None:
    # Given a plain invoice (what /pay/{token} makes), not on any register
    created = clinic.monobank.api("POST", "/api/merchant/invoice/create", json={
        "amount": 5000, "ccy": 980, "merchantPaymInfo": {"reference": "ap_unknown", "destination": "Прийом"}}).json()
    clinic.monobank.pay(created["invoiceId"], deliver=False)
    success = clinic.monobank.event(created["invoiceId"], "success")
    # When
    answer = clinic.send_webhook(success["body"], success["x_sign"])
    # Then it is handed to the payment-events use case, and no QR payment appears
    assert answer.status == 200 and answer.json()["kind"] == "link"
    assert clinic.report() == []


def test_a_signed_checkbox_receipt_event_completes_the_payment_waiting_for_it(clinic: QrClinic) -> None:
    # Given a payment waiting for its receipt (shift closed), and a Checkbox webhook secret stored.
    # The admin API has no field for it yet, so the secret is written straight to Secrets Manager.
    assert clinic.staff().post(clinic.path("/fiscal/shift/close")).status == 200
    invoice_id, success = paid_but_undelivered(clinic)
    assert clinic.send_webhook(success["body"], success["x_sign"]).json()["fiscal_status"] == "pending"
    receipt_id = next(i for i in qr_items(clinic.clinic_id) if i["sk"] == f"QRPAY#qrp_{invoice_id}")["receipt_id"]
    secret = "cbx_whsec_integration_01"
    secrets.store_credentials(clinic.clinic_id, "checkbox", {"license_key": clinic.checkbox.license_key,
                                                             "pin_code": "1234", "webhook_secret": secret})
    body = json.dumps({"request_id": "r1", "action": "RECEIPT_STATUS", "payload": {
        "id": receipt_id, "type": "SELL", "status": "DONE", "fiscal_code": "TEST0000000777",
        "tax_url": "https://check.example/TEST0000000777"}}).encode()
    # When a tampered copy, then the genuine one, arrive
    url = f"/webhooks/checkbox/{clinic.clinic_id}"
    tampered = ApiClient().post(url, raw=body.replace(b"0777", b"0778"),
                                headers={"x-request-signature": compute_signature(secret, body)})
    genuine = ApiClient().post(url, raw=body, headers={"x-request-signature": compute_signature(secret, body)})
    # Then
    assert tampered.status == 401
    assert genuine.status == 200 and genuine.json()["outcome"] == "applied"
    row = clinic.payment(f"qrp_{invoice_id}")
    assert row["fiscal_status"] == "fiscalized" and row["receipt"]["fiscal_code"] == "TEST0000000777"
