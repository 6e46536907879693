"""Clinics, their settings and services."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from clinicpay.domain.model import Model
from clinicpay.domain.money import Money, PositiveMoney


class Provider(StrEnum):
    FINTOC = "fintoc"
    MONOBANK = "monobank"
    STRIPE = "stripe"
    CHECKBOX = "checkbox"


# Providers that can sit behind a payment link (`/pay/{token}`).
LINK_GATEWAYS = (Provider.FINTOC, Provider.MONOBANK, Provider.STRIPE)


class Locale(StrEnum):
    ES = "es"
    EN = "en"
    FR = "fr"
    UK = "uk"
    NB = "nb"


Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]

# The clinic's own site, linked from the pages a patient sees: https only, no credentials, no spaces
# or quotes (it is written into HTML attributes and calendar files).
WebsiteUrl = Annotated[str, StringConstraints(
    max_length=300, pattern=r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~!$&()*+,;=:@%/?#-]*)?$")]


class Clinic(Model):
    model_config = ConfigDict(extra="ignore")

    clinic_id: str
    name: str
    country: str
    currency: str
    timezone: str
    locale: Locale
    org_id: str | None = None
    created_at: str


HourMinute = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class ShiftSchedule(Model):
    """When the clinic's fiscal shift opens and closes by itself, in the clinic's time zone. `close`
    before `open` spans midnight; a shift is closed before 24 hours whatever the schedule says."""

    model_config = ConfigDict(extra="forbid")

    open: HourMinute
    close: HourMinute

    @model_validator(mode="after")
    def _not_equal(self) -> ShiftSchedule:
        if self.open == self.close:
            raise ValueError("open and close must differ")
        return self


class ClinicSettings(Model):
    model_config = ConfigDict(extra="ignore")

    show_payment_link_in_email: bool = False
    card_required_for_online_booking: bool = False
    # Online bookings hold a slot; an unpaid online link lapses after this. Staff-booked links never do.
    online_link_ttl_minutes: Annotated[int, Field(ge=5, le=60 * 24 * 30)] | None = 60
    reminder_hours_before: list[Annotated[int, Field(ge=1, le=24 * 14)]] = Field(default_factory=lambda: [24])
    default_gateway: Provider | None = None
    # Who makes the fiscal receipts of QR payments: clinicpay (through the clinic's Checkbox register),
    # monobank itself (its Checkbox link or monopay PRRO, set up in monobank's cabinet), or nobody here.
    fiscalization: Literal["clinicpay", "monobank", "none"] = "clinicpay"
    fiscal_shift_schedule: ShiftSchedule | None = None
    # The clinic's site: the patient's receipt and card pages link back to it.
    website: WebsiteUrl | None = None
    # Where the clinic is and the number patients call: the foot of every patient email.
    address: Annotated[str, StringConstraints(max_length=300)] | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{6,14}$")] | None = None


class FixedDeposit(Model):
    model_config = ConfigDict(extra="forbid")

    type: Literal["fixed"]
    amount: PositiveMoney


class PercentDeposit(Model):
    model_config = ConfigDict(extra="forbid")

    type: Literal["percent"]
    percent: Annotated[int, Field(strict=True, ge=1, le=100)]


DepositRule = Annotated[FixedDeposit | PercentDeposit, Field(discriminator="type")]


def localized_name(name: str, names: dict[str, str] | dict[Locale, str] | None, locale: str) -> str:
    """A service's name in `locale` when the clinic gave one, else its default name."""
    for key, value in (names or {}).items():
        if str(getattr(key, "value", key)) == locale and value:
            return value
    return name


def deposit_for(rule: FixedDeposit | PercentDeposit | None, price: Money) -> Money | None:
    """What the link asks first for an appointment at `price`, or None when it asks the whole price.

    fixed: that amount, in the price's currency; percent: price x percent / 100, rounded half up to
    the currency's minor unit, in integers (CLP 25 001 at 33 % -> 8 250; UAH 333.33 at 50 % ->
    166.67). A deposit of nothing, or of the whole price or more, is no deposit."""
    if rule is None or price.amount <= 0:
        return None
    if isinstance(rule, FixedDeposit):
        if rule.amount.currency != price.currency:
            return None
        amount = rule.amount.amount
    else:
        amount = (2 * price.amount * rule.percent + 100) // 200
    if amount <= 0 or amount >= price.amount:
        return None
    return Money(amount=amount, currency=price.currency)


class Service(Model):
    model_config = ConfigDict(extra="ignore")

    service_id: str
    name: str
    # The name in other languages (locale -> name): patients read the one of their language,
    # else `name`.
    names: dict[Locale, str] | None = None
    price: Money
    requires_online_payment: bool = False
    requires_card_on_file: bool = False
    no_show_fee: Money | None = None
    # The link asks this first instead of the whole price; the balance is paid by a second link or
    # at the desk. Only for services that take online payment.
    deposit: DepositRule | None = None
