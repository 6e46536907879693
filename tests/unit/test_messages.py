from __future__ import annotations

from clinicpay.notify.builtin import CHANNELS, KINDS, LOCALES, Text, builtin
from clinicpay.notify.messages import render, resolve_template
from tests.fakes.payments import FakeTemplates


def test_every_kind_channel_and_locale_has_a_builtin_text() -> None:
    for kind in KINDS:
        for channel in CHANNELS:
            for locale in LOCALES:
                assert builtin(kind, channel, locale).body


def test_clinic_template_overrides_org_which_overrides_builtin() -> None:
    source = FakeTemplates({("ORG#o1", "payment_link", "email", "es"): Text("org", "org body")})
    assert resolve_template(source, "payment_link", "email", "es", "c1", "o1")[1] == "org"
    assert resolve_template(source, "payment_link", "email", "es", "c1", None)[1] == "builtin"
    source.texts[("CLINIC#c1", "payment_link", "email", "es")] = Text("clinic", "clinic body")
    assert resolve_template(source, "payment_link", "email", "es", "c1", "o1")[0].body == "clinic body"


def test_the_payment_line_appears_only_with_a_link() -> None:
    text = builtin("appointment_created", "email", "nb")
    values = {"patient_name": "Kari", "clinic_name": "Klinikk", "service_name": "Time", "starts_at": "2026-12-01 10:00",
              "amount": "500,00 NOK"}
    with_link = render(text, "nb", {**values, "payment_link": "https://pay/x"})
    without = render(text, "nb", {**values, "payment_link": ""})
    assert "Du kan betale på nett her: https://pay/x" in with_link.body
    assert "betale" not in without.body and "\n\n\n" not in without.body


def test_admin_text_cannot_reach_python_attributes() -> None:
    # string.Template has no attribute access, unlike str.format
    rendered = render(Text("", "${patient_name} {patient_name.__class__}"), "en", {"patient_name": "Ana"})
    assert rendered.body == "Ana {patient_name.__class__}"
