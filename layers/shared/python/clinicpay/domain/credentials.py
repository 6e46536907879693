"""What each provider's credentials look like when an admin stores them, and how they are shown."""

from __future__ import annotations

from pydantic import ConfigDict, Field, SecretStr

from clinicpay.domain.clinic import Provider
from clinicpay.domain.model import Model


class _Credentials(Model):
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

# Prefixes the providers document for their keys: they say what a key is, never part of the secret.
KNOWN_PREFIXES = ("sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "pk_live_", "whsec_")

# A tail is shown only when at least this many characters of the secret stay hidden besides it.
_HIDDEN_AT_LEAST = 8
_TAIL = 4


def mask(name: str, value: str) -> str:
    """`sk_test_…a1b2`: a known prefix and at most the last 4 characters, enough to recognise a key
    and never enough to use it. A short secret (under 12 characters past its prefix) shows no tail,
    a PIN nothing at all."""
    if name in _PUBLIC_FIELDS:
        return value
    if name == "pin_code":
        return "•" * 4
    prefix = next((p for p in KNOWN_PREFIXES if value.startswith(p)), "")
    secret = value[len(prefix):]
    tail = secret[-_TAIL:] if len(secret) >= _HIDDEN_AT_LEAST + _TAIL else ""
    return f"{prefix}…{tail}"
