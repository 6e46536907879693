"""API keys: listing, revocation (admin revokes staff keys, the operator admin keys), the key cache."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from clinicpay.repositories.keys import KeyCache, KeyRepository, hash_key
from clinicpay.settings import get_settings
from tests.support.api import ApiClient
from tests.support.clinics import ClinicKeys, add_service, create_clinic
from tests.support.env import OPERATOR_KEY


@pytest.fixture
def clinic() -> ClinicKeys:
    return create_clinic()


def _key_id(clinic: ClinicKeys, role: str) -> str:
    listed = clinic.admin().get(clinic.path("/keys")).json()["keys"]
    return next(k["key_id"] for k in listed if k["role"] == role and k["status"] == "active")


def test_an_admin_lists_its_clinics_keys_without_the_keys(clinic: ClinicKeys) -> None:
    # When
    response = clinic.admin().get(clinic.path("/keys"))
    # Then
    assert response.status == 200
    keys = response.json()["keys"]
    assert sorted(k["role"] for k in keys) == ["admin", "publishable", "staff"]
    for key in keys:
        assert set(key) == {"key_id", "role", "prefix", "created_at", "revoked_at", "status"}
        assert key["status"] == "active" and key["revoked_at"] is None
    staff = next(k for k in keys if k["role"] == "staff")
    assert clinic.staff_key.startswith(staff["prefix"]) and len(staff["prefix"]) == len("cp_staff_") + 4
    body = response.body.decode()
    for secret in (clinic.admin_key, clinic.staff_key, clinic.publishable_key, hash_key(clinic.staff_key)):
        assert secret not in body


def test_staff_and_widget_keys_cannot_list_keys(clinic: ClinicKeys) -> None:
    assert clinic.staff().get(clinic.path("/keys")).status == 403
    assert clinic.widget().get(clinic.path("/keys")).status == 401
    assert ApiClient().get(clinic.path("/keys")).status == 401


def test_an_admin_revokes_a_staff_key_and_it_stops_working_at_once(clinic: ClinicKeys) -> None:
    assert clinic.staff().get(clinic.path("/services")).status == 200
    staff_id = _key_id(clinic, "staff")
    # When
    revoked = clinic.admin().delete(clinic.path(f"/keys/{staff_id}"))
    # Then
    assert revoked.status == 204
    assert clinic.staff().get(clinic.path("/services")).status == 401
    listed = {k["key_id"]: k for k in clinic.admin().get(clinic.path("/keys")).json()["keys"]}
    assert listed[staff_id]["status"] == "revoked" and listed[staff_id]["revoked_at"]
    # the admin key is untouched
    assert clinic.admin().get(clinic.path("/services")).status == 200
    # revoking again changes nothing, and the first revocation time stays
    assert clinic.admin().delete(clinic.path(f"/keys/{staff_id}")).status == 204
    again = {k["key_id"]: k for k in clinic.admin().get(clinic.path("/keys")).json()["keys"]}
    assert again[staff_id]["revoked_at"] == listed[staff_id]["revoked_at"]


def test_a_revoked_key_is_revoked_in_every_function(clinic: ClinicKeys) -> None:
    staff_id = _key_id(clinic, "staff")
    assert clinic.admin().delete(clinic.path(f"/keys/{staff_id}")).status == 204
    # create_link, tokenize and fiscalize read the same KeysTable
    assert clinic.staff().get(clinic.path("/appointments")).status == 401
    assert clinic.staff().get(clinic.path("/patients/pat_1/cards")).status == 401
    assert clinic.staff().get(clinic.path("/qr-registers")).status == 401


def test_an_admin_cannot_revoke_admin_or_publishable_keys_nor_staff_revoke_anything(clinic: ClinicKeys) -> None:
    admin_id, publishable_id, staff_id = (_key_id(clinic, r) for r in ("admin", "publishable", "staff"))
    assert clinic.admin().delete(clinic.path(f"/keys/{admin_id}")).status == 403
    assert clinic.admin().delete(clinic.path(f"/keys/{publishable_id}")).status == 403
    assert clinic.staff().delete(clinic.path(f"/keys/{staff_id}")).status == 403
    assert clinic.admin().get(clinic.path("/services")).status == 200
    assert clinic.widget().get(f"/v1/public/clinics/{clinic.clinic_id}/services").status == 200
    assert clinic.staff().get(clinic.path("/services")).status == 200


def test_an_admin_cannot_touch_another_clinics_keys(clinic: ClinicKeys) -> None:
    other = create_clinic()
    other_staff = _key_id(other, "staff")
    # another clinic's path: 404, as for every other clinic object
    assert clinic.admin().delete(other.path(f"/keys/{other_staff}")).status == 404
    assert clinic.admin().get(other.path("/keys")).status == 404
    # another clinic's key id under its own path: no such key
    assert clinic.admin().delete(clinic.path(f"/keys/{other_staff}")).status == 404
    assert other.staff().get(other.path("/services")).status == 200


@pytest.mark.parametrize("key_id", ["nope", "0" * 12, "A" * 12, "f" * 2000])
def test_an_unknown_or_malformed_key_id_is_404(clinic: ClinicKeys, key_id: str) -> None:
    response = clinic.admin().delete(clinic.path(f"/keys/{key_id}"))
    assert response.status == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_operator_revokes_an_admin_key_and_issues_a_new_one(clinic: ClinicKeys) -> None:
    operator = ApiClient().with_key(OPERATOR_KEY)
    admin_id = _key_id(clinic, "admin")
    # When
    assert operator.delete(clinic.path(f"/keys/{admin_id}")).status == 204
    issued = operator.post(clinic.path("/admin-keys"))
    # Then
    assert clinic.admin().get(clinic.path("/settings")).status == 401
    assert issued.status == 201
    new_admin = issued.json()
    assert new_admin["role"] == "admin" and new_admin["key"].startswith(new_admin["prefix"])
    replacement = ApiClient().with_key(new_admin["key"])
    assert replacement.get(clinic.path("/settings")).status == 200
    listed = {k["key_id"]: k["status"] for k in operator.get(clinic.path("/keys")).json()["keys"]}
    assert listed[admin_id] == "revoked" and listed[new_admin["key_id"]] == "active"
    # staff keys made before stay valid
    assert clinic.staff().get(clinic.path("/services")).status == 200


def test_only_the_operator_issues_admin_keys(clinic: ClinicKeys) -> None:
    # a known key of a kind the route does not take is a 403 (docs/API.md, Error codes)
    assert clinic.admin().post(clinic.path("/admin-keys")).status == 403
    assert ApiClient().post(clinic.path("/admin-keys")).status == 401
    assert ApiClient().with_key(OPERATOR_KEY).post("/v1/clinics/cl_nosuchclinic/admin-keys").status == 404


def test_keys_live_in_the_keys_table_as_hashes_only(clinic: ClinicKeys) -> None:
    items = boto3.resource("dynamodb").Table(get_settings().keys_table).scan()["Items"]
    assert {item["pk"] for item in items} >= {f"KEY#{hash_key(clinic.staff_key)}", f"KEY#{hash_key(clinic.admin_key)}"}
    stored = str(items)
    for key in (clinic.admin_key, clinic.staff_key, clinic.publishable_key):
        assert key not in stored
    appointments = boto3.resource("dynamodb").Table(get_settings().app_table).scan()["Items"]
    assert not any(str(item["pk"]).startswith("KEY#") for item in appointments)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_revoked_in_another_container_stops_working_here_within_the_cache_ttl(clinic: ClinicKeys) -> None:
    clock = Clock()
    here = KeyRepository(get_settings().keys_table, KeyCache(ttl=60, clock=clock))
    elsewhere = KeyRepository(get_settings().keys_table, KeyCache(ttl=60, clock=clock))
    digest = hash_key(clinic.staff_key)
    assert here.find(digest) is not None  # remembered here from now on
    stored = elsewhere.get(clinic.clinic_id, digest[:12])
    assert stored is not None
    # When another container revokes it
    assert elsewhere.revoke(digest, "2026-11-30T10:00:00+00:00", "admin")
    # Then it is gone there at once, and here once the remembered entry is older than the TTL
    assert elsewhere.find(digest) is None
    clock.now += 59.9
    assert here.find(digest) is not None
    clock.now += 0.1
    assert here.find(digest) is None
    clock.now += 3600
    assert here.find(digest) is None  # and never comes back


@pytest.fixture
def operator_key_in_secrets_manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The admin function as deployed: the operator key read from Secrets Manager, not the environment."""
    from aws_lambda_powertools.utilities import parameters

    name = "clinicpay/dev/operator-key"
    monkeypatch.delenv("CLINICPAY_OPERATOR_KEY")
    monkeypatch.setenv("OPERATOR_KEY_SECRET", name)
    get_settings.cache_clear()
    parameters.clear_caches()
    yield name
    monkeypatch.undo()
    get_settings.cache_clear()
    parameters.clear_caches()


def test_the_operator_key_is_read_from_its_per_stage_secret(clinic: ClinicKeys, operator_key_in_secrets_manager: str) -> None:
    boto3.client("secretsmanager").create_secret(Name=operator_key_in_secrets_manager, SecretString="op_from_sm_key")
    operator = ApiClient().with_key("op_from_sm_key")
    assert operator.get(clinic.path("/keys")).status == 200
    assert operator.post(clinic.path("/admin-keys")).status == 201
    assert ApiClient().with_key(OPERATOR_KEY).get(clinic.path("/keys")).status == 401


def test_an_unreadable_operator_secret_is_a_503_for_the_operator_only(clinic: ClinicKeys,
                                                                     operator_key_in_secrets_manager: str) -> None:
    # the secret does not exist (or Secrets Manager is down)
    response = ApiClient().with_key("op_whatever").post(clinic.path("/admin-keys"))
    assert response.status == 503
    assert response.json()["error"]["code"] == "storage_unavailable"
    # admins never need the operator's secret
    assert clinic.admin().get(clinic.path("/keys")).status == 200
    staff_id = _key_id(clinic, "staff")
    assert clinic.admin().delete(clinic.path(f"/keys/{staff_id}")).status == 204


def test_a_revoked_key_cannot_read_back_an_answer_remembered_for_its_idempotency_key(clinic: ClinicKeys) -> None:
    # Given a booking made with a staff key and an Idempotency-Key, replayed while the key is live
    add_service(clinic, "consulta", 25000, online=False)
    starts = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    body = {"patient": {"id": "p-1", "name": "Ana"}, "service_id": "consulta", "starts_at": starts}
    headers = {"Idempotency-Key": "booking-revoked"}
    first = clinic.staff().post(clinic.path("/appointments"), json=body, headers=headers)
    assert first.status == 201
    assert clinic.staff().post(clinic.path("/appointments"), json=body, headers=headers).json() == first.json()
    # When the key is revoked
    assert clinic.admin().delete(clinic.path(f"/keys/{_key_id(clinic, 'staff')}")).status == 204
    # Then the same request no longer gets the remembered answer back
    replayed = clinic.staff().post(clinic.path("/appointments"), json=body, headers=headers)
    assert replayed.status == 401
    assert replayed.json()["error"]["code"] == "unauthorized"
    assert first.json()["appointment_id"] not in replayed.body.decode()
    # and a live key of the same clinic still books (its own key space)
    assert clinic.admin().post(clinic.path("/appointments"), json=body, headers=headers).status == 201
