"""Money is an integer amount in the currency's minor unit plus an ISO 4217 alphabetic code.

Floats never enter: the model is strict, so `10.5` or even `10.0` is refused at the edge (422).
Each provider adapter converts to its own unit; nothing else does arithmetic on money.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, JsonValue, StrictInt, field_validator

from clinicpay.domain.model import Model

# Minor-unit exponent per supported currency. CLP has none: 25000 is 25 000 pesos.
CURRENCY_EXPONENTS: dict[str, int] = {"CLP": 0, "UAH": 2, "CAD": 2, "NOK": 2, "EUR": 2, "USD": 2, "MXN": 2}

# ISO 4217 numeric codes, needed by monobank (`ccy`).
CURRENCY_NUMERIC: dict[str, int] = {"CLP": 152, "UAH": 980, "CAD": 124, "NOK": 578, "EUR": 978, "USD": 840, "MXN": 484}

# For the OpenAPI document: the codes a client may send, as an enum.
SUPPORTED_CURRENCIES: list[JsonValue] = [*sorted(CURRENCY_EXPONENTS)]

MinorUnits = Annotated[StrictInt, Field(ge=0, le=10**12)]


class Money(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: MinorUnits
    currency: str = Field(description="ISO 4217", json_schema_extra={"enum": SUPPORTED_CURRENCIES})

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in CURRENCY_EXPONENTS:
            raise ValueError(f"unsupported currency; use one of {', '.join(sorted(CURRENCY_EXPONENTS))}")
        return value

    @property
    def exponent(self) -> int:
        return CURRENCY_EXPONENTS[self.currency]

    def is_zero(self) -> bool:
        return self.amount == 0

    def __str__(self) -> str:
        if self.exponent == 0:
            return f"{self.amount} {self.currency}"
        major, minor = divmod(self.amount, 10**self.exponent)
        return f"{major}.{minor:0{self.exponent}d} {self.currency}"


class PositiveMoney(Money):
    """Money that must be more than zero: charges and amounts put on a QR register."""

    amount: Annotated[StrictInt, Field(gt=0, le=10**12)]
