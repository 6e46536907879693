"""ops/migrate_shard_keys.py moves what waited under the old constant keys ("PENDING", "DUE") to
its clinic's shard, so the sharded jobs see it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from clinicpay.domain.money import Money
from clinicpay.domain.qr import BasketLine, QrPayment, iso
from clinicpay.repositories.qr import QrRepository
from clinicpay.repositories.shards import key_of, shard_key
from local import apigw, outbox
from ops import migrate_shard_keys as migration
from tests.support.clinics import add_service, create_clinic
from tests.support.env import TestStack

TABLE = "AppointmentsTable"


def table() -> Any:
    return boto3.resource("dynamodb").Table(TABLE)


def stored_before_sharding(stack: TestStack) -> tuple[str, dict[str, str], dict[str, str]]:
    """A clinic with a due reminder and a QR payment awaiting its receipt, keyed as before sharding."""
    clinic = create_clinic()
    add_service(clinic, "control", 0, online=False)
    starts = (datetime.now(UTC) + timedelta(hours=30)).replace(microsecond=0).isoformat()
    booked = clinic.staff().post(clinic.path("/appointments"), json={
        "patient": {"id": "p-old", "name": "Olga", "email": "olga@example.cl"}, "service_id": "control",
        "starts_at": starts, "booked_by": "staff"}).json()
    due = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    appointment = {"pk": f"CLINIC#{clinic.clinic_id}", "sk": f"APPT#{booked['appointment_id']}"}
    table().update_item(Key=appointment, UpdateExpression="SET reminder_pk = :old, reminder_due_at = :d, reminders_pending = :p",
                        ExpressionAttributeValues={":old": "DUE", ":d": due, ":p": [due]})
    now = datetime.now(UTC)
    QrRepository(TABLE).create_payment(QrPayment(
        payment_id="qrp_oldkey", clinic_id=clinic.clinic_id, invoice_id="oldkey", amount=Money(amount=5000, currency="UAH"),
        paid_at=iso(now), basket=[BasketLine(name="Консультація", code="svc", unit_price=5000)], created_at=iso(now),
        receipt_id="00000000-0000-4000-8000-000000000001"))
    payment = {"pk": f"CLINIC#{clinic.clinic_id}", "sk": "QRPAY#qrp_oldkey"}
    table().update_item(Key=payment, UpdateExpression="SET fiscal_pending_pk = :old",
                        ExpressionAttributeValues={":old": "PENDING"})
    return clinic.clinic_id, appointment, payment


def test_items_under_the_old_keys_wait_unread_until_moved_then_the_jobs_see_them(stack: TestStack) -> None:
    clinic_id, appointment, payment = stored_before_sharding(stack)
    # Before the move the sharded jobs do not see them (they wait, nothing is lost)
    assert apigw.invoke_job("reminders")["items_read"] == 0
    assert apigw.invoke_job("unfiscalized-check")["items_read"] == 0
    # A dry run says what it would move and moves nothing
    dry = migration.migrate(TABLE, apply=False)
    assert (dry.moved, dry.gone) == ({"AwaitingFiscalization": 1, "RemindersDue": 1}, {})
    assert table().get_item(Key=appointment)["Item"]["reminder_pk"] == "DUE"
    # When it is applied
    assert migration.main(["--table", TABLE, "--apply"]) == 0
    # Then each item is in its clinic's shard, and the jobs find them
    assert table().get_item(Key=appointment)["Item"]["reminder_pk"] == shard_key("DUE", clinic_id)
    assert table().get_item(Key=payment)["Item"]["fiscal_pending_pk"] == shard_key("PENDING", clinic_id)
    reminders = apigw.invoke_job("reminders")
    assert (reminders["items_read"], reminders["sent"]) == (1, 1)
    assert len(outbox.messages(to="olga@example.cl")) == 2  # the booking's, then the reminder
    assert apigw.invoke_job("unfiscalized-check")["items_read"] == 1
    # And a second run finds nothing left to move
    again = migration.migrate(TABLE, apply=True)
    assert (again.moved, again.gone) == ({}, {})


def test_an_item_done_while_the_move_runs_is_left_alone(stack: TestStack) -> None:
    _, appointment, _ = stored_before_sharding(stack)
    read = table().get_item(Key=appointment)["Item"]
    # the reminder is sent (and leaves the index) between the read and the move
    table().update_item(Key=appointment, UpdateExpression="REMOVE reminder_pk, reminder_due_at, reminders_pending")
    assert migration._move(table(), read, "reminder_pk", "DUE", "DUE#03") is False
    assert "reminder_pk" not in table().get_item(Key=appointment)["Item"]


def test_after_a_change_of_shard_count_items_move_from_the_old_counts_partitions(stack: TestStack) -> None:
    clinic_id, appointment, _ = stored_before_sharding(stack)
    old = key_of("DUE", 20)  # a partition of a 32-shard deployment, where this clinic may have lived
    table().update_item(Key=appointment, UpdateExpression="SET reminder_pk = :p", ExpressionAttributeValues={":p": old})
    report = migration.migrate(TABLE, apply=True, previous_shards=32)
    assert report.moved["RemindersDue"] == 1
    assert table().get_item(Key=appointment)["Item"]["reminder_pk"] == shard_key("DUE", clinic_id)
