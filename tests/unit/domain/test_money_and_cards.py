from __future__ import annotations

import pytest
from pydantic import ValidationError

from clinicpay.domain.card_numbers import contains_card_number, luhn_valid
from clinicpay.domain.credentials import mask
from clinicpay.domain.money import Money
from clinicpay.notify.formatting import format_money


@pytest.mark.parametrize("amount", [10.5, 10.0, -1, "100", True])
def test_money_refuses_floats_negatives_strings_and_bools(amount: object) -> None:
    with pytest.raises(ValidationError):
        Money(amount=amount, currency="CLP")  # type: ignore[arg-type]


def test_money_refuses_unknown_currencies() -> None:
    with pytest.raises(ValidationError):
        Money(amount=1, currency="XYZ")


@pytest.mark.parametrize(("money", "locale", "shown"), [
    (Money(amount=25000, currency="CLP"), "es", "25.000 CLP"),
    (Money(amount=123456, currency="UAH"), "uk", "1\u00a0234,56 UAH"),
    (Money(amount=9950, currency="CAD"), "en", "99.50 CAD"),
    (Money(amount=9950, currency="NOK"), "nb", "99,50 NOK"),
])
def test_money_is_shown_per_locale(money: Money, locale: str, shown: str) -> None:
    assert format_money(money, locale) == shown


@pytest.mark.parametrize("text", ["4242424242424242", "4242 4242 4242 4242", "4242-4242-4242-4242",
                                  "card: 4000 0027 6000 3184 thanks", "378282246310005"])
def test_card_numbers_are_recognised_in_any_shape(text: str) -> None:
    assert contains_card_number(text)


@pytest.mark.parametrize("text", ["4242424242424241", "+56912345678901", "2026-11-23T10:00:00-03:00",
                                  "order 123456789012", "ap_3f9a8c7d6e5b4a39"])
def test_non_card_numbers_pass(text: str) -> None:
    assert not contains_card_number(text)


def test_luhn() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")


def test_secrets_are_masked_but_recognisable() -> None:
    assert mask("secret_key", "sk_test_abcdefghijka1b2") == "sk_test_…a1b2"
    assert mask("public_key", "pk_test_visible") == "pk_test_visible"
    assert mask("pin_code", "1234") == "••••"
