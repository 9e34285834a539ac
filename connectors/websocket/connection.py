"""One WebSocket connection: websocket-client does the handshake (TLS, proxies, HTTP status),
the ``FrameReader`` does the reading, and control frames are answered here."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from dataclasses import dataclass

import websocket

from connectors.websocket.errors import ConnectFailed, ConnectionLost
from connectors.websocket.frames import (
    EVIDENCE_BYTES,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_TEXT,
    Frame,
    FrameReader,
    PeerClosed,
)
from connectors.websocket.gate import retry_after_seconds

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Message:
    """A complete data message. ``size`` exceeds ``len(payload)`` when it was over the limit."""

    payload: bytes
    binary: bool
    size: int


class Connection:
    def __init__(
        self,
        url: str,
        connect_timeout: float,
        poll_interval: float,
        max_message_bytes: int,
        ca_file: str | None = None,
    ):
        self.url = url
        self._ca_file = ca_file
        self._connect_timeout = connect_timeout
        self._poll_interval = poll_interval
        self._max = max_message_bytes
        self._ws: websocket.WebSocket | None = None
        self._reader: FrameReader | None = None
        self._fragments: list[Frame] = []  # a fragmented message's frames so far (their payloads
        self._fragments_size = 0  # only while the message is within the limit: see _add_fragment)
        self._closed: ConnectionLost | None = None  # a close frame, raised after what preceded it
        self.opened_at = 0.0
        self.last_frame_at = 0.0
        self.messages = 0
        self.pings = 0

    def open(self) -> None:
        try:
            ws = websocket.create_connection(
                self.url,
                timeout=self._connect_timeout,
                # the decoder validates; the library's check is pure Python
                skip_utf8_validation=True,
                enable_multithread=True,
                sslopt={"ca_certs": self._ca_file} if self._ca_file else None,
            )
        except websocket.WebSocketBadStatusException as exc:
            headers = exc.resp_headers or {}
            raise ConnectFailed(
                self.url,
                f"handshake answered HTTP {exc.status_code}",
                exc.status_code,
                retry_after_seconds(headers.get("retry-after")),
            ) from exc
        except (OSError, websocket.WebSocketException) as exc:
            raise ConnectFailed(self.url, _describe(exc)) from exc
        sock = ws.sock
        assert sock is not None  # create_connection returns it connected
        sock.settimeout(self._poll_interval)
        self._ws = ws
        self._reader = FrameReader(sock, self._max)
        self.opened_at = self.last_frame_at = time.monotonic()

    def receive(self) -> list[bytes | Message]:
        """What arrived within one poll interval, in order: payload ``bytes`` of each ordinary text
        message, a ``Message`` for anything else (binary, fragmented, oversized). Pings are
        answered here. Raises ConnectionLost."""
        if self._closed is not None:
            raise self._closed
        reader = self._reader
        if reader is None:
            raise RuntimeError("receive() before open()")
        try:
            frames = reader.read()
        except PeerClosed:
            raise ConnectionLost("connection closed without a close frame (EOF)") from None
        except ssl.SSLError as exc:
            raise ConnectionLost(f"TLS error: {exc}") from exc
        except OSError as exc:
            raise ConnectionLost(_describe(exc)) from exc
        if not frames:
            return []
        self.last_frame_at = time.monotonic()
        messages: list[bytes | Message] = []
        for frame in frames:
            if type(frame) is not Frame:  # bytes: a text message's payload, the common case
                messages.append(frame)
                continue
            op = frame.opcode
            if op in (OP_TEXT, OP_BINARY):
                if frame.fin:
                    messages.append(Message(frame.payload, op == OP_BINARY, frame.size))
                else:
                    self._fragments, self._fragments_size = [], 0
                    self._add_fragment(frame)
            elif op == OP_CONTINUATION and self._fragments:
                self._add_fragment(frame)
                if frame.fin:
                    messages.append(self._assemble())
            elif op == OP_PING:
                self.pings += 1
                self._send_pong(frame.payload)
            elif op == OP_CLOSE:
                self._closed = self._answer_close(frame.payload)
                break
        self.messages += len(messages)
        return messages

    def send_text(self, payload: bytes) -> None:
        """A text message to the peer (a request of the exchange's protocol). Raises
        ConnectionLost when the connection is gone: its reader finds out and reconnects."""
        ws = self._ws
        if ws is None:
            raise ConnectionLost("connection closed here")
        try:
            # enable_multithread: websocket-client locks a frame's write against pongs and close
            ws.send(payload, websocket.ABNF.OPCODE_TEXT)
        except (OSError, websocket.WebSocketException) as exc:
            raise ConnectionLost(f"cannot send: {_describe(exc)}") from exc

    def close(self, code: int = websocket.STATUS_NORMAL) -> None:
        ws, self._ws = self._ws, None
        if ws is None:
            return
        # the peer may be gone already; closing must still finish
        with contextlib.suppress(Exception):
            ws.send_close(code)
        sock = ws.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                # wakes a reader blocked in recv; close() alone does not
                sock.shutdown(socket.SHUT_RDWR)
        ws.shutdown()  # type: ignore[no-untyped-call]  # websocket-client leaves it unannotated

    def _add_fragment(self, frame: Frame) -> None:
        """Keeps a fragment; once the message is over the limit only its first bytes are kept, and
        nothing after a fragment that was itself cut (what follows would not be contiguous)."""
        if self._fragments_size <= self._max:
            self._fragments.append(frame)
        self._fragments_size += frame.size

    def _assemble(self) -> Message:
        fragments, size = self._fragments, self._fragments_size
        self._fragments = []
        binary = fragments[0].opcode == OP_BINARY
        if size <= self._max:
            return Message(b"".join(f.payload for f in fragments), binary, size)
        kept = []
        for fragment in fragments:
            kept.append(fragment.payload)
            if len(fragment.payload) < fragment.size:
                break
        return Message(b"".join(kept)[:EVIDENCE_BYTES], binary, size)

    def _send_pong(self, payload: bytes) -> None:
        ws = self._ws
        if ws is None:  # close() ran meanwhile, in the thread that stops this reader
            raise ConnectionLost("connection closed here")
        try:
            ws.pong(payload)
        except (OSError, websocket.WebSocketException) as exc:
            raise ConnectionLost(f"cannot answer ping: {_describe(exc)}") from exc

    def _answer_close(self, payload: bytes) -> ConnectionLost:
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
        reason = payload[2:].decode("utf-8", "replace")
        ws = self._ws
        if ws is not None:  # else close() ran meanwhile and has answered it
            with contextlib.suppress(OSError, websocket.WebSocketException):
                ws.send_close(code or websocket.STATUS_NORMAL)
        return ConnectionLost("server closed the connection", code, reason)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, (socket.gaierror, websocket.WebSocketAddressException)):
        return f"DNS lookup failed: {exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc}"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"
