"""Fintoc's fee as we book it: 1.1 % of the amount plus 19 % IVA on that fee, integers, half up."""

from __future__ import annotations

import pytest

from clinicpay.domain.money import Money
from clinicpay.providers.fintoc import chile_fee, fintoc_fee


@pytest.mark.parametrize(
    ("amount", "net", "vat"),
    [
        (25_000, 275, 52),  # 275 * 0.19 = 52.25 -> 52
        (10_000, 110, 21),  # 110 * 0.19 = 20.90 -> 21
        (1_000_000, 11_000, 2_090),
        (50, 1, 0),  # 0.55 -> 1 net; 0.19 -> 0 VAT
        (45, 0, 0),  # 0.495 -> 0: below the half
        (0, 0, 0),
    ],
)
def test_fee_is_net_plus_vat_on_the_rounded_net(amount: int, net: int, vat: int) -> None:
    # Given a CLP amount
    # When the fee is computed
    fee = chile_fee(amount)
    # Then it is the rounded 1.1 % plus the rounded 19 % of that
    assert fee == net + vat


def test_exact_halves_round_up() -> None:
    # Given an amount whose net fee is exactly 5.5, and one whose VAT is exactly 9.5
    # When / Then: both halves go up
    assert chile_fee(500) == 6 + 1  # net 5.5 -> 6; VAT 1.14 -> 1
    assert chile_fee(4_546) == 50 + 10  # net 50.006 -> 50; VAT 9.5 -> 10


def test_rounding_uses_integers_not_floats() -> None:
    # Given an amount where float arithmetic lands just below the half (1.1 % of 1_500 = 16.5)
    # When / Then: 16.5 rounds up to 17, not down from 16.499999...
    assert chile_fee(1_500) == 17 + 3  # VAT 17 * 0.19 = 3.23 -> 3


def test_large_amounts_do_not_lose_precision() -> None:
    # Given the largest amount Money allows
    amount = 10**12
    # When / Then: exact integer result
    assert chile_fee(amount) == 11_000_000_000 + 2_090_000_000


def test_a_negative_amount_is_refused() -> None:
    with pytest.raises(ValueError):
        chile_fee(-1)


def test_fee_as_money_for_clp() -> None:
    # Given a CLP payment
    # When / Then: the fee comes back as Money in the same currency
    assert fintoc_fee(Money(amount=25_000, currency="CLP")) == Money(amount=327, currency="CLP")


def test_no_fee_where_the_price_is_unknown() -> None:
    # Given a currency we have no Fintoc price for
    # When / Then: no fee rather than a guessed one
    assert fintoc_fee(Money(amount=25_000, currency="EUR")) is None
