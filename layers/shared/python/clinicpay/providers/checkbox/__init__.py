"""Checkbox (checkbox.ua), the software cash register (pRRO) that fiscalizes our QR card payments.

`CheckboxFiscalRegister` implements the FiscalRegister port; `client` is the only module that talks
HTTP to Checkbox; `signature` verifies `x-request-signature` on webhook bodies.
"""

from clinicpay.providers.checkbox.adapter import CheckboxFiscalRegister, parse_receipt_event, sell_body
from clinicpay.providers.checkbox.signature import compute_signature, verify_signature

__all__ = ["CheckboxFiscalRegister", "compute_signature", "parse_receipt_event", "sell_body", "verify_signature"]
