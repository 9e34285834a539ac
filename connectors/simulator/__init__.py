"""A Binance-compatible exchange on loopback: replayed or generated trades, live
subscriptions, pings, REST trade history with Binance's weight limits, and faults on command.

    market = Market.replay(DEMO_CAPTURES, speed=0)
    with ExchangeSimulator(market) as sim:
        url = f"{sim.ws_url}/stream?streams=btcusdt@trade/ethusdt@trade"

Run standalone with ``python -m connectors.simulator --help``.
"""

from connectors.simulator.captures import (
    CAPTURES_DIR,
    DEMO_CAPTURES,
    CaptureEvent,
    iter_capture,
    load_events,
)
from connectors.simulator.faults import Faults
from connectors.simulator.history import Published, PublishedAggTrades, PublishedTrades
from connectors.simulator.market import GeneratedFeed, Market, ReplayFeed, replay_feeds
from connectors.simulator.server import ExchangeSimulator
from connectors.simulator.session import ConnectionRecord, Frame

__all__ = [
    "CAPTURES_DIR",
    "DEMO_CAPTURES",
    "CaptureEvent",
    "ConnectionRecord",
    "ExchangeSimulator",
    "Faults",
    "Frame",
    "GeneratedFeed",
    "Market",
    "Published",
    "PublishedAggTrades",
    "PublishedTrades",
    "ReplayFeed",
    "iter_capture",
    "load_events",
    "replay_feeds",
]
