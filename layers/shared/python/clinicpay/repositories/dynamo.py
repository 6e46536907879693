"""DynamoDB plumbing shared by every repository: table handles and ClientError -> domain error.

Repositories speak domain models and domain errors; nothing above them sees boto3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import lru_cache
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from clinicpay import deadline
from clinicpay.domain.errors import ClinicpayError, ConditionFailed, StorageUnavailable, Throttled
from clinicpay.observability import logger

_RETRYABLE = {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}


@lru_cache(maxsize=8)
def table(name: str) -> Any:
    """One Table handle per container (created lazily, so importing a handler makes no AWS client).
    Its attempts are bounded and none starts that could outlive the invocation (clinicpay.deadline)."""
    resource = boto3.resource("dynamodb", config=deadline.aws_config())
    deadline.guard(resource.meta.client)
    return resource.Table(name)


@contextmanager
def translated_errors(conflict: type[ClinicpayError] = ConditionFailed, message: str | None = None) -> Iterator[None]:
    """Turn boto3 errors into domain errors by error code (never by message text)."""
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ConditionalCheckFailedException":
            raise conflict(message) from error
        if code == "TransactionCanceledException":
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if "ConditionalCheckFailed" in reasons:
                raise conflict(message) from error
            if "TransactionConflict" in reasons:
                raise StorageUnavailable() from error
        if code in _RETRYABLE:
            raise Throttled() from error
        logger.warning("storage error", extra={"error_code": code})
        raise StorageUnavailable() from error
    except BotoCoreError as error:
        raise StorageUnavailable() from error


def conditional(write: Callable[[], Any]) -> bool:
    """Run a conditional write; False when its condition did not hold (the expected state moved on)."""
    try:
        write()
        return True
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        with translated_errors():
            raise
    except BotoCoreError as error:
        raise StorageUnavailable() from error


def plain(value: Any) -> Any:
    """DynamoDB hands numbers back as Decimal; money is integral, so they become int (never float)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def without_none(item: dict[str, Any]) -> dict[str, Any]:
    """Sparse indexes rely on absent attributes, so None is dropped rather than stored."""
    return {k: v for k, v in item.items() if v is not None}


DUE_INDEX = "DueByShard"  # the shared sparse index of waiting work (due_pk `{kind}#{shard}`, due_sk `{when}#...`)


def due_page(table_resource: Any, due_pk: str, due_until: str, *, limit: int,
             after: dict[str, Any] | None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One page of the DueByShard items of one shard whose due_sk is at most `due_until` (the most
    overdue first), as plain values, and where the next page starts (None: no more)."""
    from boto3.dynamodb.conditions import Key

    args: dict[str, Any] = {"IndexName": DUE_INDEX, "Limit": limit,
                            "KeyConditionExpression": Key("due_pk").eq(due_pk) & Key("due_sk").lte(due_until)}
    if after:
        args["ExclusiveStartKey"] = after
    with translated_errors():
        page = table_resource.query(**args)
    return [plain(item) for item in page["Items"]], page.get("LastEvaluatedKey")

