"""BinanceFeed on USD-M futures against the simulated futures exchange: the market's URL and
history, a reset filled from ``/fapi/v1/aggTrades``, ``since_ms`` through its time search, and
what the market refuses (``@trade``, a path other than ``/market``, a time past its 48 hours)."""

from __future__ import annotations

import time

import pytest

from connectors.binance.history import BinanceHistory
from connectors.binance.markets import USDM
from connectors.binance.records import AggTrade
from connectors.binance.rest import RestConfig
from connectors.feed import BinanceFeed
from connectors.simulator import Market
from connectors.websocket.backfill import HistoryUnavailable
from connectors.websocket.bridge import BridgeConfig

FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "poll_interval": 0.05}
SYMBOLS = ("BTCUSDT", "ETHUSDT")


@pytest.fixture
def sim(simulator):
    market = Market.generated(
        SYMBOLS,
        rate=200,
        seed=11,
        kind="aggTrade",
        venue="usdm",
        pause_without_subscribers=False,
    )
    return simulator(market)


def published(sim, symbol):
    return sim.market.published(symbol, "aggTrade")


def test_a_reset_usdm_feed_fetches_what_it_missed_from_fapi_agg_trades(sim, tmp_path):
    sim.wait_for(lambda: all(len(published(sim, s).ids) > 100 for s in SYMBOLS))
    since = min(published(sim, s).times[0] for s in SYMBOLS)
    feed = BinanceFeed(
        [s.lower() for s in SYMBOLS],
        "aggTrade",
        sim.ws_url + "/market",
        BridgeConfig(gate_dir=str(tmp_path), **FAST),
        rest=RestConfig(rest_url=sim.http_url, rest_weight_budget=USDM.default_weight_budget),
        since_ms=since,
        market="usdm",
    ).start()
    try:
        got: list[AggTrade] = []
        deadline = time.monotonic() + 30
        while len(got) < 200:
            assert time.monotonic() < deadline, feed.stats
            got += feed.drain()
        sim.faults.drop_after(0, reset=True)
        time.sleep(1)  # the exchange trades on meanwhile
        sim.wait_for(lambda: len(sim.connections) == 2, timeout=30)
        newest = {s: published(sim, s).ids[-1] for s in SYMBOLS}
        while not all(any(r.symbol == s and r.agg_id >= newest[s] for r in got) for s in SYMBOLS):
            assert time.monotonic() < deadline + 30, feed.stats
            got += feed.drain()
    finally:
        feed.close()

    assert all(type(r) is AggTrade for r in got)
    for symbol in SYMBOLS:
        ids = [r.agg_id for r in got if r.symbol == symbol]
        events = published(sim, symbol).events
        assert ids == [e["a"] for e in events[: len(ids)]]  # from the first, each once, in order
        first = events[0]
        record = next(r for r in got if r.symbol == symbol)
        assert (record.price, record.quantity, record.first_trade_id, record.last_trade_id) == (
            first["p"],
            first["q"],
            first["f"],
            first["l"],
        )
    assert [c.path.split("?")[0] for c in sim.connections] == ["/market/stream"] * 2
    paths = [path for path, status, _ in sim.rest_requests if status == 200]
    assert paths and all(p.startswith("/fapi/v1/aggTrades?") for p in paths)
    assert feed.stats["backfilled"] > 0


def test_the_futures_history_by_id_and_by_time_within_48_hours(sim):
    sim.wait_for(lambda: len(published(sim, "BTCUSDT").ids) > 50)
    history = BinanceHistory("aggTrade", RestConfig(rest_url=sim.http_url), market=USDM)
    try:
        events = published(sim, "BTCUSDT").events
        page = history.fetch("BTCUSDT", events[10]["a"])
        assert [r.agg_id for r in page[:5]] == [e["a"] for e in events[10:15]]
        assert history.seq_at("BTCUSDT", events[20]["T"]) <= events[20]["a"]
        with pytest.raises(HistoryUnavailable, match="-4166") as refused:
            history.seq_at("BTCUSDT", int(time.time() * 1000) - 3 * 86_400_000)
        assert refused.value.permanent
        assert history.stats["rest_weight_used"] == 3 * USDM.weights["aggTrades"]
    finally:
        history.close()


def test_what_usdm_does_not_offer_is_refused_at_construction():
    with pytest.raises(ValueError, match="@aggTrade only, not @trade"):
        BinanceFeed(["btcusdt"], "trade", market="usdm")
    with pytest.raises(ValueError, match="under /market"):
        BinanceFeed(["btcusdt"], "aggTrade", "wss://fstream.binance.com", market="usdm")
    assert BinanceFeed(["btcusdt"], "aggTrade", market="usdm").urls == [
        "wss://fstream.binance.com/market/ws/btcusdt@aggTrade"
    ]
