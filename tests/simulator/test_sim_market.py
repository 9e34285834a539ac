"""The market on its own: ordering, pace, pausing, the generator, looping, history."""
from __future__ import annotations

import asyncio
import re
from decimal import Decimal

import orjson
import pytest

from connectors.simulator import GeneratedFeed, Market, ReplayFeed, TradeHistory, load_events, replay_feeds

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
    assert [(stream, payload) for _, stream, payload in recorder.events] == [(e.stream, e.raw) for e in events]
    assert market.finished
    assert market.history("BTCUSDT").ids == list(range(3735693016, 3735703163))
    assert market.symbols == ("BTCUSDT", "ETHUSDT")


@pytest.mark.parametrize("speed", [1, 4])
def test_timed_replay_keeps_the_recorded_spacing_scaled_by_speed(capture_dir, speed):
    events = load_events(capture_dir / "btcusdt_20240809.gz")
    origin = events[0].recv_time_ns
    window = [event for event in events if event.recv_time_ns - origin < 0.8e9 * speed]
    market = Market([ReplayFeed("btcusdt@trade", window, origin)], speed=speed, pause_without_subscribers=False)
    recorder, start = play(market)
    assert len(recorder.events) == len(window) > 10
    for (at, _, payload), event in zip(recorder.events, window):
        planned = (event.recv_time_ns - origin) / 1e9 / speed
        assert planned - 0.002 <= at - start <= planned + 0.5  # never early; late only under load
        assert payload == event.raw


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
    assert market.history("BTCUSDT").ids == recorder.ids()


def test_a_live_market_runs_without_subscribers_into_its_history():
    market = Market.generated(["ethusdt"], rate=200, count=40, pause_without_subscribers=False)
    recorder, start = play(market)
    assert market.history("ETHUSDT").ids == list(range(1, 41))
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
    assert len({trade["p"] for trade in trades}) > 5 and {trade["m"] for trade in trades} == {True, False}
    assert feed.next_offset_ns() == round(2000 * 1e9 / 100)


def test_a_looping_replay_continues_ids_and_times(sample_capture):
    (feed,) = replay_feeds(sample_capture, symbols=["btcusdt"], loop=True)
    first_pass = [feed.pop() for _ in range(8603)]
    offset = feed.next_offset_ns()
    second_pass = [feed.pop() for _ in range(3)]
    last = orjson.loads(first_pass[-1][0])
    again = [orjson.loads(payload) for payload, _ in second_pass]
    assert [seq for _, seq in second_pass] == [trade["t"] for trade in again] == [last["t"] + 1 + i for i in range(3)]
    first = [orjson.loads(payload) for payload, _ in first_pass[:3]]
    assert [trade["p"] for trade in again] == [trade["p"] for trade in first]
    shift = again[0]["T"] - first[0]["T"]
    assert shift > last["T"] - first[0]["T"] and all(b["E"] - a["E"] == shift for a, b in zip(first, again))
    assert offset > 240e9  # the second pass comes after the whole first one


def test_trade_history_answers_by_id_and_trims_itself():
    history = TradeHistory(limit=100)
    for trade_id in range(1, 251):
        history.append(trade_id, b"%d" % trade_id)
    assert 100 <= len(history.ids) < 200 and history.ids[-1] == 250
    assert history.since(240, 5) == [b"240", b"241", b"242", b"243", b"244"]
    assert history.since(1, 2) == [history.payloads[0], history.payloads[1]]  # older ids are gone
    assert history.since(None, 3) == [b"248", b"249", b"250"]
    assert history.since(251, 10) == []
