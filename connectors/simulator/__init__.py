"""A Binance-compatible exchange on loopback: replayed or generated trades, live
subscriptions, pings, ``historicalTrades``, and faults on command.

    market = Market.replay(SAMPLE_CAPTURE, speed=0)
    with ExchangeSimulator(market) as sim:
        url = f"{sim.ws_url}/stream?streams=btcusdt@trade/ethusdt@trade"

Run standalone with ``python -m connectors.simulator --help``.
"""
from connectors.simulator.captures import SAMPLE_CAPTURE, CaptureEvent, iter_capture, load_events
from connectors.simulator.faults import Faults
from connectors.simulator.market import GeneratedFeed, Market, ReplayFeed, TradeHistory, replay_feeds
from connectors.simulator.server import ExchangeSimulator
from connectors.simulator.session import ConnectionRecord, Frame

__all__ = [
    "SAMPLE_CAPTURE",
    "CaptureEvent",
    "ConnectionRecord",
    "ExchangeSimulator",
    "Faults",
    "Frame",
    "GeneratedFeed",
    "Market",
    "ReplayFeed",
    "TradeHistory",
    "iter_capture",
    "load_events",
    "replay_feeds",
]
