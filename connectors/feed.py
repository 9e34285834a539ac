"""A Binance trade feed: Binance's protocol plugged into the generic WebSocket bridge."""

from __future__ import annotations

from connectors.binance.history import BinanceHistory, RestConfig
from connectors.binance.markets import MARKETS
from connectors.binance.parser import Parser
from connectors.binance.records import AggTrade, DeadLetter, Trade
from connectors.binance.streams import describe, normalize_symbols, stream_url
from connectors.websocket.bridge import Bridge, BridgeConfig


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
    """

    def __init__(
        self,
        symbols: list[str],
        stream: str = "trade",
        base_url: str | None = None,
        config: BridgeConfig = BridgeConfig(),
        rest: RestConfig | None = None,
        since_ms: int | None = None,
        market: str = "spot",
    ) -> None:
        facts = MARKETS[market]
        facts.check_stream(stream)
        base_url = base_url or facts.ws_url
        facts.check_ws_url(base_url)
        self.symbols = normalize_symbols(symbols)
        history = (
            BinanceHistory(stream, rest, config.gate_dir, config.ca_file, facts)
            if rest is not None
            else None
        )
        super().__init__(
            stream_url(base_url, self.symbols, stream),
            BinanceDecoder(kinds=(stream,), symbols=self.symbols),
            config,
            name=describe(self.symbols, stream),
            history=history,
        )
        if since_ms is not None:
            self.resume_at(since_ms, [s.upper() for s in self.symbols])
