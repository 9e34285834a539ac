"""Binance stream names and URLs.

One stream is served raw at ``/ws/<stream>``; several share one connection at
``/stream?streams=a/b/c``, where every event arrives wrapped as ``{"stream":..,"data":..}``.
"""
from __future__ import annotations

from typing import Iterable

DEFAULT_BASE_URL = "wss://stream.binance.com:9443"
STREAM_KINDS = ("trade", "aggTrade")
MAX_STREAMS_PER_CONNECTION = 1024


def stream_name(symbol: str, kind: str) -> str:
    if kind not in STREAM_KINDS:
        raise ValueError(f"unknown stream kind {kind!r}; expected one of {STREAM_KINDS}")
    symbol = symbol.strip().lower()
    if not symbol.isalnum():
        raise ValueError(f"invalid symbol {symbol!r}")
    return f"{symbol}@{kind}"


def stream_url(base_url: str, symbols: Iterable[str], kind: str) -> str:
    """The URL Binance expects for these symbols: raw for one, combined for several."""
    streams = list(dict.fromkeys(stream_name(s, kind) for s in symbols))
    if not streams:
        raise ValueError("at least one symbol is needed")
    if len(streams) > MAX_STREAMS_PER_CONNECTION:
        raise ValueError(f"{len(streams)} streams exceed Binance's {MAX_STREAMS_PER_CONNECTION} per connection")
    base = base_url.rstrip("/")
    if len(streams) == 1:
        return f"{base}/ws/{streams[0]}"
    return f"{base}/stream?streams={'/'.join(streams)}"
