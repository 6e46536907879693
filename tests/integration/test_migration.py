"""ops/migrate_keys_and_secrets.py carries an older deployment over to KeysTable and per-stage secrets."""

from __future__ import annotations

import boto3

from clinicpay.repositories.keys import hash_key
from ops import migrate_keys_and_secrets as migration
from tests.support.api import ApiClient

OLD_KEY = "cp_admin_olddeploymentkey_0123456789abcd"


def _old_deployment() -> None:
    """What the stack before KeysTable stored: keys in AppointmentsTable, secrets without the stage."""
    digest = hash_key(OLD_KEY)
    app = boto3.resource("dynamodb").Table("AppointmentsTable")
    app.put_item(Item={"pk": "CLINIC#cl_old", "sk": "PROFILE", "clinic_id": "cl_old", "name": "Vieja", "country": "CL",
                       "currency": "CLP", "timezone": "America/Santiago", "locale": "es",
                       "created_at": "2026-01-01T00:00:00+00:00"})
    app.put_item(Item={"pk": "CLINIC#cl_old", "sk": "SETTINGS"})
    app.put_item(Item={"pk": f"KEY#{digest}", "sk": "KEY", "clinic_id": "cl_old", "role": "admin",
                       "key_id": digest[:12], "created_at": "2026-01-01T00:00:00+00:00"})
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="clinicpay/clinics/cl_old/fintoc", SecretString='{"secret_key": "sk_old"}')
    secrets.create_secret(Name="clinicpay/clinics/cl_gone/stripe", SecretString='{"secret_key": "sk_gone"}')
    secrets.delete_secret(SecretId="clinicpay/clinics/cl_gone/stripe", RecoveryWindowInDays=30)


def test_a_dry_run_changes_nothing() -> None:
    _old_deployment()
    migration.main(["--stage", "dev", "--app-table", "AppointmentsTable", "--keys-table", "KeysTable"])
    assert boto3.resource("dynamodb").Table("KeysTable").scan()["Items"] == []
    assert ApiClient().with_key(OLD_KEY).get("/v1/clinics/cl_old").status == 401


def test_keys_and_secrets_are_carried_over_and_a_second_run_changes_nothing() -> None:
    _old_deployment()
    args = ["--stage", "dev", "--app-table", "AppointmentsTable", "--keys-table", "KeysTable", "--apply"]
    # When
    migration.main(args)
    # Then the old admin key works against the new functions
    assert ApiClient().with_key(OLD_KEY).get("/v1/clinics/cl_old").status == 200
    listed = ApiClient().with_key(OLD_KEY).get("/v1/clinics/cl_old/keys").json()["keys"]
    assert [(k["role"], k["prefix"], k["status"]) for k in listed] == [("admin", "cp_admin_", "active")]
    secrets = boto3.client("secretsmanager")
    assert secrets.get_secret_value(SecretId="clinicpay/dev/clinics/cl_old/fintoc")["SecretString"] == '{"secret_key": "sk_old"}'
    names = {s["Name"] for s in secrets.list_secrets()["SecretList"]}
    assert "clinicpay/dev/clinics/cl_gone/stripe" not in names  # a deleted gateway stays deleted
    # And a second run, now deleting the old key items, copies nothing twice
    report = migration.Report()
    migration.migrate_keys("AppointmentsTable", "KeysTable", apply=True, delete_old=True, report=report)
    migration.migrate_secrets("clinicpay", "dev", apply=True, report=report)
    assert report.keys_copied == [] and len(report.keys_present) == 1 and len(report.keys_deleted) == 1
    assert report.secrets_copied == [] and report.secrets_present == ["clinicpay/dev/clinics/cl_old/fintoc"]
    app_items = boto3.resource("dynamodb").Table("AppointmentsTable").scan()["Items"]
    assert not any(str(i["pk"]).startswith("KEY#") for i in app_items)
    assert ApiClient().with_key(OLD_KEY).get("/v1/clinics/cl_old").status == 200
