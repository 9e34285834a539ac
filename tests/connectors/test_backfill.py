"""Gap-free delivery: whatever the stream skipped comes from the REST history, exactly once, in
order, never behind the event time of what was already delivered.

Every market here is live (it trades whether or not anyone is connected), as Binance is; the
expected trades are what the simulator published, read from its own history.
"""

from __future__ import annotations

import time

import orjson
import pytest

from connectors.binance.records import AggTrade, DeadLetter, FailureReason, Trade
from connectors.binance.rest import RestConfig
from connectors.feed import BinanceFeed
from connectors.simulator import Market, whole_market
from connectors.websocket.config import BridgeConfig
from helpers.draining import drain_until

FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "poll_interval": 0.05}
OUT_OF_ORDERNESS_MS = 2000  # the job's default watermark bound: a trade further behind is late
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def live_market(rate: float = 800, count: int = 4000, symbols=SYMBOLS) -> Market:
    return Market.generated(
        symbols, rate=rate, count=count, pause_without_subscribers=False, seed=7
    )


@pytest.fixture
def feeds(tmp_path):
    """Backfilling feeds a test opens, closed even when it fails."""
    opened = []

    def open_feed(
        sim, symbols=SYMBOLS, stream="trade", start=True, rest=None, since_ms=None, **overrides
    ):
        config = BridgeConfig(gate_dir=str(tmp_path), **{**FAST, **overrides})
        feed = BinanceFeed(
            [s.lower() for s in symbols],
            stream,
            sim.ws_url,
            config,
            rest=rest or RestConfig(rest_url=sim.http_url),
            since_ms=since_ms,
        )
        opened.append(feed)
        return feed.start() if start else feed

    yield open_feed
    for feed in opened:
        feed.close()


def records(items, symbol):
    return [i for i in items if isinstance(i, (Trade, AggTrade)) and i.symbol == symbol]


def all_published(sim, symbols=SYMBOLS, kind="trade", feed=None):
    """Once the market has published everything: done(items) holds when each symbol's last
    published id has been delivered (and, given the feed, no backfill is still reporting)."""

    def feed_busy(items):
        return feed is not None and (feed.stats["backfilling"] or feed.stats["buffered"])

    def done(items):
        if not sim.market.finished or feed_busy(items):
            return False
        delivered = {r.symbol: r.seq for r in items if isinstance(r, (Trade, AggTrade))}
        return all(delivered.get(s) == sim.market.published(s, kind).ids[-1] for s in symbols)

    return done


def assert_exactly_once_in_order(items, sim, symbols=SYMBOLS, first_ids=None):
    """Per symbol: every id the market published from the first one delivered (or ``first_ids``)
    on, once, ascending, with the exact strings published; overall: no trade behind the newest
    trade time delivered before it by more than the watermark's out-of-orderness."""
    for symbol in symbols:
        delivered = records(items, symbol)
        history = sim.market.published(symbol)
        start = first_ids[symbol] if first_ids else delivered[0].trade_id
        assert [t.trade_id for t in delivered] == [i for i in history.ids if i >= start], symbol
        published = {e["t"]: e for e in history.events}
        for t in delivered:
            e = published[t.trade_id]
            assert (t.price, t.quantity, t.trade_time, t.buyer_is_maker) == (
                e["p"],
                e["q"],
                e["T"],
                e["m"],
            )
    newest = 0
    for r in items:
        if isinstance(r, Trade):
            assert r.trade_time >= newest - OUT_OF_ORDERNESS_MS, f"{r} would be late"
            newest = max(newest, r.trade_time)


@pytest.mark.slow
def test_a_reset_connection_loses_nothing(simulator, feeds):
    sim = simulator(live_market())
    feed = feeds(sim)
    drain_until(feed, lambda items: len(items) >= 200, timeout=10)
    sim.faults.refuse_connections()  # down for a second: the market trades on meanwhile
    sim.faults.drop_after(0, reset=True)
    time.sleep(1.0)
    sim.faults.accept_connections()
    items = drain_until(feed, all_published(sim))
    assert_exactly_once_in_order(items, sim)
    stats = feed.stats
    assert (
        stats["disconnects"] == 1 and stats["backfilled"] > 300 and stats["backfill_requests"] >= 2
    )
    assert stats["unfilled_ids"] == 0 and not any(isinstance(i, DeadLetter) for i in items)


def test_a_reconnect_lost_at_once_leaves_one_catch_up_per_symbol(simulator, feeds):
    """A connection lost before it delivered a trade of a symbol, its catch-up still waiting for
    one, and the next open within the catch-up's grace: two catch-ups from the same position. The
    next live trade bounds the newest; left open, that one went on past the stream (which trails
    the REST history here) and put trades ahead of the live ones it held back (issue 18)."""
    sim = simulator(live_market(rate=50, count=600))
    sim.faults.delay_market(0.3)  # the stream trails the history, as Binance's may
    feed = feeds(sim)
    drain_until(feed, lambda items: len(items) >= 50, timeout=10)
    sim.faults.drop_after(0, reset=True, times=2)  # the open connection, and the next at once
    items = drain_until(feed, all_published(sim, feed=feed))
    assert_exactly_once_in_order(items, sim)
    assert not any(isinstance(i, DeadLetter) for i in items)
    assert len(sim.connections) == 3


@pytest.mark.slow
def test_refused_reconnects_then_a_gap_filled_across_symbols_by_time(simulator, feeds):
    sim = simulator(live_market(rate=600, count=3000))
    feed = feeds(sim)
    drain_until(feed, lambda items: len(items) >= 100, timeout=10)
    sim.faults.reject_handshake(503, retry_after=None, times=3)
    sim.faults.drop_after(0, code=1011)
    items = drain_until(feed, all_published(sim))
    assert_exactly_once_in_order(items, sim)
    assert feed.stats["connect_failures"] == 3 and feed.stats["backfilled"] > 0


@pytest.mark.slow
def test_a_handover_without_overlap_is_filled(simulator, feeds):
    sim = simulator(live_market(rate=600, count=3000))
    feed = feeds(sim, handover_timeout=1.0)
    drain_until(feed, lambda items: len(items) >= 100, timeout=10)
    sim.faults.mute_open_connections()  # the old connection's stream stalls upstream...
    time.sleep(0.5)
    sim.faults.server_shutdown(grace=5.0)  # ...then Binance announces its end: a handover
    items = drain_until(feed, all_published(sim))
    assert_exactly_once_in_order(items, sim)
    stats = feed.stats
    assert stats["handovers"] == 1 and stats["gaps"] >= 1 and stats["backfilled"] > 0
    assert len(sim.connections) == 2


def test_resuming_after_checkpointed_ids_fetches_what_came_since(simulator, feeds):
    sim = simulator(
        live_market(rate=0, count=2500)
    )  # everything published at once, before we connect
    sim.wait_until_idle()
    positions = {"BTCUSDT": 1000, "ETHUSDT": 2200}
    feed = feeds(sim, start=False).resume_after(positions)
    feed.start()
    items = drain_until(feed, all_published(sim))
    assert_exactly_once_in_order(items, sim, first_ids={s: n + 1 for s, n in positions.items()})
    assert feed.stats["backfilled"] == 1500 + 300


def test_since_a_time_starts_from_the_first_trade_at_that_time(simulator, feeds):
    sim = simulator(live_market(rate=0, count=1500))
    sim.wait_until_idle()
    btc = sim.market.published("BTCUSDT")
    since = btc.times[700]
    feed = feeds(sim, since_ms=since)
    items = drain_until(feed, all_published(sim))
    first_ids = {
        s: min(e["t"] for e in sim.market.published(s).events if e["T"] >= since) for s in SYMBOLS
    }
    assert first_ids["BTCUSDT"] <= 701
    assert_exactly_once_in_order(items, sim, first_ids=first_ids)
    assert any("aggTrades" in path and "startTime" in path for path, _, _ in sim.rest_requests)


@pytest.mark.slow
def test_rate_limits_and_server_errors_are_waited_out(simulator, feeds):
    sim = simulator(live_market(rate=0, count=1500))
    sim.wait_until_idle()
    sim.faults.fail_rest(429, retry_after=1)
    sim.faults.fail_rest(503, times=2)
    feed = feeds(sim, start=False).resume_after({"BTCUSDT": 10, "ETHUSDT": 10})
    feed.start()
    items = drain_until(feed, all_published(sim))
    assert_exactly_once_in_order(items, sim, first_ids={"BTCUSDT": 11, "ETHUSDT": 11})
    # the first asks the newest ids of both symbols (ticker/24hr), which the 429 refuses: then
    # each symbol's history is fetched
    answers = [(status, at) for path, status, at in sim.rest_requests if "api/v3/" in path]
    assert [status for status, _ in answers[:4]] == [429, 503, 503, 200]
    assert "ticker/24hr" in sim.rest_requests[0][0]
    assert answers[1][1] - answers[0][1] >= 0.99  # Retry-After: 1 s honoured
    assert feed.stats["rest_rate_limited"] == 1 and feed.stats["rest_errors"] == 2


def test_ids_the_history_lacks_become_gap_unfilled_dead_letters(simulator, feeds):
    sim = simulator(live_market(rate=0, count=1500))
    sim.wait_until_idle()
    sim.faults.hide_history("btcusdt", [*range(100, 105), 900])
    feed = feeds(sim, start=False).resume_after({"BTCUSDT": 50, "ETHUSDT": 1400})
    feed.start()
    items = drain_until(feed, all_published(sim, feed=feed))
    lost = [orjson.loads(i.raw) for i in items if isinstance(i, DeadLetter)]
    assert lost == [
        {"symbol": "BTCUSDT", "first_id": 100, "last_id": 104},
        {"symbol": "BTCUSDT", "first_id": 900, "last_id": 900},
    ]
    assert {i.reason for i in items if isinstance(i, DeadLetter)} == {FailureReason.GAP_UNFILLED}
    btc = [t.trade_id for t in records(items, "BTCUSDT")]
    assert btc == [i for i in range(51, 1501) if not (100 <= i <= 104 or i == 900)]
    assert feed.stats["unfilled_ids"] == 6


@pytest.mark.slow
def test_a_backfill_past_its_bound_reports_the_rest_and_live_delivery_resumes(simulator, feeds):
    sim = simulator(live_market(rate=200, count=1000, symbols=("BTCUSDT",)))
    sim.faults.stall_rest(30.0, times=100)  # REST hangs: every request times out
    feed = feeds(
        sim,
        symbols=("BTCUSDT",),
        backfill_timeout=2.0,
        rest=RestConfig(sim.http_url, rest_timeout=0.5),
    )
    drain_until(feed, lambda items: len(items) >= 100, timeout=10)
    sim.faults.drop_after(0, reset=True)
    items = drain_until(feed, all_published(sim, ("BTCUSDT",), feed=feed))
    (lost,) = [orjson.loads(i.raw) for i in items if isinstance(i, DeadLetter)]
    delivered = [t.trade_id for t in records(items, "BTCUSDT")]
    missing = sorted(set(range(delivered[0], delivered[-1] + 1)) - set(delivered))
    assert missing == list(range(lost["first_id"], lost["last_id"] + 1)) and missing
    assert feed.stats["unfilled_ids"] == len(missing)


def test_agg_trade_gaps_are_filled_from_agg_trades(simulator, feeds, capture_dir):
    capture = capture_dir / "cryptofeed_BINANCE-ee25be.0.gz"
    sim = simulator(
        Market.replay(capture, kinds=("aggTrade",), speed=0, pause_without_subscribers=False)
    )
    sim.wait_until_idle()
    symbols = ("BTCUSDT", "ETHUSDT", "DOTUSDT")
    feed = feeds(sim, symbols=symbols, stream="aggTrade", start=False)
    first = {s: sim.market.published(s, "aggTrade").ids[0] for s in symbols}
    feed.resume_after({s: a + 99 for s, a in first.items()}).start()
    items = drain_until(feed, all_published(sim, symbols, "aggTrade"))
    for symbol in symbols:
        assert [a.agg_id for a in records(items, symbol)] == sim.market.published(
            symbol, "aggTrade"
        ).ids[100:]
    assert any("/api/v3/aggTrades" in path for path, _, _ in sim.rest_requests)


def test_a_wide_catch_up_asks_the_newest_ids_once_and_fetches_only_what_traded(simulator, feeds):
    """120 symbols, most of them quiet: after a reset, one ticker/24hr request tells which of
    those with a position traded while the connection was down; only those cost a page of
    history each."""
    sim = simulator(whole_market(120, rate=150, pause_without_subscribers=False, seed=3))
    symbols = sorted(sim.market.symbols)
    feed = feeds(sim, symbols=symbols)
    items = drain_until(feed, lambda got: len(got) > 300)
    sim.faults.refuse_connections()
    time.sleep(0.2)  # what came meanwhile counts as delivered before the reset too
    items += feed.drain(100_000)
    positions = {r.symbol for r in items if isinstance(r, Trade)}
    sim.faults.drop_after(0, reset=True)
    time.sleep(1.0)
    sim.faults.accept_connections()
    feed_done = drain_until(
        feed,
        lambda got: (
            feed.stats["reconnects"] == 1
            and feed.stats["backfill_ms"] > 0
            and not feed.stats["backfilling"]
        ),
    )
    items += feed_done + feed.drain(100_000)
    assert not [i for i in items if isinstance(i, DeadLetter)]
    for symbol in symbols:  # every symbol's ids consecutive from its first delivered one
        ids = [r.trade_id for r in records(items, symbol)]
        assert ids == list(range(ids[0], ids[0] + len(ids))) if ids else True, symbol
    fetched = {p for p, _, _ in sim.rest_requests if "historicalTrades" in p}
    tickers = [p for p, _, _ in sim.rest_requests if "ticker/24hr" in p]
    assert len(tickers) == 1  # the symbols without a live trade yet, in one request
    screened = feed.stats["backfill_screened"]
    assert screened > 0 and len(fetched) <= len(positions) - screened, (len(positions), screened)
