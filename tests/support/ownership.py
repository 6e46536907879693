"""Helpers for the ownership tests (issue 8): event records as stored, held sandbox deliveries, and
counts of the calls we make to Secrets Manager."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import requests

TIMEOUT = 15


def event_records(clinic_id: str, *, table: str = "AppointmentsTable") -> list[dict[str, Any]]:
    """This clinic's provider event records (EVENT#{clinic}#{provider}#{event_id})."""
    items = boto3.resource("dynamodb").Table(table).scan()["Items"]
    return [i for i in items if str(i["pk"]).startswith(f"EVENT#{clinic_id}#")]


def foreign(clinic_id: str, *, table: str = "AppointmentsTable") -> dict[str, str]:
    """event id -> reason, for the events this clinic recorded as foreign."""
    return {str(i["event_id"]): str(i.get("reason")) for i in event_records(clinic_id, table=table)
            if i["outcome"] == "foreign"}


def hold(sandbox: str, held: bool = True) -> None:
    answer = requests.post(f"{sandbox}/_control/hold", json={"hold": held}, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text


def deliver(sandbox: str, event_id: str, **receiver: str) -> int:
    """One held event to one receiver (`endpoint_id=` for Fintoc/Stripe, `url=` for monobank), now;
    returns the status our endpoint answered."""
    answer = requests.post(f"{sandbox}/_control/deliver/{event_id}", json=receiver, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["status_code"])


@contextmanager
def secrets_manager_reads() -> Iterator[list[str]]:
    """Every GetSecretValue our code makes while the block runs (the secret names)."""
    from clinicpay import secrets

    seen: list[str] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        seen.append(str(params.get("SecretId")))

    events = secrets._client().meta.events
    events.register("provide-client-params.secrets-manager.GetSecretValue", count, unique_id="ownership-count")
    try:
        yield seen
    finally:
        events.unregister("provide-client-params.secrets-manager.GetSecretValue", unique_id="ownership-count")


def age_cached_secret(clinic_id: str, provider: str, seconds: float = 120.0) -> None:
    """Make this container's cached credentials look `seconds` old (time passing, without waiting)."""
    import time

    from clinicpay import secrets

    name = secrets.secret_name(clinic_id, provider)
    read_at, values = secrets._cache[name]
    secrets._cache[name] = (min(read_at, time.monotonic() - seconds), values)


def let_a_minute_pass() -> None:
    """What a minute does to the once-a-minute key re-read: this container's window and the shared
    claim (THROTTLE items) are over."""
    from clinicpay.refresh_gate import GATE

    GATE.clear()
    table = boto3.resource("dynamodb").Table("AppointmentsTable")
    for item in table.scan()["Items"]:
        if str(item["pk"]).startswith("THROTTLE#"):
            table.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
