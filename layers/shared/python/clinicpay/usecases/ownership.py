"""Whose money is it? A valid signature proves who sent a provider event, not that the object it is
about is ours: monobank signs every merchant's webhooks with one key, and a Fintoc or Stripe account
shared by two clinics delivers every event to both clinics' endpoints.

An event may change state only for an object we created for this clinic (the checkout session,
invoice, payment intent or setup intent id we stored) and for the amount and currency we asked for.
Anything else is `foreign`: acknowledged (200, so the provider stops retrying), recorded under this
clinic's own key (so it never hides the event from the clinic it belongs to), counted in the
`ForeignWebhookEvent` metric per provider, and nothing else changes.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from clinicpay.observability import logger, metrics

FOREIGN = "foreign"

# Why an event is foreign (stored on its event record as `reason`).
OTHER_CLINIC = "other_clinic"  # its metadata names another clinic
UNKNOWN_OBJECT = "unknown_object"  # no appointment / register / setup / charge of this clinic has it
UNKNOWN_SESSION = "unknown_session"  # the appointment exists, but never held this session or invoice
AMOUNT_MISMATCH = "amount_mismatch"  # ours, but not the amount or currency we asked for
NOT_AT_PROVIDER = "not_at_provider"  # the provider, asked with this clinic's credentials, does not know it


def names_other_clinic(named: Any, clinic_id: str) -> bool:
    """The event's own metadata names a clinic, and it is not the one whose endpoint received it."""
    return isinstance(named, str) and bool(named) and named != clinic_id


def count_foreign(provider: str, clinic_id: str, event_id: str, reason: str) -> None:
    """Log and count one foreign event (metric `ForeignWebhookEvent`, dimension `provider`)."""
    logger.warning("foreign provider event acknowledged, nothing changed", extra={
        "clinic_id": clinic_id, "provider": provider, "event_id": event_id, "reason": reason})
    with single_metric(name="ForeignWebhookEvent", unit=MetricUnit.Count, value=1,
                       namespace=metrics.namespace) as metric:
        metric.add_dimension(name="provider", value=provider)
