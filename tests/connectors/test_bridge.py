"""The bridge against the loopback exchange: every behaviour with real sockets."""

import logging
import os
import re
import threading
import time
from itertools import pairwise

import orjson
import pytest

from connectors.binance.records import AggTrade, DeadLetter, FailureReason, Trade
from connectors.feed import BinanceFeed
from connectors.simulator.market import Market
from connectors.websocket.config import BridgeConfig
from connectors.websocket.errors import ConnectFailed, ReconnectsExhausted
from helpers.draining import drain_until

FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "poll_interval": 0.05}


def config(tmp_path, **overrides) -> BridgeConfig:
    return BridgeConfig(gate_dir=str(tmp_path), **{**FAST, **overrides})


def trade_ids(items, symbol) -> list[int]:
    return [i.trade_id for i in items if isinstance(i, Trade) and i.symbol == symbol]


def count_trades(n):
    return lambda items: sum(isinstance(i, Trade) for i in items) >= n


@pytest.fixture
def feeds():
    """Feeds a test opens, closed even when it fails."""
    opened = []

    def open_feed(*args, **kwargs):
        feed = BinanceFeed(*args, **kwargs).start()
        opened.append(feed)
        return feed

    yield open_feed
    for feed in opened:
        feed.close()


def test_replay_of_real_captures_delivers_every_trade_once_in_order(
    simulator, capture_paths, feeds, tmp_path
):
    paths = [p for p in capture_paths if p.name.endswith("_20240809.gz")]
    sim = simulator(Market.replay(paths, speed=0))
    feed = feeds(["btcusdt", "ethusdt"], "trade", sim.ws_url, config(tmp_path))
    items = drain_until(feed, count_trades(10_147 + 8_409))
    for symbol, n in (("BTCUSDT", 10_147), ("ETHUSDT", 8_409)):
        ids = trade_ids(items, symbol)
        assert ids == sim.sent_trade_ids(symbol) and len(ids) == n
        assert ids == list(range(ids[0], ids[0] + n))
    stats = feed.stats
    assert (stats["gaps"], stats["duplicates"], stats["parse_failures"], stats["disconnects"]) == (
        0,
        0,
        0,
        0,
    )
    assert sim.connections[0].path.startswith("/stream?streams=btcusdt@trade/ethusdt@trade")


def test_replay_of_the_older_trade_format_on_a_raw_stream(
    simulator, capture_paths, feeds, tmp_path
):
    paths = [p for p in capture_paths if p.name == "btcusdt_20230405.dat.gz"]  # still carries b/a
    sim = simulator(Market.replay(paths, speed=0))
    feed = feeds(["btcusdt"], "trade", sim.ws_url, config(tmp_path))
    ids = trade_ids(drain_until(feed, count_trades(3_144)), "BTCUSDT")
    assert ids == sim.sent_trade_ids("BTCUSDT") == list(range(ids[0], ids[0] + 3_144))


def test_replay_of_real_agg_trades(simulator, capture_paths, feeds, tmp_path):
    paths = [p for p in capture_paths if p.name.startswith("cryptofeed_")]
    sim = simulator(Market.replay(paths, kinds=("aggTrade",), speed=0))
    feed = feeds(["btcusdt", "ethusdt", "dotusdt"], "aggTrade", sim.ws_url, config(tmp_path))
    items = drain_until(feed, lambda items: len(items) >= 1_227 + 506 + 177)
    assert all(isinstance(i, AggTrade) for i in items)
    for symbol, n in (("BTCUSDT", 1_227), ("ETHUSDT", 506), ("DOTUSDT", 177)):
        aggs = [i for i in items if i.symbol == symbol]
        assert [a.agg_id for a in aggs] == list(range(aggs[0].agg_id, aggs[0].agg_id + n))
        # each aggregate picks up where the previous ended: no trade lost between them
        assert all(b.first_trade_id == a.last_trade_id + 1 for a, b in pairwise(aggs))
    assert feed.stats["gaps"] == 0 and feed.stats["parse_failures"] == 0


def test_raw_stream_single_symbol(simulator, feeds, tmp_path):
    sim = simulator(Market.generated(["btcusdt"], rate=0, count=500, speed=0))
    feed = feeds(["btcusdt"], "trade", sim.ws_url, config(tmp_path))
    items = drain_until(feed, count_trades(500))
    assert trade_ids(items, "BTCUSDT") == sim.sent_trade_ids("BTCUSDT")
    assert sim.connections[0].path == "/ws/btcusdt@trade"


MALFORMED = [
    (b'{"e":"trade",', FailureReason.INVALID_JSON),
    (b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"\xff"}}', FailureReason.INVALID_UTF8),
    (b"[]", FailureReason.NOT_AN_OBJECT),
    (
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161601273,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1723161601272}}',
        FailureReason.MISSING_FIELD,
    ),
    (
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161601273,"s":"BTCUSDT","t":"1","p":"1","q":"1","T":1723161601272,"m":true}}',
        FailureReason.WRONG_TYPE,
    ),
    (
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161601273,"s":"BTCUSDT","t":1,"p":"-1","q":"1","T":1723161601272,"m":true}}',
        FailureReason.IMPOSSIBLE_VALUE,
    ),
    (
        b'{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":1}}',
        FailureReason.UNEXPECTED_EVENT,
    ),
]


def test_malformed_frames_become_dead_letters_and_disturb_nothing(
    simulator, feeds, tmp_path, caplog
):
    sim = simulator(Market.generated(["btcusdt", "ethusdt"], rate=2000, count=2000, speed=1))
    feed = feeds(
        ["btcusdt", "ethusdt"], "trade", sim.ws_url, config(tmp_path, max_frame_bytes=4096)
    )
    before = drain_until(feed, count_trades(10), timeout=10)  # connected and flowing
    sim.faults.send_frames([frame for frame, _ in MALFORMED])
    sim.faults.send_frames([b"\x00binary"], binary=True)
    sim.faults.send_frames([b'{"pad":"' + b"x" * 10_000 + b'"}'])
    items = before + drain_until(
        feed,
        lambda items: (
            # 4,000 trades, 10 bad frames, the answer to the connection's LIST_SUBSCRIPTIONS
            sim.market.finished and feed.stats["messages"] == 4010 and not feed.stats["buffered"]
        ),
    )
    failures = [i for i in items if isinstance(i, DeadLetter)]
    assert [f.reason for f in failures] == [r for _, r in MALFORMED] + [
        FailureReason.BINARY_FRAME,
        FailureReason.OVERSIZED_FRAME,
    ]
    assert [f.raw for f in failures[: len(MALFORMED)]] == [frame for frame, _ in MALFORMED]
    assert len(failures[-1].raw) == 256
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert trade_ids(items, symbol) == sim.sent_trade_ids(symbol) == list(range(1, 2001))
    assert feed.stats["parse_failures"] == 9 and feed.stats["oversized"] == 1


def test_refused_connection_is_an_error_the_consumer_raises(simulator, feeds, tmp_path):
    sim = simulator(Market.generated(["btcusdt"], rate=10))
    sim.faults.refuse_connections()
    feed = feeds(["btcusdt"], "trade", sim.ws_url, config(tmp_path))
    with pytest.raises(ConnectFailed, match="connection refused") as raised:
        drain_until(feed, lambda items: False, timeout=10)
    assert sim.ws_url in str(raised.value)
    assert feed.stats["connect_failures"] == 1 and feed.stats["connects"] == 0


def test_429_retry_after_is_honoured_by_the_next_attempt(simulator, feeds, tmp_path):
    sim = simulator(Market.generated(["btcusdt"], rate=100))
    sim.faults.reject_handshake(status=429, retry_after=2, times=1)
    first = feeds(["btcusdt"], "trade", sim.ws_url, config(tmp_path))
    with pytest.raises(ConnectFailed) as raised:
        drain_until(first, lambda items: False, timeout=10)
    assert (raised.value.status, raised.value.retry_after) == (429, 2.0)
    rejected_at = time.time()
    # A new feed, as a restarted job would make, waits out the Retry-After before connecting.
    second = feeds(["btcusdt"], "trade", sim.ws_url, config(tmp_path))
    drain_until(second, count_trades(1), timeout=10)
    assert sim.connections[0].opened_at - rejected_at >= 1.8


def test_dropped_connection_is_logged_and_reconnected(simulator, feeds, tmp_path, caplog):
    sim = simulator(Market.generated(["btcusdt"], rate=0, count=3000, speed=0))
    sim.faults.drop_after(1000, code=1011, reason="going away")
    feed = feeds(["btcusdt"], "trade", sim.ws_url, config(tmp_path))
    with caplog.at_level(logging.INFO, "connectors.websocket.bridge"):
        items = drain_until(
            feed,
            lambda items: (
                sim.market.finished
                and len(trade_ids(items, "BTCUSDT")) == len(sim.sent_trade_ids("BTCUSDT"))
            ),
        )
    ids = trade_ids(items, "BTCUSDT")
    assert ids == sim.sent_trade_ids("BTCUSDT")  # every trade sent arrived, once, in order
    assert ids[:1000] == list(range(1, 1001)) and ids[-1] == 3000
    stats = feed.stats
    assert (stats["disconnects"], stats["reconnects"]) == (1, 1)
    # What the market emitted while nobody was connected is a gap, counted to the id.
    assert stats["missing_ids"] == 3000 - len(ids) and stats["gaps"] == (
        1 if len(ids) < 3000 else 0
    )
    lost = [r.getMessage() for r in caplog.records if "lost after" in r.getMessage()]
    assert len(lost) == 1 and "close code 1011 going away" in lost[0]
    # 1,000 trades, and the LIST_SUBSCRIPTIONS answer if it came before the drop
    assert re.search(r"after [\d.]+s and 100[01] messages", lost[0]), lost[0]


def test_tcp_reset_is_reconnected(simulator, feeds, tmp_path):
    sim = simulator(
        Market.generated(
            ["btcusdt"], rate=2000, count=2000, speed=1, pause_without_subscribers=True
        )
    )
    sim.faults.drop_after(500, reset=True)
    feed = feeds(["btcusdt"], "trade", sim.ws_url, config(tmp_path))
    items = drain_until(
        feed,
        lambda items: (
            sim.market.finished
            and len(sim.connections) == 2
            and trade_ids(items, "BTCUSDT")[-1:] == sim.sent_trade_ids("BTCUSDT")[-1:]
        ),
    )
    ids = trade_ids(items, "BTCUSDT")
    assert ids == sorted(set(ids))  # whatever the reset lost, nothing twice, nothing out of order
    assert feed.stats["disconnects"] == 1 and feed.stats["reconnects"] == 1
    assert feed.stats["missing_ids"] == ids[-1] - ids[0] + 1 - len(ids)


def test_silence_is_a_timeout_then_a_reconnect(simulator, feeds, tmp_path, caplog):
    sim = simulator(Market.generated(["btcusdt"], rate=50), ping_interval=0.2)
    feed = feeds(["btcusdt"], "trade", sim.ws_url, config(tmp_path, silence_timeout=1.0))
    drain_until(feed, count_trades(1), timeout=10)
    with caplog.at_level(logging.WARNING, "connectors.websocket.bridge"):
        sim.faults.go_silent()
        drain_until(feed, lambda items: feed.stats["reconnects"] == 1, timeout=10)
    sim.faults.resume()
    drain_until(feed, count_trades(5), timeout=10)
    assert feed.stats["silence_timeouts"] == 1
    assert any("no frame for 1s (timeout)" in r.getMessage() for r in caplog.records)


def test_pings_are_answered_with_their_payload(simulator, feeds, tmp_path):
    sim = simulator(Market.generated(["btcusdt"], rate=5), ping_interval=0.1, pong_timeout=0.5)
    feed = feeds(["btcusdt"], "trade", sim.ws_url, config(tmp_path))
    drain_until(
        feed, lambda items: sim.connections and sim.connections[0].pongs_received >= 5, timeout=10
    )
    conn = sim.connections[0]
    assert conn.closed_at is None  # never dropped for a missing pong
    assert feed.stats["disconnects"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("trigger", ["server_shutdown", "max_age"])
def test_handover_opens_the_new_connection_first_and_loses_nothing(
    simulator, feeds, tmp_path, trigger
):
    sim = simulator(Market.generated(["btcusdt", "ethusdt"], rate=800, count=4000, speed=1))
    cfg = config(tmp_path, max_connection_age=3.0 if trigger == "max_age" else 85_000.0)
    feed = feeds(["btcusdt", "ethusdt"], "trade", sim.ws_url, cfg)
    drain_until(feed, count_trades(200), timeout=10)
    if trigger == "server_shutdown":
        sim.faults.server_shutdown(grace=5.0)
    items = drain_until(
        feed,
        lambda items: (
            feed.stats["handovers"] >= 1 and sim.market.finished and not feed.stats["buffered"]
        ),
        timeout=30,
    )
    items = drain_until(feed, lambda more: True) + items
    old, new = sim.connections[0], sim.connections[1]
    assert new.opened_at < (old.closed_at or time.time())  # make before break
    for symbol in ("BTCUSDT", "ETHUSDT"):
        ids = sorted(trade_ids(items, symbol))
        assert ids == sorted(set(ids)), "a trade delivered twice"
    stats = feed.stats
    assert stats["gaps"] == 0 and stats["duplicates"] == 0 and stats["disconnects"] == 0
    assert stats["copies"] > 0  # both connections carried the overlap, passed once


def test_reconnects_exhausted_is_an_error(simulator, feeds, tmp_path):
    sim = simulator(Market.generated(["btcusdt"], rate=100))
    feed = feeds(["btcusdt"], "trade", sim.ws_url, config(tmp_path, max_reconnect_attempts=3))
    drain_until(feed, count_trades(1), timeout=10)
    sim.faults.refuse_connections()
    sim.faults.drop_after(0, code=1001)
    with pytest.raises(ReconnectsExhausted, match=r"after 3 reconnect attempts; last: .*refused"):
        drain_until(feed, lambda items: False, timeout=10)
    assert feed.stats["connect_failures"] == 3


def test_full_buffer_drop_policy_counts_what_it_drops(simulator, feeds, tmp_path):
    sim = simulator(Market.generated(["btcusdt"], rate=0, count=5000, speed=0))
    feed = feeds(
        ["btcusdt"], "trade", sim.ws_url, config(tmp_path, buffer_size=100, overflow="drop_newest")
    )
    sim.wait_for(
        lambda: feed.stats["records"] == 5000, timeout=20
    )  # a stalled consumer: no drain yet
    assert trade_ids(feed.drain(10_000), "BTCUSDT") == list(range(1, 101))
    assert feed.stats["buffer_dropped"] == 4900


def test_blocking_buffer_loses_nothing_to_a_slow_consumer(simulator, feeds, tmp_path):
    sim = simulator(Market.generated(["btcusdt"], rate=0, count=5000, speed=0))
    feed = feeds(["btcusdt"], "trade", sim.ws_url, config(tmp_path, buffer_size=100))
    items = []
    while len(items) < 5000:
        items += feed.drain(50)
        time.sleep(0.002)
    assert trade_ids(items, "BTCUSDT") == sim.sent_trade_ids("BTCUSDT")
    assert feed.stats["buffer_high_water"] == 100 and feed.stats["buffer_dropped"] == 0


def test_sequence_gaps_and_duplicates_are_counted(simulator, feeds, tmp_path):
    sim = simulator(Market.generated(["btcusdt"], rate=10))
    feed = feeds(["btcusdt"], "trade", sim.ws_url, config(tmp_path))
    first = drain_until(feed, count_trades(1), timeout=10)
    last = trade_ids(first, "BTCUSDT")[-1]
    trade = {
        "e": "trade",
        "E": 1723161601273,
        "s": "BTCUSDT",
        "p": "1.0",
        "q": "1.0",
        "T": 1723161601272,
        "m": True,
    }
    ids = [last + 10_000, last + 10_000, last + 9_999]
    sim.faults.send_frames([orjson.dumps(dict(trade, t=n)) for n in ids])
    drain_until(feed, lambda items: feed.stats["reordered"] == 1, timeout=10)
    assert feed.stats["gaps"] >= 1 and feed.stats["duplicates"] >= 1


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_repeated_open_close_leaves_no_threads_or_sockets(simulator, tmp_path):
    sim = simulator(Market.generated(["btcusdt"], rate=200))
    threads, fds = threading.active_count(), _open_fds()
    for _ in range(20):
        feed = BinanceFeed(["btcusdt"], "trade", sim.ws_url, config(tmp_path)).start()
        try:
            drain_until(feed, count_trades(1), timeout=10)
        finally:
            feed.close()
    assert threading.active_count() == threads
    assert _open_fds() <= fds + 1  # the gate's lock file may stay cached by the OS, nothing else


def test_resume_after_checkpointed_ids_drops_what_was_delivered_before(simulator, tmp_path):
    sim = simulator(Market.generated(["btcusdt"], rate=0, count=1000, speed=0))
    feed = BinanceFeed(["btcusdt"], "trade", sim.ws_url, config(tmp_path)).resume_after(
        {"BTCUSDT": 500}
    )
    with feed:
        items = drain_until(feed, count_trades(500))
        sim.wait_for(lambda: feed.stats["messages"] == 1001)  # and the LIST_SUBSCRIPTIONS answer
        items += feed.drain(10_000)
    assert trade_ids(items, "BTCUSDT") == list(range(501, 1001))
    assert feed.stats["duplicates"] == 500
