"""The monobank and Checkbox sandboxes keep the providers' contracts (paths, fields, units, statuses,
error shapes, signatures), checked here without our client code, so one bug cannot pass both sides."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.env import TestStack
from tests.support.qr import wait_for

T = 15


@pytest.fixture
def mono(stack: TestStack) -> str:
    return stack.sandbox_url("monobank")


@pytest.fixture
def cbx(stack: TestStack) -> str:
    return stack.sandbox_url("checkbox")


def m(method: str, url: str, token: str = "tok_sandbox_test", **kwargs: object) -> requests.Response:
    return requests.request(method, url, headers={"X-Token": token}, timeout=T, **kwargs)  # type: ignore[arg-type]


# --- monobank ----------------------------------------------------------------------------------------

def test_monobank_refuses_a_missing_or_revoked_token_with_its_error_shape(mono: str) -> None:
    for token in ("", "invalid_token"):
        answer = m("GET", f"{mono}/api/merchant/qr/list", token=token)
        assert answer.status_code == 403 and answer.json() == {"errCode": "FORBIDDEN", "errText": "forbidden"}


@pytest.mark.parametrize("body", [
    {"amount": 42.5, "ccy": 980}, {"amount": -1}, {"amount": 100, "ccy": "UAH"}, {"amount": 100, "surprise": 1},
    {"amount": 4200, "merchantPaymInfo": {"basketOrder": [{"name": "x", "qty": 2, "sum": 2000, "code": "c"}]}},
])
def test_monobank_refuses_bad_invoices_with_bad_request(mono: str, body: dict) -> None:
    answer = m("POST", f"{mono}/api/merchant/invoice/create", json=body)
    assert answer.status_code == 400 and answer.json()["errCode"] == "BAD_REQUEST"


def test_monobank_publishes_a_p256_key_and_signs_each_change_with_it_in_order(mono: str, cbx: str) -> None:
    # Given a webhook receiver that answers any POST with 200 (a harmless Checkbox sandbox control;
    # the monobank sandbox's events and deliveries log show what was sent)
    key = serialization.load_pem_public_key(base64.b64decode(m("GET", f"{mono}/api/merchant/pubkey").json()["key"]))
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    created = m("POST", f"{mono}/api/merchant/invoice/create", json={
        "amount": 4200, "ccy": 980, "webHookUrl": f"{cbx}/_control/clear-faults",
        "merchantPaymInfo": {"reference": "r1", "destination": "d",
                             "basketOrder": [{"name": "x", "qty": 2, "sum": 2100, "code": "c"}]}}).json()
    assert created["invoiceId"].startswith("p2_") and created["pageUrl"].endswith(created["invoiceId"])
    # When paid
    requests.post(f"{mono}/_control/invoices/{created['invoiceId']}/pay", json={"deliver": True}, timeout=T)
    # Then two changes, each a signed body with a later modifiedDate; success carries paymentInfo
    events = requests.get(f"{mono}/_control/events", params={"invoice_id": created["invoiceId"]}, timeout=T).json()
    bodies = [json.loads(e["body"]) for e in events["events"]]
    assert [b["status"] for b in bodies] == ["processing", "success"]
    dates = [datetime.fromisoformat(b["modifiedDate"].replace("Z", "+00:00")) for b in bodies]
    assert dates[0] < dates[1]
    assert set(bodies[1]["paymentInfo"]) >= {"maskedPan", "approvalCode", "rrn", "tranId"}
    for event in events["events"]:
        key.verify(base64.b64decode(event["x_sign"]), event["body"].encode(), ec.ECDSA(hashes.SHA256()))
    deliveries = wait_for(lambda: len(d := requests.get(f"{mono}/_control/deliveries", timeout=T).json()["deliveries"]) >= 2
                          and d)
    assert [d["status"] for d in deliveries] == ["processing", "success"]
    # And the invoice status answers the same body
    status = m("GET", f"{mono}/api/merchant/invoice/status", params={"invoiceId": created["invoiceId"]}).json()
    assert status["status"] == "success" and status["amount"] == 4200 and status["ccy"] == 980


def test_monobank_tries_a_change_three_times_until_it_gets_200(mono: str, stack: TestStack) -> None:
    created = m("POST", f"{mono}/api/merchant/invoice/create", json={
        "amount": 100, "webHookUrl": f"{stack.base_url}/_local/nowhere"}).json()
    requests.post(f"{mono}/_control/invoices/{created['invoiceId']}/pay", json={}, timeout=T)
    deliveries = wait_for(lambda: len(d := requests.get(f"{mono}/_control/deliveries", timeout=T).json()["deliveries"]) >= 6
                          and d)
    assert [(d["status"], d["attempt"]) for d in deliveries] == [
        ("processing", 1), ("processing", 2), ("processing", 3), ("success", 1), ("success", 2), ("success", 3)]


def test_a_qr_register_shows_the_amount_put_on_it_and_clears_when_reset(mono: str) -> None:
    registers = m("GET", f"{mono}/api/merchant/qr/list").json()["list"]
    register = next(r for r in registers if r["amountType"] == "merchant")
    assert "Суму ще не встановлено" in requests.get(register["pageUrl"], timeout=T).text
    created = m("POST", f"{mono}/api/merchant/invoice/create", json={"amount": 85000, "qrId": register["qrId"]}).json()
    details = m("GET", f"{mono}/api/merchant/qr/details", params={"qrId": register["qrId"]}).json()
    assert details == {"shortQrId": register["shortQrId"], "invoiceId": created["invoiceId"], "amount": 85000,
                       "ccy": 980}
    page = requests.get(register["pageUrl"], timeout=T).text
    assert "850.00" in page and 'id="pay"' in page and 'id="fail"' in page
    assert m("POST", f"{mono}/api/merchant/qr/reset-amount", json={"qrId": register["qrId"]}).status_code == 200
    assert m("GET", f"{mono}/api/merchant/qr/details", params={"qrId": register["qrId"]}).json() == {
        "shortQrId": register["shortQrId"]}
    client = next(r for r in registers if r["amountType"] == "client")
    refused = m("POST", f"{mono}/api/merchant/invoice/create", json={"amount": 100, "qrId": client["qrId"]})
    assert refused.status_code == 400


# --- Checkbox -----------------------------------------------------------------------------------------

def cb(method: str, url: str, token: str | None = None, license_key: str = "lic_sandbox",
       **kwargs: object) -> requests.Response:
    headers = {"X-Client-Name": "tests", "X-Client-Version": "1", "X-License-Key": license_key}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, url, headers=headers, timeout=T, **kwargs)  # type: ignore[arg-type]


def signin(cbx: str) -> str:
    answer = cb("POST", f"{cbx}/api/v1/cashier/signinPinCode", json={"pin_code": "0000"})
    assert answer.status_code == 200 and answer.json()["token_type"] == "bearer"
    return str(answer.json()["access_token"])


SALE = {"goods": [{"good": {"code": "c1", "name": "Консультація", "price": 42500}, "quantity": 2000}],
        "payments": [{"type": "CASHLESS", "value": 85000, "card_mask": "444403******1902"}]}


def test_checkbox_wants_its_client_headers_and_a_token(cbx: str) -> None:
    missing = requests.post(f"{cbx}/api/v1/cashier/signinPinCode", json={"pin_code": "1"}, timeout=T)
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["header", "X-Client-Name"]
    assert cb("GET", f"{cbx}/api/v1/cashier/shift", token="nope").status_code == 401


def test_checkbox_shifts_go_created_opened_closing_closed_and_sales_need_an_open_one(cbx: str) -> None:
    token = signin(cbx)
    refused = cb("POST", f"{cbx}/api/v1/receipts/sell", token, json=SALE)
    assert refused.status_code == 400 and refused.json() == {"message": "Зміну не відкрито"}
    assert cb("POST", f"{cbx}/api/v1/shifts", token, json={}).json()["status"] == "CREATED"
    assert cb("GET", f"{cbx}/api/v1/cashier/shift", token).json()["status"] == "OPENED"
    assert cb("POST", f"{cbx}/api/v1/shifts/close", token, json={}).json()["status"] == "CLOSING"
    assert cb("GET", f"{cbx}/api/v1/cashier/shift", token).json() is None  # closed: no active shift


def test_checkbox_makes_one_receipt_per_id_done_on_the_next_read(cbx: str) -> None:
    token = signin(cbx)
    cb("POST", f"{cbx}/api/v1/shifts", token, json={})
    cb("GET", f"{cbx}/api/v1/cashier/shift", token)
    receipt_id = str(uuid.uuid4())
    first = cb("POST", f"{cbx}/api/v1/receipts/sell", token, json={**SALE, "id": receipt_id})
    again = cb("POST", f"{cbx}/api/v1/receipts/sell", token, json={**SALE, "id": receipt_id})
    assert first.status_code == 201 and first.json()["status"] == "CREATED" and first.json()["total_sum"] == 85000
    assert again.status_code == 400 and "message" in again.json()
    done = cb("GET", f"{cbx}/api/v1/receipts/{receipt_id}", token).json()
    assert done["status"] == "DONE" and done["fiscal_code"] and done["tax_url"]
    assert requests.get(done["tax_url"], timeout=T).status_code == 200
    assert requests.get(f"{cbx}/_control/licenses/lic_sandbox/receipts", timeout=T).json()["count"] == 1
    unbalanced = cb("POST", f"{cbx}/api/v1/receipts/sell", token, json={**SALE, "payments": [
        {"type": "CASHLESS", "value": 1}]})
    assert unbalanced.status_code == 400
    bad = cb("POST", f"{cbx}/api/v1/receipts/sell", token, json={**SALE, "goods": [
        {"good": {"code": "c", "name": "n", "price": 10.5}, "quantity": 1000}]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "price"


def test_checkbox_faults_answer_5xx_or_late(cbx: str) -> None:
    token = signin(cbx)
    requests.post(f"{cbx}/_control/fail-next", json={"status": 502, "count": 1, "path": "/cashier/shift"}, timeout=T)
    assert cb("GET", f"{cbx}/api/v1/cashier/shift", token).status_code == 502
    assert cb("GET", f"{cbx}/api/v1/cashier/shift", token).status_code == 200
    requests.post(f"{cbx}/_control/fail-next", json={"status": "timeout", "count": 1, "seconds": 2}, timeout=T)
    with pytest.raises(requests.Timeout):
        requests.get(f"{cbx}/api/v1/cashier/shift", timeout=0.5,
                     headers={"X-Client-Name": "t", "Authorization": f"Bearer {token}"})
