"""Each fault as a websocket-client sees it on the wire."""

from __future__ import annotations

import time

import orjson
import pytest
import websocket
from websocket import ABNF

from connectors.simulator import Market
from connectors.simulator.session import INJECTED, MARKET


@pytest.fixture
def sim(simulator):
    return simulator(Market.generated(["btcusdt", "ethusdt"], rate=200, seed=1), ping_interval=0.1)


def test_refusal_is_a_failed_connect_until_accepted_again(sim, clients):
    url = f"{sim.ws_url}/ws/btcusdt@trade"
    open_before = clients.connect(url)
    sim.faults.refuse_connections()
    with pytest.raises(ConnectionRefusedError):
        websocket.create_connection(url, timeout=2)
    assert clients.recv_json(open_before)["s"] == "BTCUSDT"  # established ones carry on
    sim.faults.accept_connections()
    assert clients.recv_json(clients.connect(url))["s"] == "BTCUSDT"
    assert len(sim.connections) == 2


def test_counted_refusals_reset_the_connection_before_the_handshake(sim, clients):
    url = f"{sim.ws_url}/ws/btcusdt@trade"
    sim.faults.refuse_connections(times=2)
    for _ in range(2):
        with pytest.raises(
            (ConnectionResetError, BrokenPipeError, websocket.WebSocketConnectionClosedException)
        ):
            websocket.create_connection(url, timeout=2)
    assert clients.recv_json(clients.connect(url))["s"] == "BTCUSDT"
    assert sim.faults.refused == 2 and len(sim.connections) == 1


def test_rejected_handshake_carries_status_and_retry_after(sim, clients):
    url = f"{sim.ws_url}/ws/btcusdt@trade"
    sim.faults.reject_handshake(status=429, retry_after=2, times=2)
    for _ in range(2):
        with pytest.raises(websocket.WebSocketBadStatusException) as rejected:
            clients.connect(url)
        assert rejected.value.status_code == 429
        assert rejected.value.resp_headers["retry-after"] == "2"
    sim.faults.reject_handshake(status=418, retry_after=None)
    with pytest.raises(websocket.WebSocketBadStatusException) as rejected:
        clients.connect(url)
    assert rejected.value.status_code == 418 and "retry-after" not in rejected.value.resp_headers
    clients.connect(url)
    assert sim.http_requests == [("/ws/btcusdt@trade", 429)] * 2 + [("/ws/btcusdt@trade", 418)]
    sim.wait_for(lambda: len(sim.connections) == 1)


def test_drop_after_n_messages_with_a_close_code(sim, clients):
    first = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    clients.recv_json(first)
    record = sim.connections[0]
    sim.faults.go_silent()  # holds the writer, so the count below stays put
    already_sent = len([f for f in record.sent if f.kind == MARKET])
    sim.faults.drop_after(5, code=1001, reason="maintenance")
    sim.faults.resume()
    frames, code, reason = clients.read_until_close(first)
    assert (code, reason) == (1001, "maintenance") == (record.close_code, record.close_reason)
    assert record.closed_by == "server"
    market_sent = [f.data for f in record.sent if f.kind == MARKET]
    assert len(market_sent) == already_sent + 5
    assert market_sent[1:] == frames

    # times=1 is used up: the next connection is left alone.
    second = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    assert len([clients.recv_json(second) for _ in range(20)]) == 20


def test_drop_applies_to_the_next_connections_when_none_is_open(sim, clients):
    sim.faults.drop_after(3, code=4000, reason="go away", times=2)
    for _ in range(2):
        ws = clients.connect(f"{sim.ws_url}/stream?streams=ethusdt@trade")
        frames, code, reason = clients.read_until_close(ws)
        assert len(frames) == 3 and (code, reason) == (4000, "go away")
    ws = clients.connect(f"{sim.ws_url}/stream?streams=ethusdt@trade")
    assert len([clients.recv_json(ws) for _ in range(10)]) == 10


def test_drop_with_a_tcp_reset(sim, clients):
    sim.faults.drop_after(4, reset=True)
    ws = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    received = 0
    with pytest.raises(ConnectionResetError):
        for _ in range(100):
            clients.next_frame(ws)
            received += 1
    record = sim.connections[0]
    sim.wait_for(lambda: record.closed_at is not None)
    assert record.reset and record.close_code == 1006 and record.closed_by == "server"
    assert len([f for f in record.sent if f.kind == MARKET]) == 4
    assert received <= 4  # a reset may destroy what was still in flight


def test_silence_stops_data_and_pings_then_resumes_without_loss(sim, clients):
    ws = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade", timeout=0.5)
    ids = [clients.recv_json(ws)["t"] for _ in range(5)]
    sim.faults.go_silent()
    record = sim.connections[0]
    pings = len(record.pings)
    with pytest.raises(websocket.WebSocketTimeoutException):
        for _ in range(1000):  # whatever was already on its way, then nothing
            opcode, frame = ws.recv_data_frame(control_frame=True)
            if opcode == ABNF.OPCODE_TEXT:
                ids.append(orjson.loads(frame.data)["t"])
    time.sleep(0.3)
    assert len(record.pings) <= pings + 1  # at most one that was being sent
    ws.settimeout(5)
    sim.faults.resume()
    ids += [clients.recv_json(ws)["t"] for _ in range(100)]
    assert ids == list(range(1, len(ids) + 1))  # held back, not lost
    sim.wait_for(lambda: len(record.pings) > pings + 1)


def test_malformed_frames_arrive_in_order_between_market_messages(sim, clients):
    ws = clients.connect(f"{sim.ws_url}/stream?streams=btcusdt@trade")
    clients.recv_json(ws)
    injected = [
        "not json",
        b"\xff\xfe{invalid utf-8",
        '{"stream":"btcusdt@trade","data":{"e":"trade"}}',
        "x" * 70_000,
    ]
    sim.faults.send_frames(injected)
    sim.faults.send_frames([b"\x00\x01binary"], binary=True)
    frames = [clients.next_frame(ws) for _ in range(30)]
    expected = [(ABNF.OPCODE_TEXT, f.encode() if isinstance(f, str) else f) for f in injected]
    expected.append((ABNF.OPCODE_BINARY, b"\x00\x01binary"))
    start = frames.index(expected[0])
    assert frames[start : start + 5] == expected
    assert all(
        orjson.loads(data)["stream"] == "btcusdt@trade"
        for _, data in frames[:start] + frames[start + 5 :]
    )
    assert len(frames) - 5 - start > 0  # the market goes on after them
    record = sim.connections[0]
    assert [f.data for f in record.sent if f.kind == INJECTED] == [data for _, data in expected]
    assert [f.binary for f in record.sent if f.kind == INJECTED] == [False] * 4 + [True]


def test_server_shutdown_notice_then_close_after_the_grace(sim, clients):
    raw = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    combined = clients.connect(f"{sim.ws_url}/stream?streams=btcusdt@trade")
    sim.faults.server_shutdown(grace=0.3)
    announced = time.time()
    for ws, wrap in ((raw, False), (combined, True)):
        frames, code, reason = clients.read_until_close(ws)
        notices = [orjson.loads(f) for f in frames if b"serverShutdown" in f]
        assert len(notices) == 1
        notice = notices[0]
        if wrap:
            assert notice["stream"] == "!serverShutdown"
            notice = notice["data"]
        assert notice["e"] == "serverShutdown" and abs(notice["E"] - announced * 1000) < 1000
        # Market data keeps flowing during the grace period.
        assert len(frames) > frames.index(next(f for f in frames if b"serverShutdown" in f)) + 10
        assert (code, reason) == (1001, "server shutdown")
    assert 0.25 <= time.time() - announced < 2
    assert clients.recv_json(clients.connect(f"{sim.ws_url}/ws/btcusdt@trade"))["e"] == "trade"


def test_connections_older_than_max_lifetime_are_closed(sim, clients):
    old = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    time.sleep(0.3)
    sim.faults.max_lifetime(0.5)
    started = time.monotonic()
    new = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    _, code, reason = clients.read_until_close(old)
    old_closed = time.monotonic() - started
    assert (code, reason) == (1001, "connection lifetime exceeded")
    _, code, _ = clients.read_until_close(new)
    new_closed = time.monotonic() - started
    assert code == 1001
    # The old one had 0.2 s left when the limit came, the new one all 0.5 s.
    assert old_closed < new_closed and 0.5 <= new_closed < 3

    sim.faults.max_lifetime(None)
    kept = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    time.sleep(0.7)
    assert len([clients.recv_json(kept) for _ in range(50)]) == 50
    assert sim.connections[-1].closed_by is None
