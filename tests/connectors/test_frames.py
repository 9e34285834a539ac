"""The frame reader against real socket pairs: frames split anywhere, every length encoding,
masking, and oversized frames skipped without being held."""

import contextlib
import os
import socket
import struct

import pytest

from connectors.websocket.frames import (
    EVIDENCE_BYTES,
    OP_BINARY,
    OP_PING,
    OP_TEXT,
    FrameReader,
    PeerClosed,
)


def encode(
    payload: bytes, opcode: int = OP_TEXT, fin: bool = True, mask: bytes | None = None
) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    n, mbit = len(payload), 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 1 << 16:
        head += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    b.settimeout(0.2)
    yield a, b
    a.close()
    b.close()


def payload(frame) -> bytes:
    """Ordinary text frames come as their payload bytes, anything else as a Frame."""
    return frame if type(frame) is bytes else frame.payload


def read_all(reader: FrameReader, want: int):
    frames = []
    for _ in range(200):
        frames += reader.read()
        if len(frames) >= want:
            break
    return frames


def test_frames_split_across_reads(pair):
    writer, sock = pair
    payloads = [b"x" * n for n in (0, 1, 125, 126, 65535, 65536, 200_000)]
    wire = (
        b"".join(encode(p) for p in payloads)
        + encode(b"hi", OP_PING)
        + encode(b"\x00\x01", OP_BINARY)
    )
    reader = FrameReader(sock, max_payload=1 << 20)
    frames = []
    for i in range(0, len(wire), 7777):  # chunk boundaries fall inside headers and payloads
        writer.sendall(wire[i : i + 7777])
        frames += reader.read()
    frames += read_all(reader, len(payloads) + 2 - len(frames))
    assert [payload(f) for f in frames] == [*payloads, b"hi", b"\x00\x01"]
    assert all(type(f) is bytes for f in frames[:-2])
    assert [f.opcode for f in frames[-2:]] == [OP_PING, OP_BINARY]


def test_masked_frame_is_unmasked(pair):
    writer, sock = pair
    writer.sendall(encode(b'{"e":"trade"}', mask=b"\x01\x02\x03\x04"))
    assert [payload(f) for f in read_all(FrameReader(sock, 1024), 1)] == [b'{"e":"trade"}']


def test_oversized_frame_is_skipped_with_evidence(pair):
    writer, sock = pair
    huge = os.urandom(3_000_000)
    writer.setblocking(False)
    reader = FrameReader(sock, max_payload=100_000)
    wire = memoryview(encode(b"before") + encode(huge) + encode(b"after"))
    frames, sent = [], 0
    while sent < len(wire):
        with contextlib.suppress(BlockingIOError):
            sent += writer.send(wire[sent : sent + 65536])
        frames += reader.read()
        assert len(reader._rest) <= 1 << 19  # never holds the oversized payload
    frames += read_all(reader, 3 - len(frames))
    assert [payload(f) for f in frames] == [b"before", huge[:EVIDENCE_BYTES], b"after"]
    assert frames[1].size == 3_000_000


def test_eof_raises(pair):
    writer, sock = pair
    writer.close()
    with pytest.raises(PeerClosed):
        FrameReader(sock, 1024).read()


def test_quiet_socket_returns_nothing(pair):
    _, sock = pair
    assert FrameReader(sock, 1024).read() == []
