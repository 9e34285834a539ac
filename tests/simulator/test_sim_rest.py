"""The simulator's REST side: trade history, exchangeInfo and the 24 h ticker as Binance answers
them, its weight limits, its faults."""

from __future__ import annotations

import time
from decimal import Decimal
from itertools import pairwise
from urllib.parse import quote

import orjson
import pytest

from connectors.simulator import Market, load_events, market_pairs, whole_market


def symbols(*names: str) -> str:
    """The ``symbols`` parameter as Binance takes it: a JSON array, URL-encoded."""
    return "symbols=" + quote(orjson.dumps(names).decode())


@pytest.fixture
def published(simulator, demo_captures):
    """A live market that has published the demo captures: (simulator, BTCUSDT trades by id)."""
    sim = simulator(Market.replay(demo_captures, speed=0, pause_without_subscribers=False))
    sim.wait_until_idle()
    return sim, {e.data["t"]: e.data for e in load_events(demo_captures, symbols=["BTCUSDT"])}


def test_historical_trades_from_the_market_history(published, http_get):
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


def test_aggregate_trades_by_id_and_by_time(published, http_get):
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


def test_an_agg_trade_market_serves_its_own_aggregates(simulator, capture_dir, http_get):
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


def test_weight_over_the_limit_is_429_with_retry_after_then_418_for_who_ignores_it(
    simulator, http_get
):
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


def test_rest_faults_on_command(simulator, http_get):
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


def test_exchange_info_lists_every_symbol_as_binance_shapes_it(simulator, http_get):
    sim = simulator(whole_market(50, rate=500, seed=6), rest_weight_limit=6000)
    url = f"{sim.http_url}/api/v3/exchangeInfo"
    if time.time() % 60 > 58:  # the weight counts per calendar minute: start a fresh one
        time.sleep(61 - time.time() % 60)
    status, headers, body = http_get(url)
    assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "20"
    assert list(body) == ["timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"]
    assert body["timezone"] == "UTC" and abs(body["serverTime"] - time.time() * 1000) < 5000
    assert body["rateLimits"][0] == {
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": "MINUTE",
        "intervalNum": 1,
        "limit": 6000,
    }
    assert [s["symbol"] for s in body["symbols"]] == [p.symbol for p in market_pairs(50, seed=6)]
    btc = body["symbols"][0]
    assert {k: btc[k] for k in ("symbol", "status", "baseAsset", "quoteAsset")} == {
        "symbol": "BTCUSDT",
        "status": "TRADING",
        "baseAsset": "BTC",
        "quoteAsset": "USDT",
    }
    assert btc["permissionSets"] == [["SPOT", "MARGIN"]] and btc["permissions"] == []
    assert btc["isSpotTradingAllowed"] is True

    one = http_get(f"{url}?symbol=ETHBTC")
    assert one[1]["X-MBX-USED-WEIGHT-1M"] == "40"  # 20 whatever it asks for
    assert [(s["symbol"], s["baseAsset"], s["quoteAsset"]) for s in one[2]["symbols"]] == [
        ("ETHBTC", "ETH", "BTC")
    ]
    assert [
        s["symbol"] for s in http_get(f"{url}?{symbols('BTCFDUSD', 'SOLUSDT')}")[2]["symbols"]
    ] == [
        "BTCFDUSD",
        "SOLUSDT",
    ]
    assert "permissionSets" not in http_get(f"{url}?showPermissionSets=false")[2]["symbols"][0]
    assert len(http_get(f"{url}?symbolStatus=TRADING")[2]["symbols"]) == 50
    assert http_get(f"{url}?symbolStatus=BREAK")[2]["symbols"] == []
    for query, code in [
        ("symbol=NOPEUSDT", -1121),
        (symbols("BTCUSDT", "NOPEUSDT"), -1121),
        ("symbols=BTCUSDT", -1100),
        ("symbol=BTCUSDT&symbolStatus=TRADING", -1128),
        ("symbolStatus=OPEN", -1122),
    ]:
        status, _, body = http_get(f"{url}?{query}")
        assert (status, body["code"]) == (400, code), query


def test_ticker_24hr_counts_ids_and_prices_of_what_was_published(simulator, http_get):
    market = Market.generated(
        ["btcusdt", "ethusdt"], rate=0, count=100, seed=9, speed=0, pause_without_subscribers=False
    )
    sim = simulator(market)
    sim.wait_until_idle()
    url = f"{sim.http_url}/api/v3/ticker/24hr"
    if time.time() % 60 > 58:
        time.sleep(61 - time.time() % 60)
    status, headers, ticker = http_get(f"{url}?symbol=BTCUSDT")
    assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "2"
    trades = market.published("BTCUSDT").events
    prices = [Decimal(t["p"]) for t in trades]
    quantities = [Decimal(t["q"]) for t in trades]
    assert ticker == {
        "symbol": "BTCUSDT",
        "priceChange": f"{prices[-1] - prices[0]:.8f}",
        "priceChangePercent": f"{(prices[-1] - prices[0]) * 100 / prices[0]:.3f}",
        "weightedAvgPrice": ticker["weightedAvgPrice"],
        "prevClosePrice": f"{prices[0]:.8f}",
        "lastPrice": f"{prices[-1]:.8f}",
        "lastQty": f"{quantities[-1]:.8f}",
        "openPrice": f"{prices[0]:.8f}",
        "highPrice": f"{max(prices):.8f}",
        "lowPrice": f"{min(prices):.8f}",
        "volume": f"{sum(quantities):.8f}",
        "quoteVolume": f"{sum(p * q for p, q in zip(prices, quantities, strict=True)):.8f}",
        "openTime": ticker["closeTime"] - 86_400_000,
        "closeTime": ticker["closeTime"],
        "firstId": 1,
        "lastId": 100,
        "count": 100,
    }
    assert min(prices) <= Decimal(ticker["weightedAvgPrice"]) <= max(prices)
    status, headers, every = http_get(url)
    assert headers["X-MBX-USED-WEIGHT-1M"] == "82" and [t["symbol"] for t in every] == [
        "BTCUSDT",
        "ETHUSDT",
    ]
    assert every[0] | {"closeTime": 0, "openTime": 0} == ticker | {"closeTime": 0, "openTime": 0}
    _, headers, two = http_get(f"{url}?{symbols('ETHUSDT', 'BTCUSDT')}")
    assert headers["X-MBX-USED-WEIGHT-1M"] == "84" and [t["symbol"] for t in two] == [
        "ETHUSDT",
        "BTCUSDT",
    ]
    status, _, body = http_get(f"{url}?symbol=NOPEUSDT")
    assert (status, body["code"]) == (400, -1121)


def test_ticker_weight_grows_with_the_symbols_asked_for(simulator, http_get):
    sim = simulator(whole_market(120, rate=100, seed=2), rest_weight_limit=100_000)
    pairs = [pair.symbol for pair in market_pairs(120, seed=2)]
    url = f"{sim.http_url}/api/v3/ticker/24hr"
    if time.time() % 60 > 58:
        time.sleep(61 - time.time() % 60)
    used = []
    for query in (symbols(*pairs[:20]), symbols(*pairs[:21]), symbols(*pairs[:101]), ""):
        status, headers, body = http_get(f"{url}?{query}")
        assert status == 200
        used.append(int(headers["X-MBX-USED-WEIGHT-1M"]))
    assert [b - a for a, b in pairwise([0, *used])] == [2, 40, 80, 80]
    # nothing traded: the market waits for subscribers; Binance's "no trade" values
    assert len(body) == 120 and {(t["firstId"], t["lastId"], t["count"]) for t in body} == {
        (-1, -1, 0)
    }
    assert {t["lastPrice"] for t in body} == {"0.00000000"}


def test_market_info_weighs_on_the_same_limit_429_then_418(simulator, http_get):
    sim = simulator(whole_market(30, rate=100, seed=3), rest_weight_limit=100)
    info, ticker = f"{sim.http_url}/api/v3/exchangeInfo", f"{sim.http_url}/api/v3/ticker/24hr"
    if time.time() % 60 > 58:
        time.sleep(61 - time.time() % 60)
    assert http_get(info)[1]["X-MBX-USED-WEIGHT-1M"] == "20"
    assert http_get(ticker)[1]["X-MBX-USED-WEIGHT-1M"] == "100"
    status, headers, body = http_get(info)
    assert status == 429 and body["code"] == -1003 and 0 < int(headers["Retry-After"]) <= 60
    assert [http_get(ticker)[0] for _ in range(3)] == [429, 429, 418]  # asked again too soon
    assert sim.log.statuses == {200: 2, 429: 3, 418: 1}
