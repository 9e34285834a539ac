"""Reads WebSocket frames (RFC 6455) from a connected socket, many per ``recv``.

websocket-client reads each frame with several small ``recv`` calls (header, length, payload); at
tens of thousands of frames per second those calls are the whole cost (see bench/ and
../shared/REFERENCE.md: about 60k msg/s at best). This reader pulls large chunks and slices frames
out of them. It also enforces a size limit from the header alone, so an oversized frame is skipped
without ever being held in memory.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

_RECV_SIZE = 1 << 18
EVIDENCE_BYTES = 256  # how much of an oversized frame is kept for the dead letter


@dataclass(slots=True)
class Frame:
    opcode: int
    fin: bool
    payload: bytes
    size: int  # the payload length the header announced (larger than payload when truncated)


class PeerClosed(Exception):
    """The socket reached EOF."""


class FrameReader:
    def __init__(self, sock: socket.socket, max_payload: int):
        self._sock = sock
        self._max_payload = max_payload
        self._buf = bytearray()
        self._skipping: Frame | None = None  # an oversized frame being discarded
        self._skip_left = 0

    def read(self) -> list[Frame]:
        """Blocks at most the socket's timeout; returns the complete frames received (maybe none)."""
        try:
            chunk = self._sock.recv(_RECV_SIZE)
        except (socket.timeout, BlockingIOError):
            return []
        if not chunk:
            raise PeerClosed()
        self._buf += chunk
        return self._slice()

    def _slice(self) -> list[Frame]:
        buf, frames, pos = self._buf, [], 0
        if self._skipping is not None:
            pos = min(self._skip_left, len(buf))
            self._skip_left -= pos
            if self._skip_left == 0:
                frames.append(self._skipping)
                self._skipping = None
        end_of_data = len(buf)
        while self._skipping is None and end_of_data - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, header = b1 & 0x7F, 2
            if length == 126:
                if end_of_data - pos < 4:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if end_of_data - pos < 10:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            mask_at = pos + header
            if b1 & 0x80:  # servers must not mask, but a masked frame is still readable
                header += 4
            start = pos + header
            if length > self._max_payload:
                if end_of_data < start:
                    break
                available = min(end_of_data - start, length)
                evidence = bytes(buf[start : start + min(available, EVIDENCE_BYTES)])
                frame = Frame(b0 & 0x0F, bool(b0 & 0x80), evidence, length)
                if available == length:
                    frames.append(frame)
                else:
                    self._skipping, self._skip_left = frame, length - available
                pos = start + available
                continue
            end = start + length
            if end > end_of_data:
                break
            payload = bytes(buf[start:end])
            if b1 & 0x80:
                payload = _unmask(payload, bytes(buf[mask_at : mask_at + 4]))
            frames.append(Frame(b0 & 0x0F, bool(b0 & 0x80), payload, length))
            pos = end
        del buf[:pos]
        return frames


def _unmask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    mask = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ mask).to_bytes(n, "big")
