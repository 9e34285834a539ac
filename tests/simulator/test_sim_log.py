"""The exchange's log: every HTTP status it answered and every close it sent, for a test to say
"no 414, no 429, no 1008 anywhere"."""

from __future__ import annotations

import pytest
import websocket

from connectors.simulator import Market
from connectors.simulator.exchange_log import CLOSE, HTTP, RESET


def test_a_clean_run_logs_only_accepted_handshakes_and_answers(simulator, clients, http_get):
    sim = simulator(Market.generated(["btcusdt", "ethusdt"], rate=100))
    for path in ("/ws/btcusdt@trade", "/stream?streams=ethusdt@trade"):
        clients.recv_json(clients.connect(sim.ws_url + path))
    assert http_get(f"{sim.http_url}/api/v3/historicalTrades?symbol=BTCUSDT")[0] == 200
    assert sim.log.statuses == {101: 2, 200: 1}
    assert not {414, 418, 429} & set(sim.log.statuses) and not sim.log.close_codes


def test_every_status_and_close_is_logged_in_order(simulator, clients, http_get):
    sim = simulator(Market.generated(["btcusdt"], rate=200), ping_interval=None)
    flooded = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    for _ in range(6):
        flooded.ping()
    assert clients.read_until_close(flooded)[1] == 1008
    with pytest.raises(websocket.WebSocketBadStatusException):
        clients.connect(f"{sim.ws_url}/nowhere")
    sim.faults.reject_handshake(429, retry_after=3)
    with pytest.raises(websocket.WebSocketBadStatusException):
        clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    with pytest.raises(websocket.WebSocketBadStatusException):
        clients.connect(f"{sim.ws_url}/stream?streams={'a@trade/' * 1000}b@trade")
    assert http_get(f"{sim.http_url}/api/v3/aggTrades?symbol=NOPE")[0] == 400
    shut = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    sim.faults.server_shutdown(grace=0)
    assert clients.read_until_close(shut)[1:] == (1001, "server shutdown")
    sim.faults.drop_after(2, reset=True)
    reset = clients.connect(f"{sim.ws_url}/ws/btcusdt@trade")
    with pytest.raises(ConnectionResetError):
        for _ in range(100):
            clients.next_frame(reset)
    sim.wait_for(lambda: sim.log.close_codes[1006] == 1)

    assert sim.log.statuses == {101: 3, 404: 1, 429: 1, 414: 1, 400: 1}
    assert sim.log.close_codes == {1008: 1, 1001: 1, 1006: 1}
    assert [(e.kind, e.code) for e in sim.log.entries] == [
        (HTTP, 101),
        (CLOSE, 1008),
        (HTTP, 404),
        (HTTP, 429),
        (HTTP, 414),
        (HTTP, 400),
        (HTTP, 101),
        (CLOSE, 1001),
        (HTTP, 101),
        (RESET, 1006),
    ]
    first_close = sim.log.entries[1]
    assert (first_close.path, first_close.reason, first_close.connection) == (
        "/ws/btcusdt@trade",
        "Too many requests",
        1,
    )
    assert sim.http_requests == [
        ("/nowhere", 404),
        ("/ws/btcusdt@trade", 429),
        (f"/stream?streams={'a@trade/' * 1000}b@trade", 414),
        ("/api/v3/aggTrades?symbol=NOPE", 400),
    ]
