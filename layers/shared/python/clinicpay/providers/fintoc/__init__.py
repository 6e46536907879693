"""Fintoc (Chile/Mexico account-to-account payments): hosted checkout sessions and signed webhooks.

`FintocGateway` implements the PaymentGateway port; `client` is the only module that talks HTTP to
Fintoc; `signature` verifies `Fintoc-Signature` on the raw body.
"""

from clinicpay.providers.fintoc.adapter import FintocGateway, chile_fee, fintoc_fee
from clinicpay.providers.fintoc.signature import verify_signature

__all__ = ["FintocGateway", "chile_fee", "fintoc_fee", "verify_signature"]
