"""Stripe: the reference card processor (cards on file, off-session charges) and a link gateway
(Checkout) for Canada and Norway.

`StripeCardVault` implements the CardVault port and `StripeGateway` the PaymentGateway port;
`client` is the only module that talks HTTP to Stripe; `signature` verifies `Stripe-Signature`.
"""

from clinicpay.providers.stripe.adapter import StripeCardVault, StripeGateway
from clinicpay.providers.stripe.signature import verify_signature

__all__ = ["StripeCardVault", "StripeGateway", "verify_signature"]
