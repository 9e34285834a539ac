"""Reads WebSocket frames (RFC 6455) from a connected socket, many per ``recv``.

websocket-client reads each frame with several small ``recv`` calls (header, length, payload); at
tens of thousands of frames per second those calls are the whole cost (bench/results.md measures
websocket-client's own loop with json.loads at about 15k msg/s, this reader with the parser at about
150k). This reader pulls large chunks and slices frames out of them. It also enforces a size limit
from the header alone, so an oversized frame is skipped without ever being held in memory.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import final

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

_RECV_SIZE = 1 << 18
EVIDENCE_BYTES = 256  # how much of an oversized frame is kept for the dead letter
_FIN_TEXT = 0x80 | OP_TEXT
_U16, _U64 = struct.Struct(">H"), struct.Struct(">Q")


@final  # so that `type(item) is not Frame` tells mypy an item of read() is bytes
@dataclass(slots=True)
class Frame:
    opcode: int
    fin: bool
    payload: bytes
    size: int  # the payload length the header announced (larger than payload when truncated)


@dataclass(slots=True)
class _Skip:
    """An oversized frame being read past: its first bytes are kept (unmasked) as evidence."""

    opcode: int
    fin: bool
    size: int
    key: bytes | None  # the masking key, if the frame was masked
    left: int  # payload bytes still to read past
    kept: bytes = b""

    def take(self, data: bytes) -> None:
        if len(self.kept) < EVIDENCE_BYTES:
            self.kept += data[: EVIDENCE_BYTES - len(self.kept)]
        self.left -= len(data)

    def frame(self) -> Frame:
        kept = self.kept if self.key is None else _unmask(self.kept, self.key)
        return Frame(self.opcode, self.fin, kept, self.size)


class PeerClosed(Exception):
    """The socket reached EOF."""


class FrameReader:
    """``read()`` returns, in order, the payload ``bytes`` of each complete unmasked text frame
    within the limit (all that Binance sends but pings) and a ``Frame`` for anything else."""

    def __init__(self, sock: socket.socket, max_payload: int):
        self._sock = sock
        self._max_payload = max_payload
        self._rest = b""  # bytes of an incomplete frame, kept for the next read
        self._skipping: _Skip | None = None  # an oversized frame being read past

    def read(self) -> list[bytes | Frame]:
        """Blocks at most the socket's timeout; returns what is complete (maybe nothing)."""
        try:
            chunk = self._sock.recv(_RECV_SIZE)
        except (TimeoutError, BlockingIOError):
            return []
        if not chunk:
            raise PeerClosed()
        # bytes, not a bytearray: slicing bytes copies once, a bytearray slice twice
        return self._slice(self._rest + chunk if self._rest else chunk)

    def _slice(self, buf: bytes) -> list[bytes | Frame]:
        out: list[bytes | Frame] = []
        pos, end_of_data = 0, len(buf)
        skip = self._skipping
        if skip is not None:
            pos = min(skip.left, end_of_data)
            skip.take(buf[:pos])
            if skip.left:
                self._rest = b""
                return out
            out.append(skip.frame())
            self._skipping = None
        max_payload = self._max_payload
        while end_of_data - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, start = b1 & 0x7F, pos + 2
            if length == 126:
                if end_of_data - pos < 4:
                    break
                length, start = _U16.unpack_from(buf, pos + 2)[0], pos + 4
            elif length == 127:
                if end_of_data - pos < 10:
                    break
                length, start = _U64.unpack_from(buf, pos + 2)[0], pos + 10
            masked = b1 & 0x80  # servers must not mask, but a masked frame is still readable
            if masked:
                start += 4
            if length > max_payload:
                if end_of_data < start:
                    break
                skip = _Skip(
                    b0 & 0x0F,
                    bool(b0 & 0x80),
                    length,
                    buf[start - 4 : start] if masked else None,
                    length,
                )
                available = min(end_of_data - start, length)
                skip.take(buf[start : start + available])
                pos = start + available
                if skip.left:
                    self._skipping = skip
                    break
                out.append(skip.frame())
                continue
            end = start + length
            if end > end_of_data:
                break
            if b0 == _FIN_TEXT and not masked:
                out.append(buf[start:end])
            else:
                payload = buf[start:end]
                if masked:
                    payload = _unmask(payload, buf[start - 4 : start])
                out.append(Frame(b0 & 0x0F, bool(b0 & 0x80), payload, length))
            pos = end
        self._rest = buf[pos:]
        return out


def _unmask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    mask = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ mask).to_bytes(n, "big")
