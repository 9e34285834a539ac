"""A Binance trade feed: Binance's protocol plugged into the generic WebSocket bridge."""

from __future__ import annotations

from collections.abc import Sequence

from connectors.binance.archive import Archive, ArchiveConfig, ArchiveHistory
from connectors.binance.history import BinanceHistory, RestConfig
from connectors.binance.markets import MARKETS
from connectors.binance.parser import Parser
from connectors.binance.records import AggTrade, DeadLetter, Trade
from connectors.binance.streams import describe, normalize_symbols, stream_url
from connectors.websocket.bridge import Bridge
from connectors.websocket.config import BridgeConfig


class BinanceDecoder(Parser):
    record_types = (Trade, AggTrade)
    failure_types = (DeadLetter,)


class BinanceFeed(Bridge[Trade | AggTrade | DeadLetter]):
    """``start()``, then ``drain()`` Trade / AggTrade / DeadLetter items; ``close()`` when done.

    With ``rest`` (a ``RestConfig``), trades the stream skipped (a reconnect, a handover without
    overlap, a restart after ``resume_after``, an id jump) are fetched from Binance's REST history
    and delivered in order before the live trades that follow; ``since_ms`` then starts the
    symbols without a ``resume_after`` position at that time. Without it gaps are only counted.

    ``market`` (``markets.MARKETS``' names) says whose streams and history these are; ``base_url``
    defaults to the market's.

    ``redundancy``: how many lines read the streams, each over a connection of its own, line N
    from ``base_url``'s endpoint N (round robin when there are fewer endpoints than lines; by
    default the market's host and its mirrors); the first copy of each trade wins (bridge.py).

    With ``archive`` too (an ``ArchiveConfig``), a ``since_ms`` a day or more back reads the
    complete days from Binance's public archive instead of REST (``connectors/binance/archive.py``).
    ``until_ms`` ends the history there: the feed replays it and is then ``finished``, no live part.
    """

    def __init__(
        self,
        symbols: list[str],
        stream: str = "trade",
        base_url: str | Sequence[str] | None = None,
        config: BridgeConfig = BridgeConfig(),
        rest: RestConfig | None = None,
        since_ms: int | None = None,
        market: str = "spot",
        redundancy: int = 1,
        archive: ArchiveConfig | None = None,
        until_ms: int | None = None,
    ) -> None:
        facts = MARKETS[market]
        facts.check_stream(stream)
        if redundancy < 1:
            raise ValueError("a feed needs at least one line")
        if base_url is None:
            endpoints = facts.ws_urls(redundancy)
        elif isinstance(base_url, str):
            endpoints = [base_url]
        else:
            endpoints = list(base_url)
        for endpoint in endpoints:
            facts.check_ws_url(endpoint)
        self.symbols = normalize_symbols(symbols)
        rest_history = (
            BinanceHistory(stream, rest, config.gate_dir, config.ca_file, facts)
            if rest is not None
            else None
        )
        history: BinanceHistory | ArchiveHistory | None = rest_history
        if rest_history is not None and archive is not None and since_ms is not None:
            if market != "spot" or stream != "trade":
                raise ValueError("the archive is read for spot @trade history only")
            archive_files = Archive(archive, config.ca_file)
            history = ArchiveHistory(
                rest_history, archive_files, since_ms, until_ms, len(self.symbols)
            )
        super().__init__(
            [
                stream_url(endpoints[line % len(endpoints)], self.symbols, stream)
                for line in range(redundancy)
            ],
            BinanceDecoder(kinds=(stream,), symbols=self.symbols),
            config,
            name=describe(self.symbols, stream),
            history=history,
        )
        if since_ms is not None:
            self.resume_at(since_ms, [s.upper() for s in self.symbols], until_ms)
        elif until_ms is not None:
            raise ValueError("until_ms ends a replay that since_ms starts")
