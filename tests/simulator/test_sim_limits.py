"""Binance's limits on one connection, answered as Binance answers them: 414 for a long URL, an
error answer (or a refused handshake) beyond 1024 streams, 1008 "Too many requests" beyond 5
incoming messages within a second."""

from __future__ import annotations

import time

import orjson
import pytest
import websocket

from connectors.simulator import Market

TOO_MANY = (1008, "Too many requests")


@pytest.fixture
def sim(simulator):
    return simulator(Market.generated(["btcusdt", "ethusdt"], rate=100, seed=1))


def combined_target(length: int) -> str:
    """A ``/stream?streams=...`` request target of exactly ``length`` bytes."""
    head = "/stream?streams="
    names: list[str] = []
    while len(head) + sum(len(name) + 1 for name in names) < length - 40:
        names.append(f"s{len(names):04d}usdt@trade")
    used = len(head) + sum(len(name) + 1 for name in names)
    names.append("x" * (length - used - len("usdt@trade")) + "usdt@trade")
    target = head + "/".join(names)
    assert len(target) == length
    return target


def subscribe(ws: websocket.WebSocket, streams: list[str], request_id: int) -> None:
    ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": streams, "id": request_id}).decode())


def reply(clients, ws: websocket.WebSocket, request_id: int) -> dict:
    """The answer to ``request_id``, past the market events before it."""
    while "id" not in (message := clients.recv_json(ws)):
        pass
    assert message["id"] == request_id, message
    return message


def test_a_combined_url_longer_than_8000_bytes_is_refused_with_414(sim, clients):
    target = combined_target(8000)
    ws = clients.connect(sim.ws_url + target)
    sim.wait_for(lambda: sim.connections)  # listed a moment after the 101
    assert sim.connections[0].streams == target.partition("=")[2].split("/")
    ws.close()
    for length in (8001, 12_000):  # ours, then websockets' own request line limit
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            clients.connect(sim.ws_url + combined_target(length))
        assert refused.value.status_code == 414
    sim.wait_for(lambda: sim.log.statuses[414] == 2)
    assert sim.log.statuses == {101: 1, 414: 2} and len(sim.connections) == 1


def test_the_url_limit_is_a_setting(simulator, clients):
    sim = simulator(Market.generated(["btcusdt"], rate=10), max_url_bytes=100)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        clients.connect(sim.ws_url + combined_target(101))
    assert refused.value.status_code == 414
    sim = simulator(Market.generated(["btcusdt"], rate=10), max_url_bytes=None)
    target = combined_target(8100)
    clients.connect(sim.ws_url + target)
    sim.wait_for(lambda: sim.connections)
    assert sim.connections[0].streams == target.partition("=")[2].split("/")


def test_a_sixth_message_within_a_second_closes_with_1008(sim, clients):
    ws = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    for n in range(5):
        ws.ping(b"%d" % n)
    ws.send('{"method":"LIST_SUBSCRIPTIONS","id":6}')
    frames, code, reason = clients.read_until_close(ws)
    assert (code, reason) == TOO_MANY
    assert all(b'"id":6' not in frame for frame in frames)  # the one too many goes unanswered
    record = sim.connections[0]
    assert (record.close_code, record.close_reason, record.closed_by) == (*TOO_MANY, "server")
    assert sim.log.close_codes == {1008: 1}


def test_the_window_slides_rather_than_counting_calendar_seconds(sim, clients):
    ws = clients.connect(f"{sim.ws_url}/ws")
    for request_id in range(1, 6):
        ws.send(f'{{"method":"LIST_SUBSCRIPTIONS","id":{request_id}}}')
    time.sleep(1.5)  # not just over 1 s: under load the first five may be read late
    for request_id in range(6, 11):  # five more after the first have left the window
        ws.send(f'{{"method":"LIST_SUBSCRIPTIONS","id":{request_id}}}')
    assert [clients.recv_json(ws) for _ in range(10)] == [
        {"result": [], "id": request_id} for request_id in range(1, 11)
    ]
    time.sleep(0.5)
    ws.pong(b"unsolicited")  # 6 within the last second: 5 sent 0.5 s ago, and this
    _, code, reason = clients.read_until_close(ws)
    assert (code, reason) == TOO_MANY


def test_answers_to_the_servers_own_pings_are_not_counted(simulator, clients):
    sim = simulator(Market.generated(["btcusdt"], rate=50), ping_interval=0.05)
    ws = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        clients.next_frame(ws)  # websocket-client answers the pings on the way
    record = sim.connections[0]
    assert len(record.pongs) >= 10 and record.closed_at is None
    assert sim.log.close_codes == {}


def test_subscribe_200_streams_on_a_bare_stream_connection_then_list_them(sim, clients):
    streams = ["btcusdt@trade"] + [f"s{n:03d}usdt@trade" for n in range(199)]
    ws = clients.connect(f"{sim.ws_url}/stream")
    subscribe(ws, streams, 1)
    assert clients.recv_json(ws) == {"result": None, "id": 1}
    events = [clients.recv_json(ws) for _ in range(5)]
    assert {event["stream"] for event in events} == {"btcusdt@trade"}  # wrapped: /stream
    ids = [event["data"]["t"] for event in events]
    assert ids == list(range(1, 6))
    ws.send('{"method":"LIST_SUBSCRIPTIONS","id":2}')
    assert reply(clients, ws, 2) == {"result": streams, "id": 2}
    assert sim.connections[0].streams == streams


def test_more_than_1024_streams_by_subscribe_is_an_error_answer(sim, clients):
    names = [f"s{n:04d}usdt@trade" for n in range(1100)]
    ws = clients.connect(f"{sim.ws_url}/stream?streams={'/'.join(names[:24])}")
    subscribe(ws, names[24:1000], 1)
    assert reply(clients, ws, 1) == {"result": None, "id": 1}
    subscribe(ws, names[990:1025], 2)  # 10 already there, 25 new: 1025
    message = reply(clients, ws, 2)
    assert message["error"]["code"] == 2 and "1025" in message["error"]["msg"]
    assert message["error"]["msg"].startswith("Invalid request: ")
    subscribe(ws, names[1000:1024] + names[:10], 3)  # up to 1024 exactly
    assert reply(clients, ws, 3) == {"result": None, "id": 3}
    ws.send('{"method":"LIST_SUBSCRIPTIONS","id":4}')
    assert reply(clients, ws, 4) == {"result": names[:1024], "id": 4}
    assert ws.connected and sim.connections[0].closed_at is None

    fresh = clients.connect(f"{sim.ws_url}/ws")
    subscribe(fresh, names[:1025], 5)
    assert reply(clients, fresh, 5)["error"]["code"] == 2
    fresh.send('{"method":"LIST_SUBSCRIPTIONS","id":6}')
    assert reply(clients, fresh, 6) == {"result": [], "id": 6}  # none of them taken


def test_more_streams_than_the_limit_by_url_refuse_the_handshake(simulator, clients):
    sim = simulator(Market.generated(["btcusdt"], rate=10), max_streams=3)
    names = ["btcusdt@trade", "a@trade", "b@trade", "c@trade"]
    clients.connect(f"{sim.ws_url}/stream?streams={'/'.join(names[:3] + names[:1])}")  # 3 distinct
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        clients.connect(f"{sim.ws_url}/stream?streams={'/'.join(names)}")
    assert refused.value.status_code == 400
    assert b"4 streams, more than the 3" in refused.value.resp_body
    assert sim.log.statuses == {101: 1, 400: 1}
