"""Clinic administration through the admin handler, against moto."""

from __future__ import annotations

import boto3
import pytest

from clinicpay.secrets import secret_name
from tests.support.api import ApiClient
from tests.support.clinics import add_service, create_clinic
from tests.support.env import OPERATOR_KEY


def test_operator_creates_a_clinic_and_keys_are_stored_only_as_hashes(operator: ApiClient) -> None:
    # When
    response = operator.post("/v1/clinics", json={"name": "Clinica Sur", "country": "CL", "currency": "CLP",
                                                  "timezone": "America/Santiago", "locale": "es"})
    # Then
    assert response.status == 201
    body = response.json()
    assert body["admin_key"].startswith("cp_admin_") and body["publishable_key"].startswith("cp_pub_")
    items = boto3.resource("dynamodb").Table("AppointmentsTable").scan()["Items"]
    assert not any(body["admin_key"] in str(item) for item in items)


def test_clinic_creation_needs_the_operator_key(api: ApiClient) -> None:
    body = {"name": "X", "country": "CL", "currency": "CLP", "timezone": "America/Santiago", "locale": "es"}
    assert api.post("/v1/clinics", json=body).status == 401
    assert api.with_key("not-the-key").post("/v1/clinics", json=body).status == 401


def test_bad_clinic_input_is_422_in_the_error_shape(operator: ApiClient) -> None:
    response = operator.post("/v1/clinics", json={"name": "X", "country": "CL", "currency": "XXX",
                                                  "timezone": "Nowhere/City", "locale": "es"})
    assert response.status == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_settings_patch_changes_only_what_was_sent_and_staff_cannot_change_them() -> None:
    clinic = create_clinic()
    # When
    patched = clinic.admin().patch(clinic.path("/settings"), json={"show_payment_link_in_email": True})
    # Then
    assert patched.status == 200
    assert patched.json()["show_payment_link_in_email"] is True
    assert patched.json()["online_link_ttl_minutes"] == 60
    assert clinic.staff().patch(clinic.path("/settings"), json={"online_link_ttl_minutes": 5}).status == 403
    assert clinic.staff().get(clinic.path("/settings")).json()["online_link_ttl_minutes"] == 60


def test_a_key_of_clinic_a_on_clinic_b_is_404() -> None:
    a, b = create_clinic(), create_clinic()
    assert a.admin().get(b.path("/settings")).status == 404


def test_gateway_credentials_go_to_secrets_manager_and_come_back_masked() -> None:
    clinic = create_clinic()
    # When
    stored = clinic.admin().put(clinic.path("/gateways/fintoc"), json={
        "secret_key": "sk_test_abcdefghijka1b2", "public_key": "pk_test_x", "webhook_secret": "whsec_zzzzzzzzzzzz9999"})
    listed = clinic.admin().get(clinic.path("/gateways"))
    # Then
    assert stored.status == 200
    gateway = listed.json()["gateways"][0]
    assert gateway["masked"]["secret_key"] == "sk_test_…a1b2"
    assert "abcdefghijk" not in listed.body.decode()
    secret = boto3.client("secretsmanager").get_secret_value(SecretId=secret_name(clinic.clinic_id, "fintoc"))
    assert "sk_test_abcdefghijka1b2" in secret["SecretString"]


def test_gateway_body_validation_never_echoes_values() -> None:
    clinic = create_clinic()
    response = clinic.admin().put(clinic.path("/gateways/stripe"), json={"secret_key": "sk_test_sekrit123456",
                                                                       "publishable_key": "nope"})
    assert response.status == 422
    assert "sk_test_sekrit" not in response.body.decode()


def test_services_are_priced_in_the_clinic_currency_with_integer_minor_units() -> None:
    clinic = create_clinic()
    add_service(clinic, "consulta", 25000)
    bad_currency = clinic.admin().put(clinic.path("/services/x"), json={
        "name": "X", "price": {"amount": 100, "currency": "UAH"}})
    float_amount = clinic.admin().put(clinic.path("/services/x"), json={
        "name": "X", "price": {"amount": 100.5, "currency": "CLP"}})
    negative = clinic.admin().put(clinic.path("/services/x"), json={
        "name": "X", "price": {"amount": -1, "currency": "CLP"}})
    assert (bad_currency.status, float_amount.status, negative.status) == (422, 422, 422)
    services = clinic.staff().get(clinic.path("/services")).json()["services"]
    assert [s["service_id"] for s in services] == ["consulta"]


def test_templates_resolve_clinic_over_org_over_builtin() -> None:
    clinic = create_clinic(org_id="org-1")
    operator = ApiClient().with_key(OPERATOR_KEY)
    path = clinic.path("/message-templates/payment_link/email/es")
    assert clinic.staff().get(path).json()["source"] == "builtin"
    operator.put("/v1/orgs/org-1/message-templates/payment_link/email/es", json={"subject": "Org", "body": "org $payment_link"})
    assert clinic.staff().get(path).json()["source"] == "org"
    clinic.admin().put(path, json={"subject": "Clinic", "body": "clinic $payment_link"})
    assert clinic.staff().get(path).json()["body"] == "clinic $payment_link"


def test_the_card_charged_message_is_listed_and_overridable_like_every_kind() -> None:
    clinic = create_clinic(org_id="org-2")
    listed = clinic.staff().get(clinic.path("/message-templates")).json()["templates"]
    ours = [t for t in listed if t["kind"] == "card_charged"]
    assert len(ours) == 10 and {t["source"] for t in ours} == {"builtin"}
    assert {t["kind"] for t in listed} >= {"refund_issued", "card_charged"}
    es = next(t for t in ours if (t["channel"], t["locale"]) == ("email", "es"))
    assert "$card" in es["body"] and "$charge_reason" in es["body"]
    operator = ApiClient().with_key(OPERATOR_KEY)
    assert operator.put("/v1/orgs/org-2/message-templates/card_charged/sms/es",
                        json={"body": "Org: $amount a $card"}).status == 200
    path = clinic.path("/message-templates/card_charged/sms/es")
    assert clinic.staff().get(path).json()["source"] == "org"
    assert clinic.admin().put(path, json={"body": "Clínica: $amount a $card"}).status == 200
    assert clinic.staff().get(path).json() == {"kind": "card_charged", "channel": "sms", "locale": "es",
                                               "source": "clinic", "subject": "", "body": "Clínica: $amount a $card"}
    assert clinic.staff().get(clinic.path("/message-templates/card_charges/sms/es")).status == 404


def test_health_is_public_and_reads_the_tables() -> None:
    response = ApiClient().get("/health")
    assert response.status == 200
    assert response.json() == {"status": "ok", "checks": {"storage": "ok", "keys": "ok"}}
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("table", "check"), [("KeysTable", "keys"), ("AppointmentsTable", "storage")])
def test_health_names_the_failing_check_without_naming_internals(table: str, check: str) -> None:
    # Given the table is gone (as if deleted, or its region down)
    boto3.client("dynamodb").delete_table(TableName=table)
    # When
    response = ApiClient().get("/health")
    # Then
    assert response.status == 503
    assert response.headers["Retry-After"] == "30"
    error = response.json()["error"]
    assert error["code"] == "unhealthy"
    assert {"check": check, "status": "failing"} in error["details"]
    assert [d["check"] for d in error["details"] if d["status"] == "ok"] == [c for c in ("storage", "keys") if c != check]
    body = response.body.decode()
    assert table not in body and "ResourceNotFound" not in body and "arn:" not in body


def test_a_put_after_a_delete_restores_the_gateway_secret_and_stores_the_new_value() -> None:
    clinic = create_clinic()
    secrets = boto3.client("secretsmanager")
    fintoc = {"secret_key": "sk_test_first_value_0001", "public_key": "pk_test_x", "webhook_secret": "whsec_first_00001"}
    assert clinic.admin().put(clinic.path("/gateways/fintoc"), json=fintoc).status == 200
    # When the gateway is deleted, its secret is only scheduled for deletion (recoverable)
    assert clinic.admin().delete(clinic.path("/gateways/fintoc")).status == 204
    name = secret_name(clinic.clinic_id, "fintoc")
    assert secrets.describe_secret(SecretId=name).get("DeletedDate") is not None
    assert clinic.admin().get(clinic.path("/gateways")).json()["gateways"] == []
    # deleting again: that gateway is not configured, and the secret stays recoverable
    assert clinic.admin().delete(clinic.path("/gateways/fintoc")).status == 404
    assert secrets.describe_secret(SecretId=name).get("DeletedDate") is not None
    # And storing credentials again restores the secret with the new value
    second = {**fintoc, "secret_key": "sk_test_second_value_02"}
    assert clinic.admin().put(clinic.path("/gateways/fintoc"), json=second).status == 200
    described = secrets.describe_secret(SecretId=name)
    assert described.get("DeletedDate") is None
    assert "sk_test_second_value_02" in secrets.get_secret_value(SecretId=name)["SecretString"]


def test_a_deleted_gateways_credentials_read_as_not_configured() -> None:
    from clinicpay import secrets as clinic_secrets
    from clinicpay.domain.errors import GatewayNotConfigured

    clinic = create_clinic()
    fintoc = {"secret_key": "sk_test_abcdefghijka1b2", "public_key": "pk_test_x", "webhook_secret": "whsec_zzzzzzzzz9"}
    assert clinic.admin().put(clinic.path("/gateways/fintoc"), json=fintoc).status == 200
    assert clinic.admin().delete(clinic.path("/gateways/fintoc")).status == 204
    with pytest.raises(GatewayNotConfigured):
        clinic_secrets.read_credentials(clinic.clinic_id, "fintoc", fresh=True)
