"""A Binance trade feed: Binance's protocol plugged into the generic WebSocket bridge."""
from __future__ import annotations

from connectors.binance.parser import Parser
from connectors.binance.records import AggTrade, ParseFailure, Trade
from connectors.binance.streams import DEFAULT_BASE_URL, stream_url
from connectors.websocket.bridge import Bridge, BridgeConfig


class BinanceDecoder(Parser):
    record_types = (Trade, AggTrade)
    failure_types = (ParseFailure,)


class BinanceFeed(Bridge):
    """``start()``, then ``drain()`` Trade/AggTrade/ParseFailure items; ``close()`` when done."""

    def __init__(self, symbols: list[str], stream: str = "trade", base_url: str = DEFAULT_BASE_URL,
                 config: BridgeConfig = BridgeConfig()):
        self.symbols = [s.lower() for s in symbols]
        super().__init__(stream_url(base_url, self.symbols, stream), BinanceDecoder(kinds=(stream,)),
                         config, name=",".join(self.symbols) + "@" + stream)
