"""Money and time shown the way a patient in each locale reads them, from CLDR (Babel).

Babel is imported on first use, when a message is rendered, never when a handler is imported: it
costs tens of milliseconds (bench/import_time.py prints the figure) that a cold start of a function
which sends nothing should not pay. Amounts stay integer minor units in the domain; only here do
they become a number for display, with the currency's exponent of domain/money.py (CLDR's currency
digits agree on every supported currency: tests/unit/test_formatting.py checks it).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from clinicpay.domain.money import Money

if TYPE_CHECKING:
    from babel import Locale
    from babel.numbers import NumberPattern


def format_money(money: Money, locale: str) -> str:
    """`25.000 CLP` (es), `1 234,50 UAH` (uk), `80.00 CAD` (en): the locale's grouping and decimal
    sign (CLDR), the currency's own number of decimals, and its ISO code rather than a symbol (`$`
    is the peso in Chile and Mexico and the dollar in Canada: a patient must not have to guess)."""
    value = Decimal(money.amount).scaleb(-money.exponent)
    return f"{_number_pattern(money.exponent).apply(value, _locale(locale))} {money.currency}"


def format_time(moment: datetime, timezone: str, locale: str = "en", *, brief: bool = False) -> str:
    """The clinic's wall clock with the weekday and its zone named, e.g.
    `martes, 1 de diciembre de 2026, 10:00 (hora de Chile)`: CLDR's full date and short time,
    joined the locale's way, and the zone's generic name (the same all year, so a date in summer
    does not read as another zone). `brief` (SMS, where every character counts): `mar, 1 dic, 10:00`."""
    from babel.dates import format_date, format_skeleton, get_datetime_format
    from babel.dates import format_time as babel_time

    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    cldr = _locale(locale)
    clock = babel_time(local, "short", locale=cldr)
    if brief:
        day = format_skeleton("MMMEd", local, locale=cldr)
        joined = str(get_datetime_format("short", locale=cldr)).replace("{1}", day).replace("{0}", clock)
        # CLDR's narrow no-break spaces ("10:00\u202fAM") would make the SMS UCS-2: 70 characters a part, not 160.
        return joined.replace("\u202f", " ").replace("\xa0", " ")
    day = format_date(local.date(), "full", locale=cldr)
    joined = str(get_datetime_format("long", locale=cldr)).replace("{1}", day).replace("{0}", clock)
    return f"{joined} ({_zone_name(timezone, locale)})"


# What CLDR says for a locale, a zone or a pattern does not change while a container lives. Babel
# parses the locale's name on every call it is given as text (a dozen times for one message), and
# the number pattern on every format: kept once, a message renders about twice as fast.
@lru_cache(maxsize=64)
def _locale(code: str) -> Locale:
    from babel import Locale

    return Locale.parse(code)


@lru_cache(maxsize=8)
def _number_pattern(exponent: int) -> NumberPattern:
    from babel.numbers import parse_pattern

    return parse_pattern("#,##0" + ("." + "0" * exponent if exponent else ""))


@lru_cache(maxsize=256)
def _zone_name(timezone: str, locale: str) -> str:
    from babel.dates import get_timezone_name

    return str(get_timezone_name(ZoneInfo(timezone), "long", zone_variant="generic", locale=_locale(locale)))
