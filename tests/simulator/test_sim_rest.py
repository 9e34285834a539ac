"""The simulator's REST side: trade history as Binance answers it, its weight limits, its faults."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from decimal import Decimal
from itertools import pairwise

import orjson
import pytest

from connectors.simulator import Market, load_events


def http_get(url: str, timeout: float = 5) -> tuple[int, dict, object]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, dict(response.headers), orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), orjson.loads(error.read())


@pytest.fixture
def published(simulator, demo_captures):
    """A live market that has published the demo captures: (simulator, BTCUSDT trades by id)."""
    sim = simulator(Market.replay(demo_captures, speed=0, pause_without_subscribers=False))
    sim.wait_until_idle()
    return sim, {e.data["t"]: e.data for e in load_events(demo_captures, symbols=["BTCUSDT"])}


def test_historical_trades_from_the_market_history(published):
    sim, trades = published
    url = f"{sim.http_url}/api/v3/historicalTrades"

    status, headers, body = http_get(f"{url}?symbol=BTCUSDT&fromId=3735693100&limit=3")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert [trade["id"] for trade in body] == [3735693100, 3735693101, 3735693102]
    event = trades[3735693100]
    assert body[0] == {
        "id": 3735693100,
        "price": event["p"],
        "qty": event["q"],
        "quoteQty": str((Decimal(event["p"]) * Decimal(event["q"])).quantize(Decimal("1e-8"))),
        "time": event["T"],
        "isBuyerMaker": event["m"],
        "isBestMatch": True,
    }
    last = max(trades)
    status, _, body = http_get(f"{url}?symbol=BTCUSDT")
    assert status == 200 and [t["id"] for t in body] == list(range(last - 499, last + 1))
    status, _, body = http_get(f"{url}?symbol=BTCUSDT&fromId=3735693016&limit=5000")
    assert [t["id"] for t in body] == list(range(3735693016, 3735693016 + 1000))
    assert http_get(f"{url}?symbol=BTCUSDT&fromId={last + 1}")[:3:2] == (200, [])

    assert http_get(f"{url}?symbol=DOGEUSDT")[::2] == (
        400,
        {"code": -1121, "msg": "Invalid symbol."},
    )
    assert http_get(f"{url}?symbol=btcusdt")[::2] == (
        400,
        {"code": -1121, "msg": "Invalid symbol."},
    )
    status, _, body = http_get(url)
    assert (status, body["code"]) == (400, -1102)
    status, _, body = http_get(f"{url}?symbol=BTCUSDT&limit=abc")
    assert (status, body["code"]) == (400, -1100)
    status, _, body = http_get(f"{url}?symbol=BTCUSDT&limit=0")
    assert (status, body["code"]) == (400, -1130)
    assert ("/api/v3/historicalTrades?symbol=DOGEUSDT", 400) in sim.http_requests


def test_aggregate_trades_by_id_and_by_time(published):
    sim, trades = published
    url = f"{sim.http_url}/api/v3/aggTrades"
    status, headers, first_page = http_get(f"{url}?symbol=BTCUSDT&limit=1000&fromId=1")
    assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "4"
    # every trade once, in aggregates of one order at one price, quantities summed exactly
    assert first_page[0]["f"] == min(trades) and [a["a"] for a in first_page] == list(
        range(1, 1001)
    )
    for agg, following in pairwise(first_page):
        assert following["f"] == agg["l"] + 1
        members = [trades[i] for i in range(agg["f"], agg["l"] + 1)]
        assert {(t["p"], t["T"], t["m"]) for t in members} == {(agg["p"], agg["T"], agg["m"])}
        assert Decimal(agg["q"]) == sum(Decimal(t["q"]) for t in members)
    assert any(a["l"] > a["f"] for a in first_page)  # real captures do hold multi-trade orders
    # a time becomes an id: f of the first aggregate at or after it
    moment = trades[min(trades) + 500]["T"]
    status, _, (at,) = http_get(
        f"{url}?symbol=BTCUSDT&startTime={moment}&endTime={moment + 3_599_999}&limit=1"
    )
    assert at["f"] == min(t["t"] for t in trades.values() if t["T"] >= moment)
    status, _, body = http_get(
        f"{url}?symbol=BTCUSDT&startTime={moment}&endTime={moment + 3_600_000}"
    )
    assert (status, body["code"]) == (400, -1127)
    status, _, body = http_get(f"{url}?symbol=BTCUSDT&fromId=1&startTime={moment}")
    assert (status, body["code"]) == (400, -1128)
    assert http_get(f"{url}?symbol=BTCUSDT&startTime=1&endTime=3599999")[::2] == (
        200,
        [],
    )  # no trade then


def test_an_agg_trade_market_serves_its_own_aggregates(simulator, capture_dir):
    capture = capture_dir / "cryptofeed_BINANCE-ee25be.0.gz"
    sim = simulator(
        Market.replay(capture, kinds=("aggTrade",), speed=0, pause_without_subscribers=False)
    )
    sim.wait_until_idle()
    sent = [e.data for e in load_events(capture, kinds=("aggTrade",), symbols=["DOTUSDT"])]
    _, _, body = http_get(
        f"{sim.http_url}/api/v3/aggTrades?symbol=DOTUSDT&fromId={sent[10]['a']}&limit=3"
    )
    assert body == [
        {k: e[k] for k in ("a", "p", "q", "f", "l", "T", "m", "M")} for e in sent[10:13]
    ]
    status, _, body = http_get(f"{sim.http_url}/api/v3/historicalTrades?symbol=DOTUSDT")
    assert (status, body["code"]) == (400, -1121)  # no @trade history behind aggregates


def test_weight_over_the_limit_is_429_with_retry_after_then_418_for_who_ignores_it(simulator):
    sim = simulator(
        Market.generated(["btcusdt"], rate=0, count=100, speed=0, pause_without_subscribers=False),
        rest_weight_limit=60,
    )
    url = f"{sim.http_url}/api/v3/historicalTrades?symbol=BTCUSDT&limit=5"
    if time.time() % 60 > 50:  # the weight counts per calendar minute: start a fresh one
        time.sleep(61 - time.time() % 60)
    assert [http_get(url)[1]["X-MBX-USED-WEIGHT-1M"] for _ in range(2)] == ["25", "50"]
    status, headers, body = http_get(url)
    assert status == 429 and body["code"] == -1003
    assert 0 < int(headers["Retry-After"]) <= 60
    assert [http_get(url)[0] for _ in range(2)] == [
        429,
        429,
    ]  # asked again before Retry-After: violations
    status, headers, _ = http_get(url)
    assert status == 418 and int(headers["Retry-After"]) == 120  # the third: the "IP" is banned
    assert http_get(f"{sim.http_url}/api/v3/aggTrades?symbol=BTCUSDT")[0] == 418


def test_rest_faults_on_command(simulator):
    # seed 1466: trades 2 to 6 share price and side, so (published in the same ms) one aggregate
    # holds the ids hidden below with visible ones on both sides
    sim = simulator(
        Market.generated(
            ["btcusdt"], rate=0, count=100, seed=1466, speed=0, pause_without_subscribers=False
        )
    )
    sim.wait_until_idle()
    url = f"{sim.http_url}/api/v3/historicalTrades?symbol=BTCUSDT&fromId=1&limit=10"
    sim.faults.fail_rest(503, times=2)
    assert [http_get(url)[0] for _ in range(3)] == [503, 503, 200]
    sim.faults.hide_history("btcusdt", [3, 4, 5])
    assert [t["id"] for t in http_get(url)[2]] == [1, 2, 6, 7, 8, 9, 10, 11, 12, 13]
    aggs = http_get(f"{sim.http_url}/api/v3/aggTrades?symbol=BTCUSDT&fromId=1&limit=100")[2]
    assert {3, 4, 5}.isdisjoint(i for a in aggs for i in range(a["f"], a["l"] + 1))
    sim.faults.stall_rest(2.0)
    with pytest.raises(TimeoutError):
        http_get(url, timeout=0.5)
    assert http_get(url)[0] == 200
