"""clinicpay: payments for clinic booking software (payment links, webhooks, cards, QR + fiscal)."""
