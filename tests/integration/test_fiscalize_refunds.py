"""QR refunds and return receipts end to end: the fiscalize and webhook handlers against moto, the
monobank and Checkbox sandboxes (issue 9 items 1, 2, 6, 8)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from clinicpay.domain.errors import ClinicpayError
from clinicpay.domain.money import Money
from clinicpay.providers.registry import fiscal_register, qr_acquirer
from clinicpay.repositories.qr import QrRepository
from clinicpay.settings import get_settings
from clinicpay.usecases import fiscalization, monobank_webhook, qr_refunds
from local import apigw
from tests.support.env import TestStack
from tests.support.qr import QrClinic, create_qr_clinic, wait_for

PAID = 85000


@pytest.fixture
def clinic(stack: TestStack) -> QrClinic:
    clinic = create_qr_clinic(stack.sandbox_url("monobank"), stack.sandbox_url("checkbox"))
    clinic.open_shift()
    return clinic


def paid(clinic: QrClinic, amount: int = PAID) -> tuple[str, str]:
    invoice_id = clinic.put_amount(clinic.merchant_register(), amount, description="Консультація")["invoice_id"]
    clinic.monobank.pay(invoice_id)
    return invoice_id, clinic.wait_fiscalized(f"qrp_{invoice_id}")["payment_id"]


def kinds(clinic: QrClinic) -> list[tuple[str, int]]:
    return sorted((r["type"], r["total_sum"]) for r in clinic.checkbox.receipts() if r["status"] == "DONE")


def settled(clinic: QrClinic, payment_id: str, status: str = "refunded") -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        row = clinic.payment(payment_id)
        returns = [d for d in row["fiscal_documents"] if d["type"] == "return"]
        ready = row["refund_status"] == status and all(d["fiscal_status"] == "fiscalized" for d in returns)
        return row if ready and not row["refund_pending"]["amount"] else None

    return dict(wait_for(done, timeout=20))


def test_staff_refund_everything_and_the_return_receipt_refers_to_the_sale(clinic: QrClinic) -> None:
    # Given a paid, fiscalized QR payment
    invoice_id, payment_id = paid(clinic)
    # When staff refund it (monobank answers `processing`, then its webhook says `reversed`)
    answer = clinic.refund(payment_id)
    # Then
    assert answer.status == 202, answer.body
    body = answer.json()
    assert body["refund"]["status"] == "pending" and body["payment"]["refund_pending"]["amount"] == PAID
    row = settled(clinic, payment_id)
    assert row["amount_refunded"] == {"amount": PAID, "currency": "UAH"} and row["refunded"] is True
    [cancel] = clinic.monobank.status(invoice_id)["cancelList"]
    assert cancel["extRef"] == body["refund"]["refund_id"] and cancel["amount"] == PAID
    assert clinic.monobank.status(invoice_id)["status"] == "reversed"
    sale, back = sorted(clinic.checkbox.receipts(), key=lambda r: r["serial"])
    assert (sale["type"], back["type"]) == ("SELL", "RETURN")
    assert back["related_receipt_id"] == sale["id"] == row["receipt"]["id"]
    assert back["total_sum"] == sale["total_sum"] == PAID and all(g["is_return"] for g in back["goods"])
    [document] = [d for d in row["fiscal_documents"] if d["type"] == "return"]
    assert document["receipt"]["id"] == back["id"] and document["refund_id"] == body["refund"]["refund_id"]


def test_partial_refunds_each_get_their_return_and_never_pass_what_was_paid(clinic: QrClinic) -> None:
    invoice_id, payment_id = paid(clinic)
    assert clinic.refund(payment_id, 30000).status == 202
    settled(clinic, payment_id, "partially_refunded")
    assert clinic.refund(payment_id, 50000).status == 202
    too_much = clinic.refund(payment_id, 5001)
    assert too_much.status == 409 and too_much.json()["error"]["code"] == "refund_exceeds_balance"
    assert clinic.refund(payment_id).status == 202  # the rest: 50.00
    row = settled(clinic, payment_id)
    assert kinds(clinic) == [("RETURN", 5000), ("RETURN", 30000), ("RETURN", 50000), ("SELL", PAID)]
    assert row["refundable"]["amount"] == 0
    nothing = clinic.refund(payment_id)
    assert nothing.status == 409 and nothing.json()["error"]["code"] == "nothing_to_refund"
    assert len(clinic.monobank.status(invoice_id)["cancelList"]) == 3


def test_a_refund_monobank_refuses_is_a_502_and_gives_the_reservation_back(clinic: QrClinic) -> None:
    _, payment_id = paid(clinic)
    clinic.monobank.control("cancel-next", {"outcome": "failure", "answer": "final"})
    refused = clinic.refund(payment_id, 10000, key="dialog-a")
    assert refused.status == 502 and refused.json()["error"]["code"] == "refund_refused"
    row = clinic.payment(payment_id)
    assert row["refund_pending"]["amount"] == 0 and row["refundable"]["amount"] == PAID
    # the same dialog again is the same refused refund (monobank saw that extRef); a new one goes through
    again = clinic.refund(payment_id, 10000, key="dialog-a")
    assert again.status == 502 and again.json()["error"]["code"] == "refund_refused"
    assert clinic.refund(payment_id, 10000, key="dialog-b").status == 202
    row = settled(clinic, payment_id, "partially_refunded")
    assert sorted(r["status"] for r in row["refunds"]) == ["failed", "succeeded"]
    assert kinds(clinic) == [("RETURN", 10000), ("SELL", PAID)]


def test_a_refund_whose_answer_was_lost_stays_pending_until_monobanks_webhook_settles_it(clinic: QrClinic) -> None:
    _, payment_id = paid(clinic)
    clinic.monobank.control("fail-next", {"status": "timeout", "count": 1, "seconds": 4})
    answer = clinic.refund(payment_id, 20000)
    assert answer.status == 202 and answer.json()["refund"]["status"] == "pending"  # undecided, never failed
    row = settled(clinic, payment_id, "partially_refunded")
    assert row["amount_refunded"]["amount"] == 20000 and kinds(clinic) == [("RETURN", 20000), ("SELL", PAID)]


def test_a_return_receipt_the_tax_service_refused_waits_for_a_person_and_fiscalize_retries_it(
        clinic: QrClinic) -> None:
    _, payment_id = paid(clinic)
    clinic.checkbox.error_next(1)  # the return receipt ends in ERROR
    assert clinic.refund(payment_id, 10000).status == 202
    row = wait_for(lambda: (r := clinic.payment(payment_id))["fiscal_documents"][-1]["fiscal_status"] == "failed" and r)
    assert row["fiscal_documents"][-1]["last_error"].startswith("receipt_error")
    # When a person asks for the payment's receipts again
    again = clinic.fiscalize(payment_id)
    # Then the return is made (with a new receipt id: the ERROR one is no fiscal document)
    assert again.status == 200 and again.json()["returns"] == ["fiscalized"]
    assert kinds(clinic) == [("RETURN", 10000), ("SELL", PAID)]
    nothing_left = clinic.fiscalize(payment_id)
    assert nothing_left.status == 409 and nothing_left.json()["error"]["code"] == "already_fiscalized"


def test_twenty_refund_clicks_at_once_give_the_money_back_once(clinic: QrClinic) -> None:
    """At the use-case level, in real threads (the local HTTP layer runs handlers one at a time):
    twenty clicks, each its own Idempotency-Key, against moto and the monobank sandbox."""
    invoice_id, payment_id = paid(clinic)
    store = QrRepository(get_settings().app_table)
    start = threading.Barrier(20)

    def click(n: int) -> str:
        start.wait()
        try:
            return qr_refunds.refund_payment(
                store, lambda: qr_acquirer(clinic.clinic_id), clinic.clinic_id, payment_id,
                refund_id=qr_refunds.refund_id_for(clinic.clinic_id, payment_id, f"click-{n}"), amount=None,
                reason=None, now=datetime.now(UTC)).refund.status
        except ClinicpayError as refused:
            return refused.code

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(click, range(20)))
    assert outcomes.count("pending") == 1, outcomes
    assert set(outcomes) - {"pending"} <= {"refund_exceeds_balance", "nothing_to_refund"}
    settled(clinic, payment_id)
    assert len(clinic.monobank.status(invoice_id)["cancelList"]) == 1
    assert kinds(clinic) == [("RETURN", PAID), ("SELL", PAID)]


def test_one_dialog_clicked_twenty_times_is_one_refund(clinic: QrClinic) -> None:
    invoice_id, payment_id = paid(clinic)
    answers = [clinic.refund(payment_id, 25000, key="dialog-7") for _ in range(20)]
    assert {a.status for a in answers} == {202}
    assert len({a.json()["refund"]["refund_id"] for a in answers}) == 1
    settled(clinic, payment_id, "partially_refunded")
    assert len(clinic.monobank.status(invoice_id)["cancelList"]) == 1


def test_twenty_duplicate_reversed_webhooks_the_daily_check_and_a_manual_fiscalize_make_one_return(
        clinic: QrClinic) -> None:
    # Given a payment refunded in monobank's cabinet, whose `reversed` webhook we hold
    invoice_id, payment_id = paid(clinic)
    clinic.monobank.cabinet_refund(invoice_id, deliver=False)
    reversed_ = clinic.monobank.event(invoice_id, "reversed")
    clinic.checkbox.fail_next("timeout", 1, path="/receipts/sell", seconds=1.0)  # slow: everyone overlaps
    store = QrRepository(get_settings().app_table)
    start = threading.Barrier(22)

    def webhook(_: int) -> dict[str, Any]:
        start.wait()
        return monobank_webhook.handle(clinic.clinic_id, reversed_["body"].encode(), {"X-Sign": reversed_["x_sign"]})

    def after_the_refund_exists(action: Any) -> Any:
        start.wait()
        wait_for(lambda: store.refunds(clinic.clinic_id, payment_id), interval=0.02)
        return action()

    # When
    with ThreadPoolExecutor(max_workers=22) as pool:
        hooks = [pool.submit(webhook, n) for n in range(20)]
        job = pool.submit(after_the_refund_exists, lambda: apigw.invoke_job("unfiscalized-check"))
        person = pool.submit(after_the_refund_exists, lambda: fiscalization.fiscalize_returns(
            store, fiscal_register, store.get_payment(clinic.clinic_id, payment_id),  # type: ignore[arg-type]
            clock=lambda: datetime.now(UTC)))
        answers = [h.result() for h in hooks]
        job.result()
        person.result()
    # Then: one refund, one return receipt, for the sale
    assert all(a["payment_id"] == payment_id for a in answers)
    row = settled(clinic, payment_id)
    assert len(row["refunds"]) == 1 and row["refunds"][0]["source"] == "monobank"
    assert kinds(clinic) == [("RETURN", PAID), ("SELL", PAID)]
    # and later deliveries of the same event change nothing
    assert clinic.send_webhook(reversed_["body"], reversed_["x_sign"]).status == 200
    assert kinds(clinic) == [("RETURN", PAID), ("SELL", PAID)]


def test_a_payment_reversed_before_its_sale_receipt_ends_with_a_sale_and_its_return(stack: TestStack) -> None:
    # Given no open shift: the payment waits for its sale receipt; then monobank reverses it
    clinic = create_qr_clinic(stack.sandbox_url("monobank"), stack.sandbox_url("checkbox"))
    invoice_id = clinic.put_amount(clinic.merchant_register(), PAID)["invoice_id"]
    clinic.monobank.pay(invoice_id)
    clinic.monobank.cabinet_refund(invoice_id, amount=20000)
    wait_for(lambda: clinic.payment(f"qrp_{invoice_id}")["amount_refunded"]["amount"] == 20000)
    clinic.monobank.cabinet_refund(invoice_id)  # and the rest
    row = wait_for(lambda: (r := clinic.payment(f"qrp_{invoice_id}"))["refund_status"] == "refunded" and r)
    # Then both wait, visibly, with no receipt made
    assert row["fiscal_status"] == "pending" and clinic.checkbox.receipts() == []
    assert {d["fiscal_status"] for d in row["fiscal_documents"]} == {"pending"}
    # When the shift opens
    opened = clinic.open_shift()
    # Then the sale of what was paid, and the returns: together what the clinic kept (nothing)
    assert opened["still_pending"] == 0
    row = settled(clinic, f"qrp_{invoice_id}")
    assert kinds(clinic) == [("RETURN", 20000), ("RETURN", 65000), ("SELL", PAID)]
    sale = next(r for r in clinic.checkbox.receipts() if r["type"] == "SELL")
    assert all(r["related_receipt_id"] == sale["id"] for r in clinic.checkbox.receipts() if r["type"] == "RETURN")


def test_a_clinic_whose_receipts_monobank_makes_gets_none_of_ours_and_sees_monobanks(clinic: QrClinic) -> None:
    # Given monobank fiscalizes this merchant's payments itself, and the clinic says so
    clinic.monobank.fiscalize_itself("checkbox")
    clinic.settings(fiscalization="monobank")
    invoice_id = clinic.put_amount(clinic.merchant_register(), PAID)["invoice_id"]
    clinic.monobank.pay(invoice_id)
    payment_id = f"qrp_{invoice_id}"
    row = wait_for(lambda: clinic.find_payment(payment_id))
    assert row["fiscal_status"] == "external" and row["fiscalized_by"] == "monobank"
    # When staff refund part of it (monobank needs `items` to make its return receipt)
    assert clinic.refund(payment_id, 30000).status == 202
    row = wait_for(lambda: (r := clinic.payment(payment_id))["refund_status"] == "partially_refunded" and r)
    # Then no receipt of ours at all, and monobank's own are shown
    assert clinic.checkbox.receipts() == []
    assert [(c["type"], c["fiscalizationSource"]) for c in clinic.monobank.fiscal_checks(invoice_id)] == [
        ("sale", "checkbox"), ("return", "checkbox")]
    assert [(c["type"], c["source"]) for c in row["provider_checks"]] == [("sale", "checkbox"), ("return", "checkbox")]
    assert [d["fiscal_status"] for d in row["fiscal_documents"]] == ["external", "external"]


def test_a_payment_monobank_fiscalized_unannounced_is_detected_and_not_fiscalized_twice(clinic: QrClinic) -> None:
    # Given the clinic believes it fiscalizes through us, but a PRRO link is active at monobank
    clinic.monobank.fiscalize_itself("monopay")
    _invoice_id, payment_id = paid_detected(clinic)
    row = clinic.payment(payment_id)
    assert row["fiscal_status"] == "external" and row["receipt"]["source"] == "monopay"
    assert clinic.checkbox.receipts() == []


def paid_detected(clinic: QrClinic) -> tuple[str, str]:
    invoice_id = clinic.put_amount(clinic.merchant_register(), PAID)["invoice_id"]
    clinic.monobank.pay(invoice_id)
    payment_id = f"qrp_{invoice_id}"
    wait_for(lambda: (r := clinic.find_payment(payment_id)) and r["fiscal_status"] != "pending")
    return invoice_id, payment_id


def test_status_bodies_without_modified_date_are_accepted_and_applied_once(clinic: QrClinic) -> None:
    clinic.monobank.control("omit-modified-date", {"omit": True})
    invoice_id = clinic.put_amount(clinic.merchant_register(), PAID)["invoice_id"]
    clinic.monobank.pay(invoice_id)  # waits for monobank to get a 200 for each webhook
    row = clinic.wait_fiscalized(f"qrp_{invoice_id}")
    assert "modifiedDate" not in clinic.monobank.status(invoice_id)
    assert all(d["status_code"] == 200 for d in clinic.monobank.deliveries(invoice_id))
    success = clinic.monobank.event(invoice_id, "success")
    assert clinic.send_webhook(success["body"], success["x_sign"]).status == 200
    assert len(clinic.checkbox.receipts()) == 1 and row["amount"]["amount"] == PAID


def test_the_checkbox_sandbox_refuses_returns_like_checkbox(clinic: QrClinic, stack: TestStack) -> None:
    """A return naming no sale of this register, or giving back more than the sale, is refused."""
    paid(clinic)
    sale = clinic.checkbox.receipts()[0]
    base = stack.sandbox_url("checkbox")
    headers = {"X-Client-Name": "test", "X-License-Key": clinic.checkbox.license_key}
    token = requests.post(f"{base}/api/v1/cashier/signinPinCode", json={"pin_code": "1"}, headers=headers,
                          timeout=10).json()["access_token"]

    def sell_return(related: str, value: int) -> requests.Response:
        body = {"id": "0b0e1c2d-3f4a-4b5c-8d6e-7f8091a2b3c" + str(value % 10), "related_receipt_id": related,
                "goods": [{"good": {"code": sale["goods"][0]["good"]["code"], "name": "x", "price": value},
                           "quantity": 1000, "is_return": True}],
                "payments": [{"type": "CASHLESS", "value": value}]}
        return requests.post(f"{base}/api/v1/receipts/sell", json=body, timeout=10,
                             headers={**headers, "Authorization": f"Bearer {token}"})

    unknown = sell_return("5a5e1c2d-3f4a-4b5c-8d6e-7f8091a2b3c4", 100)
    above = sell_return(sale["id"], PAID + 1)
    assert unknown.status_code == 400 and "не знайдено" in unknown.json()["message"]
    assert above.status_code == 400 and "перевищує" in above.json()["message"]
    assert sell_return(sale["id"], PAID).status_code == 201
    assert sell_return(sale["id"], 1).status_code == 400  # nothing left to return


def test_the_monobank_sandbox_refuses_cancels_like_monobank(clinic: QrClinic) -> None:
    invoice_id, _ = paid(clinic)
    mono = clinic.monobank
    assert mono.api("POST", "/api/merchant/invoice/cancel", json={"invoiceId": invoice_id, "amount": PAID + 1}
                    ).status_code == 400
    assert mono.api("POST", "/api/merchant/invoice/cancel", json={"invoiceId": "p2_nope"}).status_code == 404
    mono.fiscalize_itself("checkbox")
    no_items = mono.api("POST", "/api/merchant/invoice/cancel", json={"invoiceId": invoice_id, "amount": 100})
    assert no_items.status_code == 400 and "items" in no_items.json()["errText"]
    ok = mono.api("POST", "/api/merchant/invoice/cancel", json={
        "invoiceId": invoice_id, "amount": 100, "extRef": "r1", "items": [{"name": "x", "qty": 1, "sum": 100, "code": "c"}]})
    assert ok.status_code == 200 and ok.json()["status"] == "processing"
    again = mono.api("POST", "/api/merchant/invoice/cancel", json={
        "invoiceId": invoice_id, "amount": 100, "extRef": "r1", "items": [{"name": "x", "qty": 1, "sum": 100, "code": "c"}]})
    assert again.status_code == 400


def test_refund_amounts_are_money(clinic: QrClinic) -> None:
    _, payment_id = paid(clinic)
    for body in ({"amount": {"amount": 10.5, "currency": "UAH"}}, {"amount": {"amount": 100, "currency": "XXX"}},
                 {"amount": 100}, {"surprise": True}):
        answer = clinic.staff().post(clinic.path(f"/qr-payments/{payment_id}/refunds"), json=body)
        assert answer.status == 422, (body, answer.body)
    euros = clinic.staff().post(clinic.path(f"/qr-payments/{payment_id}/refunds"),
                                json={"amount": Money(amount=100, currency="EUR").model_dump()})
    assert euros.status == 422 and euros.json()["error"]["details"][0]["field"] == "amount.currency"
    assert clinic.payment(payment_id)["refund_status"] == "none"
    unknown = clinic.refund("qrp_nope")
    assert unknown.status == 404
