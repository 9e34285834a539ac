"""The generated whole market: its symbols, Zipf activity, ids per symbol, and listings and halts
on command, on the market alone and through real sockets."""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from decimal import Decimal
from itertools import pairwise

import orjson
import pytest
import websocket

from connectors.simulator import (
    BREAK,
    HALT,
    TRADING,
    GeneratedFeed,
    Market,
    market_pairs,
    whole_market,
    zipf_rates,
)
from connectors.simulator.symbols import REAL_PAIRS, split_symbol

DECIMAL_8 = re.compile(r"\d+\.\d{8}")
SYMBOL = re.compile(r"[A-Z0-9]{5,12}")


class Recorder:
    """A sink that keeps every payload by stream."""

    def __init__(self) -> None:
        self.count = 0
        self.by_stream: dict[str, list[dict]] = defaultdict(list)

    def publish(self, stream: str, payload: bytes) -> None:
        self.count += 1
        self.by_stream[stream].append(orjson.loads(payload))

    async def writable(self) -> None:
        pass


def record(market: Market, events: int) -> Recorder:
    """Run an endless market until it has published ``events``."""
    recorder = Recorder()

    async def run() -> None:
        task = asyncio.create_task(market.run(recorder))
        while recorder.count < events:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(run())
    return recorder


def test_pairs_are_the_real_ones_then_made_up_ones_the_same_for_a_seed():
    pairs = market_pairs(1500, seed=7)
    assert pairs[: len(REAL_PAIRS)] == list(REAL_PAIRS)
    assert pairs[:2] == [p for p in REAL_PAIRS if p.symbol in ("BTCUSDT", "ETHUSDT")]
    assert market_pairs(1500, seed=7) == pairs and market_pairs(1500, seed=8) != pairs
    assert len({pair.symbol for pair in pairs}) == 1500
    for pair in pairs:
        assert SYMBOL.fullmatch(pair.symbol) and split_symbol(pair.symbol) == (
            pair.base,
            pair.quote,
        )
        price, tick = Decimal(pair.price), Decimal(pair.tick)
        assert price > 0 and tick >= Decimal("1e-8") and price % tick == 0
    assert {pair.quote for pair in pairs} >= {"USDT", "USDC", "FDUSD", "BTC", "ETH"}


def test_activity_follows_zipf_and_each_symbol_counts_its_own_ids():
    market = whole_market(1500, rate=5000, seed=1, speed=0, pause_without_subscribers=False)
    recorder = record(market, 50_000)  # 10 s of the market's virtual time
    counts = {stream: len(events) for stream, events in recorder.by_stream.items()}
    total = sum(counts.values())
    expected = zipf_rates(1500, 1.0)  # shares by rank
    assert 0.125 < expected[0] < 0.128  # 1 / H(1500)
    for rank, stream in enumerate(["btcusdt@trade", "ethusdt@trade", "solusdt@trade"]):
        assert abs(counts[stream] / total - expected[rank]) < 0.1 * expected[rank]
    busiest = max(counts, key=counts.__getitem__)
    assert busiest == "btcusdt@trade"
    # the long quiet tail: half the symbols make less than a tenth of the trades
    tail = [pair.symbol.lower() + "@trade" for pair in market_pairs(1500, seed=1)[750:]]
    assert sum(counts.get(stream, 0) for stream in tail) / total < 0.1
    assert len(counts) > 1400  # at 0.4 trades/s the quietest may not have traded yet
    for stream, events in recorder.by_stream.items():
        ids = [event["t"] for event in events]
        assert ids == list(range(ids[0], ids[0] + len(ids))), stream
        assert market.published(stream.partition("@")[0]).ids == ids
    btc = recorder.by_stream["btcusdt@trade"]
    assert btc[0]["t"] > 1 and {event["s"] for event in btc} == {"BTCUSDT"}
    now_ms = time.time() * 1000
    for event in btc[:100] + recorder.by_stream["pepeusdt@trade"][:100]:
        assert DECIMAL_8.fullmatch(event["p"]) and DECIMAL_8.fullmatch(event["q"])
        assert event["E"] == event["T"] and abs(event["T"] - now_ms) < 60_000


def test_generated_prices_move_by_their_tick_and_arrivals_can_be_poisson():
    feed = GeneratedFeed(
        "pepeusdt", rate=100, start_price="0.00000800", tick="0.00000001", poisson=True, seed=2
    )
    offsets, prices = [], []
    for _ in range(2000):
        offsets.append(feed.next_offset_ns())
        prices.append(Decimal(orjson.loads(feed.pop()[0])["p"]))
    gaps = [b - a for a, b in pairwise(offsets)]
    assert 0.9e7 < sum(gaps) / len(gaps) < 1.1e7  # 100/s on average
    assert min(gaps) < 2e6 and max(gaps) > 3e7  # but not evenly spaced
    steps = {abs(b - a) for a, b in pairwise(prices)}
    assert steps == {Decimal(0), Decimal("0.00000001")}
    with pytest.raises(ValueError, match="more than 8 decimals"):
        GeneratedFeed("btcusdt", tick="0.000000001")


def test_a_halted_symbol_stops_and_resumes_without_a_burst():
    market = Market.generated(["btcusdt", "ethusdt"], rate=200, pause_without_subscribers=False)
    recorder = Recorder()
    marks: dict[str, float] = {}

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(market.run(recorder))
        await asyncio.sleep(0.2)
        market.halt("BTCUSDT", BREAK)
        marks["halted"] = len(recorder.by_stream["btcusdt@trade"])
        await asyncio.sleep(0.3)
        marks["still"] = len(recorder.by_stream["btcusdt@trade"])
        market.resume("btcusdt")
        resumed = loop.time()
        await asyncio.sleep(0.2)
        marks["after"] = len(recorder.by_stream["btcusdt@trade"]) - marks["still"]
        marks["elapsed"] = loop.time() - resumed
        task.cancel()

    asyncio.run(scenario())
    assert marks["halted"] == marks["still"] > 10
    assert 0 < marks["after"] <= marks["elapsed"] * 200 + 2  # no catch-up for the halt
    assert len(recorder.by_stream["ethusdt@trade"]) > 100  # the others trade on
    ids = [event["t"] for event in recorder.by_stream["btcusdt@trade"]]
    assert ids == list(range(1, len(ids) + 1))
    assert market.status("BTCUSDT") == TRADING
    with pytest.raises(ValueError, match="not listed"):
        market.halt("DOGEUSDT")
    with pytest.raises(ValueError, match="a halt is one of"):
        market.halt("BTCUSDT", "TRADING")


def test_the_whole_market_through_sockets(simulator, clients):
    market = whole_market(300, rate=3000, seed=4, pause_without_subscribers=False)
    sim = simulator(market)
    time.sleep(0.3)
    assert len(market.published("BTCUSDT").ids) > 30  # it trades with nobody connected
    streams = ["btcusdt@trade", "ethusdt@trade"] + [
        pair.symbol.lower() + "@trade" for pair in market_pairs(300, seed=4)[100:110]
    ]
    ws = clients.connect(f"{sim.ws_url}/stream?streams={'/'.join(streams)}")
    received: dict[str, list[int]] = defaultdict(list)
    for _ in range(1000):
        message = clients.recv_json(ws)
        received[message["stream"]].append(message["data"]["t"])
    assert set(received) <= set(streams) and len(received["btcusdt@trade"]) > 300
    for stream, ids in received.items():
        assert ids == list(range(ids[0], ids[0] + len(ids))), stream
        history = market.published(stream.partition("@")[0]).ids
        start = history.index(ids[0])
        assert history[start : start + len(ids)] == ids
    assert sim.log.statuses == {101: 1}


def test_listing_and_halting_on_command(simulator, clients, http_get):
    sim = simulator(whole_market(50, rate=500, seed=5, pause_without_subscribers=False))
    info = f"{sim.http_url}/api/v3/exchangeInfo"
    # subscribed before the listing, as Binance allows: its trades come from the first
    ws = clients.connect(f"{sim.ws_url}/stream?streams=newusdt@trade", timeout=1.0)
    assert http_get(f"{info}?symbol=NEWUSDT")[::2] == (
        400,
        {"code": -1121, "msg": "Invalid symbol."},
    )
    sim.faults.list_symbol("NEWUSDT", rate=100, start_price="1.2345", tick="0.0001")
    first = [clients.recv_json(ws)["data"] for _ in range(20)]
    assert [trade["t"] for trade in first] == list(range(1, 21))
    assert {trade["s"] for trade in first} == {"NEWUSDT"}
    assert abs(Decimal(first[0]["p"]) - Decimal("1.2345")) <= Decimal("0.0001")
    (listed,) = http_get(f"{info}?symbol=NEWUSDT")[2]["symbols"]
    assert (listed["status"], listed["baseAsset"], listed["quoteAsset"]) == (TRADING, "NEW", "USDT")
    assert len(http_get(info)[2]["symbols"]) == 51

    sim.faults.halt_symbol("NEWUSDT", HALT)
    assert http_get(f"{info}?symbol=NEWUSDT")[2]["symbols"][0]["status"] == HALT
    assert [s["symbol"] for s in http_get(f"{info}?symbolStatus=HALT")[2]["symbols"]] == ["NEWUSDT"]
    assert len(http_get(f"{info}?symbolStatus=TRADING")[2]["symbols"]) == 50
    ids = [trade["t"] for trade in first]
    with pytest.raises(websocket.WebSocketTimeoutException):
        while True:  # what was on its way, then silence
            ids.append(clients.recv_json(ws)["data"]["t"])
    published = sim.market.published("NEWUSDT")
    halted_at = published.ids[-1]
    time.sleep(0.3)
    assert published.ids[-1] == halted_at == ids[-1]

    sim.faults.resume_symbol("NEWUSDT")
    ws.settimeout(5)
    ids += [clients.recv_json(ws)["data"]["t"] for _ in range(10)]
    assert ids == list(range(1, len(ids) + 1))  # no id skipped over the halt
    assert http_get(f"{info}?symbol=NEWUSDT")[2]["symbols"][0]["status"] == TRADING
    ticker = http_get(f"{sim.http_url}/api/v3/ticker/24hr?symbol=NEWUSDT")[2]
    assert ticker["firstId"] == 1 and ticker["lastId"] >= ids[-1]
    with pytest.raises(ValueError, match="not listed"):
        sim.faults.halt_symbol("NOPEUSDT")
    with pytest.raises(ValueError, match="two feeds"):
        sim.faults.list_symbol("BTCUSDT")
