"""Which parts of each route a person types, and so how each is scanned for card numbers.

Card data must never enter this API: cards are typed only on the processor's own page. Text a person
types (a name, an email, a note, a template, a query) is refused when a card number appears anywhere
in it: a run of 13-19 digits passing Luhn, with or without spaces or dashes. Ids, credentials and
signed provider messages are not text: scanned that way, 1 in 500 UUIDs and 1 in 1,200 hex ids would
be refused by chance, and every later request naming them too.

So each route's `Guard` says, for `body.<dotted.field>`, `query.<name>` and `path.<name>`:
- free text (the default for every body field and query parameter, known or not): refused when a
  card number appears anywhere in it;
- `ids` (and every path parameter): ids we mint (which never hold a digit, domain/ids.py), ids the
  clinic's systems or the provider chose, tokens: refused only when the whole value *is* a card
  number, so a UUID, `pat_…` or `pm_…` never is, while a card number pasted into the field still is;
- `body=False` / `query=False`: not scanned at all: provider credentials (PUT gateways), signed
  webhooks (verified on the raw bytes, echoing our ids and the provider's), and the parameters
  Stripe appends to our return URL.
Card-only field names (cvc, exp_month, card_number ...) are refused in any JSON body under /v1.

The table below is the contract's per-route list (docs/API.md, "What the card-number guard reads");
a route missing from it gets the strictest guard: body, query and the whole path scanned as text.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from clinicpay.domain.card_numbers import carries_card_fields, contains_card_number, is_card_number


@dataclass(frozen=True)
class Guard:
    body: bool = True  # False: the body is not scanned for card numbers (credentials, webhooks)
    query: bool = True  # False: the query is not scanned (parameters a provider appends)
    ids: frozenset[str] = field(default_factory=frozenset)
    path: bool = False  # True only for routes we do not know: the whole path is scanned as text

    def kind(self, name: str) -> str:
        if name in self.ids or name.startswith("path."):
            return "id"
        return "text"


def guard(*, ids: str = "", body: bool = True, query: bool = True) -> Guard:
    return Guard(body=body, query=query, ids=frozenset(ids.split()))


FREE_TEXT = guard()
NOT_SCANNED = guard(body=False, query=False)
UNKNOWN_ROUTE = Guard(path=True)

GUARDS: dict[str, Guard] = {
    # admin
    "POST /v1/clinics": guard(ids="body.clinic_id body.org_id"),
    "GET /v1/clinics/{clinic_id}": FREE_TEXT,
    "POST /v1/clinics/{clinic_id}/staff-keys": FREE_TEXT,
    "POST /v1/clinics/{clinic_id}/admin-keys": FREE_TEXT,
    "GET /v1/clinics/{clinic_id}/keys": FREE_TEXT,
    "DELETE /v1/clinics/{clinic_id}/keys/{key_id}": FREE_TEXT,
    "GET /v1/clinics/{clinic_id}/settings": FREE_TEXT,
    "PATCH /v1/clinics/{clinic_id}/settings": FREE_TEXT,
    "GET /v1/clinics/{clinic_id}/gateways": FREE_TEXT,
    # Provider credentials are random strings: not scanned (card-only field names still are).
    "PUT /v1/clinics/{clinic_id}/gateways/{provider}": guard(body=False),
    "DELETE /v1/clinics/{clinic_id}/gateways/{provider}": FREE_TEXT,
    "GET /v1/clinics/{clinic_id}/services": FREE_TEXT,
    "PUT /v1/clinics/{clinic_id}/services/{service_id}": FREE_TEXT,
    "GET /v1/clinics/{clinic_id}/message-templates": FREE_TEXT,
    "GET /v1/clinics/{clinic_id}/message-templates/{kind}/{channel}/{locale}": FREE_TEXT,
    "PUT /v1/clinics/{clinic_id}/message-templates/{kind}/{channel}/{locale}": FREE_TEXT,
    "GET /v1/orgs/{org_id}/message-templates/{kind}/{channel}/{locale}": FREE_TEXT,
    "PUT /v1/orgs/{org_id}/message-templates/{kind}/{channel}/{locale}": FREE_TEXT,
    "GET /v1/clinics/{clinic_id}/patient-token-secret": FREE_TEXT,
    "POST /v1/clinics/{clinic_id}/patient-token-secret": FREE_TEXT,
    "DELETE /v1/clinics/{clinic_id}/patient-token-secret": FREE_TEXT,
    "GET /health": FREE_TEXT,
    "GET /docs": FREE_TEXT,
    "GET /openapi.json": FREE_TEXT,
    # appointments and links
    "POST /v1/clinics/{clinic_id}/appointments": guard(ids="body.patient.id body.appointment_id body.service_id"),
    "GET /v1/clinics/{clinic_id}/appointments": FREE_TEXT,
    "GET /v1/clinics/{clinic_id}/appointments/{appointment_id}": FREE_TEXT,
    "POST /v1/clinics/{clinic_id}/appointments/{appointment_id}/payment-link": FREE_TEXT,
    "POST /v1/clinics/{clinic_id}/appointments/{appointment_id}/payment-link/send": FREE_TEXT,
    "POST /v1/clinics/{clinic_id}/appointments/{appointment_id}/cancel": FREE_TEXT,
    "GET /v1/clinics/{clinic_id}/appointments/{appointment_id}/payments": FREE_TEXT,
    "POST /v1/clinics/{clinic_id}/appointments/{appointment_id}/payments": FREE_TEXT,
    # payment_reference names a provider's payment (pi_…, an invoice id) or our desk payment.
    "POST /v1/clinics/{clinic_id}/appointments/{appointment_id}/refunds": guard(ids="body.payment_reference"),
    "GET /v1/clinics/{clinic_id}/appointments/{appointment_id}/refunds": FREE_TEXT,
    "GET /pay/{token}": FREE_TEXT,
    "GET /pay/{token}/result": FREE_TEXT,
    "GET /pay/{token}/calendar.ics": FREE_TEXT,
    # the booking widget
    "GET /v1/public/clinics/{clinic_id}/services": FREE_TEXT,
    "POST /v1/public/clinics/{clinic_id}/appointments": guard(
        ids="body.patient.id body.service_id body.patient_token"),
    "POST /v1/public/clinics/{clinic_id}/card-setup": guard(
        ids="body.patient_id body.appointment_id body.patient_token"),
    "GET /v1/public/payments/{token}": FREE_TEXT,
    # cards on file
    "POST /v1/clinics/{clinic_id}/patients/{patient_id}/cards": guard(ids="body.payment_method"),
    "GET /v1/clinics/{clinic_id}/patients/{patient_id}/cards": FREE_TEXT,
    "PUT /v1/clinics/{clinic_id}/patients/{patient_id}/cards/{card_id}/default": FREE_TEXT,
    "DELETE /v1/clinics/{clinic_id}/patients/{patient_id}/cards/{card_id}": FREE_TEXT,
    "POST /v1/clinics/{clinic_id}/patients/{patient_id}/card-setup": FREE_TEXT,
    "POST /v1/clinics/{clinic_id}/patients/{patient_id}/card-requests": FREE_TEXT,
    "POST /v1/clinics/{clinic_id}/patients/{patient_id}/charges": guard(ids="body.card_id body.appointment_id"),
    "GET /v1/clinics/{clinic_id}/patients/{patient_id}/charges": FREE_TEXT,
    "GET /v1/clinics/{clinic_id}/patients/{patient_id}/charges/{charge_id}": FREE_TEXT,
    "POST /v1/clinics/{clinic_id}/patients/{patient_id}/charges/{charge_id}/refunds": FREE_TEXT,
    "GET /v1/clinics/{clinic_id}/patients/{patient_id}/charges/{charge_id}/refunds": FREE_TEXT,
    "GET /cards/setup/{token}": FREE_TEXT,
    "POST /cards/setup/{token}": FREE_TEXT,  # our consent page's form
    "GET /cards/setup/{token}/done": FREE_TEXT,
    # Stripe appends its own ids and the intent's client secret to the return URL.
    "GET /cards/authentication-complete": guard(query=False),
    # QR payments and receipts
    "POST /v1/clinics/{clinic_id}/qr-registers/sync": FREE_TEXT,
    "GET /v1/clinics/{clinic_id}/qr-registers": FREE_TEXT,
    "POST /v1/clinics/{clinic_id}/qr-registers/{qr_id}/amount": guard(ids="body.appointment_id"),
    "DELETE /v1/clinics/{clinic_id}/qr-registers/{qr_id}/amount": FREE_TEXT,
    "GET /v1/clinics/{clinic_id}/fiscal/shift": FREE_TEXT,
    "POST /v1/clinics/{clinic_id}/fiscal/shift/open": FREE_TEXT,
    "POST /v1/clinics/{clinic_id}/fiscal/shift/close": FREE_TEXT,
    "GET /v1/clinics/{clinic_id}/reports/qr-payments": guard(ids="query.qr_id"),
    "GET /v1/clinics/{clinic_id}/qr-payments/{payment_id}": FREE_TEXT,
    "POST /v1/clinics/{clinic_id}/qr-payments/{payment_id}/fiscalize": FREE_TEXT,
    "POST /v1/clinics/{clinic_id}/qr-payments/{payment_id}/refunds": FREE_TEXT,
    # Signed by the provider, verified on the raw bytes, echoing our ids and theirs.
    "POST /webhooks/fintoc/{clinic_id}": NOT_SCANNED,
    "POST /webhooks/monobank/{clinic_id}": NOT_SCANNED,
    "POST /webhooks/stripe/{clinic_id}": NOT_SCANNED,
    "POST /webhooks/checkbox/{clinic_id}": NOT_SCANNED,
}


def guard_for(event: Mapping[str, Any]) -> Guard:
    route_key = str(event.get("routeKey") or (event.get("requestContext") or {}).get("routeKey") or "")
    return GUARDS.get(route_key, UNKNOWN_ROUTE)


def _refused(kind: str, text: str) -> bool:
    if kind == "text":
        return contains_card_number(text)
    if kind == "id":
        return is_card_number(text)
    return False


def _json_values(value: Any, name: str) -> Iterator[tuple[str, str]]:
    """(dotted field name, text) for every key and scalar in a JSON value; list items share their
    list's name."""
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{name}.{key}"
            yield name, str(key)  # a key is text the caller chose, judged as its parent would be
            yield from _json_values(item, child)
    elif isinstance(value, list):
        for item in value:
            yield from _json_values(item, name)
    elif isinstance(value, str):
        yield name, value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield name, str(value)


def _body_text(event: Mapping[str, Any]) -> str:
    raw = event.get("body") or ""
    if raw and event.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode("utf-8", "replace")
    return str(raw)


def _body_refused(raw: str, rule: Guard) -> tuple[bool, Any]:
    """Whether the body carries a card number where this route scans, and the parsed JSON if any."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        # A form (our consent page) or any other text: every field by name, every name as text.
        # Text that is no form parses as names with empty values, so it is all scanned too.
        fields = parse_qsl(raw, keep_blank_values=True)
        return any(contains_card_number(key) or _refused(rule.kind(f"body.{key}"), value)
                   for key, value in fields), None
    return any(_refused(rule.kind(name), text) for name, text in _json_values(parsed, "body")), parsed


def _query_refused(event: Mapping[str, Any], rule: Guard) -> bool:
    pairs = parse_qsl(str(event.get("rawQueryString") or ""), keep_blank_values=True)
    return rule.query and any(contains_card_number(key) or _refused(rule.kind(f"query.{key}"), value)
                              for key, value in pairs)


def _path_refused(event: Mapping[str, Any], rule: Guard) -> bool:
    if rule.path:
        return contains_card_number(unquote_plus(str(event.get("rawPath") or "")))
    return any(_refused(rule.kind(f"path.{name}"), str(value))
               for name, value in (event.get("pathParameters") or {}).items())


def _card_fields(event: Mapping[str, Any], raw: str, parsed: Any) -> bool:
    if not str(event.get("rawPath") or "").startswith("/v1/") or not raw:
        return False
    if parsed is None:
        try:
            parsed = json.loads(raw)
        except ValueError:
            return False
    return carries_card_fields(parsed)


def card_data_refusal_reason(event: Mapping[str, Any]) -> str | None:
    """Where the request carries card data ("body", "query", "path", "card_field"), else None."""
    rule = guard_for(event)
    raw = _body_text(event)
    parsed: Any = None
    if raw and rule.body:
        refused, parsed = _body_refused(raw, rule)
        if refused:
            return "body"
    if _query_refused(event, rule):
        return "query"
    if _path_refused(event, rule):
        return "path"
    if _card_fields(event, raw, parsed):
        return "card_field"
    return None
