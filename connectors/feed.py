"""A Binance trade feed: Binance's protocol plugged into the generic WebSocket bridge."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from connectors.binance.archive import Archive, ArchiveConfig, ArchiveHistory
from connectors.binance.history import BinanceHistory
from connectors.binance.markets import MARKETS
from connectors.binance.parser import Parser
from connectors.binance.records import AggTrade, Control, DeadLetter, Trade
from connectors.binance.rest import RestConfig
from connectors.binance.streams import (
    describe,
    first_few,
    normalize_symbols,
    stream_name,
    stream_url,
)
from connectors.binance.subscriptions import SUBSCRIBE, Requests, missing
from connectors.websocket.bridge import Bridge
from connectors.websocket.config import BridgeConfig
from connectors.websocket.line import Reader

log = logging.getLogger(__name__)


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
    complete days from Binance's public archive instead of REST (``connectors/binance/archive.py``;
    the market's day files of the stream kind, ``markets.py``'s ``archive_paths``: spot's trades
    and aggTrades, USD-M's aggTrades), and on a market whose REST history reaches back only so far
    (USD-M: 48 hours), every day further back than that, whole.
    ``until_ms`` ends the history there: the feed replays it and is then ``finished``, no live part.

    ``add_symbols`` subscribes more symbols while the feed runs (a listing): a ``SUBSCRIBE`` on
    every open connection, and the URL of every reconnect names them. Each new connection is
    checked with ``LIST_SUBSCRIPTIONS``: a stream it lacks is subscribed again, a refused request
    is logged as an error with Binance's reason and counted (``requests_refused``).
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
        self.stream = stream
        self._endpoints = [endpoints[line % len(endpoints)] for line in range(redundancy)]
        self._requests = Requests()
        rest_history = (
            BinanceHistory(stream, rest, config.gate_dir, config.ca_file, facts)
            if rest is not None
            else None
        )
        history: BinanceHistory | ArchiveHistory | None = rest_history
        if rest_history is not None and archive is not None and since_ms is not None:
            path = facts.archive_paths.get(stream)
            if path is None:
                raise ValueError(f"the archive holds no @{stream} history of {facts.title}")
            archive_files = Archive(archive, config.ca_file, path)
            history = ArchiveHistory(
                rest_history,
                archive_files,
                since_ms,
                until_ms,
                len(self.symbols),
                rest_window_ms=facts.history_window_ms,
            )
        self._decoder = BinanceDecoder(kinds=(stream,), symbols=self.symbols)
        super().__init__(
            [stream_url(endpoint, self.symbols, stream) for endpoint in self._endpoints],
            self._decoder,
            config,
            name=describe(self.symbols, stream),
            history=history,
            # half the connection's allowance: the client's pongs count against it too
            request_interval=2.0 / facts.max_incoming_per_second,
        )
        if since_ms is not None:
            self.resume_at(since_ms, [s.upper() for s in self.symbols], until_ms)
        elif until_ms is not None:
            raise ValueError("until_ms ends a replay that since_ms starts")

    def add_symbols(self, symbols: Sequence[str], since_ms: int | None = None) -> list[str]:
        """Subscribes ``symbols`` while the feed runs (any thread; returns at once): each is
        complete from its first trade at or after ``since_ms`` (None: from its first live one).
        Returns those that were new; ValueError, adding none, when they would not fit on one
        connection (Binance's 1024 streams, or a reconnect's URL past its length limit)."""
        new = [s for s in normalize_symbols(symbols) if s not in self.symbols]
        if not new:
            return []
        for endpoint in self._endpoints:  # ValueError past 1024 streams or the URL's length
            stream_url(endpoint, [*self.symbols, *new], self.stream)
        self.join([s.upper() for s in new], since_ms)
        return new

    def extend(self, keys: list[str]) -> None:
        new = [k.lower() for k in keys if k.lower() not in self.symbols]
        if not new:
            return
        self._decoder.allow(new)
        self.symbols = [*self.symbols, *new]
        for line, endpoint in zip(self._lines, self._endpoints, strict=True):
            line.url = stream_url(endpoint, self.symbols, self.stream)
        streams = [stream_name(s, self.stream) for s in new]
        for line in self._lines:
            for reader in line.readers:
                if reader.open:
                    self.send(reader, self._requests.subscribe(streams))
        log.info("%s: subscribing %d more: %s", self.name, len(new), describe(new, self.stream))

    def on_connected(self, reader: Reader) -> None:
        self.send(reader, self._requests.list_subscriptions())

    def on_control(self, reader: Reader, item: Any) -> bool:
        if type(item) is not Control or "id" not in item.payload:
            return False
        answer = self._requests.answer(item.payload)
        if answer is None:
            return False
        request, where = answer.request, reader.line.name
        if answer.error is not None:
            self._counts["requests_refused"] += 1  # under the bridge's lock (on_control)
            log.error(
                "%s: Binance refused %s%s: %s",
                where,
                request.method,
                f" of {len(request.streams)} streams ({first_few(request.streams)})"
                if request.method == SUBSCRIBE
                else "",
                answer.error,
            )
        elif answer.streams is not None:  # LIST_SUBSCRIPTIONS
            lacking = missing([stream_name(s, self.stream) for s in self.symbols], answer.streams)
            if lacking:
                self._counts["resubscribed"] += len(lacking)
                log.warning(
                    "%s: the connection lacks %d of %d streams (%s): subscribing them",
                    where,
                    len(lacking),
                    len(self.symbols),
                    first_few(lacking),
                )
                self.send(reader, self._requests.subscribe(lacking))
        return True
