"""Property-based fuzzing of the WebSocket frame reader (connectors/websocket/frames.py).

Streams of RFC 6455 frames, built by this file's own encoder (not by the code under test), go
through a real socket pair in hypothesis-chosen chunks. Whatever the chunking, the reader must
return exactly the frames sent, in order: the payload ``bytes`` of each unmasked final text frame
within the limit, a ``Frame`` for anything else (binary, fragments and their continuations, pings,
pongs, masked frames), and for an oversized frame a ``Frame`` with the announced size and the
first ``EVIDENCE_BYTES`` of its payload.

Most tests write and read in one thread: on a socket pair, what was written before a ``read()``
is what that ``recv`` sees, so each example's chunk boundaries are exactly the ones drawn and a
failure replays identically. One test writes from a thread with pauses instead.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time

from hypothesis import example, given
from hypothesis import strategies as st

from connectors.websocket.frames import EVIDENCE_BYTES, Frame, FrameReader, PeerClosed

# RFC 6455 opcodes, written out here rather than imported from the code under test.
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
SOCKET_TIMEOUT = 1.0  # a reader blocked this long on a pair that should have data is a failure


# -- the test's own encoder ------------------------------------------------------------------------


def encode(payload: bytes, opcode: int, fin: bool = True, mask: bytes | None = None) -> bytes:
    """One frame, RFC 6455 section 5.2: minimal length encoding, optional 4-byte masking key."""
    head = bytes([(0x80 if fin else 0x00) | opcode])
    mask_bit = 0x80 if mask is not None else 0x00
    n = len(payload)
    if n <= 125:
        head += bytes([mask_bit | n])
    elif n <= 0xFFFF:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + mask + masked


class Sent:
    """A frame as sent, and what the reader must return for it."""

    def __init__(self, payload: bytes, opcode: int, fin: bool, mask: bytes | None):
        self.payload, self.opcode, self.fin, self.mask = payload, opcode, fin, mask
        self.wire = encode(payload, opcode, fin, mask)

    def expected(self, max_payload: int):
        n = len(self.payload)
        if n > max_payload:
            return Frame(self.opcode, self.fin, self.payload[:EVIDENCE_BYTES], n)
        if self.opcode == TEXT and self.fin and self.mask is None:
            return self.payload
        return Frame(self.opcode, self.fin, self.payload, n)

    def __repr__(self) -> str:
        mask = f", mask={self.mask!r}" if self.mask is not None else ""
        shown = self.payload if len(self.payload) <= 40 else self.payload[:20] + b"..."
        return (
            f"Sent({shown!r} [{len(self.payload)} bytes], opcode={self.opcode}, "
            f"fin={self.fin}{mask})"
        )


# -- strategies ------------------------------------------------------------------------------------


def _random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


# Small payloads drawn byte by byte; long ones (every length encoding: 7-bit, 16-bit, 64-bit, and
# their edges) from a seeded generator, which keeps the examples cheap to draw and to shrink.
long_payloads = st.builds(
    _random_bytes,
    st.one_of(st.sampled_from([125, 126, 127, 0xFFFF, 0x10000, 0x10001]), st.integers(126, 70_000)),
    st.integers(0, 2**32),
)
payloads = st.one_of(st.binary(max_size=140), st.binary(max_size=140), long_payloads)
masks = st.one_of(st.none(), st.binary(min_size=4, max_size=4))


@st.composite
def controls(draw, max_len: int = 125) -> list[Sent]:
    opcode = draw(st.sampled_from([PING, PING, PONG]))
    return [Sent(draw(st.binary(max_size=max_len)), opcode, True, draw(masks))]


@st.composite
def messages(draw, payload_strategy=payloads, allow_masks: bool = True) -> list[Sent]:
    """A data message, whole or fragmented (control frames may come between its fragments)."""
    opcode = draw(st.sampled_from([TEXT, TEXT, BINARY]))
    mask_of = (lambda: draw(masks)) if allow_masks else (lambda: None)
    pieces = draw(st.lists(payload_strategy, min_size=1, max_size=4))
    frames = []
    for i, piece in enumerate(pieces):
        frames.append(
            Sent(piece, opcode if i == 0 else CONTINUATION, i == len(pieces) - 1, mask_of())
        )
        if i < len(pieces) - 1 and draw(st.integers(0, 3)) == 0:
            frames += (
                draw(controls())
                if allow_masks
                else [Sent(draw(st.binary(max_size=125)), PING, True, None)]
            )
    return frames


@st.composite
def streams(draw, items) -> list[Sent]:
    """Messages and control frames in any order, sometimes closed by a close frame."""
    frames = [frame for item in draw(st.lists(items, min_size=1, max_size=12)) for frame in item]
    if draw(st.integers(0, 7)) == 0:
        frames.append(Sent(struct.pack("!H", 1000) + b"bye", CLOSE, True, draw(masks)))
    return frames


# How the byte stream is cut: chunk sizes (the rest goes in one last chunk), each followed by a read
# or not (then the next chunk joins it in one recv).
chunkings = st.lists(
    st.tuples(
        st.one_of(st.integers(1, 12), st.integers(1, 600), st.integers(1, 80_000)), st.booleans()
    ),
    max_size=40,
)


# -- driving a real socket pair --------------------------------------------------------------------


class Pair:
    def __init__(self):
        self.writer, self.sock = socket.socketpair()
        self.sock.settimeout(SOCKET_TIMEOUT)

    def close(self) -> None:
        self.writer.close()
        self.sock.close()

    def __enter__(self) -> Pair:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_to_eof(reader: FrameReader, out: list) -> list:
    """Reads until the writer's EOF: everything the stream held must have come out by then."""
    deadline = time.monotonic() + 10.0
    while True:
        assert time.monotonic() < deadline, f"no EOF after 10 s; {len(out)} frames so far"
        try:
            out += reader.read()
        except PeerClosed:
            return out


def feed_in_chunks(wire: bytes, chunking: list, max_payload: int) -> list:
    """Writes ``wire`` in the drawn chunks, reading where drawn, then reads to EOF."""
    with Pair() as pair:
        reader = FrameReader(pair.sock, max_payload)
        pair.writer.setblocking(False)
        out, pos = [], 0
        cuts = [(size, read_now) for size, read_now in chunking] + [(len(wire), True)]
        for size, read_now in cuts:
            chunk = wire[pos : pos + size]
            pos += len(chunk)
            sent = 0
            while sent < len(chunk):
                try:
                    sent += pair.writer.send(chunk[sent:])
                except BlockingIOError:  # the pair's buffer is full: the reader takes what is there
                    out += reader.read()
            if chunk and read_now:
                out += reader.read()
            if pos == len(wire):
                break
        pair.writer.shutdown(socket.SHUT_WR)
        return read_to_eof(reader, out)


def reassemble(frames: list) -> list:
    """Data messages out of the reader's output, as a client does (RFC 6455 section 5.4)."""
    out, parts, opcode = [], [], None
    for f in frames:
        if type(f) is bytes:
            out.append((TEXT, f))
        elif f.opcode in (TEXT, BINARY):
            if f.fin:
                out.append((f.opcode, f.payload))
            else:
                parts, opcode = [f.payload], f.opcode
        elif f.opcode == CONTINUATION:
            parts.append(f.payload)
            if f.fin:
                out.append((opcode, b"".join(parts)))
    return out


def sent_messages(sent: list) -> list:
    out, parts, opcode = [], [], None
    for s in sent:
        if s.opcode in (TEXT, BINARY):
            parts, opcode = [s.payload], s.opcode
        elif s.opcode == CONTINUATION:
            parts.append(s.payload)
        else:
            continue
        if s.fin:
            out.append((opcode, b"".join(parts)))
    return out


# -- properties ------------------------------------------------------------------------------------

BIG_LIMIT = 1 << 20  # nothing in these streams exceeds it


@given(sent=streams(st.one_of(messages(), controls())), chunking=chunkings)
def test_any_chunking_yields_exactly_the_frames_sent(sent, chunking):
    wire = b"".join(s.wire for s in sent)
    frames = feed_in_chunks(wire, chunking, BIG_LIMIT)
    assert frames == [s.expected(BIG_LIMIT) for s in sent]
    assert reassemble(frames) == sent_messages(sent)
    # pings come out as control frames, with their payloads, in their place between fragments
    assert [
        (f.opcode, f.payload) for f in frames if type(f) is Frame and f.opcode in (PING, PONG)
    ] == [(s.opcode, s.payload) for s in sent if s.opcode in (PING, PONG)]


@given(
    sent=streams(st.one_of(messages(), controls())),
    chunks=st.lists(
        st.tuples(st.integers(1, 3000), st.sampled_from([0.0, 0.0, 0.0001, 0.001])), max_size=30
    ),
)
def test_a_writer_thread_with_pauses_yields_exactly_the_frames_sent(sent, chunks):
    """The same property with real concurrency: a thread writes while the reader reads."""
    wire = b"".join(s.wire for s in sent)
    errors: list = []
    with Pair() as pair:

        def write():
            try:
                pos = 0
                for size, pause in [*chunks, (len(wire), 0.0)]:
                    pair.writer.sendall(wire[pos : pos + size])
                    pos += size
                    if pos >= len(wire):
                        break
                    time.sleep(pause)
                pair.writer.shutdown(socket.SHUT_WR)
            except OSError as exc:  # surfaces in the test, not as a thread's traceback
                errors.append(exc)

        writer = threading.Thread(target=write, name="fuzz-frames-writer", daemon=True)
        writer.start()
        try:
            frames = read_to_eof(FrameReader(pair.sock, BIG_LIMIT), [])
        finally:
            pair.sock.shutdown(socket.SHUT_RDWR)  # frees a writer still blocked in sendall
            writer.join(SOCKET_TIMEOUT * 5)
        assert not writer.is_alive() and not errors, errors
    assert frames == [s.expected(BIG_LIMIT) for s in sent]


@st.composite
def limited_streams(draw):
    """A limit, and unmasked messages and pings around it: some within, some over."""
    limit = draw(st.one_of(st.integers(0, 300), st.integers(0, 5000)))
    sized = st.builds(
        _random_bytes,
        st.one_of(st.integers(0, 2 * limit + 300), st.just(limit), st.just(limit + 1)),
        st.integers(0, 2**32),
    )
    item = st.one_of(
        messages(payload_strategy=sized, allow_masks=False),
        st.builds(lambda p: [Sent(p, PING, True, None)], st.binary(max_size=125)),
    )
    frames = [frame for group in draw(st.lists(item, min_size=1, max_size=8)) for frame in group]
    return limit, frames


# Found by this property against frames.py of commit 80d023c: when a recv ends inside an
# oversized frame's payload, the evidence is what that recv held (here nothing), not its first
# bytes.
@example(case=(0, [Sent(b"\x00", PING, True, None)]), chunking=[(2, True)])
@given(case=limited_streams(), chunking=chunkings)
def test_oversized_frames_are_skipped_keeping_their_first_bytes_under_any_chunking(case, chunking):
    """An oversized frame comes out as one Frame: its announced size and the first EVIDENCE_BYTES
    of its payload (frames.py); the frames after it are unaffected."""
    limit, sent = case
    wire = b"".join(s.wire for s in sent)
    frames = feed_in_chunks(wire, chunking, limit)
    assert frames == [s.expected(limit) for s in sent]


# Found by this property against frames.py of commit 80d023c: the evidence is the masked bytes.
@example(payload=b"\xd8", mask=b"\x01\x00\x00\x00", opcode=TEXT, limit=0)
@given(
    payload=st.builds(_random_bytes, st.integers(1, 3000), st.integers(0, 2**32)),
    mask=st.binary(min_size=4, max_size=4),
    opcode=st.sampled_from([TEXT, BINARY]),
    limit=st.integers(0, 2999),
)
def test_masked_oversized_frame_keeps_its_first_bytes_unmasked(payload, mask, opcode, limit):
    """A masked frame is readable (frames.py); its evidence must be payload, not masked bytes."""
    if len(payload) <= limit:
        limit = len(payload) - 1
    sent = [Sent(payload, opcode, True, mask), Sent(b"after", TEXT, True, None)]
    frames = feed_in_chunks(b"".join(s.wire for s in sent), [], limit)
    assert frames == [s.expected(limit) for s in sent]
