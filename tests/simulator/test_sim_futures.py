"""The simulator as Binance USD-M futures (a market of the ``usdm`` venue): trade streams under
``/market`` only, aggregate trades in the futures form, ``/fapi/v1/aggTrades`` (weight 20, asked by
time for the last 48 hours only) and ``/fapi/v1/exchangeInfo``, 10 incoming messages a second."""

from __future__ import annotations

import time
from itertools import pairwise

import orjson
import pytest
import websocket

from connectors.simulator import USDM, Market

FUTURES_EVENT_FIELDS = ["e", "E", "a", "s", "p", "q", "nq", "f", "l", "T", "m", "st"]


@pytest.fixture
def sim(simulator):
    market = Market.generated(
        ["BTCUSDT", "ETHUSDT"],
        rate=100,
        seed=7,
        kind="aggTrade",
        venue="usdm",
        pause_without_subscribers=False,
    )
    return simulator(market)


def test_streams_are_served_under_market_and_nowhere_else(sim, clients):
    combined = clients.connect(f"{sim.ws_url}/market/stream?streams=btcusdt@aggTrade")
    raw = clients.connect(f"{sim.ws_url}/market/ws/ethusdt@aggTrade")
    elsewhere = [
        clients.connect(f"{sim.ws_url}{path}", timeout=0.5)
        for path in (
            "/stream?streams=btcusdt@aggTrade",  # the root, retired in April 2026
            "/ws/btcusdt@aggTrade",
            "/public/stream?streams=btcusdt@aggTrade",  # depth and book tickers only
        )
    ]
    events = [clients.recv_json(combined) for _ in range(20)]
    assert {e["stream"] for e in events} == {"btcusdt@aggTrade"}
    for previous, event in pairwise(events):
        data, before = event["data"], previous["data"]
        assert list(data) == FUTURES_EVENT_FIELDS  # no "M", as Binance's futures frames
        assert (data["e"], data["s"], data["st"], data["q"]) == (
            "aggTrade",
            "BTCUSDT",
            1,
            data["nq"],
        )
        assert data["a"] == before["a"] + 1 and data["f"] in (before["l"] + 1, before["l"] + 2)
        assert len(data["p"].partition(".")[2]) == 2 and len(data["q"].partition(".")[2]) == 3
    # aggregates hold market trades only: a trade id that none holds now and then
    assert any(e["data"]["f"] > b["data"]["l"] + 1 for b, e in pairwise(events))
    assert clients.recv_json(raw)["s"] == "ETHUSDT"
    for ws in elsewhere:  # taken, listed, never served
        with pytest.raises(websocket.WebSocketTimeoutException):
            clients.next_frame(ws)
    assert [c.streams for c in sim.connections[2:]] == [["btcusdt@aggTrade"]] * 3
    assert sim.log.statuses[101] == 5
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        clients.connect(f"{sim.ws_url}/market/other")
    assert refused.value.status_code == 404


def test_agg_trades_history_weighs_20_and_reaches_back_48_hours(sim, http_get):
    sim.wait_for(lambda: len(sim.market.published("BTCUSDT", "aggTrade").ids) >= 50)
    events = sim.market.published("BTCUSDT", "aggTrade").events[:50]
    url = f"{sim.http_url}/fapi/v1/aggTrades?symbol=BTCUSDT"

    status, headers, page = http_get(f"{url}&fromId={events[0]['a']}&limit=50")
    assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "20"
    assert page == [
        {k: e[k] for k in ("a", "p", "q", "nq", "f", "l", "T", "m")} for e in events
    ]  # the futures entry: nq, and no M
    status, headers, page = http_get(f"{url}&startTime={events[3]['T']}&endTime={events[3]['T']}")
    assert status == 200
    assert page[0]["a"] <= events[3]["a"] and page[-1]["T"] == events[3]["T"]

    two_days_ago = int(time.time() * 1000) - 48 * 3_600_000
    for asked in (f"startTime={two_days_ago - 1000}", f"endTime={two_days_ago - 1000}"):
        assert http_get(f"{url}&{asked}")[::2] == (
            400,
            {"code": -4166, "msg": "Search window is restricted to recent 2 days only."},
        )
    assert http_get(f"{url}&startTime={two_days_ago + 60_000}")[0] == 200
    for spot_only in ("/api/v3/aggTrades", "/fapi/v1/historicalTrades", "/api/v3/exchangeInfo"):
        assert http_get(f"{sim.http_url}{spot_only}?symbol=BTCUSDT")[0] == 404


def test_the_weight_limit_is_2400_a_minute(sim, http_get):
    url = f"{sim.http_url}/fapi/v1/aggTrades?symbol=BTCUSDT&limit=1"
    while time.time() % 60 > 50:  # all 121 requests in one calendar minute
        time.sleep(1)
    used = [int(http_get(url)[1].get("X-MBX-USED-WEIGHT-1M", "0")) for _ in range(120)]
    assert used[-1] == 2400 == USDM.weight_limit
    status, headers, body = http_get(url)
    assert status == 429 and int(headers["Retry-After"]) >= 1 and body["code"] == -1003


def test_exchange_info_lists_perpetuals_quarterlies_and_a_chinese_name(sim, http_get):
    sim.faults.halt_symbol("ETHUSDT")
    status, headers, info = http_get(f"{sim.http_url}/fapi/v1/exchangeInfo")
    assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "1"
    assert info["futuresType"] == "U_MARGINED" and info["rateLimits"][0]["limit"] == 2400
    listed = [(s["symbol"], s["contractType"], s["status"]) for s in info["symbols"]]
    assert listed[:2] == [("BTCUSDT", "PERPETUAL", "TRADING"), ("ETHUSDT", "PERPETUAL", "HALT")]
    quarterly = listed[2:4]
    assert [(c, s) for _, c, s in quarterly] == [("CURRENT_QUARTER", "TRADING")] * 2
    assert [name.partition("_")[0] for name, _, _ in quarterly] == ["BTCUSDT", "ETHUSDT"]
    assert all(len(name.partition("_")[2]) == 6 for name, _, _ in quarterly)  # YYMMDD
    assert listed[4:] == [("币安人生USDT", "PERPETUAL", "TRADING")]


def test_a_symbol_listed_on_command_trades_in_the_futures_form(sim, clients):
    sim.faults.list_symbol("SOLUSDT", rate=50, start_price="150.00")
    ws = clients.connect(f"{sim.ws_url}/market/ws/solusdt@aggTrade")
    event = clients.recv_json(ws)
    assert list(event) == FUTURES_EVENT_FIELDS and event["s"] == "SOLUSDT"


def test_a_client_may_send_10_messages_a_second_not_11(sim, clients):
    ws = clients.connect(f"{sim.ws_url}/market/ws")
    for request_id in range(1, 11):
        ws.send(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": request_id}).decode())
    assert [clients.recv_json(ws) for _ in range(10)] == [
        {"result": [], "id": request_id} for request_id in range(1, 11)
    ]
    ws.send('{"method":"LIST_SUBSCRIPTIONS","id":11}')
    _, code, reason = clients.read_until_close(ws)
    assert (code, reason) == (1008, "Too many requests")


def test_a_spot_market_has_no_futures_routes_and_usdm_no_trade_stream(simulator, http_get):
    spot = simulator(Market.generated(["BTCUSDT"], rate=10))
    assert http_get(f"{spot.http_url}/fapi/v1/aggTrades?symbol=BTCUSDT")[0] == 404
    with pytest.raises(ValueError, match="usdm has no @trade stream"):
        Market.generated(["BTCUSDT"], rate=10, venue="usdm")
