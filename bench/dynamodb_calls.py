"""DynamoDB calls per flow, counted at the botocore level against moto, next to the fewest possible.

    .venv/bin/python bench/dynamodb_calls.py

Flows: a staff member creates an appointment that gets a payment link (and its creation email);
the patient opens the link (the provider session is made and stored, with its watch); a signed
Fintoc `payment_intent.succeeded` webhook for the checkout session the patient opened marks it paid;
the same webhook delivered again; the patient opening the paid link (the receipt). The paid webhook
proves the session is ours (stored on the appointment when the patient opened the link) and the
amount is what that session asked inside the paying transaction's condition, so ownership costs no
extra call; the session also carries the ledger as it will be once paid, so the same transaction
moves `amount_paid` and the status without reading the appointment first.

The ledger (issue 9): staff refund part of a payment made through the Fintoc sandbox (Fintoc
answers `pending`); Fintoc's `refund.succeeded` settles it; a payment taken at the desk.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers/shared/python"), str(ROOT)]

import boto3  # noqa: E402

from tests.support.clinics import add_service, create_clinic  # noqa: E402
from tests.support.env import start_test_stack  # noqa: E402

calls: Counter[str] = Counter()


def count(event_name: str, **_: Any) -> None:
    calls[event_name.rsplit(".", 1)[-1]] += 1


def measured(label: str, fewest: int, why: str, action: Any, *, bound: str = "fewest") -> Any:
    calls.clear()
    result = action()
    total = sum(calls.values())
    detail = ", ".join(f"{op} x{n}" for op, n in sorted(calls.items()))
    print(f"{label:<34} {total:>3} calls ({bound} {fewest}: {why})\n{'':<34} {detail}")
    return result


def main() -> None:
    # Clients copy the session's event hooks when they are made, so register before any exists.
    boto3._get_default_session().events.register("before-call.dynamodb", count)
    stack = start_test_stack()
    try:
        clinic = create_clinic()
        secret = "whsec_bench"
        clinic.admin().put(clinic.path("/gateways/fintoc"), json={"secret_key": "sk_test_bench",
                                                                 "public_key": "pk_test_bench", "webhook_secret": secret})
        clinic.admin().patch(clinic.path("/settings"), json={"show_payment_link_in_email": True})
        add_service(clinic, "consulta", 25000)
        starts = (datetime.now(UTC) + timedelta(days=3)).isoformat()
        body = {"patient": {"id": "p1", "name": "Ana", "email": "ana@example.cl"}, "service_id": "consulta",
                "starts_at": starts}
        staff = clinic.staff()
        staff.get(clinic.path("/settings"))  # warm: key cache, clients

        created = measured("create appointment with link", 2,
                           "read clinic+settings+service+templates, write appointment+link+patient",
                           lambda: staff.post(clinic.path("/appointments"), json=body).json())
        from tests.support.api import ApiClient

        hook = ApiClient()
        # The patient opens the link: the Fintoc sandbox makes the checkout session we store.
        token = created["payment_link"]["url"].rsplit("/", 1)[1]
        opened = measured("open the link (/pay)", 6, "link, appointment, clinic, settings, gateways read; the "
                          "session stored with its reconciliation watch in one transaction",
                          lambda: hook.get(f"/pay/{token}"), bound="as before the watch")
        session_id = opened.headers["Location"].rsplit("/", 1)[1]
        metadata = {"clinic_id": clinic.clinic_id, "appointment_id": created["appointment_id"],
                    "checkout_session_id": session_id}
        event = json.dumps({"id": "evt_bench", "type": "payment_intent.succeeded", "mode": "test", "object": "event",
                            "created_at": datetime.now(UTC).isoformat(),
                            "data": {"id": "pi_bench", "object": "payment_intent", "status": "succeeded",
                                     "amount": 25000, "currency": "CLP", "metadata": metadata}}).encode()
        t = int(time.time())
        signature = hmac.new(secret.encode(), f"{t}.".encode() + event, hashlib.sha256).hexdigest()
        headers = {"Fintoc-Signature": f"t={t},v1={signature}", "Content-Type": "application/json"}
        path = f"/webhooks/fintoc/{clinic.clinic_id}"
        applied = measured("apply a paid webhook", 2, "event + appointment (condition: our session, our price) + "
                           "payment row in one transaction; one read for the receipt email",
                           lambda: hook.post(path, raw=event, headers=headers))
        assert applied.json()["outcomes"] == ["applied"], applied.body
        measured("same webhook delivered again", 1, "the conditional write that finds the event recorded",
                 lambda: hook.post(path, raw=event, headers=headers))
        page = measured("open the paid link (receipt)", 4, "link, appointment (consistent), clinic, clinic settings "
                        "(its website: the one read the receipt adds)", lambda: hook.get(f"/pay/{token}"))
        assert page.status == 200 and b'data-status="paid"' in page.body, page.status
        ledger_flows(stack, clinic, staff, body)
    finally:
        stack.server.stop()
        stack.moto.stop()


def ledger_flows(stack: Any, clinic: Any, staff: Any, body: dict[str, Any]) -> None:
    import requests

    from tests.support.api import ApiClient
    from tests.support.clinics import connect_fintoc

    fintoc = stack.sandbox_url("fintoc")
    connect_fintoc(clinic, fintoc, stack.base_url, "sk_test_bench_ledger")
    created = staff.post(clinic.path("/appointments"), json={**body, "appointment_id": "ap-bench-refund"}).json()
    token = created["payment_link"]["url"].rsplit("/", 1)[1]
    checkout = ApiClient().get(f"/pay/{token}").headers["Location"]
    requests.post(f"{checkout}/pay", allow_redirects=False, timeout=10)
    shown = f"/appointments/{created['appointment_id']}"
    for _ in range(100):
        if staff.get(clinic.path(shown)).json()["payment_status"] == "paid":
            break
        time.sleep(0.1)
    requests.post(f"{fintoc}/_control/hold", json={"hold": True}, timeout=10)
    asked = measured("refund asked by staff (Fintoc)", 4,
                     "read the appointment, read its payment rows, reserve: refund + payment row in one "
                     "transaction; keep Fintoc's refund id",
                     lambda: staff.post(clinic.path(f"{shown}/refunds"), json={"amount": {"amount": 5000,
                                                                                           "currency": "CLP"}}))
    assert asked.status == 201 and asked.json()["status"] == "pending", asked.body
    requests.post(f"{fintoc}/_control/refunds/{asked.json()['provider_refund_id']}/settle",
                  json={"status": "succeeded"}, timeout=10)
    endpoints = requests.get(f"{fintoc}/v1/webhook_endpoints", headers={"Authorization": "sk_test_bench_ledger"},
                             timeout=10).json()
    settled = next(e for e in requests.get(f"{fintoc}/_control/events", timeout=10).json()["events"]
                   if e["type"] == "refund.succeeded")
    measured("refund.succeeded settles it", 5,
             "read the payment row, the refund, the appointment; settle: refund + payment row + appointment + "
             "event in one transaction; one read for the patient's message",
             lambda: requests.post(f"{fintoc}/_control/deliver/{settled['id']}",
                                   json={"endpoint_id": endpoints[0]["id"]}, timeout=10))
    assert staff.get(clinic.path(shown)).json()["payment_status"] == "partially_refunded"
    desk = staff.post(clinic.path("/appointments"), json={**body, "appointment_id": "ap-bench-desk"}).json()
    measured("payment taken at the desk", 2,
             "read the appointment; payment row + appointment in one transaction",
             lambda: staff.post(clinic.path(f"/appointments/{desk['appointment_id']}/payments"),
                                json={"method": "desk", "amount": desk["balance_due"]}))


if __name__ == "__main__":
    main()
