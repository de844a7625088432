"""Instrument catalogue: which symbols exist per category, their tick sizes and formatting.

Prices and sizes are kept as integers in units of ``10**-scale`` so the generators never
touch floats when producing the decimal strings Bybit sends (``"28550.70"``, ``"0.041732"``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

CATEGORIES: tuple[str, ...] = ("spot", "linear", "inverse", "option")

# base coin -> (approximate USD price, linear price scale, linear tick in units, linear qty scale)
_KNOWN_BASES: dict[str, tuple[float, int, int, int]] = {
    "BTC": (65000.0, 2, 10, 3),
    "ETH": (3200.0, 2, 1, 2),
    "SOL": (150.0, 3, 10, 1),
    "BNB": (580.0, 2, 10, 2),
    "LTC": (90.0, 2, 1, 1),
    "XRP": (0.6, 4, 1, 0),
    "ADA": (0.45, 4, 1, 0),
    "DOGE": (0.15, 5, 1, 0),
    "AVAX": (35.0, 3, 1, 1),
    "LINK": (15.0, 3, 1, 1),
}
_USD_QUOTES = frozenset({"USDT", "USDC", "USDE", "USD1", "DAI", "USD"})
_SPOT_QUOTES = "USDT|USDC|USDE|USD1|DAI|BTC|ETH|EUR|BRL|TRY|PLN|MNT"
_FIAT_USD = {"EUR": 1.08, "BRL": 0.18, "TRY": 0.03, "PLN": 0.25, "MNT": 0.8}

_RE_SPOT = re.compile(rf"^(?P<base>[A-Z0-9]+?)(?P<quote>{_SPOT_QUOTES})$")
_RE_LINEAR_PERP = re.compile(r"^(?P<base>[A-Z0-9]+?)(?P<quote>USDT|USDC|PERP)$")
_RE_LINEAR_FUT = re.compile(
    r"^(?P<base>[A-Z0-9]+?)(?P<quote>USDT|USDC)?-(?P<exp>\d{2}[A-Z]{3}\d{2})$"
)
_RE_INVERSE = re.compile(r"^(?P<base>[A-Z0-9]+?)USD(?P<fut>[FGHJKMNQUVXZ]\d{2})?$")
_RE_OPTION = re.compile(
    r"^(?P<base>[A-Z0-9]+)-(?P<exp>\d{1,2}[A-Z]{3}\d{2})-(?P<strike>\d+(?:\.\d+)?)"
    r"-(?P<kind>[CP])(?:-(?P<quote>USDT|USDC))?$"
)
_RE_BASE_COIN = re.compile(r"^[A-Z0-9]{2,12}$")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """Static facts about one tradable symbol. Prices/sizes are integer units."""

    category: str
    symbol: str
    base: str
    price_scale: int
    tick: int
    qty_scale: int
    qty_step: int
    min_qty: int
    start_price: int
    typical_qty: int
    delivery: str = ""  # ISO delivery time for dated futures, "" for perpetuals/spot
    option_kind: str = ""  # "C"/"P" for options
    strike: int = 0  # option strike in underlying price units (see underlying_scale)
    underlying_scale: int = 2

    @property
    def is_future(self) -> bool:
        return bool(self.delivery)


def fmt(units: int, scale: int) -> str:
    """Format integer ``units`` of ``10**-scale`` as a fixed-point decimal string."""
    if scale <= 0:
        return str(units)
    sign = "-" if units < 0 else ""
    digits = str(abs(units)).rjust(scale + 1, "0")
    return f"{sign}{digits[:-scale]}.{digits[-scale:]}"


def fmt_trim(units: int, scale: int) -> str:
    """:func:`fmt` without trailing zeros (``"0.07562"``, ``"2"``), as spot book sizes are."""
    text = fmt(units, scale)
    return text.rstrip("0").rstrip(".") if "." in text else text


def book_size_format(category: str) -> Callable[[int, int], str]:
    """How order-book sizes are written: spot trims trailing zeros (captures 2023 and 2026:
    ``"0.07562"``, ``"0.25941"``); derivatives and options keep the lot's decimals."""
    return fmt_trim if category == "spot" else fmt


def fmt_float(value: float, decimals: int) -> str:
    """Format a derived float metric (rates, percentages, greeks) with fixed decimals."""
    text = f"{value:.{decimals}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text


def _hash_unit(text: str) -> float:
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def base_usd_price(base: str) -> float:
    """Reference USD price of a base coin (known table, else a stable pseudo-random value)."""
    known = _KNOWN_BASES.get(base)
    if known is not None:
        return known[0]
    u = _hash_unit(base)
    return float(f"{10 ** (u * 4 - 1.5):.4g}")


def _generic_price_scale(price: float) -> int:
    return max(0, min(8, 4 - math.floor(math.log10(price))))


def _generic_qty_scale(price: float) -> int:
    return max(0, min(4, math.floor(math.log10(price))))


def _spec(
    category: str,
    symbol: str,
    base: str,
    price: float,
    price_scale: int,
    tick: int,
    qty_scale: int,
    *,
    qty_step: int = 1,
    notional: float = 2500.0,
    delivery: str = "",
) -> InstrumentSpec:
    start = max(tick, round(price * 10**price_scale / tick) * tick)
    typical = max(qty_step, round(notional / price * 10**qty_scale / qty_step) * qty_step)
    return InstrumentSpec(
        category=category,
        symbol=symbol,
        base=base,
        price_scale=price_scale,
        tick=tick,
        qty_scale=qty_scale,
        qty_step=qty_step,
        min_qty=qty_step,
        start_price=start,
        typical_qty=typical,
        delivery=delivery,
    )


def _expiry_iso(code: str) -> str:
    """``26DEC25`` -> ``2025-12-26T08:00:00Z`` (Bybit delivers at 08:00 UTC)."""
    day, mon, year = int(code[:-5]), code[-5:-2], int(code[-2:])
    return f"20{year:02d}-{_MONTHS.index(mon) + 1:02d}-{day:02d}T08:00:00Z"


def _valid_expiry(code: str) -> bool:
    try:
        mon = code[-5:-2]
        if mon not in _MONTHS:
            return False
        dt.date(2000 + int(code[-2:]), _MONTHS.index(mon) + 1, int(code[:-5]))
    except ValueError:
        return False
    return True


def _linear_params(base: str, price: float) -> tuple[int, int, int]:
    known = _KNOWN_BASES.get(base)
    if known is not None:
        return known[1], known[2], known[3]
    return _generic_price_scale(price), 1, _generic_qty_scale(price)


def parse_symbol(category: str, symbol: str, unknown: frozenset[str]) -> InstrumentSpec | None:
    """Return the spec of ``symbol`` in ``category`` or ``None`` when Bybit would not know it.

    Matching is case-sensitive (``btcusdt`` is unknown, as on the real exchange). For options
    this accepts contract symbols (``BTC-28APR23-29500-C``); base coins are handled by
    :func:`valid_option_base`.
    """
    if symbol in unknown:
        return None
    if category == "spot":
        m = _RE_SPOT.match(symbol)
        if m is None:
            return None
        base, quote = m["base"], m["quote"]
        if base == quote or base in unknown:
            return None
        quote_usd = 1.0 if quote in _USD_QUOTES else _FIAT_USD.get(quote) or base_usd_price(quote)
        price = base_usd_price(base) / quote_usd
        if quote in _USD_QUOTES and base in _KNOWN_BASES:
            pscale, _, qscale = _linear_params(base, price)
            return _spec(category, symbol, base, price, pscale, 1, min(8, qscale + 3))
        return _spec(
            category,
            symbol,
            base,
            price,
            _generic_price_scale(price) + 1,
            1,
            min(8, _generic_qty_scale(price) + 2),
        )
    if category == "linear":
        m = _RE_LINEAR_PERP.match(symbol) or _RE_LINEAR_FUT.match(symbol)
        if m is None:
            return None
        groups = m.groupdict()
        exp = groups.get("exp")
        if exp is not None and not _valid_expiry(exp):
            return None
        base = m["base"]
        price = base_usd_price(base)
        pscale, tick, qscale = _linear_params(base, price)
        return _spec(
            category,
            symbol,
            base,
            price,
            pscale,
            tick,
            qscale,
            delivery=_expiry_iso(exp) if exp else "",
        )
    if category == "inverse":
        m = _RE_INVERSE.match(symbol)
        if m is None:
            return None
        base = m["base"]
        price = base_usd_price(base)
        pscale, tick, _ = _linear_params(base, price)
        if base == "BTC":
            tick = 50
        delivery = ""
        fut = m["fut"]
        if fut:
            month = "FGHJKMNQUVXZ".index(fut[0]) + 1
            delivery = f"20{fut[1:]}-{month:02d}-27T08:00:00Z"
        return _spec(
            category, symbol, base, price, pscale, tick, 0, notional=3000.0, delivery=delivery
        )
    if category == "option":
        return parse_option_contract(symbol, unknown)
    return None


def valid_option_base(base: str, unknown: frozenset[str]) -> bool:
    """Whether ``publicTrade.{base}`` names a known option base coin."""
    return bool(_RE_BASE_COIN.match(base)) and base not in unknown and f"{base}USDT" not in unknown


def option_price_params(base: str) -> tuple[int, int, int]:
    """(premium price scale, tick units, qty scale) for options on ``base``."""
    if base == "BTC":
        return 0, 5, 2
    if base == "ETH":
        return 1, 1, 1
    return 2, 1, 0


def parse_option_contract(symbol: str, unknown: frozenset[str]) -> InstrumentSpec | None:
    m = _RE_OPTION.match(symbol)
    if m is None or symbol in unknown or not _valid_expiry(m["exp"]):
        return None
    base = m["base"]
    if not valid_option_base(base, unknown):
        return None
    under = base_usd_price(base)
    uscale = _linear_params(base, under)[0]
    pscale, tick, qscale = option_price_params(base)
    strike_units = round(float(m["strike"]) * 10**uscale)
    return InstrumentSpec(
        category="option",
        symbol=symbol,
        base=base,
        price_scale=pscale,
        tick=tick,
        qty_scale=qscale,
        qty_step=1,
        min_qty=1,
        start_price=tick,
        typical_qty=max(1, 10**qscale // 10),
        delivery=_expiry_iso(m["exp"]),
        option_kind=m["kind"],
        strike=strike_units,
        underlying_scale=uscale,
    )


def default_option_contracts(base: str, now: dt.datetime) -> list[str]:
    """A few plausible contracts on ``base``: next Friday expiry, strikes around the price."""
    days = (4 - now.weekday()) % 7 or 7
    expiry = now + dt.timedelta(days=days)
    code = f"{expiry.day}{_MONTHS[expiry.month - 1]}{expiry.year % 100:02d}"
    price = base_usd_price(base)
    step = 10 ** max(0, math.floor(math.log10(price)) - 1)
    atm = round(price / step) * step
    out: list[str] = []
    for strike in (atm - 2 * step, atm, atm + 2 * step):
        strike_txt = f"{strike:g}" if strike < 1 else str(int(strike))
        out.extend(f"{base}-{code}-{strike_txt}-{kind}" for kind in ("C", "P"))
    return out
