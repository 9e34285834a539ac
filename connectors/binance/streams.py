"""Binance stream names and URLs, and the one place symbols are normalised.

One stream is served raw at ``/ws/<stream>``; several share one connection at
``/stream?streams=a/b/c``, where every event arrives wrapped as ``{"stream":..,"data":..}``.
Stream names are lower case (``btcusdt@trade``); records carry the symbol upper case (``BTCUSDT``).
"""

from __future__ import annotations

from collections.abc import Iterable

from connectors.settings import check_url

DEFAULT_BASE_URL = "wss://stream.binance.com:9443"
STREAM_KINDS = ("trade", "aggTrade")
MAX_STREAMS_PER_CONNECTION = 1024


def normalize_symbols(symbols: Iterable[str]) -> list[str]:
    """Lower-case symbols, blanks dropped, duplicates removed, order kept; ValueError for a symbol
    that is not letters and digits, or for none at all."""
    out = []
    for given in symbols:
        symbol = given.strip().lower()
        if not symbol:
            continue
        if not (symbol.isascii() and symbol.isalnum()):
            raise ValueError(f"invalid symbol {symbol!r}: letters and digits only, e.g. btcusdt")
        if symbol not in out:
            out.append(symbol)
    if not out:
        raise ValueError("at least one symbol is needed")
    return out


def stream_name(symbol: str, kind: str) -> str:
    if kind not in STREAM_KINDS:
        raise ValueError(f"unknown stream kind {kind!r}; expected one of {STREAM_KINDS}")
    (symbol,) = normalize_symbols([symbol])
    return f"{symbol}@{kind}"


def stream_url(base_url: str, symbols: Iterable[str], kind: str) -> str:
    """The URL Binance expects for these symbols: raw for one, combined for several."""
    check_url(base_url, ("ws", "wss"), "base_url")
    streams = [stream_name(s, kind) for s in normalize_symbols(symbols)]
    if len(streams) > MAX_STREAMS_PER_CONNECTION:
        raise ValueError(
            f"{len(streams)} streams exceed Binance's {MAX_STREAMS_PER_CONNECTION} per connection"
        )
    base = base_url.rstrip("/")
    if len(streams) == 1:
        return f"{base}/ws/{streams[0]}"
    return f"{base}/stream?streams={'/'.join(streams)}"
