"""The bridge: WebSocket connection threads feeding a bounded buffer that a consumer drains.

Lifecycle, stated once: ``resume_after()`` / ``resume_at()`` (optional), then ``start()`` connects
in the background; ``drain()`` hands over what arrived and raises a ``FeedError`` once the bridge
has given up; ``close()`` stops every thread and socket. A start in the past (``resume_at``)
replays the history up to now before the first connection opens, or only up to its ``until``,
and then the feed is ``finished``: it never connects.

Threads and who may do what:

- the consumer calls ``drain()`` and reads ``stats``; nothing else once started;
- the supervisor thread opens, replaces and closes connections, and starts catch-up backfills;
- one reader thread per connection decodes frames and puts records into the buffer through one
  sequencer, so a record that two connections deliver (a handover) passes once;
- the backfill thread (with a ``History``) fetches what the stream skipped (``backfill.py``).

Locks: ``_put_lock`` keeps one reader at a time between decoding and the buffer (order);
``_lock`` guards the sequencer, the counters and the backfill's episodes, and is never held while
waiting for the buffer or the network, so ``stats`` and ``drain`` never wait on a slow producer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, Self, TypeVar

from connectors.settings import check_settings, setting
from connectors.websocket.backfill import (
    RETRY_INITIAL,
    RETRY_MAX,
    Backfiller,
    History,
    HistoryUnavailable,
)
from connectors.websocket.backoff import Backoff
from connectors.websocket.buffer import Barrier, BoundedBuffer, Overflow
from connectors.websocket.connection import Connection, Message
from connectors.websocket.errors import (
    ConnectFailed,
    ConnectionLost,
    FeedError,
    ReconnectsExhausted,
    SilenceTimeout,
    short_url,
)
from connectors.websocket.gate import AttemptGate
from connectors.websocket.ratelimited_log import RateLimitedLog
from connectors.websocket.sequencing import SequenceTracker, Verdict

log = logging.getLogger(__name__)

REPLAY_REPORT_S = 10.0  # a long replay says how far it has come this often
REPLAY_POLL_S = 0.5

# What a bridge delivers: its decoder's records and failures and its history's (the subclass for an
# exchange names them: BinanceFeed's are Trade, AggTrade and DeadLetter).
ItemT = TypeVar("ItemT")


@dataclass(frozen=True)
class BridgeConfig:
    buffer_size: int = setting(
        100_000, "records held between the connection and the consumer", minimum=1
    )
    overflow: str = setting(
        Overflow.BLOCK.value,
        "what a full buffer does: block (the reader waits, nothing is "
        "dropped), drop_oldest, drop_newest (counted), fail (the feed fails)",
        choices=tuple(o.value for o in Overflow),
    )
    connect_timeout: float = setting(
        10.0, "seconds for TCP, TLS and the WebSocket handshake", metavar="S", positive=True
    )
    # Binance pings every 20 s, so a healthy connection is never silent this long.
    silence_timeout: float = setting(
        45.0, "a connection without any frame this long is lost", metavar="S", positive=True
    )
    max_reconnect_attempts: int = setting(
        10,
        "consecutive failed reconnects before the feed fails (a Flink job then restarts)",
        minimum=1,
    )
    backoff_initial: float = setting(
        0.5, "first delay between reconnects", metavar="S", positive=True
    )
    backoff_max: float = setting(
        30.0, "longest delay between reconnects", metavar="S", positive=True
    )
    backoff_jitter: float = setting(0.2, "random spread of each delay, as a fraction", minimum=0)
    max_frame_bytes: int = setting(
        1_048_576, "larger frames are skipped and dead-lettered as oversized_frame", minimum=256
    )
    # Binance ends a connection at 24 h (86,400 s); hand over to a fresh one ahead of that.
    max_connection_age: float = setting(
        85_000.0, "hand over to a new connection after this long", metavar="S", positive=True
    )
    handover_timeout: float = setting(
        10.0,
        "longest overlap of the old and the new connection of a handover",
        metavar="S",
        positive=True,
    )
    backfill_timeout: float = setting(
        120.0,
        "a backfill that has not finished after this long reports what "
        "it could not fetch as gap_unfilled and live delivery resumes",
        metavar="S",
        positive=True,
    )
    poll_interval: float = setting(
        0.2,
        "how often the threads look up from a socket (stop, silence, age)",
        metavar="S",
        positive=True,
    )
    ca_file: str | None = setting(
        None,
        "certificates (PEM) of the authorities to trust for TLS (wss://, "
        "https://) instead of the system's; verification is always on",
        metavar="FILE",
    )
    gate_dir: str | None = setting(
        None,
        "where the per-host attempt gate keeps its state (default: the system's temporary folder)",
        metavar="DIR",
    )

    def __post_init__(self) -> None:
        check_settings(self)  # refused at construction, not at first use


class FrameDecoder(Protocol):
    """What an exchange plugs in. Records carry ``key`` (a str) and ``seq`` (an int); failures
    ``reason`` and ``error``; anything else is a control message with ``wants_reconnect``. What
    each is, of those three, is told by its type (``record_types``, ``failure_types``)."""

    @property
    def record_types(self) -> tuple[type, ...]: ...

    @property
    def failure_types(self) -> tuple[type, ...]: ...

    def parse(self, payload: bytes, binary: bool) -> object: ...

    def oversized(self, prefix: bytes, size: int, limit: int) -> object: ...


class _Stopped(Exception):
    pass


class _Reader(threading.Thread):
    """Reads one connection until it is lost or stopped."""

    def __init__(self, bridge: Bridge[Any], conn: Connection, number: int, stash: bool) -> None:
        super().__init__(name=f"ws-reader-{bridge.name}-{number}", daemon=True)
        self.bridge, self.conn = bridge, conn
        # A handover's new connection keeps what it reads here until the old one has caught up
        # with it (``first_seen``: key -> its first seq); then it goes through the sequencer.
        self.stash: list[object] | None = [] if stash else None  # decoded, not yet sequenced
        self.first_seen: dict[str, int] = {}
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
            if (
                not self._stopping
            ):  # stop() closes the socket under the reader: errors then are expected
                log.exception(
                    "reader for %s crashed", conn.url
                )  # a bug must surface, not end silently
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


class Bridge(Generic[ItemT]):
    """See the module docstring. ``ItemT``: what ``drain`` hands over (see its definition)."""

    def __init__(
        self,
        url: str,
        decoder: FrameDecoder,
        config: BridgeConfig = BridgeConfig(),
        name: str = "",
        history: History | None = None,
    ) -> None:
        self.url, self.decoder, self.config = url, decoder, config
        self.where = short_url(url)  # what log lines show of the URL
        self.name = name or self.where
        self._buffer = BoundedBuffer(config.buffer_size, config.overflow)
        self._sequencer = SequenceTracker()
        self._gate = AttemptGate(url, config.gate_dir)
        self._lock = threading.Lock()
        self._put_lock = threading.Lock()
        self._history = history
        self._backfill = (
            Backfiller(
                history,
                self._buffer,
                self._sequencer,
                self._lock,
                config.backfill_timeout,
                self.name,
            )
            if history is not None
            else None
        )
        self._start_time: tuple[int, list[str]] | None = None  # resume_at(): (time in ms, keys)
        self._until: int | None = None  # resume_at(): the replay's end, ms; no live part
        self._targets: dict[str, int] = {}  # key -> last seq to replay (with ``_until``)
        self._finished = False  # the replay up to ``_until`` is in the buffer: nothing follows
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._error: FeedError | None = None
        self._thread: threading.Thread | None = None
        self._readers_opened = 0
        self._open_connections = 0  # connections open now (two during a handover)
        self._flushing_stash = False
        self._rlog = RateLimitedLog(log)
        self._counts = dict.fromkeys(
            (
                "connects",
                "connect_failures",
                "disconnects",
                "silence_timeouts",
                "reconnects",
                "handovers",
                "messages",
                "records",
                "controls",
                "parse_failures",
                "oversized",
                "handover_duplicates",
                "history_behind_ms",  # a level: how far behind now the replay stands (0: done)
                "history_eta_s",  # a level: the replay's estimated seconds to go
            ),
            0,
        )

    # -- the consumer's side ------------------------------------------------------------------

    def resume_after(self, positions: Mapping[str, int]) -> Self:
        """Continue after these last delivered sequence numbers (key -> seq), e.g. from a Flink
        checkpoint: anything at or below them is a duplicate; with a history, what came after them
        is fetched before the live stream goes on."""
        with self._lock:
            for key, seq in positions.items():
                self._sequencer.restore(key, seq)
        return self

    def resume_at(self, time_ms: int, keys: Iterable[str], until_ms: int | None = None) -> Self:
        """Start these keys (those without a ``resume_after`` position) at the first record at or
        after ``time_ms``, fetched from the history before the live stream goes on; with
        ``until_ms``, end before the first record at or after it, and never connect."""
        if self._history is None:
            raise ValueError("starting at a time needs a history to fetch from")
        self._start_time = (time_ms, list(keys))
        self._until = until_ms
        return self

    def start(self) -> Self:
        if self._thread is None:
            if self._backfill is not None:
                self._backfill.start()
            self._thread = threading.Thread(
                target=self._run, name=f"ws-bridge-{self.name}", daemon=True
            )
            self._thread.start()
        return self

    def drain(self, max_items: int = 10_000) -> list[ItemT]:
        """What arrived, oldest first, without blocking. Raises the bridge's error once empty."""
        items = self._buffer.drain(max_items)
        if not items and self._error is not None:
            raise self._error
        return items

    @property
    def finished(self) -> bool:
        """Whether a replay up to ``until`` has been delivered whole: nothing more will come."""
        return self._finished and len(self._buffer) == 0

    @property
    def holding(self) -> bool:
        """Whether records older than what this feed has delivered may still come: while no
        connection is open (what the exchange publishes meanwhile comes later, from the history)
        and while a backfill's barrier is in the buffer. A consumer that merges this feed with
        others keeps their event time from running ahead meanwhile (connectors/flink/source.py)."""
        if self._finished:
            return False  # nothing older than what it delivered can come any more
        return self._open_connections == 0 or self._buffer.barriers > 0

    @property
    def stats(self) -> dict[str, int]:
        """Counts since the start, which only grow, and levels, which say what is now:
        ``buffered``, ``buffer_capacity``, ``buffer_high_water``, ``connected`` (connections open),
        ``backfilling`` (backfills running)."""
        with self._lock:
            counts = dict(self._counts)
            seq = self._sequencer
            counts.update(
                gaps=seq.gaps,
                missing_ids=seq.missing,
                reordered=seq.reordered,
                duplicates=seq.duplicates - counts["handover_duplicates"],
            )
            if self._backfill is not None:
                counts.update(self._backfill.stats)
        counts["buffer_dropped"] = self._buffer.dropped
        counts["buffered"] = len(self._buffer)
        counts["buffer_capacity"] = self._buffer.capacity
        counts["buffer_high_water"] = self._buffer.high_water
        counts["connected"] = self._open_connections
        counts["log_suppressed"] = self._rlog.suppressed_total
        return counts

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._buffer.close()
        self._wake.set()
        if self._backfill is not None:
            self._backfill.close()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("bridge %s did not stop within %.0fs", self.name, timeout)
        if self._backfill is not None:
            self._backfill.join(timeout)
        self._rlog.flush(force=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
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
            self._open_connections = 0

    def _supervise(self, readers: list[_Reader]) -> None:
        cfg = self.config
        backoff = Backoff(cfg.backoff_initial, cfg.backoff_max, cfg.backoff_jitter)
        self._resolve_start_time()
        self._replay()
        if self._until is not None:
            self._finished = True
            log.info("%s: history replayed up to %s: no live part", self.name, _utc(self._until))
            return
        self._catch_up()
        readers.append(self._open())  # a first connect failure is the consumer's to handle
        self._connected()
        while True:
            reader = readers[-1]
            self._open_connections = sum(not r.ended.is_set() for r in readers)
            self._wake.wait(cfg.poll_interval)
            self._wake.clear()
            if self._stop.is_set():
                raise _Stopped()
            self._rlog.flush()
            if reader.fatal is not None:
                raise reader.fatal
            if reader.ended.is_set():
                readers.remove(reader)
                self._open_connections = sum(not r.ended.is_set() for r in readers)
                self._on_lost(reader)
                if reader.records:
                    backoff.reset()  # that connection worked: start the backoff afresh
                self._catch_up()
                readers.append(self._reconnect(backoff, reader.lost))
                self._connected()
                continue
            age = time.monotonic() - reader.conn.opened_at
            if reader.wants_handover or age > cfg.max_connection_age:
                why = (
                    "server announced shutdown"
                    if reader.wants_handover
                    else f"connection age {age:.0f}s"
                )
                self._handover(readers, why)

    def _resolve_start_time(self) -> None:
        """``resume_at``: each key without a position starts before its first record at that
        time."""
        history = self._history
        if self._start_time is None or history is None:  # resume_at() refuses to go without
            return
        time_ms, keys = self._start_time
        deadline = time.monotonic() + self.config.backfill_timeout
        for key in keys:
            with self._lock:
                resumed = key in self._sequencer.last_seqs  # a checkpointed position wins
            seq = None if resumed else self._seq_at(history, key, time_ms, deadline)
            if self._until is not None:  # after the start: a history may read on from there
                end = self._seq_at(history, key, self._until, deadline)
                if end is not None:
                    self._targets[key] = end - 1
            if resumed:
                continue
            if seq is None:
                log.info(
                    "%s: %s has no record at or after %d yet: it starts live",
                    self.name,
                    key,
                    time_ms,
                )
                continue
            log.info(
                "%s: %s starts at %d, its first record at or after %d", self.name, key, seq, time_ms
            )
            self.resume_after({key: seq - 1})

    def _seq_at(self, history: History, key: str, time_ms: int, deadline: float) -> int | None:
        delay = RETRY_INITIAL
        while True:
            try:
                return history.seq_at(key, time_ms)
            except HistoryUnavailable as exc:
                wait = exc.retry_after if exc.retry_after is not None else delay
                if exc.permanent or time.monotonic() + wait > deadline:
                    raise FeedError(f"cannot find where {key} stood at {time_ms}: {exc}") from exc
                log.warning(
                    "%s: looking up %s at %d: %s; again in %.2fs",
                    self.name,
                    key,
                    time_ms,
                    exc,
                    wait,
                )
                if self._stop.wait(wait):
                    raise _Stopped() from None
                delay = min(RETRY_MAX, delay * 2)

    def _replay(self) -> None:
        """A start in the past: the history from there up to now (or ``until``) goes into the
        buffer before any connection opens, so that a long catch-up holds back no live records
        meanwhile (the catch-up at the connect then fetches the seconds the replay took). Its
        progress goes to the log every ``REPLAY_REPORT_S`` and into ``stats``."""
        if self._backfill is None or self._start_time is None:
            return
        with self._put_lock:
            with self._lock:
                barrier = self._backfill.replay(self._targets)
            if barrier is None:
                return
            self._buffer.put_barrier(barrier)
        started, first_position = time.monotonic(), None
        reported = started
        end_ms = self._until
        while True:
            with self._lock:
                position = self._backfill.replay_position(barrier)
                replayed = self._backfill.counts["backfilled"]
            if position is None:
                break
            now = time.monotonic()
            target = end_ms if end_ms is not None else int(time.time() * 1000)
            if position and first_position is None:
                first_position, started = position, now
            behind = max(0, target - position) if position else 0
            eta = _eta(first_position, position, now - started, behind)
            with self._lock:
                self._counts["history_behind_ms"] = behind
                self._counts["history_eta_s"] = int(eta) if eta is not None else 0
            if now - reported >= REPLAY_REPORT_S:
                reported = now
                log.info(
                    "%s: history at %s, %d records replayed (%.0f/s), %s",
                    self.name,
                    _utc(position) if position else "its start",
                    replayed,
                    replayed / max(now - started, 1e-3),
                    f"about {_duration(eta)} to go" if eta is not None else "rate not known yet",
                )
            if self._stop.wait(REPLAY_POLL_S):
                raise _Stopped()
        with self._lock:
            self._counts["history_behind_ms"] = self._counts["history_eta_s"] = 0
            replayed = self._backfill.counts["backfilled"]
        log.info(
            "%s: history replayed: %d records in %.1fs",
            self.name,
            replayed,
            time.monotonic() - started,
        )

    def _catch_up(self) -> None:
        """Before a connection opens: what the stream sent while none was open is fetched, and
        what the new connection delivers waits behind it."""
        if self._backfill is None:
            return
        with self._put_lock:
            with self._lock:
                barrier = self._backfill.catch_up()
            if barrier is not None:
                self._buffer.put_barrier(barrier)

    def _connected(self) -> None:
        if self._backfill is not None:
            with self._lock:
                self._backfill.connected()

    def _open(self, stash: bool = False) -> _Reader:
        delay = self._gate.reserve()
        if delay > 0:
            log.info(
                "waiting %.1fs before connecting to %s (attempt rate limit or Retry-After)",
                delay,
                self.where,
            )
            if self._stop.wait(delay):
                raise _Stopped()
        conn = Connection(
            self.url,
            self.config.connect_timeout,
            self.config.poll_interval,
            self.config.max_frame_bytes,
            self.config.ca_file,
        )
        try:
            conn.open()
        except ConnectFailed as exc:
            self._count("connect_failures")
            if exc.retry_after is not None:
                self._gate.hold_off(exc.retry_after)
            log.warning(
                "connect to %s (%s) failed: %s",
                self.where,
                self.name,
                exc.cause
                + (
                    f"; Retry-After {exc.retry_after:g}s honoured"
                    if exc.retry_after is not None
                    else ""
                ),
            )
            raise
        self._count("connects")
        self._readers_opened += 1
        log.info("connected to %s (%s)", self.where, self.name)
        reader = _Reader(self, conn, self._readers_opened, stash)
        reader.start()
        return reader

    def _on_lost(self, reader: _Reader) -> None:
        lost = reader.lost or ConnectionLost("connection ended")
        self._count("silence_timeouts" if isinstance(lost, SilenceTimeout) else "disconnects")
        conn = reader.conn
        log.warning(
            "connection to %s (%s) lost after %.1fs and %d messages: %s",
            self.where,
            self.name,
            time.monotonic() - conn.opened_at,
            conn.messages,
            lost,
        )
        conn.close()

    def _reconnect(self, backoff: Backoff, cause: Exception | None) -> _Reader:
        max_attempts = self.config.max_reconnect_attempts
        while True:
            if backoff.attempts >= max_attempts:
                raise ReconnectsExhausted(self.url, backoff.attempts, str(cause))
            delay = backoff.next_delay()
            log.info(
                "reconnecting to %s in %.2fs (attempt %d of %d)",
                self.where,
                delay,
                backoff.attempts,
                max_attempts,
            )
            if self._stop.wait(delay):
                raise _Stopped()
            try:
                reader = self._open()
            except ConnectFailed as exc:
                cause = exc
                continue
            self._count("reconnects")
            return reader

    def _handover(self, readers: list[_Reader], why: str) -> None:
        """Opens the next connection before closing the old: the new one's records wait until the
        old one has delivered up to where the new one began, so the switch loses nothing."""
        old = readers[-1]
        old.wants_handover = False
        log.info("handing over %s to a new connection: %s", self.name, why)
        try:
            new = self._open(stash=True)
        except ConnectFailed:
            return  # the old connection goes on; its loss, when it comes, reconnects as usual
        readers.append(new)
        self._count("handovers")
        deadline = time.monotonic() + self.config.handover_timeout
        while not self._caught_up(new) and time.monotonic() < deadline:
            if (
                old.ended.is_set()
                or new.ended.is_set()
                or self._stop.wait(self.config.poll_interval)
            ):
                break
        if new.ended.is_set() and not old.ended.is_set():
            log.warning(
                "handover of %s: the new connection was lost; the old one goes on", self.name
            )
            readers.remove(new)
            new.stop()
            return
        if not self._caught_up(new):
            log.warning(
                "handover of %s: the old connection did not reach where the new one began "
                "(a gap, if any, is filled from the history)",
                self.name,
            )
        readers.remove(old)
        old.stop()
        self._flush_stash(new)

    def _caught_up(self, new: _Reader) -> bool:
        """True once, for every key delivered so far, the new connection began no later than the
        next record the old one owes."""
        with self._lock:
            return all(
                key in new.first_seen and new.first_seen[key] <= last + 1
                for key, last in self._sequencer.last_seqs.items()
            )

    def _flush_stash(self, reader: _Reader) -> None:
        with self._put_lock:
            with self._lock:
                items, reader.stash = reader.stash or [], None
                self._flushing_stash = True  # duplicates now are the overlap, expected
                try:
                    out, barriers = self._decode(reader, items)
                finally:
                    self._flushing_stash = False
            self._put(out, barriers)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    # -- reader threads -----------------------------------------------------------------------

    def _ingest(self, reader: _Reader, messages: list[bytes | Message]) -> None:
        with self._put_lock:
            stash = reader.stash
            if stash is not None:
                with self._lock:
                    self._keep(reader, stash, messages)
                return
            with self._lock:
                out, barriers = self._decode(reader, messages)
            self._put(out, barriers)

    def _keep(self, reader: _Reader, stash: list[object], messages: list[bytes | Message]) -> None:
        """A handover's new connection: parsed now, sequenced when the old one has caught up."""
        record_types, first_seen = self.decoder.record_types, reader.first_seen
        for message in messages:
            item: Any = (  # see _decode
                self.decoder.parse(message, False)
                if type(message) is bytes
                else self._unusual(message)
            )
            if type(item) in record_types:
                first_seen.setdefault(item.key, item.seq)
            stash.append(item)

    def _put(self, out: list[Any], barriers: bool) -> None:
        """Into the buffer in order; barriers the batch opened go in where they stand."""
        if not barriers:
            self._buffer.put_many(out)
            return
        chunk: list[Any] = []
        for item in out:
            if type(item) is Barrier:
                self._buffer.put_many(chunk)
                self._buffer.put_barrier(item)
                chunk = []
            else:
                chunk.append(item)
        self._buffer.put_many(chunk)

    def _decode(self, reader: _Reader, messages: Sequence[object]) -> tuple[list[Any], bool]:
        """Runs once per message: kept flat on purpose (bench/ profiles it). Returns what to put
        into the buffer and whether a backfill barrier is among it. ``messages``: what a connection
        received (``bytes``, ``Message``) or a handover's stash (items it already decoded).

        Items are ``Any`` here: what each is (record, failure, control) is told by its type's
        membership in the decoder's tuples, which mypy cannot follow; a cast per item would cost a
        call on the hot path."""
        parse, record_types, failure_types = (
            self.decoder.parse,
            self.decoder.record_types,
            self.decoder.failure_types,
        )
        last_seqs, counts, backfill = self._sequencer.last_seqs, self._counts, self._backfill
        watching = backfill is not None and bool(
            backfill.episodes
        )  # a backfill wants to see live records
        out: list[Any] = []
        n_records, barriers = 0, False
        for message in messages:
            item: Any = parse(message, False) if type(message) is bytes else self._unusual(message)
            kind = type(item)
            if kind in record_types:
                key, seq = item.key, item.seq
                if last_seqs.get(key, seq - 1) + 1 == seq:  # the next id: the common case, inline
                    last_seqs[key] = seq
                    if watching and backfill is not None:
                        backfill.note_live(key, seq, Verdict.NEXT, 0, out)
                else:
                    verdict, missing = self._sequencer.accept(key, seq)
                    self._irregular(key, seq, verdict, missing)
                    if backfill is not None:
                        before = len(out)
                        backfill.note_live(key, seq, verdict, missing, out)
                        barriers = barriers or any(type(i) is Barrier for i in out[before:])
                        watching = bool(backfill.episodes)
                    if not verdict.deliver:
                        continue
                out.append(item)
                n_records += 1
            elif kind in failure_types:
                counts["parse_failures"] += 1
                self._rlog.warning(
                    "parse failure",
                    "dead letter from %s: %s: %s",
                    self.name,
                    item.reason,
                    item.error,
                )
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
        return out, barriers

    def _unusual(self, message: object) -> object:
        """An oversized, binary or fragmented ``Message``, or an item a handover already parsed."""
        if type(message) is not Message:
            return message
        limit = self.config.max_frame_bytes
        if message.size > limit:
            self._counts["oversized"] += 1
            return self.decoder.oversized(message.payload, message.size, limit)
        return self.decoder.parse(message.payload, message.binary)

    def _irregular(self, key: str, seq: int, verdict: Verdict, missing: int) -> None:
        """Logs what the sequencer counted; a handover's expected duplicates are counted apart."""
        if verdict is Verdict.GAP:
            self._rlog.warning(
                "sequence gap", "%s: %s jumped to %d, %d ids missing", self.name, key, seq, missing
            )
        elif verdict is Verdict.LATE:
            self._rlog.warning(
                "sequence reorder", "%s: %s id %d arrived late (reordered)", self.name, key, seq
            )
        elif self._flushing_stash:
            self._counts["handover_duplicates"] += 1  # expected: both connections carry the overlap
        else:
            self._rlog.warning(
                "sequence duplicate", "%s: %s id %d seen before, dropped", self.name, key, seq
            )


def _eta(first: int | None, position: int, elapsed: float, behind: int) -> float | None:
    """Seconds until a replay that went from ``first`` to ``position`` (ms of record time) in
    ``elapsed`` seconds has made up ``behind`` ms more, at the same pace; None: no pace yet."""
    if first is None or position <= first or elapsed < 1.0:
        return None
    return behind / ((position - first) / elapsed)


def _utc(time_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time_ms / 1000))


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
