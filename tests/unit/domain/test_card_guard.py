"""What the cards API refuses before anything is parsed, stored or logged: card numbers (13-19 digits
passing Luhn, with spaces or dashes) and fields that only card data would use (expiry, CVC)."""

from __future__ import annotations

import pytest

from clinicpay.domain.card_numbers import carries_card_fields, contains_card_number

STRIPE_TEST_CARDS = ["4242424242424242", "4000002760003184", "4000008260003178", "4000003800000446",
                     "5555555555554444", "378282246310005", "6011111111111117", "3056930009020004"]


@pytest.mark.parametrize("number", STRIPE_TEST_CARDS)
@pytest.mark.parametrize("shape", ["{}", "{} ", "x{}y", "card {}, exp 12/34"])
def test_every_test_card_is_recognised_anywhere_in_a_text(number: str, shape: str) -> None:
    assert contains_card_number(shape.format(number))


@pytest.mark.parametrize("number", STRIPE_TEST_CARDS)
def test_grouped_with_spaces_or_dashes_too(number: str) -> None:
    grouped = " ".join(number[i:i + 4] for i in range(0, len(number), 4))
    assert contains_card_number(grouped) and contains_card_number(grouped.replace(" ", "-"))


@pytest.mark.parametrize("text", ["pm_1Q2w3E4r5T6y7U8i", "cus_4242424242424242x"[:4], "1700000000",
                                  "4242424242424243", "ch_9f2d7c4b1a0e8d6c5b4a3f2e", "+14155552671"])
def test_ids_timestamps_phones_and_luhn_failures_pass(text: str) -> None:
    assert not contains_card_number(text)


@pytest.mark.parametrize("body", [
    {"cvc": "123"}, {"consent": {"exp_month": 12}}, {"card": {"expiry": "12/34"}}, {"items": [{"cvv": "1"}]},
    {"card_number": "x"}, {"number": "x"}, {"ExpirationDate": "1234"}, {"security_code": "123"},
])
def test_card_field_names_are_refused_whatever_their_value(body: dict) -> None:
    assert carries_card_fields(body)


@pytest.mark.parametrize("body", [
    {"payment_method": "pm_1", "consent": {"granted": True, "text_version": "v1", "channel": "staff",
                                           "granted_by": "desk"}},
    {"amount": {"amount": 100, "currency": "CAD"}, "reason": "no_show", "expires_at": "later"}, None, [], "text",
])
def test_ordinary_bodies_pass(body: object) -> None:
    assert not carries_card_fields(body)
