"""Concurrent refund clicks never give back more than was paid, nor refund twice (issue 9).

Twenty threads race on the real conditional writes (moto) and the Fintoc sandbox, as twenty Lambda
containers would; then the same over HTTP.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from clinicpay.domain.errors import ClinicpayError
from clinicpay.domain.money import Money
from clinicpay.providers.registry import refunding_gateway
from clinicpay.repositories.appointments import AppointmentRepository
from clinicpay.repositories.ledger import LedgerRepository
from clinicpay.usecases.refunds import RefundAsk, RefundDeps, request_refund
from tests.integration.test_refunds import (
    FINTOC_KEY,
    appointment,
    book,
    clp,
    pay_link,
    payments,
    refund,
    refund_messages,
    wait_for,
)
from tests.support.clinics import ClinicKeys, add_service, connect_fintoc, create_clinic
from tests.support.env import TestStack

THREADS = 20
TABLE = "AppointmentsTable"


@pytest.fixture
def clinic(stack: TestStack) -> ClinicKeys:
    keys = create_clinic()
    connect_fintoc(keys, stack.sandbox_url("fintoc"), stack.base_url, FINTOC_KEY)
    keys.admin().patch(keys.path("/settings"), json={"default_gateway": "fintoc"})
    add_service(keys, "consulta", 25000)
    return keys


@pytest.fixture
def paid(stack: TestStack, clinic: ClinicKeys) -> str:
    requests.post(f"{stack.sandbox_url('fintoc')}/_control/refunds/mode", json={"mode": "succeed"}, timeout=10)
    created = book(clinic)
    pay_link(stack, clinic, created)
    return str(created["appointment_id"])


def deps(told: list[Any]) -> RefundDeps:
    return RefundDeps(appointments=AppointmentRepository(TABLE), ledger=LedgerRepository(TABLE),
                      gateway_for=refunding_gateway, notify=lambda *args: told.append(args))


def told_once(told: list[Any], times: int = 1) -> None:
    """The patient is told once per refund: by the call that settled it (`told`), or by the webhook
    that applied Fintoc's event (an email in the outbox)."""
    wait_for(lambda: len(told) + len(refund_messages()) >= times)
    time.sleep(0.5)  # and nothing more arrives
    assert len(told) + len(refund_messages()) == times


def at_fintoc(stack: TestStack) -> list[dict[str, Any]]:
    return list(requests.get(f"{stack.sandbox_url('fintoc')}/v1/refunds", headers={"Authorization": FINTOC_KEY},
                             timeout=10).json())


def race(clinic: ClinicKeys, appointment_id: str, asks: list[RefundAsk], told: list[Any]) -> list[Any]:
    def one(ask: RefundAsk) -> Any:
        try:
            return request_refund(deps(told), clinic.clinic_id, appointment_id, ask)[0]
        except ClinicpayError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(one, asks))


def test_twenty_clicks_with_one_idempotency_key_are_one_refund(stack: TestStack, clinic: ClinicKeys, paid: str) -> None:
    told: list[Any] = []
    results = race(clinic, paid, [RefundAsk(idempotency_key="click-42") for _ in range(THREADS)], told)
    assert len({r.refund_id for r in results}) == 1  # every click answered with the same refund
    assert len(at_fintoc(stack)) == 1
    shown = wait_for(lambda: (a := appointment(clinic, paid))["payment_status"] == "refunded" and a)
    assert shown["amount_refunded"] == clp(25000)
    told_once(told)


def test_twenty_full_refunds_without_a_key_refund_once_and_the_rest_find_nothing_left(
        stack: TestStack, clinic: ClinicKeys, paid: str) -> None:
    told: list[Any] = []
    results = race(clinic, paid, [RefundAsk() for _ in range(THREADS)], told)
    made = [r for r in results if not isinstance(r, str)]
    assert len(made) == 1 and made[0].amount == Money(amount=25000, currency="CLP")
    assert sorted({r for r in results if isinstance(r, str)}) == ["nothing_to_refund"]
    assert [r["amount"] for r in at_fintoc(stack)] == [25000]
    wait_for(lambda: appointment(clinic, paid)["payment_status"] == "refunded")
    told_once(told)


def test_twenty_partial_refunds_never_give_back_more_than_was_paid(stack: TestStack, clinic: ClinicKeys,
                                                                   paid: str) -> None:
    told: list[Any] = []
    results = race(clinic, paid, [RefundAsk(amount=Money(amount=3000, currency="CLP")) for _ in range(THREADS)], told)
    made = [r for r in results if not isinstance(r, str)]
    assert len(made) == 8  # 8 x 3 000 = 24 000 of 25 000; a ninth would be 27 000
    assert {r for r in results if isinstance(r, str)} == {"refund_exceeds_remaining"}
    assert sum(r["amount"] for r in at_fintoc(stack)) == 24000
    shown = wait_for(lambda: (a := appointment(clinic, paid))["amount_refunded"] == clp(24000) and a)
    assert shown["payment_status"] == "partially_refunded"
    assert payments(clinic, paid)["payments"][0]["refundable"] == clp(1000)
    told_once(told, 8)


def test_over_http_the_same_key_is_one_refund_and_keyless_clicks_get_one_201(stack: TestStack, clinic: ClinicKeys,
                                                                             paid: str) -> None:
    url = f"{stack.base_url}{clinic.path(f'/appointments/{paid}/refunds')}"
    auth = {"Authorization": f"Bearer {clinic.staff_key}", "Content-Type": "application/json"}

    def post(key: str | None) -> tuple[int, dict[str, Any]]:
        headers = {**auth, **({"Idempotency-Key": key} if key else {})}
        answer = requests.post(url, data=b'{"amount": {"amount": 5000, "currency": "CLP"}}', headers=headers, timeout=60)
        return answer.status_code, answer.json()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        keyed = list(pool.map(post, ["same-click"] * THREADS))
    assert {body["refund_id"] for status, body in keyed if status in (200, 201)} and len(
        {body["refund_id"] for status, body in keyed if status in (200, 201)}) == 1
    assert all(status in (200, 201) or body["error"]["code"] == "request_in_progress" for status, body in keyed)
    assert len(at_fintoc(stack)) == 1
    # Twenty clicks without a key, each asking everything left (20 000)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        answers = list(pool.map(lambda _: refund(clinic, paid), range(THREADS)))
    assert sorted(a.status for a in answers) == [201] + [409] * (THREADS - 1)
    assert {a.json()["error"]["code"] for a in answers if a.status == 409} == {"nothing_to_refund"}
    assert sum(r["amount"] for r in at_fintoc(stack)) == 25000
    wait_for(lambda: appointment(clinic, paid)["amount_refunded"] == clp(25000))
