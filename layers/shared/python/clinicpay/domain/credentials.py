"""What each provider's credentials look like when an admin stores them, and how they are shown."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from clinicpay.domain.clinic import Provider


class _Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def secret_values(self) -> dict[str, str]:
        return {name: (value.get_secret_value() if isinstance(value, SecretStr) else str(value))
                for name, value in self if value is not None}


class FintocCredentials(_Credentials):
    secret_key: SecretStr = Field(json_schema_extra={"pattern": "^sk_(test|live)_"})
    public_key: str = Field(pattern=r"^pk_(test|live)_\w+$")
    webhook_secret: SecretStr


class MonobankCredentials(_Credentials):
    token: SecretStr


class StripeCredentials(_Credentials):
    secret_key: SecretStr
    publishable_key: str = Field(pattern=r"^pk_(test|live)_\w+$")
    webhook_secret: SecretStr


class CheckboxCredentials(_Credentials):
    license_key: SecretStr
    pin_code: SecretStr
    # Returned by Checkbox once, when its webhook is registered (POST /api/v1/webhook); optional,
    # because receipts are also polled.
    webhook_secret: SecretStr | None = None


CREDENTIAL_MODELS: dict[Provider, type[_Credentials]] = {
    Provider.FINTOC: FintocCredentials,
    Provider.MONOBANK: MonobankCredentials,
    Provider.STRIPE: StripeCredentials,
    Provider.CHECKBOX: CheckboxCredentials,
}

_PUBLIC_FIELDS = {"public_key", "publishable_key"}


def mask(name: str, value: str) -> str:
    """`sk_test_…a1b2`: enough to recognise a key, never enough to use it."""
    if name in _PUBLIC_FIELDS:
        return value
    if name == "pin_code" or len(value) < 10:
        return "•" * 4
    prefix = value[: value.rfind("_") + 1] if "_" in value[:12] else ""
    return f"{prefix}…{value[-4:]}"
