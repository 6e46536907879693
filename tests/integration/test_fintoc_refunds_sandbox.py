"""FintocGateway.refund against the Fintoc sandbox over real HTTP: Fintoc's refund object, partial and
full refunds, refusals, a 500 stored under the key and replayed, pending then settled by its events,
a refund made in Fintoc's dashboard, and what our adapter reads from each event."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from clinicpay.domain.errors import ProviderOutcomeUnknown
from clinicpay.domain.money import Money
from clinicpay.ports import RefundRequest
from clinicpay.providers.fintoc import FintocGateway
from tests.integration.test_fintoc_sandbox import Capture, capture, connected_gateway, parse, press, wait_for
from tests.support import env

__all__ = ["capture"]  # the webhook receiver fixture, shared with the checkout tests


@pytest.fixture
def base_url(stack: env.TestStack) -> str:
    return stack.sandbox_url("fintoc")


def paid_intent(base_url: str, gateway: FintocGateway, capture: Capture, amount: int = 25_000) -> str:
    """A checkout paid on the hosted page; returns its payment intent id."""
    from tests.integration.test_fintoc_sandbox import checkout

    session = gateway.create_checkout(checkout(f"appt-{uuid.uuid4().hex[:6]}", amount=amount))
    assert press(session.url, "pay").status_code == 303
    received = wait_for(lambda: [r for r in capture.of_type("payment_intent.succeeded")
                                 if r.event["data"]["metadata"]["checkout_session_id"] == session.session_id])
    return str(received[0].event["data"]["id"])


def ask(payment_intent: str, amount: int, refund_id: str | None = None) -> RefundRequest:
    refund_id = refund_id or f"rf_{uuid.uuid4().hex[:12]}"
    return RefundRequest(clinic_id="clinic-1", refund_id=refund_id, payment_reference=payment_intent,
                         amount=Money(amount=amount, currency="CLP"),
                         idempotency_key=f"clinicpay-clinic-1-refund-{refund_id}")


def control(base_url: str, path: str, body: dict[str, Any] | None = None) -> requests.Response:
    return requests.post(f"{base_url}/_control{path}", json=body or {}, timeout=5)


def test_a_partial_refund_is_pending_with_fintoc_s_refund_object(base_url: str, capture: Capture) -> None:
    gateway = connected_gateway(base_url, capture)
    intent = paid_intent(base_url, gateway, capture)
    result = gateway.refund(ask(intent, 10_000, "rf_partial"))
    assert result.status == "pending" and result.provider_refund_id and result.provider_refund_id.startswith("ref_")
    stored = gateway.client.get_refund(result.provider_refund_id)
    assert (stored.amount, stored.currency, stored.status, stored.resource_type, stored.resource_id) == (
        10_000, "CLP", "pending", "payment_intent", intent)
    assert stored.metadata == {"clinic_id": "clinic-1", "refund_id": "rf_partial"}


def test_pending_then_settled_by_fintoc_s_batch_with_its_events(base_url: str, capture: Capture) -> None:
    gateway = connected_gateway(base_url, capture)
    intent = paid_intent(base_url, gateway, capture)
    result = gateway.refund(ask(intent, 25_000, "rf_full"))
    assert control(base_url, f"/refunds/{result.provider_refund_id}/settle", {"status": "succeeded"}).ok
    in_progress = wait_for(lambda: capture.of_type("refund.in_progress"))
    succeeded = wait_for(lambda: capture.of_type("refund.succeeded"))
    event = parse(gateway, succeeded[0])
    assert event.kind == "refunded" and event.refund is not None
    notice = event.refund
    assert (notice.status, notice.refund_id, notice.provider_refund_id, notice.payment_reference, notice.amount) == (
        "succeeded", "rf_full", result.provider_refund_id, intent, Money(amount=25_000, currency="CLP"))
    assert event.details["clinic_id"] == "clinic-1"
    assert parse(gateway, in_progress[0]).refund.status == "pending"  # type: ignore[union-attr]
    # and nothing is left to refund at Fintoc
    more = gateway.refund(ask(intent, 1))
    assert more.status == "failed" and more.failure_code == "invalid_amount"


def test_a_failed_refund_event_carries_fintoc_s_failure_code(base_url: str, capture: Capture) -> None:
    gateway = connected_gateway(base_url, capture)
    intent = paid_intent(base_url, gateway, capture)
    result = gateway.refund(ask(intent, 5_000))
    control(base_url, f"/refunds/{result.provider_refund_id}/settle", {"status": "failed", "failure_code": "fraud_risk"})
    failed = parse(gateway, wait_for(lambda: capture.of_type("refund.failed"))[0])
    assert failed.refund is not None and (failed.refund.status, failed.refund.failure_code) == ("failed", "fraud_risk")
    # a failed refund gives the amount back to refund
    assert gateway.refund(ask(intent, 25_000)).status == "pending"


def test_a_refusal_is_a_failed_result_and_is_replayed_for_its_key(base_url: str, capture: Capture) -> None:
    gateway = connected_gateway(base_url, capture)
    intent = paid_intent(base_url, gateway, capture)
    control(base_url, "/refunds/refuse-next", {"status": 400, "code": "refund_not_allowed"})
    request = ask(intent, 5_000)
    first = gateway.refund(request)
    assert (first.status, first.failure_code, first.provider_refund_id) == ("failed", "refund_not_allowed", None)
    # Fintoc stored that answer: the same key gets it again, though a new key would succeed
    assert gateway.refund(request).failure_code == "refund_not_allowed"
    assert gateway.refund(ask(intent, 5_000)).status == "pending"


def test_more_than_the_payment_or_another_resource_is_refused(base_url: str, capture: Capture) -> None:
    gateway = connected_gateway(base_url, capture)
    intent = paid_intent(base_url, gateway, capture, amount=9_000)
    assert gateway.refund(ask(intent, 9_001)).failure_code == "invalid_amount"
    assert gateway.refund(ask("pi_notAtThisAccount", 1)).failure_code == "missing_resource"


def test_a_500_is_stored_under_the_key_and_replayed_so_the_refund_stays_undecided(base_url: str,
                                                                                  capture: Capture) -> None:
    gateway = connected_gateway(base_url, capture)
    intent = paid_intent(base_url, gateway, capture)
    control(base_url, "/refunds/error-next", {"applied": True})
    request = ask(intent, 25_000, "rf_lost_answer")
    with pytest.raises(ProviderOutcomeUnknown):
        gateway.refund(request)
    with pytest.raises(ProviderOutcomeUnknown):  # the stored 500, replayed to the same key
        gateway.refund(request)
    # The refund exists at Fintoc all the same, with our id in its metadata, for its events to settle
    listed = requests.get(f"{base_url}/v1/refunds", headers={"Authorization": gateway.client._secret_key},
                          timeout=5).json()
    assert [(r["metadata"]["refund_id"], r["amount"], r["status"]) for r in listed] == [
        ("rf_lost_answer", 25_000, "pending")]


def test_a_timeout_after_fintoc_made_the_refund_is_undecided_and_the_same_key_gets_the_refund(
        base_url: str, capture: Capture) -> None:
    gateway = connected_gateway(base_url, capture)
    intent = paid_intent(base_url, gateway, capture)
    slow = FintocGateway({"secret_key": gateway.client._secret_key, "public_key": "pk_test_x"}, base_url=base_url,
                         timeout=1.0)
    control(base_url, "/fail-next", {"status": "timeout", "seconds": 2, "count": 3})
    request = ask(intent, 25_000, "rf_slow")
    with pytest.raises(ProviderOutcomeUnknown):
        slow.refund(request)
    again = gateway.refund(request)
    assert again.status == "pending" and again.provider_refund_id
    listed = requests.get(f"{base_url}/v1/refunds", headers={"Authorization": gateway.client._secret_key},
                          timeout=5).json()
    assert len(listed) == 1


def test_a_dashboard_refund_has_no_metadata_of_ours(base_url: str, capture: Capture) -> None:
    gateway = connected_gateway(base_url, capture)
    intent = paid_intent(base_url, gateway, capture)
    made = control(base_url, f"/payment_intents/{intent}/dashboard-refund", {"amount": 7_000}).json()
    event = parse(gateway, wait_for(lambda: capture.of_type("refund.succeeded"))[0])
    assert event.refund is not None
    assert (event.refund.refund_id, event.refund.provider_refund_id, event.refund.amount.amount) == (
        None, made["id"], 7_000)
    assert "clinic_id" not in event.details


def test_a_pending_refund_can_be_canceled_and_an_in_progress_one_cannot(base_url: str, capture: Capture) -> None:
    gateway = connected_gateway(base_url, capture)
    intent = paid_intent(base_url, gateway, capture)
    key = gateway.client._secret_key
    first = gateway.refund(ask(intent, 5_000))
    canceled = requests.post(f"{base_url}/v1/refunds/{first.provider_refund_id}/cancel",
                             headers={"Authorization": key, "Idempotency-Key": "cancel-1"}, timeout=5)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    second = gateway.refund(ask(intent, 25_000))  # a canceled refund does not count against the payment
    control(base_url, f"/refunds/{second.provider_refund_id}/settle", {"status": "in_progress"})
    refused = requests.post(f"{base_url}/v1/refunds/{second.provider_refund_id}/cancel",
                            headers={"Authorization": key, "Idempotency-Key": "cancel-2"}, timeout=5)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_status"
