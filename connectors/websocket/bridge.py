"""The bridge: WebSocket connection threads feeding a bounded buffer that a consumer drains.

Lifecycle, stated once: ``start()`` connects in the background; ``drain()`` hands over what arrived
and raises a ``FeedError`` once the bridge has given up; ``close()`` stops every thread and socket.

A supervisor thread owns the connections. Each connection has a reader thread that decodes frames
and puts records into the buffer through one sequencer, so that during a handover (two connections
open at once) a record both deliver passes only once.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from connectors.websocket.backoff import Backoff
from connectors.websocket.buffer import BoundedBuffer, Overflow
from connectors.websocket.connection import Connection, Message
from connectors.websocket.errors import (
    ConnectFailed,
    ConnectionLost,
    FeedError,
    ReconnectsExhausted,
    SilenceTimeout,
)
from connectors.websocket.gate import AttemptGate
from connectors.websocket.ratelimited_log import RateLimitedLog
from connectors.websocket.sequencing import SequenceTracker, Verdict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BridgeConfig:
    buffer_size: int = 100_000
    overflow: str = Overflow.BLOCK.value
    connect_timeout: float = 10.0
    # Binance pings every 20 s, so a healthy connection is never silent this long.
    silence_timeout: float = 45.0
    max_reconnect_attempts: int = 10
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_jitter: float = 0.2
    max_frame_bytes: int = 1_048_576
    # Binance ends a connection at 24 h (86,400 s); hand over to a fresh one ahead of that.
    max_connection_age: float = 85_000.0
    handover_timeout: float = 10.0
    poll_interval: float = 0.2
    gate_dir: str | None = None  # where the per-host attempt gate keeps its state (default: tmp)

    def __post_init__(self):
        Overflow(self.overflow)  # rejects an unknown policy at construction, not at the first overflow


class FrameDecoder(Protocol):
    """What an exchange plugs in. Records carry ``key`` and ``seq``; failures ``reason`` and
    ``error``; anything else is a control message with ``wants_reconnect``."""

    record_types: tuple[type, ...]
    failure_types: tuple[type, ...]

    def parse(self, payload: bytes, binary: bool) -> object: ...

    def oversized(self, prefix: bytes, size: int, limit: int) -> object: ...


class _Stopped(Exception):
    pass


class _Reader(threading.Thread):
    """Reads one connection until it is lost or stopped."""

    def __init__(self, bridge: "Bridge", conn: Connection, number: int):
        super().__init__(name=f"ws-reader-{bridge.name}-{number}", daemon=True)
        self.bridge, self.conn = bridge, conn
        # During a handover only: key -> first and last seq this connection carried.
        self.first_seen: dict = {}
        self.last_seen: dict = {}
        self.overlap_until: dict = {}  # key -> last seq of the connection this one replaced
        self.records = 0
        self.wants_handover = False
        self.lost: ConnectionLost | None = None
        self.fatal: BaseException | None = None
        self.ended = threading.Event()
        self._stopping = False

    def run(self) -> None:
        conn, silence = self.conn, self.bridge.config.silence_timeout
        try:
            while not self._stopping:
                messages = conn.receive()
                if messages:
                    self.bridge._ingest(self, messages)
                elif time.monotonic() - conn.last_frame_at > silence:
                    raise SilenceTimeout(f"no frame for {silence:g}s (timeout)")
        except ConnectionLost as exc:
            self.lost = exc
        except FeedError as exc:
            self.fatal = exc
        except Exception as exc:
            if not self._stopping:  # stop() closes the socket under the reader: errors then are expected
                log.exception("reader for %s crashed", conn.url)  # a bug must surface, not end silently
                self.fatal = FeedError(f"reader for {conn.url} crashed: {exc!r}")
        finally:
            if self._stopping:
                self.lost = None
            self.ended.set()
            self.bridge._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self.conn.close()
        self.join(timeout=5.0)


class Bridge:
    def __init__(self, url: str, decoder: FrameDecoder, config: BridgeConfig = BridgeConfig(), name: str = ""):
        self.url, self.decoder, self.config = url, decoder, config
        self.name = name or url
        self._buffer = BoundedBuffer(config.buffer_size, config.overflow)
        self._sequencer = SequenceTracker()
        self._gate = AttemptGate(url, config.gate_dir)
        self._lock = threading.Lock()  # sequencer and counters: two readers run during a handover
        self._put_lock = threading.Lock()  # one reader at a time from decoding to buffer
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._error: FeedError | None = None
        self._thread: threading.Thread | None = None
        self._readers_opened = 0
        self._handing_over = False
        self._rlog = RateLimitedLog(log)
        self._counts = dict.fromkeys(
            ("connects", "connect_failures", "disconnects", "silence_timeouts", "reconnects", "handovers",
             "messages", "records", "controls", "parse_failures", "oversized", "handover_duplicates"), 0)

    # -- the consumer's side ------------------------------------------------------------------

    def resume_after(self, positions: dict) -> "Bridge":
        """Continue after these last delivered sequence numbers (key -> seq), e.g. from a Flink
        checkpoint: anything at or below them is a duplicate, anything beyond the next a gap."""
        with self._lock:
            for key, seq in positions.items():
                self._sequencer.restore(key, seq)
        return self

    def start(self) -> "Bridge":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"ws-bridge-{self.name}", daemon=True)
            self._thread.start()
        return self

    def drain(self, max_items: int = 10_000) -> list:
        """What arrived, oldest first, without blocking. Raises the bridge's error once empty."""
        items = self._buffer.drain(max_items)
        if not items and self._error is not None:
            raise self._error
        return items

    @property
    def stats(self) -> dict[str, int]:
        with self._lock:
            counts = dict(self._counts)
            seq = self._sequencer
            counts.update(gaps=seq.gaps, missing_ids=seq.missing, reordered=seq.reordered,
                          duplicates=seq.duplicates - counts["handover_duplicates"])
        counts["buffer_dropped"] = self._buffer.dropped
        counts["buffered"] = len(self._buffer)
        counts["buffer_high_water"] = self._buffer.high_water
        counts["log_suppressed"] = self._rlog.suppressed_total
        return counts

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._buffer.close()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("bridge %s did not stop within %.0fs", self.name, timeout)
        self._rlog.flush(force=True)

    def __enter__(self) -> "Bridge":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the supervisor thread ----------------------------------------------------------------

    def _run(self) -> None:
        readers: list[_Reader] = []
        try:
            self._supervise(readers)
        except _Stopped:
            pass
        except FeedError as exc:
            log.error("feed %s failed: %s", self.name, exc)
            self._error = exc
        except Exception as exc:
            log.exception("bridge %s crashed", self.name)
            self._error = FeedError(f"bridge {self.name} crashed: {exc!r}")
        finally:
            for reader in readers:
                reader.stop()

    def _supervise(self, readers: list) -> None:
        cfg = self.config
        backoff = Backoff(cfg.backoff_initial, cfg.backoff_max, cfg.backoff_jitter)
        readers.append(self._open())  # a first connect failure is the consumer's to handle
        while True:
            reader = readers[-1]
            self._wake.wait(cfg.poll_interval)
            self._wake.clear()
            if self._stop.is_set():
                raise _Stopped()
            self._rlog.flush()
            if reader.fatal is not None:
                raise reader.fatal
            if reader.ended.is_set():
                readers.remove(reader)
                self._on_lost(reader)
                if reader.records:
                    backoff.reset()  # that connection worked: start the backoff afresh
                readers.append(self._reconnect(backoff, reader.lost))
                continue
            age = time.monotonic() - reader.conn.opened_at
            if reader.wants_handover or age > cfg.max_connection_age:
                why = "server announced shutdown" if reader.wants_handover else f"connection age {age:.0f}s"
                self._handover(readers, why)

    def _open(self) -> _Reader:
        delay = self._gate.reserve()
        if delay > 0:
            log.info("waiting %.1fs before connecting to %s (attempt rate limit or Retry-After)", delay, self.url)
            if self._stop.wait(delay):
                raise _Stopped()
        conn = Connection(self.url, self.config.connect_timeout, self.config.poll_interval,
                          self.config.max_frame_bytes)
        try:
            conn.open()
        except ConnectFailed as exc:
            self._count("connect_failures")
            if exc.retry_after is not None:
                self._gate.hold_off(exc.retry_after)
            log.warning("connect to %s (%s) failed: %s", self.url, self.name, exc.cause
                        + (f"; Retry-After {exc.retry_after:g}s honoured" if exc.retry_after is not None else ""))
            raise
        self._count("connects")
        self._readers_opened += 1
        log.info("connected to %s (%s)", self.url, self.name)
        reader = _Reader(self, conn, self._readers_opened)
        reader.start()
        return reader

    def _on_lost(self, reader: _Reader) -> None:
        lost = reader.lost or ConnectionLost("connection ended")
        self._count("silence_timeouts" if isinstance(lost, SilenceTimeout) else "disconnects")
        conn = reader.conn
        log.warning("connection to %s (%s) lost after %.1fs and %d messages: %s", self.url, self.name,
                    time.monotonic() - conn.opened_at, conn.messages, lost)
        conn.close()

    def _reconnect(self, backoff: Backoff, cause) -> _Reader:
        max_attempts = self.config.max_reconnect_attempts
        while True:
            if backoff.attempts >= max_attempts:
                raise ReconnectsExhausted(self.url, backoff.attempts, str(cause))
            delay = backoff.next_delay()
            log.info("reconnecting to %s in %.2fs (attempt %d of %d)", self.url, delay, backoff.attempts, max_attempts)
            if self._stop.wait(delay):
                raise _Stopped()
            try:
                reader = self._open()
            except ConnectFailed as exc:
                cause = exc
                continue
            self._count("reconnects")
            return reader

    def _handover(self, readers: list, why: str) -> None:
        """Opens the next connection before closing the old, so the switch loses nothing."""
        old = readers[-1]
        old.wants_handover = False
        log.info("handing over %s to a new connection: %s", self.name, why)
        with self._lock:  # from here on both readers note what they carry (see _decode)
            old.last_seen = dict(self._sequencer.last_seqs)
            self._handing_over = True
        try:
            new = self._open()
        except ConnectFailed:
            self._handing_over = False
            return  # the old connection goes on; its loss, when it comes, reconnects as usual
        readers.append(new)
        self._count("handovers")
        deadline = time.monotonic() + self.config.handover_timeout
        try:
            while not self._overlaps(old, new) and time.monotonic() < deadline:
                if old.ended.is_set() or new.ended.is_set() or self._stop.wait(self.config.poll_interval):
                    break
            if not self._overlaps(old, new):
                log.warning("handover of %s: no overlap seen with the old connection (a gap, if any, is logged)",
                            self.name)
            readers.remove(old)
            old.stop()
            with self._lock:  # what the old one delivered, the new one may still be catching up to
                new.overlap_until = dict(old.last_seen)
        finally:
            self._handing_over = False  # only now: the old reader may deliver duplicates until stopped

    def _overlaps(self, old: _Reader, new: _Reader) -> bool:
        """True once, for every key the old connection carried, the new one started no later."""
        with self._lock:
            return all(key in new.first_seen and new.first_seen[key] <= last + 1
                       for key, last in old.last_seen.items())

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    # -- reader threads -----------------------------------------------------------------------

    def _ingest(self, reader: _Reader, messages: list[Message]) -> None:
        # The put lock keeps two readers (during a handover) in order from decoding to buffer; the
        # counters' lock is released before a put that may block, so ``stats`` never waits on it.
        with self._put_lock:
            with self._lock:
                out = self._decode(reader, messages)
            self._buffer.put_many(out)

    def _decode(self, reader: _Reader, messages: list) -> list:
        """Runs once per message: kept flat on purpose (bench/ profiles it)."""
        parse, record_types, failure_types = self.decoder.parse, self.decoder.record_types, self.decoder.failure_types
        last_seqs, counts, tracking = self._sequencer.last_seqs, self._counts, self._handing_over
        out, n_records = [], 0
        for message in messages:
            item = parse(message, False) if type(message) is bytes else self._unusual(message)
            kind = type(item)
            if kind in record_types:
                key, seq = item.key, item.seq
                if tracking:  # a handover compares what each connection carried
                    reader.first_seen.setdefault(key, seq)
                    reader.last_seen[key] = seq
                if last_seqs.get(key, seq - 1) + 1 == seq:  # the next id: the common case, inline
                    last_seqs[key] = seq
                else:
                    verdict, missing = self._sequencer.accept(key, seq)
                    self._irregular(reader, key, seq, verdict, missing)
                    if not verdict.deliver:
                        continue
                out.append(item)
                n_records += 1
            elif kind in failure_types:
                counts["parse_failures"] += 1
                self._rlog.warning("parse failure", "dead letter from %s: %s: %s", self.name,
                                   item.reason, item.error)
                out.append(item)
            else:
                counts["controls"] += 1
                log.info("control message on %s: %s", self.name, item)
                if item.wants_reconnect:
                    reader.wants_handover = True
                    self._wake.set()
        counts["messages"] += len(messages)
        counts["records"] += n_records
        reader.records += n_records
        return out

    def _unusual(self, message: Message):
        limit = self.config.max_frame_bytes
        if message.size > limit:
            self._counts["oversized"] += 1
            return self.decoder.oversized(message.payload, message.size, limit)
        return self.decoder.parse(message.payload, message.binary)

    def _irregular(self, reader: _Reader, key, seq: int, verdict: Verdict, missing: int) -> None:
        """Logs what the sequencer counted; a handover's expected duplicates are counted apart."""
        if verdict is Verdict.GAP:
            self._rlog.warning("sequence gap", "%s: %s jumped to %d, %d ids missing", self.name, key, seq, missing)
        elif verdict is Verdict.LATE:
            self._rlog.warning("sequence reorder", "%s: %s id %d arrived late (reordered)", self.name, key, seq)
        elif self._handing_over or seq <= reader.overlap_until.get(key, -1):
            self._counts["handover_duplicates"] += 1  # expected: both connections carry the overlap
        else:
            self._rlog.warning("sequence duplicate", "%s: %s id %d seen before, dropped", self.name, key, seq)
