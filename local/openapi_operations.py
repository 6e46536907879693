"""What each operation is for, as /docs shows it: its tag (the group it is listed under), a summary in
words (not the route again) and a description. local/openapi.py adds them to the document it builds;
the credential each operation takes and its error answers are added there from the routes.

Keyed by "METHOD /path" as the routes declare them. tests/unit/test_openapi_document.py asks that
every operation in the document has an entry here, and every entry an operation, and that
docs/API.md names every operation; a new route needs a line here (and in docs/API.md).
"""

from __future__ import annotations

# Tag name -> what the group is; the order is the order /docs lists the groups in.
TAGS = {
    "Clinics and keys": "The operator creates clinics and admin keys; a clinic's admin issues staff keys, connects "
                        "payment providers, sets the services and settings.",
    "Message templates": "The texts of the emails and SMS clinicpay sends, per kind, channel and language: "
                         "a clinic's override, its organization's, or the built-in one.",
    "Appointments and payment links": "Staff book appointments; a service that is paid online gets a payment "
                                      "link, sent to the patient and paid at the clinic's provider.",
    "Booking widget": "The public routes the booking widget calls from the clinic's own site with the clinic's "
                      "publishable key; counted per client address and per clinic.",
    "Cards on file": "Cards saved with the patient's consent (Stripe), charged off-session for a booking or a "
                     "no-show; no card number ever reaches this API.",
    "QR payments and fiscal receipts": "monobank QR registers at the desk, and the Checkbox fiscal receipt every "
                                       "QR payment gets (Ukraine).",
    "Webhooks": "Where the providers report what happened. Signed; an event changes state only for an object "
                "clinicpay created for the clinic in the URL, with the amount it asked for.",
    "Patient pages": "The pages a patient opens from a link: paying, the payment's result, the card consent page.",
    "Service": "Health, this document and its viewer.",
}

_CLINICS, _TEMPLATES, _APPOINTMENTS = "Clinics and keys", "Message templates", "Appointments and payment links"
_WIDGET, _CARDS, _QR, _WEBHOOKS, _PAGES, _SERVICE = ("Booking widget", "Cards on file", "QR payments and fiscal receipts",
                                                     "Webhooks", "Patient pages", "Service")

_TEMPLATE_KINDS = ("kind: appointment_created, appointment_reminder, payment_link, card_request, card_booking_reminder, "
                   "payment_receipt, refund_issued, card_charged; "
                   "channel: email or sms; locale: es, en, fr, uk or nb.")
_WEBHOOK = ("Verified on the raw bytes before anything is parsed; a verified event is recorded once per clinic "
            "(a repeat is 200 and changes nothing) and never undoes a newer state. An event about an object this "
            "clinic did not create, or another amount, is answered 200 as `foreign` and changes nothing. The "
            "answer lists each event's outcome.")

# "METHOD /path" -> (tag, summary, description)
OPERATIONS: dict[str, tuple[str, str, str]] = {
    # -------------------------------------------------------------------------------- clinics and keys
    "POST /v1/clinics": (_CLINICS, "Create a clinic",
                         "Creates a clinic (country, currency, timezone, language, optional organization) and "
                         "answers its first admin key and its publishable key, each shown only in this answer."),
    "GET /v1/clinics/{clinic_id}": (_CLINICS, "Read a clinic", "The clinic's name, country, currency, timezone and "
                                                               "language."),
    "POST /v1/clinics/{clinic_id}/staff-keys": (_CLINICS, "Issue a staff key",
                                                "A key for the clinic's staff pages and booking system, shown only "
                                                "in this answer."),
    "POST /v1/clinics/{clinic_id}/admin-keys": (_CLINICS, "Issue a further admin key",
                                                "The operator issues another admin key (shown once), e.g. to "
                                                "replace one it revoked."),
    "GET /v1/clinics/{clinic_id}/keys": (_CLINICS, "List the clinic's keys",
                                         "Ids, roles, prefixes (the role and four characters), creation and "
                                         "revocation times, oldest first. Never a key or its hash."),
    "DELETE /v1/clinics/{clinic_id}/keys/{key_id}": (_CLINICS, "Revoke a key",
                                                     "An admin revokes its clinic's staff keys; the operator any admin "
                                                     "or staff key. Revoking a revoked key changes nothing."),
    "GET /v1/clinics/{clinic_id}/settings": (_CLINICS, "Read the clinic's settings",
                                             "Payment link in emails, card required for online booking, link "
                                             "lifetime, reminder hours, default gateway."),
    "PATCH /v1/clinics/{clinic_id}/settings": (_CLINICS, "Change the clinic's settings",
                                               "Changes only the fields in the body; answers the settings as they "
                                               "now are."),
    "GET /v1/clinics/{clinic_id}/gateways": (_CLINICS, "List the connected payment providers",
                                             "Each provider with its credentials masked (a known prefix and at most "
                                             "the last four characters) and whether they were verified."),
    "PUT /v1/clinics/{clinic_id}/gateways/{provider}": (_CLINICS, "Connect a payment provider",
                                                        "Stores the provider's credentials (fintoc, monobank, stripe, "
                                                        "checkbox) in Secrets Manager; they are never returned."),
    "DELETE /v1/clinics/{clinic_id}/gateways/{provider}": (_CLINICS, "Disconnect a payment provider",
                                                           "The gateway stops working at once; its secret stays "
                                                           "recoverable for 30 days, and a later PUT restores it."),
    "GET /v1/clinics/{clinic_id}/services": (_CLINICS, "List the clinic's services",
                                             "Every service with its price, whether it is paid online or needs a "
                                             "card on file, and its no-show fee."),
    "PUT /v1/clinics/{clinic_id}/services/{service_id}": (_CLINICS, "Create or change a service",
                                                          "Name, price in minor units, paid online or not, card on "
                                                          "file required or not, no-show fee."),
    "GET /v1/clinics/{clinic_id}/patient-token-secret": (_CLINICS, "Read the patient-token secret's state",
                                                         "Whether the clinic's site can sign patient tokens, and "
                                                         "since when; never the secret."),
    "POST /v1/clinics/{clinic_id}/patient-token-secret": (_CLINICS, "Rotate the patient-token secret",
                                                          "A new secret for the clinic's site to sign patient tokens "
                                                          "with, shown this once; the one it replaces keeps working "
                                                          "for 24 hours."),
    "DELETE /v1/clinics/{clinic_id}/patient-token-secret": (_CLINICS, "Revoke the patient-token secret",
                                                            "Every patient token stops working at once (a leaked "
                                                            "secret); public bookings go on as new patients."),
    # ------------------------------------------------------------------------------- message templates
    "GET /v1/clinics/{clinic_id}/message-templates": (_TEMPLATES, "List the clinic's message templates",
                                                      "Every kind, channel and language with the text in use and "
                                                      "where it comes from (clinic, organization or built-in)."),
    "GET /v1/clinics/{clinic_id}/message-templates/{kind}/{channel}/{locale}": (
        _TEMPLATES, "Read one message template", f"The text the clinic sends for it. {_TEMPLATE_KINDS}"),
    "PUT /v1/clinics/{clinic_id}/message-templates/{kind}/{channel}/{locale}": (
        _TEMPLATES, "Override a message template for the clinic",
        f"Overrides the organization's and the built-in text. {_TEMPLATE_KINDS}"),
    "GET /v1/orgs/{org_id}/message-templates/{kind}/{channel}/{locale}": (
        _TEMPLATES, "Read an organization's message template", f"{_TEMPLATE_KINDS}"),
    "PUT /v1/orgs/{org_id}/message-templates/{kind}/{channel}/{locale}": (
        _TEMPLATES, "Set a message template for an organization",
        f"Used by every clinic of the organization that has no override of its own. {_TEMPLATE_KINDS}"),
    # ------------------------------------------------------------------ appointments and payment links
    "POST /v1/clinics/{clinic_id}/appointments": (_APPOINTMENTS, "Book an appointment",
                                                  "Staff book a patient into a service at a time. A service paid "
                                                  "online gets a payment link; the confirmation message goes out "
                                                  "(with the link when the clinic's setting says so)."),
    "GET /v1/clinics/{clinic_id}/appointments": (
        _APPOINTMENTS, "List appointments (or export them as CSV)",
        "Filtered by payment status, a time range and a search (part of the patient's name, email or phone; case "
        "and accents ignored); upcoming first by default (soonest first, then the past, latest first), or by start "
        "time; in pages of `limit` with an opaque `next_cursor` (400 invalid_cursor for a cursor of another clinic "
        "or other filters). With `format=csv` or `Accept: text/csv`: every matching appointment (up to 5000) as "
        "CSV, money as decimals of its currency, times in the clinic's time zone, formula-like cells defused."),
    "GET /v1/clinics/{clinic_id}/appointments/{appointment_id}": (_APPOINTMENTS, "Read an appointment",
                                                                  "The appointment with its patient, service, price, "
                                                                  "payment status and payment link."),
    "POST /v1/clinics/{clinic_id}/appointments/{appointment_id}/payment-link": (
        _APPOINTMENTS, "Get the appointment's payment link",
        "Created once, then the same one. A staff-booked appointment's link never expires; an online-booked one "
        "expires after the clinic's online_link_ttl_minutes."),
    "POST /v1/clinics/{clinic_id}/appointments/{appointment_id}/payment-link/send": (
        _APPOINTMENTS, "Send the payment link to the patient",
        "(Re)sends the link by email, and by SMS where there is a phone; 409 already_paid when paid."),
    "POST /v1/clinics/{clinic_id}/appointments/{appointment_id}/cancel": (
        _APPOINTMENTS, "Cancel an appointment",
        "Staff cancel: no more reminders, the payment link takes no more money (409 appointment_cancelled on send). "
        "Money already paid is not refunded by this: refund it through the appointment's refunds. Cancelling again answers the "
        "same."),
    "GET /v1/clinics/{clinic_id}/appointments/{appointment_id}/payments": (
        _APPOINTMENTS, "List the appointment's payments",
        "Every payment (online or at the desk) with what was refunded, is pending and may still be refunded, "
        "and the appointment's totals: paid, refunded, balance due."),
    "POST /v1/clinics/{clinic_id}/appointments/{appointment_id}/payments": (
        _APPOINTMENTS, "Record a payment taken at the desk",
        "Cash or the clinic's own terminal, never above the balance due; the same Idempotency-Key is the same "
        "payment."),
    "GET /v1/clinics/{clinic_id}/appointments/{appointment_id}/refunds": (
        _APPOINTMENTS, "List the appointment's refunds",
        "Oldest first, including refunds started at the provider's dashboard."),
    "POST /v1/clinics/{clinic_id}/appointments/{appointment_id}/refunds": (
        _APPOINTMENTS, "Refund a payment",
        "All or part of what is left of one payment, through its provider (a desk payment at the desk). The "
        "amount is reserved before the provider is asked, so concurrent clicks never give back more than was "
        "paid; an undecided answer stays pending until the provider's event settles it. The patient is told."),
    # --------------------------------------------------------------------------------- booking widget
    "POST /v1/public/clinics/{clinic_id}/appointments": (
        _WIDGET, "Book online",
        "The widget books for a new patient record, or, with a valid patient token from the clinic's site, for "
        "that patient. The answer says what comes next: nothing, pay (a link), or save a card."),
    "POST /v1/public/clinics/{clinic_id}/card-setup": (_WIDGET, "Start saving a card from the clinic's site",
                                                       "For the patient a patient token names: the URL of our "
                                                       "consent page, which leads to the provider's card page."),
    "GET /v1/public/clinics/{clinic_id}/services": (_WIDGET, "The clinic and its services, for the widget",
                                                    "Name, currency, language, timezone and phone country of the "
                                                    "clinic, and the services a patient can book."),
    "GET /v1/public/payments/{token}": (_WIDGET, "A payment link's status",
                                        "What the patient holding the link may know: the status, amount and time "
                                        "of that one appointment's payment (the result page polls it)."),
    # ---------------------------------------------------------------------------------- cards on file
    "POST /v1/clinics/{clinic_id}/patients/{patient_id}/cards": (
        _CARDS, "Save a card with the patient's consent",
        "Stores the provider's payment method token with the consent the patient gave (text version, channel, "
        "who recorded it). Never a card number."),
    "GET /v1/clinics/{clinic_id}/patients/{patient_id}/cards": (_CARDS, "List a patient's cards",
                                                                "Brand, last four digits, expiry, default, and the "
                                                                "consent each was saved with."),
    "PUT /v1/clinics/{clinic_id}/patients/{patient_id}/cards/{card_id}/default": (
        _CARDS, "Make a card the default", "The card charged when a charge names none."),
    "DELETE /v1/clinics/{clinic_id}/patients/{patient_id}/cards/{card_id}": (
        _CARDS, "Remove a card", "Detaches it at the provider too."),
    "POST /v1/clinics/{clinic_id}/patients/{patient_id}/card-setup": (
        _CARDS, "Start saving a card at the desk", "The provider's setup session for staff to enter the card in."),
    "POST /v1/clinics/{clinic_id}/patients/{patient_id}/card-requests": (
        _CARDS, "Ask the patient for a card", "Sends the card-request message (email, SMS) with a link to the "
                                              "consent page and the provider's card page."),
    "POST /v1/clinics/{clinic_id}/patients/{patient_id}/charges": (
        _CARDS, "Charge a card on file",
        "Off-session, on the named or the default card; a no_show charge without an amount takes the service's "
        "no-show fee. A timeout leaves it processing until the provider tells us."),
    "GET /v1/clinics/{clinic_id}/patients/{patient_id}/charges": (
        _CARDS, "List a patient's charges",
        "Newest first, with what was given back (partially_refunded, refunded), each charge's refunds and the "
        "card charged."),
    "GET /v1/clinics/{clinic_id}/patients/{patient_id}/charges/{charge_id}": (
        _CARDS, "Read a charge", "Its status (succeeded, processing, requires_action, failed) and failure code."),
    "GET /v1/clinics/{clinic_id}/patients/{patient_id}/charges/{charge_id}/refunds": (
        _CARDS, "List a charge's refunds", "Oldest first, ours and those made in the Stripe Dashboard."),
    "POST /v1/clinics/{clinic_id}/patients/{patient_id}/charges/{charge_id}/refunds": (
        _CARDS, "Refund a card charge",
        "All or part of what is left, reserved on the charge before Stripe is asked; 202 pending while Stripe's "
        "answer is unknown. The patient is told once it succeeds."),
    # ------------------------------------------------------------------ QR payments and fiscal receipts
    "POST /v1/clinics/{clinic_id}/qr-registers/sync": (_QR, "Sync the monobank QR registers",
                                                       "Reads the clinic's QR registers from monobank and stores "
                                                       "them."),
    "GET /v1/clinics/{clinic_id}/qr-registers": (_QR, "List the QR registers",
                                                 "Each register with the amount on it, if any."),
    "POST /v1/clinics/{clinic_id}/qr-registers/{qr_id}/amount": (_QR, "Put an amount on a QR register",
                                                                 "The patient scans the register's QR code and pays "
                                                                 "that amount, optionally for an appointment."),
    "DELETE /v1/clinics/{clinic_id}/qr-registers/{qr_id}/amount": (_QR, "Clear a QR register's amount",
                                                                   "Nothing is payable on it until a new amount is "
                                                                   "put."),
    "GET /v1/clinics/{clinic_id}/fiscal/shift": (_QR, "Read the fiscal shift",
                                                 "Whether the Checkbox register's shift is open: receipts need one."),
    "POST /v1/clinics/{clinic_id}/fiscal/shift/open": (_QR, "Open the fiscal shift",
                                                       "Opens the Checkbox register's shift for the day."),
    "POST /v1/clinics/{clinic_id}/fiscal/shift/close": (_QR, "Close the fiscal shift",
                                                        "Closes the shift (the Z report)."),
    "GET /v1/clinics/{clinic_id}/reports/qr-payments": (_QR, "Report QR payments",
                                                        "Payments with their fiscal status and receipt, filtered by "
                                                        "time, register, status and amount; in pages with "
                                                        "limit and cursor (next_cursor); CSV with Accept: "
                                                        "text/csv."),
    "GET /v1/clinics/{clinic_id}/qr-payments/{payment_id}": (_QR, "Read a QR payment",
                                                             "The payment, its fiscal status and its receipt."),
    "POST /v1/clinics/{clinic_id}/qr-payments/{payment_id}/fiscalize": (
        _QR, "Fiscalize a QR payment now",
        "A pending or failed payment gets its receipt now; an already fiscalized one is a 409 (never a second "
        "receipt)."),
    "POST /v1/clinics/{clinic_id}/qr-payments/{payment_id}/refunds": (
        _QR, "Refund a QR payment",
        "Gives back all or part of what is left of the payment through monobank (invoice/cancel). The amount is "
        "reserved first, so concurrent clicks never give back more than was paid; 201 when monobank answered, "
        "202 while it decides. Each refund gets one return receipt referring to the sale."),
    # ---------------------------------------------------------------------------------------- webhooks
    "POST /webhooks/fintoc/{clinic_id}": (_WEBHOOKS, "Fintoc events",
                                          f"Signed with Fintoc-Signature. {_WEBHOOK}"),
    "POST /webhooks/monobank/{clinic_id}": (_WEBHOOKS, "monobank events",
                                            f"Signed with X-Sign (ECDSA, monobank's public key). Invoices of payment "
                                            f"links and QR payments. {_WEBHOOK}"),
    "POST /webhooks/stripe/{clinic_id}": (_WEBHOOKS, "Stripe events",
                                          f"Signed with Stripe-Signature. Checkout payments, saved cards, "
                                          f"off-session charges. {_WEBHOOK}"),
    "POST /webhooks/checkbox/{clinic_id}": (_WEBHOOKS, "Checkbox events",
                                            "Signed with x-request-signature (HMAC-SHA256). A receipt Checkbox "
                                            "reports done completes the QR payment waiting for it (we also "
                                            "poll, so this only shortens the wait)."),
    # ----------------------------------------------------------------------------------- patient pages
    "GET /pay/{token}": (_PAGES, "Pay (the link in the patient's message)",
                         "Redirects (303) to the provider's checkout, made fresh if the last one expired; a paid "
                         "appointment shows a paid page, an expired link a clear page."),
    "GET /pay/{token}/result": (_PAGES, "The payment's result page",
                                "Where the provider sends the patient back; it follows the payment until it is "
                                "settled; once paid, the receipt (as `GET /pay/{token}` shows it)."),
    "GET /pay/{token}/calendar.ics": (_PAGES, "The appointment as a calendar file",
                                      "An iCalendar (RFC 5545) file of the link's appointment, linked from the "
                                      "receipt page. 410 once an unpaid online booking's link has lapsed."),
    "GET /cards/setup/{token}": (_PAGES, "The card consent page",
                                 "Names the clinic, the patient and the terms of the card on file."),
    "POST /cards/setup/{token}": (_PAGES, "Accept the card consent",
                                  "Records the consent and sends the patient to the provider's card page."),
    "GET /cards/setup/{token}/done": (_PAGES, "After saving a card",
                                      "Where the provider sends the patient back after entering the card."),
    "GET /cards/authentication-complete": (_PAGES, "After a card authentication",
                                           "Where a 3-D Secure check for a charge returns the patient."),
    # ----------------------------------------------------------------------------------------- service
    "GET /health": (_SERVICE, "Health check", "200 when storage answers; 503 with the failing checks named."),
    "GET /openapi.json": (_SERVICE, "This OpenAPI document", "The whole HTTP contract, as OpenAPI 3.1."),
    "GET /docs": (_SERVICE, "The API reference page", "This document rendered by a maintained viewer."),
}
