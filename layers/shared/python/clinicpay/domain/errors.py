"""Domain errors. Each carries the HTTP contract's `code` and status so one handler maps them all."""

from __future__ import annotations

from typing import Any


class ClinicpayError(Exception):
    status: int = 500
    code: str = "internal_error"
    default_message: str = "Something went wrong on our side."

    def __init__(self, message: str | None = None, *, code: str | None = None, details: list[Any] | None = None):
        self.message = message or self.default_message
        if code:
            self.code = code
        self.details = details or []
        super().__init__(self.message)


class BadRequest(ClinicpayError):
    status, code, default_message = 400, "bad_request", "The request is malformed."


class Unauthorized(ClinicpayError):
    status, code, default_message = 401, "unauthorized", "Missing or invalid credentials."


class Forbidden(ClinicpayError):
    status, code, default_message = 403, "forbidden", "This key may not do that."


class NotFound(ClinicpayError):
    status, code, default_message = 404, "not_found", "No such object."


class MethodNotAllowed(ClinicpayError):
    status, code, default_message = 405, "method_not_allowed", "This path does not take that method."

    def __init__(self, allowed: tuple[str, ...], **kwargs: Any):
        self.allowed = allowed
        super().__init__(details=[{"allowed": list(allowed)}], **kwargs)


class PayloadTooLarge(ClinicpayError):
    status, code, default_message = 413, "payload_too_large", "The body is larger than this API accepts."


class UnsupportedMediaType(ClinicpayError):
    status, code, default_message = 415, "unsupported_media_type", "Send the body as application/json."


class Conflict(ClinicpayError):
    status, code, default_message = 409, "conflict", "The object is not in a state that allows this."


class AlreadyPaid(Conflict):
    code, default_message = "already_paid", "The appointment is already paid."


class ValidationFailed(ClinicpayError):
    status, code, default_message = 422, "validation_error", "The request did not pass validation."


class CardDataNotAccepted(ValidationFailed):
    code = "card_data_not_accepted"
    default_message = "Card numbers are never accepted here; enter the card in the processor's own page."


class Throttled(ClinicpayError):
    status, code, default_message = 429, "throttled", "Too many requests; try again shortly."
    retry_after = 1


class RateLimited(Throttled):
    """A public route's limit for this clinic or this client address: try again after `retry_after`."""

    code, default_message = "rate_limited", "Too many requests from here; try again later."

    def __init__(self, message: str | None = None, *, retry_after: int, **kwargs: Any):
        self.retry_after = retry_after
        super().__init__(message, **kwargs)
        self.details = [*self.details, {"retry_after": retry_after}]


class ProviderError(ClinicpayError):
    """The provider answered, but not with what we asked for (a 4xx we did not expect)."""

    status, code, default_message = 502, "provider_error", "The payment provider refused the request."


class ProviderUnavailable(ClinicpayError):
    """The provider is down or slow: nothing was written, the caller may retry."""

    status, code, default_message = 503, "provider_unavailable", "The payment provider is not answering; try again."

    def __init__(self, message: str | None = None, *, retry_after: int = 30, **kwargs: Any):
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class ProviderOutcomeUnknown(ProviderUnavailable):
    """We sent a request the provider may have applied, and got no answer that says whether it did:
    a timeout or a cut connection after sending, a 5xx after our retries, Stripe's 409 for an
    Idempotency-Key still in flight. Not a failure: what it concerns stays undecided until the
    provider tells us (a webhook, or our asking), and a retry must reuse the same idempotency key.

    A ProviderUnavailable (same code and status) for callers that do not need the difference."""

    default_message = "The payment provider has not confirmed the request yet; try again shortly."


class StorageUnavailable(ClinicpayError):
    status, code, default_message = 503, "storage_unavailable", "Storage is busy; try again."
    retry_after = 5  # DynamoDB throttling and transient errors pass within seconds


class ConditionFailed(Conflict):
    """A conditional write found the item in another state than expected."""

    code = "state_conflict"


class InvalidSignature(Unauthorized):
    code, default_message = "invalid_signature", "The webhook signature is missing, invalid or stale."


class GatewayNotConfigured(Conflict):
    code, default_message = "gateway_not_configured", "The clinic has no credentials for that provider."


class NothingToRefund(Conflict):
    code, default_message = "nothing_to_refund", "Everything paid for this appointment has been refunded already."


class RefundExceedsRemaining(Conflict):
    code, default_message = "refund_exceeds_remaining", "That is more than is left to refund on this payment."


class ExceedsBalanceDue(Conflict):
    code, default_message = "exceeds_balance_due", "That is more than the balance due on this appointment."
