"""Per-clinic provider credentials in Secrets Manager: one secret per clinic and provider.

Only names travel in environment variables; values are cached per container with a max age.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities import parameters
from botocore.exceptions import ClientError

from clinicpay.domain.errors import GatewayNotConfigured, StorageUnavailable
from clinicpay.settings import get_settings


def secret_name(clinic_id: str, provider: str) -> str:
    return f"{get_settings().secrets_prefix}/clinics/{clinic_id}/{provider}"


@lru_cache(maxsize=1)
def _client() -> Any:
    return boto3.client("secretsmanager")


@lru_cache(maxsize=1)
def _provider() -> parameters.SecretsProvider:
    return parameters.SecretsProvider(boto3_client=_client())


def read_credentials(clinic_id: str, provider: str, *, fresh: bool = False) -> dict[str, Any]:
    try:
        value = _provider().get(secret_name(clinic_id, provider), max_age=get_settings().secrets_max_age_seconds,
                                force_fetch=fresh)
    except parameters.exceptions.GetParameterError as error:
        cause = error.__cause__
        if isinstance(cause, ClientError) and cause.response["Error"]["Code"] == "ResourceNotFoundException":
            raise GatewayNotConfigured() from None
        if "ResourceNotFoundException" in type(cause).__name__ or "ResourceNotFound" in str(type(cause)):
            raise GatewayNotConfigured() from None
        raise StorageUnavailable() from None
    return json.loads(value) if isinstance(value, str) else dict(value)  # type: ignore[arg-type]


def store_credentials(clinic_id: str, provider: str, values: dict[str, Any]) -> None:
    name = secret_name(clinic_id, provider)
    payload = json.dumps(values)
    client = _client()
    try:
        client.put_secret_value(SecretId=name, SecretString=payload)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise StorageUnavailable() from None
        client.create_secret(Name=name, SecretString=payload)
    _provider().clear_cache()


def delete_credentials(clinic_id: str, provider: str) -> None:
    try:
        _client().delete_secret(SecretId=secret_name(clinic_id, provider), ForceDeleteWithoutRecovery=True)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise StorageUnavailable() from None
    _provider().clear_cache()
