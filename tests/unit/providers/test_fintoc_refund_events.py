"""What our Fintoc adapter reads from refund events (docs: "The Refund object"; events
refund.in_progress / refund.succeeded / refund.failed)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from clinicpay.domain.money import Money
from clinicpay.providers.fintoc import FintocGateway
from clinicpay.providers.fintoc.adapter import SUBSCRIBED_EVENTS
from clinicpay.providers.fintoc.signature import signature_header

SECRET = "whsec_unit"


def _event(event_type: str, **refund: Any) -> tuple[bytes, dict[str, str]]:
    data = {"id": "ref_8XzNbCv1LqKjWp4R", "object": "refund", "amount": 10000, "currency": "CLP",
            "status": event_type.removeprefix("refund."), "resource_id": "pi_jsperFI9bnyM2RTo",
            "resource_type": "payment_intent", "failure_code": None, "metadata": {}, "mode": "test",
            "created_at": "2026-11-20T12:00:00Z", **refund}
    body = json.dumps({"id": "evt_1", "type": event_type, "mode": "test", "object": "event",
                       "created_at": "2026-11-20T12:00:01.000Z", "data": data}).encode()
    return body, {"fintoc-signature": signature_header(SECRET, body, int(time.time()))}


def _parse(event_type: str, **refund: Any) -> Any:
    gateway = FintocGateway({"secret_key": "sk_test_unit", "webhook_secret": SECRET}, base_url="http://unused")
    [event] = gateway.parse_webhook(*_event(event_type, **refund))
    return event


@pytest.mark.parametrize(("event_type", "status", "expected"), [
    ("refund.in_progress", "in_progress", "pending"),
    ("refund.succeeded", "succeeded", "succeeded"),
    ("refund.failed", "failed", "failed"),
    ("refund.canceled", "canceled", "failed"),  # not a documented event type; read by its status all the same
    ("refund.updated", "something_new", "pending"),  # an unknown status is still undecided
])
def test_a_refund_event_becomes_a_refund_notice_by_its_object_s_status(event_type: str, status: str,
                                                                        expected: str) -> None:
    event = _parse(event_type, status=status, metadata={"clinic_id": "c1", "refund_id": "rf_ours"},
                   failure_code="insufficient_funds" if expected == "failed" else None)
    assert event.kind == "refunded" and event.refund is not None
    assert event.refund.status == expected
    assert (event.refund.refund_id, event.refund.provider_refund_id, event.refund.payment_reference) == (
        "rf_ours", "ref_8XzNbCv1LqKjWp4R", "pi_jsperFI9bnyM2RTo")
    assert event.refund.amount == Money(amount=10000, currency="CLP")
    assert event.details["clinic_id"] == "c1"


def test_a_refund_of_something_else_than_a_payment_intent_is_ignored() -> None:
    assert _parse("refund.succeeded", resource_type="charge").kind == "ignored"
    assert _parse("refund.succeeded", amount="10000").kind == "ignored"


def test_our_endpoint_subscribes_to_the_refund_events() -> None:
    assert {"refund.in_progress", "refund.succeeded", "refund.failed"} <= set(SUBSCRIBED_EVENTS)
