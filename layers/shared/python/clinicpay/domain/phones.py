"""Which phone numbers a public booking may have us text: mobiles of the clinic's own country.

Anyone can fill in the booking widget, so an SMS sent from it must not be a way to text premium-rate
or far-away numbers at the clinic's expense (SMS pumping). A country calling code alone is not
enough (+1 covers Canada and Jamaica; a premium range sits inside most countries), so the number is
read with libphonenumber's metadata (`phonenumbers`, the lite build: the same metadata without the
geocoder and carrier data we do not use): valid, of the clinic's region, and a mobile.

`phonenumbers` costs about 30 ms to import and is needed only by public bookings that carry a
phone, so it is imported on first use (bench/import_time.py keeps the handlers' import cost honest).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _lib() -> Any:
    import phonenumbers

    return phonenumbers


def calling_code(country: str) -> int:
    """+56 for CL, +1 for CA (0 for a region libphonenumber does not know)."""
    return int(_lib().country_code_for_region(country.upper()))


def sms_refusal(phone: str, country: str) -> str | None:
    """None when a public booking may text `phone` (E.164) for a clinic in `country` (ISO 3166
    alpha-2); otherwise why not: "foreign_number", "invalid_number" or "not_mobile"."""
    lib = _lib()
    try:
        number = lib.parse(phone, None)
    except lib.NumberParseException:
        return "invalid_number"
    region = country.upper()
    if number.country_code != lib.country_code_for_region(region):
        return "foreign_number"
    if not lib.is_valid_number(number):
        return "invalid_number"
    if lib.region_code_for_number(number) != region:
        return "foreign_number"  # same calling code, another country (+1 876 is Jamaica, not Canada)
    if lib.number_type(number) not in (lib.PhoneNumberType.MOBILE, lib.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        return "not_mobile"  # premium-rate, shared-cost, toll-free, pagers, landlines: no SMS to those
    return None
