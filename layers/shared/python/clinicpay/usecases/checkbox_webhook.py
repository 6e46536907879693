"""Checkbox webhooks (`POST /webhooks/checkbox/{clinic_id}`): a receipt Checkbox reports DONE
completes the QR payment waiting for it (we also poll, so this only shortens the wait).

Verified first: `x-request-signature` = base64(HMAC-SHA256(secret, raw body)). The secret is the
one `POST /api/v1/webhook` returned, kept as `webhook_secret` in the clinic's Checkbox credentials;
without one every delivery is refused (401), never accepted unverified.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from clinicpay import secrets
from clinicpay.domain.errors import GatewayNotConfigured, NotFound
from clinicpay.observability import logger
from clinicpay.providers.checkbox.adapter import parse_receipt_event
from clinicpay.providers.checkbox.signature import SIGNATURE_HEADER, verify_signature
from clinicpay.repositories.qr import QrRepository
from clinicpay.settings import get_settings
from clinicpay.usecases.fiscalization import complete_from_register


def handle(clinic_id: str, raw_body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    try:
        credentials = secrets.read_credentials(clinic_id, "checkbox")
    except GatewayNotConfigured:
        raise NotFound("No such clinic.") from None
    header = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), None)
    verify_signature(raw_body, header, str(credentials.get("webhook_secret") or ""))
    result = parse_receipt_event(raw_body)
    if result is None:
        logger.info("checkbox event ignored (not a receipt)", extra={"clinic_id": clinic_id})
        return {"received": 1, "outcome": "ignored"}
    completed = complete_from_register(QrRepository(get_settings().app_table), clinic_id, result,
                                       lambda: datetime.now(UTC))
    logger.info("checkbox receipt event", extra={"clinic_id": clinic_id, "receipt_id": result.receipt_id,
                                                 "state": result.state, "completed": completed})
    return {"received": 1, "receipt_id": result.receipt_id, "state": result.state,
            "outcome": "applied" if completed else "unchanged"}
