"""One connection's frame handling against a raw server writing exact bytes: pings answered with
their payload, a close frame answered and reported after the data that preceded it, fragmented and
binary messages, oversized ones kept as evidence."""

from __future__ import annotations

import time

import pytest

from connectors.websocket.connection import Connection, Message
from connectors.websocket.errors import ConnectionLost
from connectors.websocket.frames import EVIDENCE_BYTES
from helpers.raw_websocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    TEXT,
    RawWebSocketServer,
    encode,
)


@pytest.fixture
def wire():
    """(connection, the server's side of it), both closed when the test ends."""
    server = RawWebSocketServer()
    conn = Connection(
        f"{server.url}/ws/btcusdt@trade",
        connect_timeout=2.0,
        poll_interval=0.05,
        max_message_bytes=1024,
    )
    conn.open()
    try:
        yield conn, server.wait_for_client("/ws/btcusdt@trade", 0)
    finally:
        conn.close()
        server.stop()


def receive(conn, n: int, timeout: float = 5.0) -> list:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < deadline, f"got only {got}"
        got += conn.receive()
    return got


def test_a_ping_is_answered_with_its_payload_and_is_no_message(wire):
    conn, peer = wire
    peer.send(encode(b"ping-1", PING) + encode(b'{"a":1}', TEXT))
    assert receive(conn, 1) == [b'{"a":1}']
    deadline = time.monotonic() + 5
    while peer.pongs != [b"ping-1"]:
        assert time.monotonic() < deadline, peer.pongs
        time.sleep(0.01)
    assert conn.pings == 1


def test_a_close_frame_is_answered_and_reported_after_the_data_before_it(wire):
    conn, peer = wire
    peer.send(
        encode(b"1", TEXT) + encode(b"2", TEXT) + encode((1011).to_bytes(2, "big") + b"bye", CLOSE)
    )
    assert receive(conn, 2) == [b"1", b"2"]
    with pytest.raises(ConnectionLost) as lost:
        conn.receive()
    assert (lost.value.code, lost.value.reason) == (1011, "bye")
    assert peer.closed.wait(5)  # our close frame answered theirs


def test_fragments_with_a_ping_between_them_make_one_message(wire):
    conn, peer = wire
    peer.send(
        encode(b'{"frag', TEXT, fin=False)
        + encode(b"p", PING)
        + encode(b'ment":1}', CONTINUATION)
        + encode(b"\x00\x01", BINARY)
    )
    assert receive(conn, 2) == [
        Message(b'{"fragment":1}', False, 14),
        Message(b"\x00\x01", True, 2),
    ]


def test_an_oversized_fragmented_message_keeps_only_its_first_bytes(wire):
    conn, peer = wire
    first, second = b"a" * 900, b"b" * 900  # each within the 1024-byte limit, together over it
    peer.send(encode(first, TEXT, fin=False) + encode(second, CONTINUATION) + encode(b"next", TEXT))
    assert receive(conn, 2) == [Message((first + second)[:EVIDENCE_BYTES], False, 1800), b"next"]
