"""A Binance-compatible exchange on loopback: replayed or generated trades (a whole market of
them, too), live subscriptions, pings, Binance's per-connection limits, REST trade history,
exchangeInfo and the 24 h ticker with Binance's weight limits, faults and listings on command, and
a log of what it answered; as Binance spot, or as Binance USD-M futures (``venues.py``).

    market = Market.replay(DEMO_CAPTURES, speed=0)
    with ExchangeSimulator(market) as sim:
        url = f"{sim.ws_url}/stream?streams=btcusdt@trade/ethusdt@trade"

    with ExchangeSimulator(whole_market(1500, rate=5000, pause_without_subscribers=False)) as sim:
        ...
        assert not sim.log.statuses[429] and not sim.log.close_codes[1008]

    market = Market.generated(["BTCUSDT"], rate=50, kind="aggTrade", venue="usdm")
    with ExchangeSimulator(market) as sim:  # USD-M futures: 10 messages/s, pings every 3 min
        url = f"{sim.ws_url}/market/stream?streams=btcusdt@aggTrade"

Run standalone with ``python -m connectors.simulator --help``.
"""

from connectors.simulator.captures import (
    CAPTURES_DIR,
    DEMO_CAPTURES,
    CaptureEvent,
    iter_capture,
    load_events,
)
from connectors.simulator.exchange_log import ExchangeLog, LogEntry
from connectors.simulator.faults import Faults
from connectors.simulator.history import Published, PublishedAggTrades, PublishedTrades, Totals
from connectors.simulator.market import GeneratedFeed, Market, ReplayFeed, replay_feeds
from connectors.simulator.server import VENUE, ExchangeSimulator
from connectors.simulator.session import ConnectionRecord, Frame
from connectors.simulator.symbols import BREAK, HALT, TRADING, Pair, market_pairs
from connectors.simulator.venues import SPOT, USDM, VENUES, Venue
from connectors.simulator.whole_market import whole_market, whole_market_feeds, zipf_rates

__all__ = [
    "BREAK",
    "CAPTURES_DIR",
    "DEMO_CAPTURES",
    "HALT",
    "SPOT",
    "TRADING",
    "USDM",
    "VENUE",
    "VENUES",
    "CaptureEvent",
    "ConnectionRecord",
    "ExchangeLog",
    "ExchangeSimulator",
    "Faults",
    "Frame",
    "GeneratedFeed",
    "LogEntry",
    "Market",
    "Pair",
    "Published",
    "PublishedAggTrades",
    "PublishedTrades",
    "ReplayFeed",
    "Totals",
    "Venue",
    "iter_capture",
    "load_events",
    "market_pairs",
    "replay_feeds",
    "whole_market",
    "whole_market_feeds",
    "zipf_rates",
]
