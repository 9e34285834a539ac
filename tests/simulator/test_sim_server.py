"""The simulator over real loopback sockets, with websocket-client as the client."""

from __future__ import annotations

import time

import orjson
import pytest
import websocket

from connectors.simulator import ExchangeSimulator, GeneratedFeed, Market, load_events


def test_raw_stream_sends_the_recorded_bytes(simulator, clients, demo_captures):
    sim = simulator(Market.replay(demo_captures, speed=0))
    ws = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    expected = [event.raw for event in load_events(demo_captures, symbols=["BTCUSDT"])[:50]]
    received = [clients.next_frame(ws)[1] for _ in range(50)]
    assert received == expected
    (record,) = sim.connections
    assert (record.path, record.combined, record.streams) == (
        "/ws/btcusdt@trade",
        False,
        ["btcusdt@trade"],
    )
    assert [frame.data for frame in record.sent[:50]] == expected


def test_combined_stream_wraps_each_event_with_its_stream_name(simulator, clients, demo_captures):
    sim = simulator(Market.replay(demo_captures, speed=0))
    ws = clients.connect(f"{sim.ws_url}/stream?streams=btcusdt@trade/ethusdt@trade")
    expected = load_events(demo_captures)[:300]
    received = [clients.next_frame(ws)[1] for _ in range(300)]
    assert received == [b'{"stream":"%s","data":%s}' % (e.stream.encode(), e.raw) for e in expected]
    assert sim.connections[0].combined


def test_replaying_real_captures_delivers_every_trade_id_once_in_order(
    simulator, clients, capture_dir
):
    paths = [
        capture_dir / name
        for name in ("btcusdt_20240808.gz", "btcusdt_20240809.gz", "ethusdt_20240809.gz")
    ]
    sim = simulator(Market.replay(paths, speed=0))
    ws = clients.connect(f"{sim.ws_url}/stream?streams=btcusdt@trade/ethusdt@trade")
    expected = load_events(paths)
    received = [orjson.loads(clients.next_frame(ws)[1]) for _ in expected]
    sim.wait_until_idle()
    for symbol, first, count in (("btcusdt", 3735683259, 19904), ("ethusdt", 1520545031, 8409)):
        ids = [m["data"]["t"] for m in received if m["stream"] == f"{symbol}@trade"]
        assert ids == list(range(first, first + count))
        assert sim.sent_trade_ids(symbol) == ids
    assert [m["data"] for m in received] == [e.data for e in expected]


def test_live_subscribe_unsubscribe_and_list(simulator, clients):
    sim = simulator(Market.generated(["btcusdt", "ethusdt"], rate=200))
    ws = clients.connect(f"{sim.ws_url}/ws")
    ws.send('{"method":"SUBSCRIBE","params":["btcusdt@trade","ethusdt@trade"],"id":1}')
    assert clients.recv_json(ws) == {"result": None, "id": 1}
    events = [clients.recv_json(ws) for _ in range(20)]
    assert {event["s"] for event in events} == {"BTCUSDT", "ETHUSDT"}  # raw on /ws, not wrapped
    ws.send('{"method":"UNSUBSCRIBE","params":["ethusdt@trade"],"id":2}')
    while (message := clients.recv_json(ws)).get("id") != 2:
        assert "e" in message
    assert message == {"result": None, "id": 2}
    after = [clients.recv_json(ws) for _ in range(20)]
    ws.send('{"method":"LIST_SUBSCRIPTIONS","id":3}')
    while (message := clients.recv_json(ws)).get("id") != 3:
        after.append(message)
    assert message == {"result": ["btcusdt@trade"], "id": 3}
    assert {event["s"] for event in after} == {"BTCUSDT"}
    assert sim.connections[0].received[0].startswith('{"method":"SUBSCRIBE"')


@pytest.mark.parametrize(
    ("request_text", "code", "reply_id", "message"),
    [
        ("{not json", 3, None, "Invalid JSON"),
        ('{"params":["btcusdt@trade"],"id":5}', 2, 5, "missing field `method`"),
        ('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":-1}', 2, None, "request ID"),
        ('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":true}', 2, None, "request ID"),
        ('{"method":"PUBLISH","params":[],"id":6}', 2, 6, "unknown variant `PUBLISH`"),
        ('{"method":"SUBSCRIBE","params":"btcusdt@trade","id":7}', 2, 7, "params"),
        ('{"method":"SUBSCRIBE","params":["BTCUSDT@trade"],"id":8}', 2, 8, "invalid stream name"),
        ("[1,2]", 2, None, "Invalid request"),
    ],
)
def test_malformed_requests_get_binance_error_replies(
    simulator, clients, request_text, code, reply_id, message
):
    sim = simulator(Market.generated(["btcusdt"], rate=10))
    ws = clients.connect(f"{sim.ws_url}/ws")
    ws.send(request_text)
    reply = clients.recv_json(ws)
    assert reply["id"] == reply_id and reply["error"]["code"] == code
    assert message in reply["error"]["msg"]
    assert reply["error"]["msg"].startswith("Invalid JSON" if code == 3 else "Invalid request: ")


def test_pings_carry_a_payload_and_answered_ones_are_recorded(simulator, clients):
    sim = simulator(Market.generated(["btcusdt"], rate=50), ping_interval=0.1, pong_timeout=0.3)
    ws = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    pings = []
    deadline = time.monotonic() + 0.8  # well past pong_timeout: answering keeps it open
    while time.monotonic() < deadline:
        opcode, frame = ws.recv_data_frame(control_frame=True)  # websocket-client answers pings
        if opcode == websocket.ABNF.OPCODE_PING:
            pings.append(bytes(frame.data))
    assert len(pings) >= 3 and all(pings) and len(set(pings)) == len(pings)
    record = sim.connections[0]
    sim.wait_for(lambda: len(record.pongs) >= len(pings))
    assert record.pings[: len(pings)] == pings and record.pongs[: len(pings)] == pings
    assert ws.connected and record.closed_at is None


def test_a_client_that_never_answers_pings_is_closed_with_1008(simulator, clients):
    sim = simulator(Market.generated(["btcusdt"], rate=20), ping_interval=0.1, pong_timeout=0.3)
    ws = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    for _ in range(4):  # unsolicited pongs are no answer (4: within 5 messages a second)
        ws.pong(b"not an answer")
        time.sleep(0.15)
    record = sim.connections[0]
    sim.wait_for(lambda: record.closed_by is not None)
    _, code, reason = clients.read_until_close(ws)
    assert (code, reason) == (1008, "pong timeout")
    assert (record.close_code, record.closed_by) == (1008, "server")
    # Reading the close frame answers pings still queued before it, too late for the first.
    assert record.pings[0] not in record.pongs


def test_a_paused_market_waits_for_the_client_to_come_back(simulator, clients):
    sim = simulator(Market.generated(["btcusdt"], rate=100))
    ws = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    first = [clients.recv_json(ws)["t"] for _ in range(10)]
    ws.close()
    sim.wait_for(lambda: sim.connections[0].closed_at is not None)
    history = sim.market.published("BTCUSDT")
    emitted = len(history.ids)
    time.sleep(0.5)
    assert len(history.ids) == emitted  # nobody listening: the market stood still
    ws = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    resumed = clients.recv_json(ws)["t"]
    assert first == list(range(1, 11)) and resumed == emitted + 1


def test_a_live_market_moves_on_without_the_client(simulator, clients):
    sim = simulator(Market.generated(["btcusdt"], rate=100, pause_without_subscribers=False))
    ws = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    before = clients.recv_json(ws)["t"]
    ws.close()
    time.sleep(0.5)
    ws = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    assert clients.recv_json(ws)["t"] > before + 30  # about 50 trades went by unseen


def test_the_generator_through_the_server(simulator, clients):
    sim = simulator(Market([GeneratedFeed("btcusdt", rate=400, count=200, seed=1)]))
    ws = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    started = time.monotonic()
    trades = [clients.recv_json(ws) for _ in range(200)]
    elapsed = time.monotonic() - started
    sim.wait_until_idle()
    assert [trade["t"] for trade in trades] == list(range(1, 201))
    assert elapsed >= 0.45  # paced: 199 intervals of 2.5 ms, never faster
    assert abs(trades[-1]["E"] - time.time() * 1000) < 5000


def test_unknown_paths_and_bad_stream_names_are_refused(simulator, clients):
    sim = simulator(Market.generated(["btcusdt"], rate=10))
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        clients.connect(f"{sim.ws_url}/socket")
    assert refused.value.status_code == 404
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        clients.connect(f"{sim.ws_url}/ws/BTCUSDT@trade")
    assert refused.value.status_code == 400
    assert sim.connections == []


def test_stop_closes_connections_with_1001_and_is_idempotent(demo_captures):
    market = Market.replay(demo_captures, speed=1)
    with ExchangeSimulator(market, close_timeout=0.5) as sim:
        ws = websocket.create_connection(f"{sim.ws_url}/ws/btcusdt@trade", timeout=5)
        try:
            ws.recv()
            sim.stop()
            code = None
            while code is None:
                opcode, frame = ws.recv_data_frame(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code = int.from_bytes(frame.data[:2], "big")
            assert code == 1001
            assert sim.connections[0].close_code == 1001
        finally:
            ws.shutdown()
    sim.stop()
    with pytest.raises(ConnectionRefusedError):
        websocket.create_connection(sim.ws_url + "/ws", timeout=1)
