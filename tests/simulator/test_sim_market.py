"""The market on its own: ordering, pace, pausing, the generator, looping, history."""

from __future__ import annotations

import asyncio
import itertools
import re
from decimal import Decimal

import orjson
import pytest

from connectors.simulator import (
    GeneratedFeed,
    Market,
    PublishedTrades,
    ReplayFeed,
    load_events,
    replay_feeds,
)

DECIMAL_8 = re.compile(r"\d+\.\d{8}")


class Recorder:
    """A sink that keeps what the market published, with the loop time."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, bytes]] = []

    def publish(self, stream: str, payload: bytes) -> None:
        self.events.append((asyncio.get_running_loop().time(), stream, payload))

    async def writable(self) -> None:
        pass

    def ids(self) -> list[int]:
        return [orjson.loads(payload)["t"] for _, _, payload in self.events]


def play(market: Market) -> tuple[Recorder, float]:
    """Run a finite market to its end; what it published and the loop time it started at."""
    recorder = Recorder()

    async def run() -> float:
        start = asyncio.get_running_loop().time()
        await market.run(recorder)
        return start

    return recorder, asyncio.run(run())


def test_flat_out_replay_keeps_the_recorded_interleaving(capture_dir):
    paths = [capture_dir / "btcusdt_20240809.gz", capture_dir / "ethusdt_20240809.gz"]
    market = Market.replay(paths, speed=0, pause_without_subscribers=False)
    recorder, _ = play(market)
    events = load_events(paths)
    assert [(stream, payload) for _, stream, payload in recorder.events] == [
        (e.stream, e.raw) for e in events
    ]
    assert market.finished
    assert market.published("BTCUSDT").ids == list(range(3735693016, 3735703163))
    assert market.symbols == ("BTCUSDT", "ETHUSDT")


@pytest.mark.parametrize("speed", [1, 4])
def test_timed_replay_keeps_the_recorded_spacing_scaled_by_speed(capture_dir, speed):
    events = load_events(capture_dir / "btcusdt_20240809.gz")
    origin = events[0].recv_time_ns
    window = [event for event in events if event.recv_time_ns - origin < 0.8e9 * speed]
    market = Market(
        [ReplayFeed("btcusdt@trade", window, origin)], speed=speed, pause_without_subscribers=False
    )
    recorder, start = play(market)
    assert len(recorder.events) == len(window) > 10
    for (at, _, payload), event in zip(recorder.events, window, strict=True):
        planned = (event.recv_time_ns - origin) / 1e9 / speed
        assert planned - 0.002 <= at - start <= planned + 0.5  # never early; late only under load
        assert payload == event.raw


def test_a_market_with_a_tick_emits_what_fell_due_in_one_go():
    market = Market.generated(
        ["ethusdt"], rate=1000, count=200, pause_without_subscribers=False, tick=0.05
    )
    recorder, start = play(market)
    assert recorder.ids() == list(range(1, 201))
    # 200 trades due over 0.2 s, a millisecond apart: out in a few bursts 50 ms apart, not one by
    # one (a pause of the process may split a burst now and then)
    times = [at for at, _, _ in recorder.events]
    assert sum(b - a > 0.0005 for a, b in itertools.pairwise(times)) <= 15
    for n, (at, _, _) in enumerate(recorder.events):
        planned = n / 1000
        assert planned - 0.002 <= at - start <= planned + 0.05 + 0.5  # a tick late at most
    with pytest.raises(ValueError, match="tick"):
        Market([], tick=-1)


def test_a_paused_market_neither_emits_nor_catches_up():
    market = Market.generated(["btcusdt"], rate=100, seed=7)
    recorder = Recorder()

    async def scenario() -> tuple[float, float, float]:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(market.run(recorder))
        await asyncio.sleep(0.2)
        market.subscribe("btcusdt@trade")
        subscribed = loop.time()
        await asyncio.sleep(0.3)
        market.unsubscribe("btcusdt@trade")
        paused = loop.time()
        await asyncio.sleep(0.4)
        market.subscribe("btcusdt@trade")
        resumed = loop.time()
        await asyncio.sleep(0.2)
        task.cancel()
        return subscribed, paused, resumed

    subscribed, paused, resumed = asyncio.run(scenario())
    times = [at for at, _, _ in recorder.events]
    before = [at for at in times if at < resumed]
    after = [at for at in times if at >= resumed]
    assert before and after and all(subscribed <= at <= paused for at in before)
    # Never ahead of 100/s from when it (re)started: no catch-up burst for the pause.
    for start, run in ((subscribed, before), (resumed, after)):
        assert all(n <= (at - start) * 100 + 2 for n, at in enumerate(run, 1))
    assert recorder.ids() == list(range(1, len(times) + 1))
    assert market.published("BTCUSDT").ids == recorder.ids()


def test_a_live_market_runs_without_subscribers_into_its_history():
    market = Market.generated(["ethusdt"], rate=200, count=40, pause_without_subscribers=False)
    recorder, start = play(market)
    assert market.published("ETHUSDT").ids == list(range(1, 41))
    # 40 trades at 200/s: the last is due 39/200 s after the first.
    assert 39 / 200 - 0.002 <= recorder.events[-1][0] - start <= 39 / 200 + 0.5


def test_generated_trades_look_like_binance():
    feed = GeneratedFeed("ethusdt", first_id=1000, start_price="2600.00", seed=3)
    trades = [orjson.loads(feed.pop()[0]) for _ in range(2000)]
    assert [trade["t"] for trade in trades] == list(range(1000, 3000))
    previous = Decimal("2600.00")
    for trade in trades:
        assert list(trade) == ["e", "E", "s", "t", "p", "q", "T", "m", "M"]
        assert (trade["e"], trade["s"], trade["M"]) == ("trade", "ETHUSDT", True)
        assert DECIMAL_8.fullmatch(trade["p"]) and DECIMAL_8.fullmatch(trade["q"])
        price = Decimal(trade["p"])
        assert abs(price - previous) <= Decimal("0.01") and Decimal(trade["q"]) > 0
        previous = price
        assert trade["E"] == trade["T"] and isinstance(trade["m"], bool)
    assert len({trade["p"] for trade in trades}) > 5 and {trade["m"] for trade in trades} == {
        True,
        False,
    }
    assert feed.next_offset_ns() == round(2000 * 1e9 / 100)


def test_a_looping_replay_continues_ids_and_times(demo_captures):
    (feed,) = replay_feeds(demo_captures, symbols=["btcusdt"], loop=True)
    first_pass = [feed.pop() for _ in range(10147)]
    offset = feed.next_offset_ns()
    second_pass = [feed.pop() for _ in range(3)]
    last = orjson.loads(first_pass[-1][0])
    again = [orjson.loads(payload) for payload, _ in second_pass]
    assert (
        [seq for _, seq in second_pass]
        == [trade["t"] for trade in again]
        == [last["t"] + 1 + i for i in range(3)]
    )
    first = [orjson.loads(payload) for payload, _ in first_pass[:3]]
    assert [trade["p"] for trade in again] == [trade["p"] for trade in first]
    shift = again[0]["T"] - first[0]["T"]
    assert shift > last["T"] - first[0]["T"] and all(
        b["E"] - a["E"] == shift for a, b in zip(first, again, strict=True)
    )
    assert offset > 300e9  # the second pass comes after the whole first one


def _trade(trade_id: int, time_ms: int, price: str = "1.00000000", maker: bool = True) -> bytes:
    return orjson.dumps(
        {
            "e": "trade",
            "E": time_ms,
            "s": "BTCUSDT",
            "t": trade_id,
            "p": price,
            "q": "0.10000000",
            "T": time_ms,
            "m": maker,
            "M": True,
        }
    )


def test_published_trades_answer_by_id_and_time_and_trim_themselves():
    history = PublishedTrades(limit=100)
    for trade_id in range(1, 251):
        history.append(trade_id, _trade(trade_id, 1_000 * trade_id))
    assert 100 <= len(history.ids) < 200 and history.ids[-1] == 250
    assert [history.ids[i] for i in range(history.index_of_id(240), history.index_of_id(245))] == [
        240,
        241,
        242,
        243,
        244,
    ]
    assert history.index_of_id(1) == 0 and history.ids[0] > 1  # older ids are gone
    assert history.ids[history.index_of_time(240_500)] == 241
    assert history.index_of_id(251) == len(history.ids)


def test_aggregate_trades_group_one_order_at_one_price():
    history = PublishedTrades(limit=None)
    for trade_id, time_ms, price, maker in [
        (1, 10, "1.0", True),
        (2, 10, "1.0", True),
        (3, 10, "2.0", True),
        (4, 11, "2.0", True),
        (5, 11, "2.0", False),
        (6, 11, "2.0", False),
    ]:
        history.append(trade_id, _trade(trade_id, time_ms, price, maker))
    aggs = history.aggregates(0, None, 10, set())
    assert [(a["a"], a["f"], a["l"], a["q"]) for a in aggs] == [
        (1, 1, 2, "0.20000000"),
        (2, 3, 3, "0.10000000"),
        (3, 4, 4, "0.10000000"),
        (4, 5, 6, "0.20000000"),
    ]
    assert [a["a"] for a in history.aggregates(history.index_of_agg_id(3), None, 10, set())] == [
        3,
        4,
    ]
    assert (
        history.aggregates(1, None, 1, set())[0]["f"] == 1
    )  # from the middle of an aggregate: all of it
    # an aggregate holding a hidden trade is left out whole, not shown with ids it lacks
    assert [a["f"] for a in history.aggregates(0, 10, 10, {2})] == [3]
    assert [(a["f"], a["l"]) for a in history.aggregates(0, None, 10, {5})] == [
        (1, 2),
        (3, 3),
        (4, 4),
    ]


def test_published_trades_forget_by_age_and_total_everything():
    history = PublishedTrades(limit=None, seconds=10)
    prices = ["1.00000000", "3.00000000", "0.50000000", "2.00000000"]
    for trade_id in range(1, 101):  # one trade a second
        history.append(trade_id, _trade(trade_id, 1_000 * trade_id, prices[trade_id % 4]))
    # newest at 100 s: at least the last 10 s kept, nothing older than 20 s
    assert history.ids[-1] == 100 and 80 <= history.ids[0] <= 90
    assert history.agg_ids[-1] - history.agg_ids[0] == len(history.ids) - 1
    totals = history.totals
    assert (totals.first_id, totals.last_id, totals.count) == (1, 100, 100)
    assert (totals.open, totals.high, totals.low, totals.last) == (
        Decimal("3"),
        Decimal("3"),
        Decimal("0.5"),
        Decimal("1"),
    )
    assert totals.volume == Decimal("10.00000000")  # 100 trades of 0.1
    assert totals.quote_volume == Decimal("16.25000000")  # 25 each of 0.1, 0.3, 0.05, 0.2
