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


def test_ukrainian_texts_keep_names_in_the_nominative_and_assume_no_gender() -> None:
    # Issue 11 item 6: no past-tense verb whose ending assumes the clinic's gender, no name after a
    # preposition or in a slot that needs another case, the typographic apostrophe only.
    for kind in KINDS:
        for channel in CHANNELS:
            text = builtin(kind, channel, "uk")
            words = text.subject + " " + text.body
            assert "'" not in words, (kind, channel)
            for gendered in ("отримала", "повернула", "списала", "отримав", "повернув"):
                assert f"$clinic_name {gendered}" not in words, (kind, channel)
            for needs_a_case in ("у $clinic_name", "Нагадування $clinic_name", "$patient_name,"):
                assert needs_a_case not in words, (kind, channel)
    assert builtin("payment_receipt", "email", "uk").subject == "$clinic_name: оплату отримано"
    assert builtin("refund_issued", "email", "uk").subject == "$clinic_name: вам повернуто $amount"
    assert builtin("appointment_created", "sms", "uk").body == (
        "$clinic_name: вас записано. $service_name, $starts_at. $payment_line")


def test_ukrainian_dates_and_service_names_follow_no_preposition_that_needs_another_case() -> None:
    # Babel's weekday is in the nominative ("середа"): "на $starts_at" would read "на середа", and
    # "на $service_name" / "за $service_name" would put a service name in the nominative after
    # a preposition that wants the accusative.
    from clinicpay.notify.builtin import CHARGE_REASONS

    texts = [builtin(kind, channel, "uk") for kind in KINDS for channel in CHANNELS]
    words = " ".join(t.subject + " " + t.body for t in texts) + " ".join(r["uk"] for r in CHARGE_REASONS.values())
    for preposition in ("на", "за", "у", "в", "до", "про"):
        for slot in ("$starts_at", "$service_name"):
            assert f"{preposition} {slot}" not in words, (preposition, slot)


def test_the_norwegian_booking_sms_has_a_verb() -> None:
    assert builtin("appointment_created", "sms", "nb").body == (
        "$clinic_name: timen din for $service_name er bestilt til $starts_at. $payment_line")


RECEIPT_VALUES = {"patient_name": "Ana", "clinic_name": "Clínica Sur", "service_name": "Consulta",
                  "starts_at": "martes, 1 de diciembre de 2026, 10:00 (hora de Chile)", "amount": "25.000 CLP",
                  "payment_link": "", "booking_reference": "ap_123", "payment_reference": "pi_9",
                  "receipt_link": "https://pay.example/pay/tok"}


def test_a_receipt_confirms_the_booking_with_its_references_page_and_the_clinics_contact() -> None:
    contact = {"clinic_address": "Av. Providencia 1234, Santiago", "clinic_phone": "+56221234567",
               "clinic_website": "https://sur.example"}
    body = render(builtin("payment_receipt", "email", "es"), "es", {**RECEIPT_VALUES, **contact}).body
    assert "Tu hora queda confirmada." in body
    assert "N.º de reserva: ap_123\nReferencia del pago: pi_9" in body
    assert "Tu comprobante y el archivo para tu calendario: https://pay.example/pay/tok" in body
    # No patient-side cancellation exists: the patient is sent to the clinic, whose contact closes the email
    assert "Si necesitas cambiar o anular tu hora, contacta a Clínica Sur." in body
    assert body.endswith("Clínica Sur\nAv. Providencia 1234, Santiago\n+56221234567\nhttps://sur.example")


def test_lines_with_nothing_to_say_leave_no_gap_or_label() -> None:
    bare = {**RECEIPT_VALUES, "payment_reference": "", "receipt_link": ""}
    for locale in LOCALES:
        body = render(builtin("payment_receipt", "email", locale), locale, bare).body
        assert "\n\n\n" not in body and "$" not in body and "pi_9" not in body
        assert "ap_123" in body and body.endswith("Clínica Sur")


def test_the_ukrainian_change_line_needs_no_case_of_the_clinics_name() -> None:
    body = render(builtin("appointment_created", "email", "uk"), "uk", {**RECEIPT_VALUES, "payment_link": ""}).body
    assert "Щоб змінити або скасувати запис, зверніться до клініки." in body
