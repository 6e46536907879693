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
from zoneinfo import ZoneInfo

from clinicpay.domain.money import Money


def format_money(money: Money, locale: str) -> str:
    """`25.000 CLP` (es), `1 234,50 UAH` (uk), `80.00 CAD` (en): the locale's grouping and decimal
    sign (CLDR), the currency's own number of decimals, and its ISO code rather than a symbol (`$`
    is the peso in Chile and Mexico and the dollar in Canada: a patient must not have to guess)."""
    from babel.numbers import format_decimal

    value = Decimal(money.amount).scaleb(-money.exponent)
    pattern = "#,##0" + ("." + "0" * money.exponent if money.exponent else "")
    return f"{format_decimal(value, format=pattern, locale=locale)} {money.currency}"


def format_time(moment: datetime, timezone: str, locale: str = "en", *, brief: bool = False) -> str:
    """The clinic's wall clock with the weekday and its zone named, e.g.
    `martes, 1 de diciembre de 2026, 10:00 (hora de Chile)`: CLDR's full date and short time,
    joined the locale's way, and the zone's generic name (the same all year, so a date in summer
    does not read as another zone). `brief` (SMS, where every character counts): `mar, 1 dic, 10:00`."""
    from babel.dates import format_date, format_skeleton, get_datetime_format, get_timezone_name
    from babel.dates import format_time as babel_time

    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    clock = babel_time(local, "short", locale=locale)
    if brief:
        day = format_skeleton("MMMEd", local, locale=locale)
        joined = str(get_datetime_format("short", locale=locale)).replace("{1}", day).replace("{0}", clock)
        # CLDR's narrow no-break spaces ("10:00\u202fAM") would make the SMS UCS-2: 70 characters a part, not 160.
        return joined.replace("\u202f", " ").replace("\xa0", " ")
    day = format_date(local.date(), "full", locale=locale)
    joined = str(get_datetime_format("long", locale=locale)).replace("{1}", day).replace("{0}", clock)
    zone_name = get_timezone_name(zone, "long", zone_variant="generic", locale=locale)
    return f"{joined} ({zone_name})"
