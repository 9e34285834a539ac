"""Binance stream names and URLs, and the one place symbols are normalised.

One stream is served raw at ``/ws/<stream>``; several share one connection at
``/stream?streams=a/b/c``, where every event arrives wrapped as ``{"stream":..,"data":..}``; both
under a market's base URL (``markets.py``: USD-M's ends in ``/market``).
Stream names are lower case (``btcusdt@trade``); records carry the symbol upper case (``BTCUSDT``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

from connectors.binance.markets import MARKETS
from connectors.settings import check_url

# every trade stream of any market: trade, aggTrade
STREAM_KINDS = tuple(dict.fromkeys(kind for m in MARKETS.values() for kind in m.stream_kinds))
# Binance's limit, the same on every market
MAX_STREAMS_PER_CONNECTION = min(m.max_streams_per_connection for m in MARKETS.values())
# What one connection carries unless told otherwise. Binance refuses a combined-stream URL past
# about 8,000 bytes (measured by unicorn-binance-websocket-api; not documented) with HTTP 414: 200
# streams of the longest names (``1000satsfdusd@aggtrade``, 22 bytes and a slash) make about 4,600.
# nautilus_trader keeps 200 streams a connection too; and a lost connection then costs at most 200
# symbols' gaps, not 1,024.
DEFAULT_STREAMS_PER_CONNECTION = 200
MAX_URL_BYTES = 8_000


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
    url = f"{base}/stream?streams={'/'.join(streams)}"
    if len(url) > MAX_URL_BYTES:
        raise ValueError(
            f"{len(streams)} streams make a URL of {len(url)} bytes, over the {MAX_URL_BYTES}"
            " Binance accepts: fewer streams per connection"
        )
    return url


def plan_connections(
    symbols: Sequence[str],
    connections: int = 1,
    per_connection: int = DEFAULT_STREAMS_PER_CONNECTION,
) -> list[list[str]]:
    """Symbols grouped into connections: at least ``connections`` of them, more where needed so
    that none carries over ``per_connection`` streams; round-robin, so that busy symbols (which
    users tend to list first) spread over the connections."""
    symbols = normalize_symbols(symbols)
    if connections < 1:
        raise ValueError(f"connections must be at least 1, not {connections}")
    if not 1 <= per_connection <= MAX_STREAMS_PER_CONNECTION:
        raise ValueError(
            f"streams per connection must be from 1 to Binance's {MAX_STREAMS_PER_CONNECTION},"
            f" not {per_connection}"
        )
    n = min(max(connections, -(-len(symbols) // per_connection)), len(symbols))
    return [symbols[i::n] for i in range(n)]


def home_shard(symbol: str, shards: int) -> int:
    """The connection a symbol that joins while a job runs goes to: a function of its name alone,
    so that every subtask, a restart and a rerun agree on it without asking each other."""
    return zlib.crc32(symbol.lower().encode()) % shards


def first_few(names: Sequence[str], shown: int = 3) -> str:
    """Names as a log line quotes them: the first ``shown``, then "..." if there are more."""
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def describe(symbols: Sequence[str], kind: str) -> str:
    """How a log line names a connection's streams: the symbols when they are few, else their
    count with the first and the last."""
    if len(symbols) <= 3:
        return f"{','.join(symbols)}@{kind}"
    return f"{len(symbols)} symbols@{kind} ({symbols[0]}..{symbols[-1]})"
