"""Redundant lines: one shard's streams over two connections to two endpoints of the (simulated)
exchange, merged by trade id; the first copy wins, and ids one line skips are a gap only when no
other line can still deliver them."""

from __future__ import annotations

import time

import orjson
import pytest

from connectors.binance.records import AggTrade, DeadLetter, Trade
from connectors.binance.rest import RestConfig
from connectors.feed import BinanceFeed
from connectors.simulator import Market
from connectors.websocket.config import BridgeConfig
from helpers.draining import drain_until

AGG_SYMBOLS = ("BTCUSDT", "ETHUSDT", "DOTUSDT")  # what the cryptofeed capture holds
SPEED = 10.0  # 1,910 aggregate trades over 90 s of 2022 in about 9 s
FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "poll_interval": 0.05}
SYMBOLS = ("BTCUSDT", "ETHUSDT")
# Where no REST history is reachable: any backfill would fail and report its ids as unfilled.
NO_REST = RestConfig(rest_url="http://127.0.0.1:9", rest_timeout=1.0)


@pytest.fixture
def feeds(tmp_path):
    """Feeds a test opens, closed even when it fails."""
    opened = []

    def open_feed(urls, symbols=SYMBOLS, rest=NO_REST, **overrides):
        config = BridgeConfig(gate_dir=str(tmp_path), **{**FAST, **overrides})
        feed = BinanceFeed(
            [s.lower() for s in symbols], "trade", urls, config, rest=rest, redundancy=len(urls)
        )
        opened.append(feed)
        return feed.start()

    yield open_feed
    for feed in opened:
        feed.close()


def drain_for(feed, seconds: float) -> list:
    until = time.monotonic() + seconds
    return drain_until(feed, lambda _: time.monotonic() > until)


def ids(items, symbol="BTCUSDT") -> list[int]:
    return [i.trade_id for i in items if isinstance(i, Trade) and i.symbol == symbol]


def everything_published(sim, feed, symbols=SYMBOLS):
    def done(items):
        if not sim.market.finished or feed.stats["buffered"] or feed.stats["backfilling"]:
            return False
        return all(
            (ids(items, s) or [None])[-1] == sim.market.published(s).ids[-1] for s in symbols
        )

    return done


def assert_every_published_trade_once_in_order(items, sim, symbols=SYMBOLS):
    for symbol in symbols:
        published = sim.market.published(symbol)
        delivered = ids(items, symbol)
        assert delivered == published.ids[published.ids.index(delivered[0]) :], symbol


def test_two_lines_through_resets_of_either_lose_nothing_without_rest(simulator, feeds):
    """A market trading on through resets of one line at a time, its endpoint refusing upgrades
    for a while after each: every trade once, in order, no gap, no REST request at all."""
    sim = simulator(
        Market.generated(SYMBOLS, rate=600, count=6000, pause_without_subscribers=False, seed=3),
        endpoints=2,
    )
    sim.endpoints[1].faults.delay_market(0.05)  # line 2 trails: line 1, back, jumps ahead of it
    feed = feeds(sim.ws_urls)
    drain_until(feed, lambda items: len(items) >= 200, timeout=10)
    items: list = []
    for n in range(4):
        endpoint = sim.endpoints[n % 2]
        endpoint.faults.reject_handshake(503, retry_after=None, times=1000)
        endpoint.faults.drop_after(0, reset=True)
        items += drain_until(feed, lambda _: True)
        time.sleep(0.6)
        endpoint.faults.reject_handshake(503, times=0)
        feed_back = lambda _, line=n % 2 + 1: feed.stats[f"line{line}_connected"] == 1  # noqa: E731
        items += drain_until(feed, feed_back, timeout=10)
        items += drain_for(feed, 0.3)
    items += drain_until(feed, everything_published(sim, feed))

    assert_every_published_trade_once_in_order(items, sim)
    assert not [i for i in items if isinstance(i, DeadLetter)]
    stats = feed.stats
    assert stats["gaps"] == 0 and stats["backfill_requests"] == 0 and stats["duplicates"] == 0
    assert stats["line1_reconnects"] == 2 and stats["line2_reconnects"] == 2
    assert stats["line1_records_first"] + stats["line2_records_first"] == stats["records"]
    # line 2 trails by 50 ms: its copies come second, and the lag metric says by how much
    assert stats["line1_records_first"] > stats["line2_records_first"]
    assert stats["line2_records_second"] > 0 and stats["line2_trail_ms"] >= 25
    assert sim.rest_requests == []


def test_both_lines_down_together_is_a_gap_the_history_fills(simulator, feeds):
    sim = simulator(
        Market.generated(SYMBOLS, rate=600, count=4000, pause_without_subscribers=False, seed=5),
        endpoints=2,
    )
    feed = feeds(sim.ws_urls, rest=RestConfig(rest_url=sim.http_url))
    drain_until(feed, lambda items: len(items) >= 200, timeout=10)
    for endpoint in sim.endpoints:
        endpoint.faults.refuse_connections()
        endpoint.faults.drop_after(0, reset=True)
    time.sleep(1.0)  # the market trades on: these trades only the history has
    for endpoint in sim.endpoints:
        endpoint.faults.accept_connections()
    items = drain_until(feed, everything_published(sim, feed))

    assert_every_published_trade_once_in_order(items, sim)
    assert not [i for i in items if isinstance(i, DeadLetter)]
    stats = feed.stats
    assert stats["backfilled"] > 300 and stats["unfilled_ids"] == 0
    assert stats["line1_reconnects"] == 1 and stats["line2_reconnects"] == 1


def trade(n: int) -> bytes:
    return orjson.dumps(
        {
            "e": "trade",
            "E": 1723161601273,
            "s": "BTCUSDT",
            "t": n,
            "p": "1.0",
            "q": "2.0",
            "T": 1723161601272,
            "m": True,
        }
    )


def test_a_jump_on_one_line_waits_for_the_other_and_a_jump_on_both_is_a_gap(simulator, feeds):
    """Arbitration, frame by frame: a line that skips ids waits while the other may deliver
    them; ids both lines skip are a gap at once; ids the other line never brings, after
    ``line_lag_limit``."""
    sim = simulator(Market.generated(["btcusdt"], rate=1, count=0), endpoints=2)
    feed = feeds(sim.ws_urls, symbols=["BTCUSDT"], rest=None, line_lag_limit=0.5)
    a, b = (endpoint.faults for endpoint in sim.endpoints)
    sim.wait_for(lambda: all(len(e.connections) == 1 for e in sim.endpoints))

    def one_after_another(*steps):
        for faults, numbers in steps:
            faults.send_frames([trade(n) for n in numbers])
            time.sleep(0.1)  # each step reaches the feed before the next

    one_after_another((a, [100]), (b, [100]), (a, [103]), (b, [101, 102, 103]))
    items = drain_until(feed, lambda items: ids(items)[-1:] == [103], timeout=10)
    assert ids(items) == [100, 101, 102, 103]
    stats = feed.stats
    assert stats["gaps"] == 0 and stats["copies"] == 2
    assert (stats["line1_records_first"], stats["line2_records_first"]) == (2, 2)

    one_after_another((a, [110]), (b, [110]))
    items = drain_until(feed, lambda items: ids(items) == [110], timeout=10)
    assert (feed.stats["gaps"], feed.stats["missing_ids"]) == (1, 6)

    a.send_frames([trade(120)])  # the other line never brings 111..119
    started = time.monotonic()
    items = drain_until(feed, lambda items: ids(items) == [120], timeout=10)
    assert time.monotonic() - started >= 0.4  # held for line_lag_limit, not released at once
    assert (feed.stats["gaps"], feed.stats["missing_ids"]) == (2, 15)


def test_aggregate_trades_after_a_restart_on_two_lines(simulator, caplog, capture_dir, tmp_path):
    """``@aggTrade`` (the aggregate id is the sequence) resumed after checkpointed ids: one
    catch-up from the history (by the line that connects first), then two lines, one reset."""
    sim = simulator(
        Market.replay(
            capture_dir / "cryptofeed_BINANCE-ee25be.0.gz",
            kinds=("aggTrade",),
            speed=SPEED,
            pause_without_subscribers=False,
        ),
        endpoints=2,
    )
    sim.wait_for(
        lambda: all(len(sim.market.published(s, "aggTrade").ids) > 150 for s in AGG_SYMBOLS)
    )
    first = {s: sim.market.published(s, "aggTrade").ids[0] for s in AGG_SYMBOLS}
    config = BridgeConfig(gate_dir=str(tmp_path), **FAST)
    feed = BinanceFeed(
        [s.lower() for s in AGG_SYMBOLS],
        "aggTrade",
        sim.ws_urls,
        config,
        rest=RestConfig(rest_url=sim.http_url),
        redundancy=2,
    ).resume_after({s: a + 99 for s, a in first.items()})
    with feed:
        items = drain_until(feed, lambda items: len(items) >= 400, timeout=20)
        sim.endpoints[0].faults.drop_after(0, reset=True)
        items += drain_for(feed, 2.0)
        for symbol in AGG_SYMBOLS:
            published = sim.market.published(symbol, "aggTrade").ids
            delivered = [a.agg_id for a in items if isinstance(a, AggTrade) and a.symbol == symbol]
            assert delivered == published[100 : 100 + len(delivered)], symbol
            assert len(delivered) > 10
        stats = feed.stats
    assert stats["line1_reconnects"] == 1 and stats["backfilled"] > 0
    assert stats["gaps"] == len(AGG_SYMBOLS)  # the restart's, one a symbol: none from the reset
    assert sum("catching up after" in r.getMessage() for r in caplog.records) == 1
