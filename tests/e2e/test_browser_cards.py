"""Cards on file in Debian chromium against the local stack and the Stripe sandbox (issue 5, on
issue 3's API): a patient books a card-required service in the widget and saves a card on the
processor's page; staff see it, charge it, charge a no-show fee, ask for a card by email, add a
card at the desk with the patient's consent, change the default and remove one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Route, expect

from clinicpay.domain.card_consent import CONSENT_TEXT_VERSION, LOCALES, consent_text
from tests.e2e.axe import axe_violations
from tests.e2e.conftest_browser_helpers import (
    DESKTOP,
    PHONE,
    Clinic,
    no_horizontal_scroll,
    outbox,
    require_routes,
    unique_email,
    wait_for,
)

pytest_plugins = ["tests.e2e.conftest_browser"]
pytestmark = [pytest.mark.e2e, pytest.mark.browser]

WEB = Path(__file__).resolve().parents[2] / "web"
ROUTES = ("POST /v1/public/clinics/{clinic_id}/appointments", "GET /cards/setup/{token}", "POST /cards/setup/{token}",
          "GET /cards/setup/{token}/done", "POST /webhooks/stripe/{clinic_id}",
          "GET /v1/clinics/{clinic_id}/patients/{patient_id}/cards",
          "POST /v1/clinics/{clinic_id}/patients/{patient_id}/card-setup",
          "POST /v1/clinics/{clinic_id}/patients/{patient_id}/charges",
          "POST /v1/clinics/{clinic_id}/patients/{patient_id}/card-requests",
          "PUT /v1/clinics/{clinic_id}/patients/{patient_id}/cards/{card_id}/default",
          "DELETE /v1/clinics/{clinic_id}/patients/{patient_id}/cards/{card_id}")
CHARGES = re.compile(r"/patients/[^/]+/charges$")
STRIPE_EVENTS = ("setup_intent.succeeded", "setup_intent.setup_failed", "payment_intent.succeeded",
                 "payment_intent.payment_failed", "payment_method.detached", "checkout.session.completed",
                 "checkout.session.expired")


def connect_stripe(clinic: Clinic) -> None:
    """Our webhook endpoint at the Stripe sandbox (as in Stripe's dashboard), then the credentials."""
    import requests

    secret_key = f"sk_test_{clinic.clinic_id}"
    endpoint = requests.post(f"{clinic.base_url}/_sandbox/stripe/v1/webhook_endpoints", timeout=15,
                             headers={"Authorization": f"Bearer {secret_key}"},
                             data=[("url", f"{clinic.base_url}/webhooks/stripe/{clinic.clinic_id}"),
                                   *[("enabled_events[]", event) for event in STRIPE_EVENTS]])
    assert endpoint.status_code == 200, endpoint.text
    clinic.admin().put(clinic.path("/gateways/stripe"), expect=200, json={
        "secret_key": secret_key, "publishable_key": "pk_test_clinicpay", "webhook_secret": endpoint.json()["secret"]})


@pytest.fixture
def clinic(clinic_factory: Any) -> Clinic:
    require_routes(*ROUTES)
    made: Clinic = clinic_factory(name="Clinique Laval", country="CA", currency="CAD", timezone="America/Toronto",
                                  locale="fr")
    connect_stripe(made)
    made.admin().patch(made.path("/settings"), json={"card_required_for_online_booking": True}, expect=200)
    made.put_service("implant", "Implant dentaire", 50000, online=False, card=True, no_show_fee=10000)
    made.put_service("consult", "Consultation", 8000, online=False, no_show_fee=2500)
    return made


def type_card(page: Any, number: str) -> None:
    """What the patient does on the processor's hosted page (the Stripe sandbox), never on ours."""
    page.locator("#cardnumber").fill(number)
    page.locator("#exp").fill("12 / 34")
    page.locator("#cvc").fill("123")
    page.locator("#name").fill("Julie Tremblay")
    page.locator("#submit").click()


def cards_of(clinic: Clinic, patient_id: str) -> list[dict[str, Any]]:
    return list(clinic.staff().get(clinic.path(f"/patients/{patient_id}/cards"), expect=200).json()["cards"])


def test_patient_books_a_card_required_service_and_saves_a_card_then_staff_use_it(
        clinic: Clinic, open_page: Any, shots: Any) -> None:
    # Given the widget, in French, on a phone
    email = unique_email("julie")
    page = open_page(clinic.demo_url(), size=PHONE, locale="fr-CA")
    expect(page.locator("#clinicpay-widget")).to_have_attribute("data-state", "form")
    implant = page.locator(".cpw-service:has([data-service=implant])")
    expect(implant).to_contain_text("Carte bancaire requise pour réserver")
    expect(implant.locator(".cpw-price")).to_have_text(re.compile(r"^500,00\s\$CA$"))

    # When the patient books the card-required service
    page.get_by_label("Implant dentaire").check()
    page.get_by_label("Nom et prénom").fill("Julie Tremblay")
    page.get_by_label("Adresse e-mail").fill(email)
    shots(page, "widget-card-required-phone")
    page.get_by_role("button", name="Réserver et enregistrer une carte").click()

    # Then they agree on our consent page, type the card on the processor's page, and come back
    page.wait_for_url(re.compile(r"/cards/setup/[^/?]+$"))
    # naming, before they agree, the booking the card is for and the no-show fee it may be charged
    expect(page.locator("#booking")).to_contain_text("La carte confirme votre rendez-vous : Implant dentaire")
    expect(page.locator("#booking")).to_contain_text("(heure de l’Est nord-américain)")
    expect(page.locator("#no-show-fee")).to_contain_text("des frais de rendez-vous non honoré de")
    assert axe_violations(page) == []
    shots(page, "card-consent-booking-phone")
    page.get_by_label("J'accepte et j'autorise ces débits").check()
    page.get_by_role("button", name="Continuer").click()
    page.wait_for_url(re.compile(r"/_sandbox/stripe/checkout/"))
    type_card(page, "4242 4242 4242 4242")
    page.wait_for_url(re.compile(r"/cards/setup/[^/]+/done"))
    expect(page.locator("#status")).to_have_text("Votre carte est enregistrée. Merci !", timeout=20_000)
    # naming the booking it was for, confirmed, at the clinic's time with its zone
    booking = page.locator("#booking")
    expect(booking).to_have_attribute("data-confirmed", "true", timeout=20_000)
    expect(booking).to_contain_text("Votre rendez-vous est confirmé : Implant dentaire")
    expect(booking).to_contain_text("(heure de l’Est nord-américain)")
    assert axe_violations(page) == []
    shots(page, "card-saved-booking-phone")

    # and the booking is confirmed, with the card and its consent on the patient's file
    [booked] = [a for a in clinic.appointments() if a["patient"].get("email") == email]
    patient_id = booked["patient"]["id"]
    wait_for(lambda: clinic.appointment(booked["appointment_id"])["status"] == "confirmed", message="confirmed")
    [card] = cards_of(clinic, patient_id)
    assert (card["brand"], card["last4"], card["is_default"]) == ("visa", "4242", True)
    assert card["consent"]["channel"] == "online_booking" and card["consent"]["text_version"] == CONSENT_TEXT_VERSION

    # When a staff member opens the patient's cards from the appointment
    staff = open_page(size=DESKTOP, locale="fr-CA")
    staff.goto(f"{clinic.base_url}/staff")
    staff.locator("#signin-clinic").fill(clinic.clinic_id)
    staff.locator("#signin-key").fill(clinic.staff_key)
    staff.locator("#signin-form button[type=submit]").click()
    staff.locator(f"tr[data-appointment='{booked['appointment_id']}']").get_by_role("button", name="Cartes").click()
    saved = staff.locator(f"li[data-card='{card['card_id']}']")
    expect(saved).to_contain_text("Visa se terminant par 4242")
    expect(saved).to_contain_text("Par défaut")
    # the consent text staff read out is the patient's, word for word
    expect(staff.locator("#consent-text")).to_have_text(consent_text("fr", "Clinique Laval"))

    # they charge 80 CAD on the default card; the first try meets a dropped connection, and the
    # second is the same request under the same Idempotency-Key (one charge, never two)
    charge = staff.get_by_role("region", name="Débiter une carte")
    charge.get_by_label("Montant (CAD)").fill("80")
    keys: list[str] = []

    def drop_the_first(route: Route) -> None:
        if route.request.method != "POST":  # the list of charges, reloaded after each charge
            route.continue_()
            return
        keys.append(route.request.headers.get("idempotency-key", ""))
        if len(keys) == 1:
            route.abort("internetdisconnected")
        else:
            route.continue_()

    staff.route(CHARGES, drop_the_first)
    # the first click only asks, naming the amount, the card and the patient; nothing is sent yet,
    # and cancelling sends nothing either
    charge.get_by_role("button", name="Débiter", exact=True).click()
    question = staff.locator("#charge-confirm")
    expect(question).to_contain_text(
        re.compile(r"Débiter 80,00\s\$CA sur la carte Visa se terminant par 4242 de Julie Tremblay \?"))
    shots(staff, "staff-charge-confirm-desktop")
    question.get_by_role("button", name="Annuler").click()
    expect(question).to_be_empty()
    assert keys == []
    charge.get_by_role("button", name="Débiter", exact=True).click()
    question.get_by_role("button", name=re.compile(r"^Oui, débiter 80,00\s\$CA$")).click()
    expect(staff.locator("#charge-status")).to_have_text("Impossible de joindre le serveur. Vérifiez la connexion et réessayez.")
    charge.get_by_role("button", name="Débiter", exact=True).click()
    question.get_by_role("button", name=re.compile(r"^Oui, débiter 80,00\s\$CA$")).click()
    expect(staff.locator("#charge-status")).to_have_text(re.compile(r"^80,00\s\$CA débité\.$"))
    staff.unroute(CHARGES)
    assert len(keys) == 2 and keys[0] == keys[1] != ""
    # and the list of the patient's charges shows it
    charged = staff.locator("li.charge-item")
    expect(charged).to_have_count(1)
    expect(charged.first).to_contain_text(re.compile(r"80,00\s\$CA"))
    expect(charged.first).to_contain_text("Débité")
    expect(charged.first).to_contain_text("Rendez-vous")
    expect(charged.first).to_contain_text("Visa se terminant par 4242")
    # and the no-show fee of the booked service (amount left empty)
    charge.get_by_label("Montant (CAD)").fill("")
    charge.get_by_label("Identifiant du rendez-vous").fill(booked["appointment_id"])
    charge.get_by_role("button", name="Débiter les frais d'absence").click()
    expect(question).to_contain_text(
        "Débiter les frais d'absence sur la carte Visa se terminant par 4242 de Julie Tremblay ?")
    question.get_by_role("button", name="Oui, débiter les frais").click()
    expect(staff.locator("#charge-status")).to_have_text(re.compile(r"^100,00\s\$CA débité\.$"))
    # the same no-show again is refused, and the page says so
    charge.get_by_role("button", name="Débiter les frais d'absence").click()
    question.get_by_role("button", name="Oui, débiter les frais").click()
    expect(staff.locator("#charge-status")).to_contain_text("Ce rendez-vous a déjà un débit pour ce motif.")
    # the list has both, newest first
    expect(charged).to_have_count(2)
    expect(charged.first).to_contain_text(re.compile(r"100,00\s\$CA"))
    expect(charged.first).to_contain_text("Frais d'absence")

    # they refund part of the 80 CAD charge: the form offers what is left, the second step names
    # the amount and the patient, and the answer shows in place
    eighty = charged.nth(1)
    eighty.get_by_role("button", name="Rembourser", exact=True).click()
    amount = eighty.get_by_label("Montant à rembourser (CAD)")
    expect(amount).to_have_value("80,00")
    amount.fill("30")
    eighty.get_by_role("button", name="Continuer").click()
    expect(eighty).to_contain_text(re.compile(r"Rembourser 30,00\s\$CA à Julie Tremblay \?"))
    eighty.get_by_role("button", name=re.compile(r"^Oui, rembourser 30,00\s\$CA$")).click()
    eighty = staff.locator("li.charge-item").nth(1)
    expect(eighty.get_by_role("status")).to_have_text(re.compile(r"^30,00\s\$CA remboursé à Julie Tremblay\.$"))
    # and the list, reloaded, shows it partly refunded, with 50 CAD still refundable
    expect(eighty).to_have_attribute("data-status", "partially_refunded")
    expect(eighty).to_contain_text("Remboursé en partie")
    expect(eighty).to_contain_text(re.compile(r"Remboursé 30,00\s\$CA"))
    # with the refund itself listed under the charge (issue 11: refund history on the charge)
    refunds = eighty.get_by_role("list", name="Remboursements de ce débit").get_by_role("listitem")
    expect(refunds).to_have_count(1)
    expect(refunds.first).to_have_text(re.compile(r"^Remboursement de 30,00\s\$CA, .+ · remboursé$"))
    eighty.get_by_role("button", name="Rembourser", exact=True).click()
    expect(eighty.get_by_label("Montant à rembourser (CAD)")).to_have_value("50,00")
    eighty.get_by_role("button", name="Annuler").click()
    # (the charges list; the staff page as a whole has a landmark-unique finding of its own: each
    # view's section and its first panel share one label)
    assert axe_violations(staff, include="#charges-list") == []

    # they send a card request by email, and the patient has it
    staff.get_by_role("region", name="Demander une carte au patient").get_by_role("button", name="Envoyer la demande").click()
    expect(staff.locator("#request-status")).to_have_text("Demande de carte envoyée par e-mail.")
    mail = wait_for(lambda: [m for m in outbox(clinic.base_url, email) if "/cards/setup/" in (m["body"] or "")],
                    message="the card request email")
    assert mail[-1]["links"] and "/cards/setup/" in mail[-1]["links"][0]

    # they add a second card at the desk: the consent box first, then the processor's page
    add = staff.get_by_role("region", name="Ajouter une carte")
    add.get_by_role("button", name="Continuer vers la page de la carte").click()
    expect(staff.locator("#add-card-status")).to_have_text("Cochez d'abord la case de consentement.")
    add.get_by_role("checkbox").check()
    add.get_by_role("button", name="Continuer vers la page de la carte").click()
    with staff.expect_popup() as popup:
        add.get_by_role("link", name="Ouvrir la page de carte").click()
    desk = popup.value
    desk.wait_for_url(re.compile(r"/_sandbox/stripe/checkout/"))
    type_card(desk, "5555 5555 5555 4444")
    desk.wait_for_url(re.compile(r"/cards/setup/[^/]+/done"))
    wait_for(lambda: len(cards_of(clinic, patient_id)) == 2, message="the second card saved")
    staff.get_by_role("button", name="Voir les cartes").click()
    mastercard = staff.locator("li.card-item", has_text="4444")
    expect(mastercard).to_contain_text("Mastercard se terminant par 4444")

    # they make it the default, and remove the first one (asked twice, no browser dialog)
    mastercard.get_by_role("button", name="Définir par défaut").click()
    expect(staff.locator("#cards-status")).to_have_text("Carte par défaut modifiée.")
    expect(staff.locator("li.card-item", has_text="4444")).to_contain_text("Par défaut")
    visa = staff.locator(f"li[data-card='{card['card_id']}']")
    visa.get_by_role("button", name="Supprimer").click()
    expect(visa.get_by_role("status")).to_have_text("Supprimer cette carte ? Elle est aussi supprimée chez le prestataire.")
    visa.get_by_role("button", name="Supprimer · Oui").click()
    expect(staff.locator("#cards-status")).to_have_text("Carte supprimée.")
    expect(staff.locator("li.card-item")).to_have_count(1)
    remaining = cards_of(clinic, patient_id)
    assert [(c["last4"], c["is_default"]) for c in remaining] == [("4444", True)]
    assert remaining[0]["consent"]["channel"] == "staff"

    shots(staff, "staff-cards-desktop")
    staff.set_viewport_size(PHONE)
    assert no_horizontal_scroll(staff)
    shots(staff, "staff-cards-phone")


def test_the_staff_consent_text_is_the_card_pages_text_in_every_language(open_page: Any) -> None:
    """The words staff read out at the desk are the ones a patient agrees to on the card page."""
    page = open_page()
    page.goto("about:blank")
    page.add_script_tag(path=str(WEB / "staff-i18n.js"))
    texts = page.evaluate("() => Object.fromEntries(window.CLINICPAY_LOCALES.map(l => [l, "
                          "window.CLINICPAY_STAFF_TEXT[l].consent_text]))")
    assert set(texts) == set(LOCALES)
    for locale in LOCALES:
        assert texts[locale].replace("{clinic}", "Clinique Laval") == consent_text(locale, "Clinique Laval"), locale
    assert f'CONSENT_TEXT_VERSION = "{CONSENT_TEXT_VERSION}"' in (WEB / "staff.js").read_text()
