"""Money and time shown the way a patient in each locale reads them."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from clinicpay.domain.money import Money

# (thousands separator, decimal separator) per locale.
_SEPARATORS = {"es": (".", ","), "en": (",", "."), "fr": ("\u202f", ","), "uk": ("\u00a0", ","), "nb": ("\u00a0", ",")}


def format_money(money: Money, locale: str) -> str:
    thousands, decimal = _SEPARATORS.get(locale, (",", "."))
    major, minor = divmod(money.amount, 10**money.exponent)
    grouped = f"{major:,}".replace(",", thousands)
    text = grouped if money.exponent == 0 else f"{grouped}{decimal}{minor:0{money.exponent}d}"
    return f"{text} {money.currency}"


def format_time(moment: datetime, timezone: str) -> str:
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")
