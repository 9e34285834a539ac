"""A websocket-client side for the simulator tests: connections that are always closed; and a
plain HTTP GET for its REST side."""

from __future__ import annotations

import struct
import urllib.error
import urllib.request

import orjson
import pytest
import websocket
from websocket import ABNF

DATA_OR_CLOSE = (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY, ABNF.OPCODE_CLOSE)


class Clients:
    def __init__(self) -> None:
        self._opened: list[websocket.WebSocket] = []

    def connect(self, url: str, timeout: float = 5.0, **options) -> websocket.WebSocket:
        ws = websocket.create_connection(url, timeout=timeout, skip_utf8_validation=True, **options)
        self._opened.append(ws)
        return ws

    @staticmethod
    def next_frame(ws: websocket.WebSocket) -> tuple[int, bytes]:
        """Next data or close frame; pings on the way are answered by websocket-client."""
        while True:
            opcode, frame = ws.recv_data_frame(control_frame=True)
            if opcode in DATA_OR_CLOSE:
                return opcode, bytes(frame.data)

    def recv_json(self, ws: websocket.WebSocket):
        opcode, data = self.next_frame(ws)
        assert opcode == ABNF.OPCODE_TEXT, (opcode, data)
        return orjson.loads(data)

    def read_until_close(
        self, ws: websocket.WebSocket, limit: int = 100_000
    ) -> tuple[list[bytes], int, str]:
        """Data frames up to the server's close frame, and its code and reason."""
        frames = []
        for _ in range(limit):
            opcode, data = self.next_frame(ws)
            if opcode == ABNF.OPCODE_CLOSE:
                (code,) = struct.unpack("!H", data[:2])
                return frames, code, data[2:].decode()
            frames.append(data)
        raise AssertionError(f"no close frame within {limit} frames")

    def close_all(self) -> None:
        for ws in self._opened:
            ws.shutdown()


@pytest.fixture
def clients(simulator):
    # Depending on the simulator fixture makes these close first, so stopping it is quick.
    opened = Clients()
    yield opened
    opened.close_all()


def _http_get(url: str, timeout: float = 5) -> tuple[int, dict, object]:
    """Status, headers and JSON body, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, dict(response.headers), orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), orjson.loads(error.read())


@pytest.fixture
def http_get():
    return _http_get
