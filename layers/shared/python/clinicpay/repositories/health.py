"""Cheap reads that tell whether a table answers (GET /health).

Each probe is one eventually consistent GetItem of a key that need not exist (half a read unit),
on its own client with short timeouts and one retry: a health check that hangs until the
function's timeout would answer API Gateway's bare 503 instead of naming what is wrong.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

from clinicpay.repositories.dynamo import translated_errors

_PROBE_CONFIG = Config(connect_timeout=2, read_timeout=2, retries={"max_attempts": 2, "mode": "standard"})


@lru_cache(maxsize=1)
def _client() -> Any:
    return boto3.client("dynamodb", config=_PROBE_CONFIG)


def probe_appointments(table_name: str) -> None:
    """Raises StorageUnavailable (or Throttled) when AppointmentsTable does not answer."""
    _probe(table_name, {"pk": {"S": "HEALTH"}, "sk": {"S": "HEALTH"}})


def probe_keys(table_name: str) -> None:
    """Raises StorageUnavailable (or Throttled) when KeysTable does not answer."""
    _probe(table_name, {"pk": {"S": "HEALTH"}})


def _probe(table_name: str, key: dict[str, Any]) -> None:
    with translated_errors():
        _client().get_item(TableName=table_name, Key=key, ProjectionExpression="pk")
