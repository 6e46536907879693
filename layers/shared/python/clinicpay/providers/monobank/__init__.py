"""monobank acquiring ("plata by mono"): invoices, QR cash registers and X-Sign signed webhooks.

`MonobankGateway` implements the PaymentGateway port (links), `MonobankQrAcquirer` the QrAcquirer
port (QR registers); `client` is the only module that talks HTTP to monobank; `signature` verifies
`X-Sign` (ECDSA P-256 / SHA-256) on the raw body.
"""

from clinicpay.providers.monobank.adapter import LINK_EVENT_KINDS, MonobankGateway, MonobankQrAcquirer
from clinicpay.providers.monobank.signature import load_public_key, verify_signature

__all__ = ["LINK_EVENT_KINDS", "MonobankGateway", "MonobankQrAcquirer", "load_public_key", "verify_signature"]
