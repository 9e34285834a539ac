"""Symbols added while a feed runs (a listing): a SUBSCRIBE on each open connection, the URL of
every reconnect naming them, each new connection checked with LIST_SUBSCRIPTIONS; the trades a
symbol made before its subscription came up fetched from REST, in order, once."""

from __future__ import annotations

import logging
import time

import pytest

from connectors.binance.listings import Listings, SymbolWatch
from connectors.binance.records import Trade
from connectors.binance.rest import RestConfig
from connectors.binance.streams import stream_url
from connectors.feed import BinanceFeed
from connectors.simulator import whole_market
from connectors.websocket.config import BridgeConfig
from helpers.draining import drain_until

FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "poll_interval": 0.05}


@pytest.fixture
def feeds(tmp_path):
    opened = []

    def open_feed(sim, symbols, lines=1, start=True, **overrides):
        config = BridgeConfig(gate_dir=str(tmp_path), **{**FAST, **overrides})
        urls = sim.ws_urls[:lines] if lines > 1 else sim.ws_url
        feed = BinanceFeed(
            [s.lower() for s in symbols],
            "trade",
            urls,
            config,
            rest=RestConfig(rest_url=sim.http_url),
            redundancy=lines,
        )
        opened.append(feed)
        return feed.start() if start else feed

    yield open_feed
    for feed in opened:
        feed.close()


def ids(items, symbol):
    return [i.trade_id for i in items if isinstance(i, Trade) and i.symbol == symbol]


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.mark.parametrize("lines", [1, 2])
def test_a_symbol_listed_while_the_feed_runs_is_complete_from_its_first_trade(
    simulator, feeds, lines
):
    market = whole_market(20, rate=200, seed=3, pause_without_subscribers=False)
    sim = simulator(market, endpoints=lines)
    feed = feeds(sim, market.symbols, lines)
    items: list = []
    drain_until(feed, lambda items: len(items) > 100, items=items)
    before = now_ms()
    sim.faults.list_symbol("NEWUSDT", rate=50)  # trading at once, before the feed hears of it
    time.sleep(1.0)
    traded_before = len(market.published("NEWUSDT").ids)
    assert traded_before > 20
    assert feed.add_symbols(["NEWUSDT", market.symbols[0]], since_ms=before) == ["newusdt"]

    drain_until(feed, lambda items: len(ids(items, "NEWUSDT")) > traded_before + 50, items=items)
    got = ids(items, "NEWUSDT")
    assert got == list(range(1, len(got) + 1))  # from its first trade, each once, in order
    stats = feed.stats
    assert stats["joined"] == 1 and stats["requests_refused"] == 0
    assert stats["resubscribed"] == 0
    assert stats["backfilled"] >= traded_before  # what it traded before its SUBSCRIBE
    assert all("newusdt@trade" in url for url in feed.urls)

    # the next connections open with it in their URL: a reset loses none of its trades
    items.clear()
    for endpoint in sim.endpoints:
        endpoint.faults.drop_after(0, reset=True)
    last = got[-1]
    drain_until(feed, lambda items: feed.stats["reconnects"] >= lines, items=items)
    drain_until(feed, lambda items: len(ids(items, "NEWUSDT")) > 50, items=items)
    after = ids(items, "NEWUSDT")
    assert after == list(range(last + 1, last + 1 + len(after)))
    assert feed.stats["resubscribed"] == 0


def test_a_listing_announced_ahead_joins_before_its_first_trade_without_rest(simulator, feeds):
    market = whole_market(5, rate=50, seed=4, pause_without_subscribers=False)
    sim = simulator(market)
    feed = feeds(sim, market.symbols)
    items: list = []
    drain_until(feed, lambda items: len(items) > 10, items=items)
    sim.faults.list_symbol("NEWUSDT", rate=50, status="BREAK")
    feed.add_symbols(["newusdt"], since_ms=now_ms())
    # its SUBSCRIBE sent (after the LIST_SUBSCRIPTIONS of the connect) and answered
    drain_until(feed, lambda items: feed.stats["requests"] == 2, items=items)
    time.sleep(0.3)
    sim.faults.resume_symbol("NEWUSDT")
    drain_until(feed, lambda items: len(ids(items, "NEWUSDT")) > 30, items=items)
    got = ids(items, "NEWUSDT")
    assert got == list(range(1, len(got) + 1))
    assert feed.stats["backfilled"] == 0  # nothing to fetch: subscribed before trading opened


def test_a_connection_that_lacks_a_stream_subscribes_it_after_listing_them(simulator, feeds):
    """A connection opened while a join changed the URL lacks the new stream: LIST_SUBSCRIPTIONS
    tells, and a SUBSCRIBE mends it."""
    market = whole_market(3, rate=100, seed=5, pause_without_subscribers=False)
    sim = simulator(market)
    symbols = [s.lower() for s in market.symbols]
    feed = feeds(sim, symbols, start=False)
    feed._lines[0].url = stream_url(sim.ws_url, symbols[:2], "trade")  # as if opened mid-join
    feed.start()
    items: list = []
    missing = market.symbols[2]
    drain_until(feed, lambda items: len(ids(items, missing)) > 20, items=items)
    assert feed.stats["resubscribed"] == 1
    got = ids(items, missing)
    assert got == list(range(got[0], got[0] + len(got)))


def test_a_refused_subscription_is_an_error_with_binances_reason(simulator, feeds, caplog):
    market = whole_market(3, rate=50, seed=6, pause_without_subscribers=False)
    sim = simulator(market, max_streams=3)
    feed = feeds(sim, market.symbols)
    items: list = []
    drain_until(feed, lambda items: len(items) > 10, items=items)
    sim.faults.list_symbol("NEWUSDT", rate=50)
    with caplog.at_level(logging.ERROR, logger="connectors.feed"):
        feed.add_symbols(["newusdt"])
        drain_until(feed, lambda items: feed.stats["requests_refused"] == 1, items=items)
    (refusal,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert "SUBSCRIBE of 1 streams (newusdt@trade)" in refusal and "code 2" in refusal
    assert ids(items, "NEWUSDT") == []


def test_a_symbol_that_would_not_fit_one_connection_is_refused_whole(simulator, feeds):
    market = whole_market(3, rate=10, seed=7)
    sim = simulator(market)
    feed = feeds(sim, market.symbols)
    with pytest.raises(ValueError, match="per connection"):
        feed.add_symbols([f"x{n}usdt" for n in range(1100)])
    assert len(feed.symbols) == 3


def test_the_watch_joins_a_listing_at_once_and_a_known_symbol_once_it_trades(simulator):
    """Against the simulator's exchangeInfo: a symbol listed since the previous poll joins at
    once, whatever its status (announced ahead, it is subscribed before its first trade); one
    listed before but not read (halted when the job planned) joins once it trades; a halt of a
    symbol read already changes nothing; nothing joins twice."""
    market = whole_market(10, rate=10, seed=8)
    sim = simulator(market)
    sim.faults.halt_symbol(market.symbols[9], "BREAK")
    listings = Listings(
        rest=RestConfig(rest_url=sim.http_url),
        market="spot",
        quotes=(),
        exclude=(),
        listed=frozenset(),
        planned_at_ms=1_000,
    )
    listed = listings.read()
    trading = {s for s, status in listed.items() if status == "TRADING"}
    assert len(listed) == 10 and len(trading) == 9
    watch = SymbolWatch(listings.read, trading, listed, listings.planned_at_ms)
    watch.poll()
    assert watch.take() == {}

    sim.faults.list_symbol("NEWUSDT", status="BREAK")
    sim.faults.halt_symbol(market.symbols[0])
    before = watch.polled_at_ms
    watch.poll()
    assert watch.take() == {"newusdt": before}

    sim.faults.resume_symbol(market.symbols[9])
    before = watch.polled_at_ms
    watch.poll()
    watch.poll()
    assert watch.take() == {market.symbols[9].lower(): before}
    watch.poll()
    assert watch.take() == {}
