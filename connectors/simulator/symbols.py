"""Binance's spot symbols as data: their statuses, quote assets, a few real pairs, and a whole
market's worth of pairs made up in their likeness (deterministic from a seed).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal

TRADING, HALT, BREAK = "TRADING", "HALT", "BREAK"
# What the simulator can stop a symbol with; both mean "no trading" to a client.
HALTED_STATUSES = (HALT, BREAK)
# The values exchangeInfo's ``symbolStatus`` filter accepts (binance-spot-api-docs, rest-api.md).
FILTERABLE_STATUSES = (TRADING, HALT, BREAK)

# Quote assets a symbol may end with, longest first, so that ``FDUSD`` wins over ``USD``-likes.
QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "TUSD", "BTC", "ETH", "BNB", "TRY", "EUR", "BRL", "JPY")
# The quotes made-up pairs get, weighted roughly as Binance's spot list is (most trade in USDT),
# and what one unit of each is worth in USDT, to price a made-up base in it.
_MADE_UP_QUOTES = (
    ("USDT", 50, 1.0),
    ("USDC", 12, 1.0),
    ("FDUSD", 8, 1.0),
    ("BTC", 12, 60_000.0),
    ("ETH", 5, 2_600.0),
    ("BNB", 4, 520.0),
    ("TRY", 5, 0.03),
    ("EUR", 4, 1.1),
)
_CONSONANTS, _VOWELS = "BCDFGHJKLMNPRSTVXZ", "AEIOUY"
_PRICE_DIGITS = 5  # made-up prices move by 1 in the 5th significant digit, as most pairs' ticks do
_MIN_PRICE = Decimal("0.000001")  # in the quote; the tick is then at least 0.00000001


@dataclass(frozen=True, slots=True)
class Pair:
    """A spot symbol with the price it starts trading at and its price step, decimal strings."""

    symbol: str
    base: str
    quote: str
    price: str
    tick: str


# Real pairs, busiest first (so a whole market's Zipf ranks them first), at their prices of
# 2024-08-09, the demo captures' day.
REAL_PAIRS = (
    Pair("BTCUSDT", "BTC", "USDT", "60000.00", "0.01"),
    Pair("ETHUSDT", "ETH", "USDT", "2600.00", "0.01"),
    Pair("SOLUSDT", "SOL", "USDT", "150.00", "0.01"),
    Pair("BNBUSDT", "BNB", "USDT", "520.00", "0.01"),
    Pair("XRPUSDT", "XRP", "USDT", "0.5600", "0.0001"),
    Pair("DOGEUSDT", "DOGE", "USDT", "0.10000", "0.00001"),
    Pair("BTCFDUSD", "BTC", "FDUSD", "60000.00", "0.01"),
    Pair("PEPEUSDT", "PEPE", "USDT", "0.00000800", "0.00000001"),
    Pair("ETHBTC", "ETH", "BTC", "0.04330", "0.00001"),
    Pair("ADAUSDT", "ADA", "USDT", "0.3400", "0.0001"),
    Pair("LINKUSDT", "LINK", "USDT", "10.50", "0.01"),
    Pair("AVAXUSDT", "AVAX", "USDT", "22.00", "0.01"),
    Pair("USDCUSDT", "USDC", "USDT", "1.0000", "0.0001"),
    Pair("TRXUSDT", "TRX", "USDT", "0.1300", "0.0001"),
    Pair("LTCUSDT", "LTC", "USDT", "60.00", "0.01"),
    Pair("DOTUSDT", "DOT", "USDT", "4.500", "0.001"),
    Pair("SHIBUSDT", "SHIB", "USDT", "0.00001400", "0.00000001"),
    Pair("BNBBTC", "BNB", "BTC", "0.008700", "0.000001"),
    Pair("BTCUSDC", "BTC", "USDC", "60000.00", "0.01"),
    Pair("ETHUSDC", "ETH", "USDC", "2600.00", "0.01"),
)
START_PRICES = {pair.symbol: pair.price for pair in REAL_PAIRS}


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCFDUSD`` -> ``("BTC", "FDUSD")``; ``(symbol, "")`` when no known quote asset ends it."""
    symbol = symbol.upper()
    for quote in QUOTE_ASSETS:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, ""


def market_pairs(count: int, seed: int = 0) -> list[Pair]:
    """``count`` pairs: the real ones first, then made-up ones, the same for the same seed."""
    if count < 0:
        raise ValueError("count must be >= 0")
    pairs = list(REAL_PAIRS[:count])
    taken = {pair.symbol for pair in pairs}
    draw = random.Random(seed)
    quotes, weights, worths = zip(*_MADE_UP_QUOTES, strict=True)
    while len(pairs) < count:
        base = _made_up_base(draw)
        quote = draw.choices(quotes, weights)[0]
        symbol = base + quote
        # A base ending like a quote would make the symbol read as another pair.
        if symbol in taken or split_symbol(symbol) != (base, quote):
            continue
        taken.add(symbol)
        pairs.append(_priced(draw, symbol, base, quote, worths[quotes.index(quote)]))
    return pairs


def _made_up_base(draw: random.Random) -> str:
    """3 to 5 letters that alternate consonants and vowels, as token tickers often read."""
    length = draw.choice((3, 3, 4, 4, 4, 5))
    first = draw.random() < 0.7  # most start with a consonant
    return "".join(
        draw.choice(_CONSONANTS if (i % 2 == 0) == first else _VOWELS) for i in range(length)
    )


def _priced(draw: random.Random, symbol: str, base: str, quote: str, worth: float) -> Pair:
    """A start price log-uniform between 0.0001 and 1,000 USDT, in the quote, with a tick in its
    5th significant digit."""
    in_quote = Decimal(10 ** draw.uniform(-4, 3) / worth)
    price = max(in_quote, _MIN_PRICE)
    exponent = math.floor(math.log10(price)) - (_PRICE_DIGITS - 1)
    tick = Decimal(1).scaleb(max(exponent, -8))
    return Pair(symbol, base, quote, f"{price.quantize(tick):f}", f"{tick:f}")
