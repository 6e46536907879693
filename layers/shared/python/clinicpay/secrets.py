"""Per-clinic provider credentials in Secrets Manager: one secret per clinic and provider.

Only names travel in environment variables; values are cached per container with a max age.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from clinicpay import deadline
from clinicpay.domain.errors import GatewayNotConfigured, StorageUnavailable
from clinicpay.refresh_gate import GATE
from clinicpay.settings import get_settings

# Secrets Manager's longest window: a clinic that deleted a gateway by mistake has a month to notice.
RECOVERY_WINDOW_DAYS = 30


def secret_name(clinic_id: str, provider: str) -> str:
    return f"{get_settings().secrets_prefix}/clinics/{clinic_id}/{provider}"


@lru_cache(maxsize=1)
def _client() -> Any:
    return deadline.guard(boto3.client("secretsmanager", config=deadline.aws_config()))


# name -> (monotonic time read, values). Powertools Parameters would cache too, but it wraps every
# failure in one error type without its cause, and we must tell "not configured" (404) from
# "Secrets Manager is down" (503).
_cache: dict[str, tuple[float, dict[str, Any]]] = {}


def clear_cache() -> None:
    _cache.clear()
    GATE.clear()


def read_credentials(clinic_id: str, provider: str, *, fresh: bool = False) -> dict[str, Any]:
    name = secret_name(clinic_id, provider)
    cached = _cache.get(name)
    if cached and not fresh and time.monotonic() - cached[0] < get_settings().secrets_max_age_seconds:
        return cached[1]
    try:
        value = _client().get_secret_value(SecretId=name)["SecretString"]
    except ClientError as error:
        # InvalidRequestException is what GetSecretValue answers for a secret scheduled for deletion
        # (a deleted gateway, still recoverable): as unconfigured as one that never existed.
        if error.response["Error"]["Code"] in ("ResourceNotFoundException", "InvalidRequestException"):
            raise GatewayNotConfigured() from None
        raise StorageUnavailable() from None
    except BotoCoreError:
        raise StorageUnavailable() from None
    values: dict[str, Any] = json.loads(value)
    _cache[name] = (time.monotonic(), values)
    return values


def reread_after_bad_signature(clinic_id: str, provider: str) -> dict[str, Any] | None:
    """The clinic's credentials read afresh, because a webhook signature did not verify with the
    cached ones (the clinic may have just rotated its webhook secret); None when a re-read would
    teach nothing: the cached values were read less than a minute ago, or a re-read for this clinic
    and provider already happened within the minute (clinicpay.refresh_gate), or they did not change.
    So forged webhooks cost at most one Secrets Manager read per clinic and provider a minute."""
    name = secret_name(clinic_id, provider)
    cached = _cache.get(name)
    if cached and time.monotonic() - cached[0] < GATE.window_seconds:
        return None
    if not GATE.allow(f"secret#{clinic_id}#{provider}"):
        return None
    values = read_credentials(clinic_id, provider, fresh=True)
    return None if cached and values == cached[1] else values


def store_credentials(clinic_id: str, provider: str, values: dict[str, Any]) -> None:
    """Create the secret, or give it a new value; a secret deleted within its recovery window is
    restored first (a PUT after a DELETE), since Secrets Manager refuses a new value for it."""
    name = secret_name(clinic_id, provider)
    payload = json.dumps(values)
    client = _client()
    try:
        try:
            described = client.describe_secret(SecretId=name)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            client.create_secret(Name=name, SecretString=payload)
        else:
            if described.get("DeletedDate"):
                client.restore_secret(SecretId=name)
            client.put_secret_value(SecretId=name, SecretString=payload)
    except (ClientError, BotoCoreError):
        raise StorageUnavailable() from None
    _cache.pop(name, None)


def delete_credentials(clinic_id: str, provider: str) -> None:
    """Schedule the secret's deletion. For RECOVERY_WINDOW_DAYS an operator can still restore it
    (aws secretsmanager restore-secret), and storing credentials again restores it too."""
    name = secret_name(clinic_id, provider)
    try:
        _client().delete_secret(SecretId=name, RecoveryWindowInDays=RECOVERY_WINDOW_DAYS)
    except ClientError as error:
        # Not there, or already scheduled for deletion (InvalidRequestException): nothing to do.
        if error.response["Error"]["Code"] not in ("ResourceNotFoundException", "InvalidRequestException"):
            raise StorageUnavailable() from None
    except BotoCoreError:
        raise StorageUnavailable() from None
    _cache.pop(name, None)
