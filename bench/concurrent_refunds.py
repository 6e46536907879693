"""Concurrent refund clicks against moto and the Fintoc sandbox: how many refunds each race makes
and how much goes back, next to what was paid (issue 9).

    .venv/bin/python bench/concurrent_refunds.py [threads]

Each race starts from a fresh appointment paid 25 000 CLP through the Fintoc sandbox, whose refund
batch runs at once. Threads call the refund use case directly, as that many Lambda containers
would (the local HTTP server runs one handler at a time, so it cannot race).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers/shared/python"), str(ROOT)]

import requests  # noqa: E402

from clinicpay.domain.errors import ClinicpayError  # noqa: E402
from clinicpay.domain.money import Money  # noqa: E402
from clinicpay.providers.registry import refunding_gateway  # noqa: E402
from clinicpay.repositories.appointments import AppointmentRepository  # noqa: E402
from clinicpay.repositories.ledger import LedgerRepository  # noqa: E402
from clinicpay.usecases.refunds import RefundAsk, RefundDeps, request_refund  # noqa: E402
from tests.support.api import ApiClient  # noqa: E402
from tests.support.clinics import add_service, connect_fintoc, create_clinic  # noqa: E402
from tests.support.env import start_test_stack  # noqa: E402

PRICE = 25000
TABLE = "AppointmentsTable"


def paid_appointment(stack: Any, clinic: Any) -> str:
    starts = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    created = clinic.staff().post(clinic.path("/appointments"), json={
        "patient": {"id": "p1", "name": "Ana", "email": "ana@example.cl"}, "service_id": "consulta",
        "starts_at": starts}).json()
    checkout = ApiClient().get(f"/pay/{created['payment_link']['url'].rsplit('/', 1)[1]}").headers["Location"]
    requests.post(f"{checkout}/pay", allow_redirects=False, timeout=10)
    path = clinic.path(f"/appointments/{created['appointment_id']}")
    for _ in range(200):
        if clinic.staff().get(path).json()["payment_status"] == "paid":
            return str(created["appointment_id"])
        time.sleep(0.05)
    raise RuntimeError("not paid")


def race(stack: Any, clinic: Any, label: str, threads: int, ask: Any) -> None:
    appointment_id = paid_appointment(stack, clinic)
    fintoc = stack.sandbox_url("fintoc")
    before = {r["id"] for r in requests.get(f"{fintoc}/v1/refunds", headers={"Authorization": "sk_test_race"},
                                            timeout=10).json()}
    deps = RefundDeps(appointments=AppointmentRepository(TABLE), ledger=LedgerRepository(TABLE),
                      gateway_for=refunding_gateway)

    def one(n: int) -> str:
        try:
            return request_refund(deps, clinic.clinic_id, appointment_id, ask(n))[0].refund_id
        except ClinicpayError as error:
            return error.code

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        answers = list(pool.map(one, range(threads)))
    elapsed = time.perf_counter() - started
    made = [r for r in requests.get(f"{fintoc}/v1/refunds", headers={"Authorization": "sk_test_race"},
                                    timeout=10).json() if r["id"] not in before]
    refusals = Counter(a for a in answers if not a.startswith("rf_"))
    ids = {a for a in answers if a.startswith("rf_")}
    shown = {}
    for _ in range(100):
        shown = clinic.staff().get(clinic.path(f"/appointments/{appointment_id}")).json()
        if shown["amount_refunded"]["amount"] == sum(r["amount"] for r in made):
            break
        time.sleep(0.05)
    print(f"{label:<44} {threads} requests -> {len(ids)} refund id(s), {len(made)} refund(s) at Fintoc, "
          f"{sum(r['amount'] for r in made):>6} of {PRICE} given back (ledger: {shown['amount_refunded']['amount']}, "
          f"{shown['payment_status']}); refused: {dict(refusals) or '-'}; {elapsed:.2f} s")


def main() -> None:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    stack = start_test_stack()
    try:
        clinic = create_clinic()
        connect_fintoc(clinic, stack.sandbox_url("fintoc"), stack.base_url, "sk_test_race")
        clinic.admin().patch(clinic.path("/settings"), json={"default_gateway": "fintoc"})
        add_service(clinic, "consulta", PRICE)
        requests.post(f"{stack.sandbox_url('fintoc')}/_control/refunds/mode", json={"mode": "succeed"}, timeout=10)
        race(stack, clinic, "full refund, one Idempotency-Key", threads, lambda n: RefundAsk(idempotency_key="click"))
        race(stack, clinic, "full refund, no key", threads, lambda n: RefundAsk())
        race(stack, clinic, "full refund, a key per click", threads, lambda n: RefundAsk(idempotency_key=f"k{n}"))
        race(stack, clinic, "3 000 each, no key", threads,
             lambda n: RefundAsk(amount=Money(amount=3000, currency="CLP")))
    finally:
        stack.server.stop()
        stack.moto.stop()


if __name__ == "__main__":
    main()
