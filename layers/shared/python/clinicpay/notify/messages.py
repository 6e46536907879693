"""Compose a patient message: pick the template (clinic -> organization -> built-in) and fill it."""

from __future__ import annotations

from string import Template
from typing import Protocol

from clinicpay.domain.text import clean_line, clean_lines
from clinicpay.notify.builtin import CHANGE_LINE, PAYMENT_LINE, RECEIPT_LINE, REFERENCES, Text, builtin


class TemplateSource(Protocol):
    def get(self, owner: str, kind: str, channel: str, locale: str) -> Text | None: ...


def resolve_template(source: TemplateSource, kind: str, channel: str, locale: str, clinic_id: str,
                     org_id: str | None) -> tuple[Text, str]:
    """Returns the template and where it came from ("clinic", "org" or "builtin")."""
    found = source.get(f"CLINIC#{clinic_id}", kind, channel, locale)
    if found:
        return found, "clinic"
    if org_id:
        found = source.get(f"ORG#{org_id}", kind, channel, locale)
        if found:
            return found, "org"
    return builtin(kind, channel, locale), "builtin"


def render(text: Text, locale: str, values: dict[str, str]) -> Text:
    # Names are checked where they come in; records and templates stored before that may still
    # hold a control character, so none survives here: a subject is always one line.
    filled = {name: clean_line(value) for name, value in values.items()}
    link = values.get("payment_link", "")
    filled["payment_line"] = Template(PAYMENT_LINE.get(locale, PAYMENT_LINE["en"])).safe_substitute(
        payment_link=link) if link else ""
    filled["clinic_contact"] = "\n".join(filled[k] for k in ("clinic_address", "clinic_phone", "clinic_website")
                                         if filled.get(k))
    booking, payment = REFERENCES.get(locale, REFERENCES["en"])
    filled["references"] = "\n".join(Template(line).safe_substitute(filled) for line, key in (
        (booking, "booking_reference"), (payment, "payment_reference")) if filled.get(key))
    filled["receipt_line"] = Template(RECEIPT_LINE.get(locale, RECEIPT_LINE["en"])).safe_substitute(
        filled) if filled.get("receipt_link") else ""
    filled["change_line"] = Template(CHANGE_LINE.get(locale, CHANGE_LINE["en"])).safe_substitute(filled)
    subject = Template(text.subject).safe_substitute(filled)
    body = Template(text.body).safe_substitute(filled)
    # An empty $payment_line leaves a blank line; collapse runs of blank lines.
    while "\n\n\n" in body:
        body = body.replace("\n\n\n", "\n\n")
    return Text(clean_line(subject).strip(), clean_lines(body).strip())
