"""The staff page's money buttons in Debian chromium against the local stack (issue 9): a refund
named and confirmed before it is sent, Fintoc confirming it by its event; a deposit paid online,
the balance taken at the desk; a link sent for the balance."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.axe import axe_violations
from tests.e2e.conftest_browser_helpers import DESKTOP, PHONE, Clinic, no_horizontal_scroll, outbox, unique_email, wait_for

pytest_plugins = ["tests.e2e.conftest_browser"]
pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
def clinic(clinic_factory: Any) -> Clinic:
    made: Clinic = clinic_factory(name="Clínica Providencia")
    made.connect_fintoc()
    made.put_service("consulta", "Consulta general", 25000)
    made.put_service("cirugia", "Cirugía menor", 25000, deposit={"type": "percent", "percent": 30})
    # Fintoc pays refunds out in a daily batch; here its batch runs at once
    requests.post(f"{made.base_url}/_sandbox/fintoc/_control/refunds/mode", json={"mode": "succeed"}, timeout=10)
    return made


def pay(clinic: Clinic, appointment: dict[str, Any], expect_status: str) -> None:
    opened = requests.get(appointment["payment_link"]["url"], allow_redirects=False, timeout=10)
    assert opened.status_code == 303, opened.text
    paid = requests.post(f"{opened.headers['Location']}/pay", allow_redirects=False, timeout=10)
    assert paid.status_code in (302, 303), paid.text
    wait_for(lambda: clinic.appointment(appointment["appointment_id"])["payment_status"] == expect_status,
             message=expect_status)


def sign_in(page: Any, clinic: Clinic) -> None:
    page.goto(f"{clinic.base_url}/staff")
    page.locator("#signin-clinic").fill(clinic.clinic_id)
    page.locator("#signin-key").fill(clinic.staff_key)
    page.locator("#signin-form button[type=submit]").click()
    expect(page.locator("#app")).to_be_visible()


def row(page: Any, appointment: dict[str, Any]) -> Any:
    return page.locator(f"tr[data-appointment='{appointment['appointment_id']}']")


def refresh(page: Any) -> None:
    page.locator("#appts-filters button[type=submit]").click()


def test_staff_refund_part_of_a_payment_after_confirming_amount_and_patient(clinic: Clinic, open_page: Any,
                                                                            shots: Any) -> None:
    email = unique_email("ana")
    ana = clinic.book({"id": "p-ana", "name": "Ana Pérez", "email": email}, "consulta")
    pay(clinic, ana, "paid")
    page = open_page(size=DESKTOP)
    sign_in(page, clinic)
    line = row(page, ana)
    expect(line.locator("[data-money]")).to_have_text(re.compile(r"Pagado 25\.000\sCLP"))

    # When staff press "Reembolsar": the amount is what is left, the payment is named
    line.get_by_role("button", name="Reembolsar").click()
    amount = line.get_by_label("Monto a reembolsar (CLP)")
    expect(amount).to_have_value("25000")
    expect(line.get_by_label("Pago a reembolsar")).to_contain_text(re.compile(r"en línea, quedan 25\.000\sCLP"))
    shots(page, "staff-refund-form-desktop")
    # More than is left is stopped before anything is sent
    amount.fill("30000")
    line.get_by_role("button", name="Continuar").click()
    expect(line.get_by_role("status")).to_have_text("Es más de lo que queda por reembolsar de este pago.")
    amount.fill("10.000")
    line.get_by_label("Motivo").fill("Descuento acordado")
    line.get_by_role("button", name="Continuar").click()

    # Then it asks, naming the amount and the patient, and nothing is sent yet
    expect(line.get_by_text(re.compile(r"¿Reembolsar 10\.000\sCLP a Ana Pérez\?"))).to_be_visible()
    shots(page, "staff-refund-confirm-desktop")
    page.set_viewport_size(PHONE)
    assert no_horizontal_scroll(page)
    shots(page, "staff-refund-confirm-phone")
    page.set_viewport_size(DESKTOP)
    assert clinic.appointment(ana["appointment_id"])["amount_refunded"]["amount"] == 0
    line.get_by_role("button", name=re.compile(r"Sí, reembolsar 10\.000")).click()

    # Then Fintoc has it (pending), its batch pays it out, and the row shows the new amounts
    expect(line.get_by_role("status")).to_contain_text(re.compile(r"Reembolso de 10\.000\sCLP a Ana Pérez solicitado"))
    wait_for(lambda: clinic.appointment(ana["appointment_id"])["payment_status"] == "partially_refunded",
             message="refund settled by Fintoc's event")
    refresh(page)
    expect(line.locator("[data-payment-status]")).to_have_text("Reembolso parcial")
    expect(line.locator("[data-money]")).to_have_text(re.compile(r"Pagado 25\.000\sCLP · Reembolsado 10\.000\sCLP"))
    # The row's history names the payment and the refund with its outcome, and the patient's receipt
    line.get_by_role("button", name="Historial de pagos").click()
    history = line.get_by_role("group", name="Pagos, reembolsos y cobros")
    expect(history.locator("li[data-history=payment]")).to_have_text(
        re.compile(r"^Pago 25\.000\sCLP en línea · Fintoc · pi_\w+ · .+ · Reembolsado 10\.000\sCLP$"))
    expect(history.locator("li[data-history=refund]")).to_have_text(
        re.compile(r"^Reembolso 10\.000\sCLP · reembolsado · .+ · Descuento acordado$"))
    expect(history.get_by_role("link", name="Página del comprobante del paciente")).to_have_attribute(
        "href", ana["payment_link"]["url"])
    assert axe_violations(page) == []
    history.get_by_role("button", name="Cerrar", exact=True).click()
    expect(history).to_have_count(0)
    mail = wait_for(lambda: [m for m in outbox(clinic.base_url, email) if "devolvió" in (m["subject"] or "")],
                    message="the refund email")
    assert len(mail) == 1 and "10.000" in mail[0]["body"]

    # The rest: the form now offers what is left
    line.get_by_role("button", name="Reembolsar").click()
    expect(line.get_by_label("Monto a reembolsar (CLP)")).to_have_value("15000")
    line.get_by_role("button", name="Continuar").click()
    line.get_by_role("button", name=re.compile(r"Sí, reembolsar 15\.000")).click()
    wait_for(lambda: clinic.appointment(ana["appointment_id"])["payment_status"] == "refunded", message="refunded")
    refresh(page)
    expect(line.locator("[data-payment-status]")).to_have_text("Reembolsado")
    expect(line.get_by_role("button", name="Reembolsar")).to_have_count(0)


def test_a_deposit_online_the_balance_at_the_desk_and_a_balance_link(clinic: Clinic, open_page: Any,
                                                                     shots: Any) -> None:
    ana = clinic.book({"id": "p-ana", "name": "Ana Pérez", "email": unique_email("ana")}, "cirugia")
    luis_email = unique_email("luis")
    luis = clinic.book({"id": "p-luis", "name": "Luis Soto", "email": luis_email}, "cirugia", days=4)
    pay(clinic, ana, "deposit_paid")
    pay(clinic, luis, "deposit_paid")
    page = open_page(size=DESKTOP)
    sign_in(page, clinic)
    line = row(page, ana)
    expect(line.locator("[data-payment-status]")).to_have_text("Abono pagado")
    expect(line.locator("[data-money]")).to_have_text(re.compile(r"Pagado 7\.?500\sCLP · Saldo 17\.500\sCLP"))
    shots(page, "staff-deposit-desktop")

    # Ana pays the balance at the desk
    line.get_by_role("button", name="Pagado en recepción").click()
    expect(line.get_by_label("Monto pagado (CLP)")).to_have_value("17500")
    line.get_by_label("Nota").fill("Efectivo")
    line.get_by_role("button", name="Registrar el pago").click()
    expect(line.get_by_role("status")).to_have_text(re.compile(r"Registrado: Ana Pérez pagó 17\.500\sCLP en recepción\."))
    expect(line.locator("[data-payment-status]")).to_have_text("Pagado")
    expect(line.get_by_role("button", name="Pagado en recepción")).to_have_count(0)
    assert clinic.appointment(ana["appointment_id"])["balance_due"]["amount"] == 0

    # Luis gets a link for his balance
    row(page, luis).get_by_role("button", name="Enviar enlace del saldo").click()
    expect(row(page, luis).get_by_role("status")).to_have_text(
        re.compile(r"Enlace del saldo \(17\.500\sCLP\) enviado a Luis Soto por correo\."))
    mail = wait_for(lambda: [m for m in outbox(clinic.base_url, luis_email) if "Paga tu hora" in (m["subject"] or "")],
                    message="the balance link")
    assert "17.500" in mail[-1]["body"]
    pay(clinic, luis, "paid")
    # The refund form lists both parts of Ana's money, the online deposit chosen first
    line.get_by_role("button", name="Reembolsar").click()
    choice = line.get_by_label("Pago a reembolsar")
    expect(choice.locator("option")).to_have_count(2)
    expect(choice.locator("option:checked")).to_contain_text("en línea")
    expect(line.get_by_label("Monto a reembolsar (CLP)")).to_have_value("7500")
    desk_option = choice.locator("option", has_text="en recepción")
    choice.select_option(desk_option.get_attribute("value"))
    expect(line.get_by_label("Monto a reembolsar (CLP)")).to_have_value("17500")
    expect(line.get_by_text("Pagado en recepción: devuelve el dinero en recepción; aquí queda registrado.")).to_be_visible()


def test_an_admin_sets_a_deposit_on_a_service_and_editing_it_again_keeps_it(clinic: Clinic, open_page: Any) -> None:
    page = open_page(size=DESKTOP)
    page.goto(f"{clinic.base_url}/staff")
    page.locator("#signin-clinic").fill(clinic.clinic_id)
    page.locator("#signin-key").fill(clinic.admin_key)
    page.locator("#signin-form button[type=submit]").click()
    page.get_by_role("link", name="Configuración").click()
    # A percentage outside 1..100 is refused before anything is sent
    page.locator("tr[data-service=consulta]").get_by_role("button", name=re.compile("^Editar")).click()
    deposit = page.get_by_label(re.compile(r"^Abono en línea \(% del precio\)"))
    deposit.fill("150")
    page.locator("#service-form button[type=submit]").click()
    expect(deposit).to_have_attribute("aria-invalid", "true")
    deposit.fill("40")
    page.locator("#service-form button[type=submit]").click()
    expect(page.locator("tr[data-service=consulta]")).to_contain_text("40 %")
    # Editing the name only keeps the deposit
    page.locator("tr[data-service=consulta]").get_by_role("button", name=re.compile("^Editar")).click()
    expect(deposit).to_have_value("40")
    page.locator("#sv-name").fill("Consulta")
    page.locator("#service-form button[type=submit]").click()
    expect(page.locator("tr[data-service=consulta]")).to_contain_text("Consulta")
    services = {s["service_id"]: s for s in clinic.admin().get(clinic.path("/services"), expect=200).json()["services"]}
    assert services["consulta"]["deposit"] == {"type": "percent", "percent": 40}
    assert services["consulta"]["name"] == "Consulta"
    # and a booking of it asks 40 % first
    booked = clinic.book({"id": "p-eva", "name": "Eva", "email": unique_email("eva")}, "consulta")
    assert booked["deposit"] == {"amount": 10000, "currency": "CLP"}
