"""The bridge: WebSocket connection threads feeding a bounded buffer that a consumer drains.

Lifecycle, stated once: ``resume_after()`` / ``resume_at()`` (optional), then ``start()`` connects
in the background; ``drain()`` hands over what arrived and raises a ``FeedError`` once the bridge
has given up; ``close()`` stops every thread and socket. A start in the past (``resume_at``)
replays the history up to now before the first connection opens, or only up to its ``until``,
and then the feed is ``finished``: it never connects. ``join()`` adds keys while it runs.

A bridge reads its streams over one line, or over several (redundancy: the same streams from one
URL each, line.py), merged as exchanges' feed arbitration does it: records pass in each key's
sequence order, the first copy of each wins and later copies are dropped, and ids one line skips
are a gap only once no other line can still deliver them (or after ``line_lag_limit``); only
then does the history fill them. With every line down, what the exchange sent meanwhile is
fetched when the first one is back.

Threads and who may do what:

- the consumer calls ``drain()`` and reads ``stats``; nothing else once started;
- the bridge's thread starts the lines, settles what the arbitration parked, sends the requests
  queued for the exchange (``send``: only this thread writes to a connection, paced at
  ``request_interval`` per connection), has joined keys subscribed (``extend``), and stops the
  lines all when one fails for good;
- a join's thread finds where each joined key starts (``join``: a history lookup may take a
  while, and the bridge's thread must keep settling);
- each line's supervisor opens, replaces and closes its connections (line.py);
- one reader thread per connection decodes frames and puts records into the buffer through one
  sequencer, so a record that two connections deliver (a handover, another line) passes once;
- the backfill thread (with a ``History``) fetches what the stream skipped (``backfill.py``).

Locks, always taken in this order: ``connecting`` (one connection attempt of any line at a time),
``_put_lock`` (one reader at a time between decoding and the buffer: order), ``_lock`` (the
sequencer, the arbitration, the counters and the backfill's episodes; never held while waiting for
the buffer or the network, so ``stats`` and ``drain`` never wait on a slow producer).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic, Protocol, Self, TypeVar

from connectors.websocket.backfill import (
    RETRY_INITIAL,
    RETRY_MAX,
    Backfiller,
    History,
    HistoryUnavailable,
)
from connectors.websocket.buffer import Barrier, BoundedBuffer
from connectors.websocket.config import BridgeConfig
from connectors.websocket.connection import Message
from connectors.websocket.errors import ConnectionLost, FeedError, short_url
from connectors.websocket.line import Line, Reader, Stopped
from connectors.websocket.ratelimited_log import RateLimitedLog
from connectors.websocket.sequencing import SequenceTracker, Verdict

log = logging.getLogger(__name__)

REPLAY_REPORT_S = 10.0  # a long replay says how far it has come this often
REPLAY_POLL_S = 0.5

# What a bridge delivers: its decoder's records and failures and its history's (the subclass for an
# exchange names them: BinanceFeed's are Trade, AggTrade and DeadLetter).
ItemT = TypeVar("ItemT")


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


# One record parked by the arbitration of redundant lines: (record, its reader, when parked).
_Parked = tuple[Any, Reader, float]


class Bridge(Generic[ItemT]):
    """See the module docstring. ``ItemT``: what ``drain`` hands over (see its definition).

    ``urls``: one per line; several lines read the same streams (redundancy), and the first copy
    of each record wins."""

    def __init__(
        self,
        urls: Sequence[str],
        decoder: FrameDecoder,
        config: BridgeConfig = BridgeConfig(),
        name: str = "",
        history: History | None = None,
        request_interval: float = 0.0,
    ) -> None:
        """``request_interval``: seconds at least between two requests sent on one connection (the
        exchange's limit on the messages a client sends)."""
        if not urls:
            raise ValueError("a bridge needs at least one URL")
        self.decoder, self.config = decoder, config
        self.name = name or short_url(urls[0])
        self.stopping = threading.Event()
        self.connecting = threading.Lock()
        self._lines = [Line(self, i, url, len(urls)) for i, url in enumerate(urls)]
        self.where = " + ".join(line.where for line in self._lines)  # what log lines show
        self._redundant = len(self._lines) > 1
        self._buffer = BoundedBuffer(config.buffer_size, config.overflow)
        self._sequencer = SequenceTracker()
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
        self._catching_up = False  # a catch-up's barrier waits for a line to connect
        self._start_time: tuple[int, list[str]] | None = None  # resume_at(): (time in ms, keys)
        self._until: int | None = None  # resume_at(): the replay's end, ms; no live part
        self._targets: dict[str, int] = {}  # key -> last seq to replay (with ``_until``)
        self._finished = False  # the replay up to ``_until`` is in the buffer: nothing follows
        # Redundant lines: key -> seq -> a record that jumped ahead on one line while another may
        # still deliver what it skipped; key -> (seq, monotonic time) of a record delivered, whose
        # copy tells how far the other line trails (one probe a key at a time: cheap, unbiased).
        self._parked: dict[str, dict[int, _Parked]] = {}
        self._probes: dict[str, tuple[int, float]] = {}
        self._wake = threading.Event()
        self._error: FeedError | None = None
        self._thread: threading.Thread | None = None
        self._restored: dict[str, int] = {}  # resume_after's positions: below them, duplicates
        # Requests for the exchange: queued by any thread (``send``), written by the bridge's
        # thread no closer together than ``request_interval`` on one connection.
        self._outbox: deque[tuple[Reader, bytes]] = deque()
        self._next_send: dict[Reader, float] = {}
        self._request_interval = request_interval
        self._joins: deque[list[str]] = deque()  # keys whose start is known: to subscribe
        self._join_threads: list[threading.Thread] = []
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
                "requests",  # sent to the exchange (subscriptions, their checks)
                "requests_refused",  # answered with an error: logged with the exchange's reason
                "joined",  # keys added while running (join)
                "resubscribed",  # streams a new connection lacked, subscribed again
                "parse_failures",
                "oversized",
                "history_behind_ms",  # a level: how far behind now the replay stands (0: done)
                "history_eta_s",  # a level: the replay's estimated seconds to go
            ),
            0,
        )

    @property
    def urls(self) -> list[str]:
        """Each line's URL, as its next connection will open it."""
        return [line.url for line in self._lines]

    # -- the consumer's side ------------------------------------------------------------------

    def resume_after(self, positions: Mapping[str, int]) -> Self:
        """Continue after these last delivered sequence numbers (key -> seq), e.g. from a Flink
        checkpoint: anything at or below them is a duplicate; with a history, what came after them
        is fetched before the live stream goes on."""
        with self._lock:
            for key, seq in positions.items():
                self._sequencer.restore(key, seq)
                self._restored[key] = seq
        return self

    def resume_at(self, time_ms: int, keys: Iterable[str], until_ms: int | None = None) -> Self:
        """Start these keys (those without a ``resume_after`` position) at the first record at or
        after ``time_ms``, replayed from the history before the first connection opens (no
        deadline: days of it, whatever the history); with ``until_ms``, end before the first
        record at or after it, and never connect."""
        if self._history is None:
            raise ValueError("starting at a time needs a history to fetch from")
        self._start_time = (time_ms, list(keys))
        self._until = until_ms
        return self

    def join(self, keys: Sequence[str], start_ms: int | None) -> None:
        """Adds ``keys`` while the feed runs; returns at once (call from any thread). Each starts
        at its first record at or after ``start_ms``, or after its newest when it has none since
        (None, or no history: at its first live one): a thread of the join looks that up, then
        the bridge's thread has them subscribed (``extend``), and what a key published before
        its first live record is fetched as any gap is."""
        keys = list(keys)
        thread = threading.Thread(
            target=self._find_starts,
            args=(keys, start_ms),
            name=f"ws-join-{self.name}",
            daemon=True,
        )
        self._join_threads = [t for t in self._join_threads if t.is_alive()] + [thread]
        thread.start()

    def extend(self, keys: list[str]) -> None:
        """In the bridge's thread: subscribe ``keys`` on every line (the exchange's protocol: a
        subclass's). Their starts are in the sequencer already."""
        raise NotImplementedError(f"{type(self).__name__} cannot add keys while it runs")

    def send(self, reader: Reader, payload: bytes) -> None:
        """Queues a request for ``reader``'s connection (any thread); dropped if the connection
        is gone by its turn (a new connection asks again: ``on_connected``)."""
        self._outbox.append((reader, payload))
        self._wake.set()

    def on_connected(self, reader: Reader) -> None:
        """A line's new connection is open (the line's supervisor thread): a subclass may
        ``send`` requests on it."""

    def on_control(self, reader: Reader, item: Any) -> bool:
        """A control message ``reader`` received (under the bridge's lock: no waiting here);
        True when the subclass handled it, else it is logged."""
        return False

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
        line is open (what the exchange publishes meanwhile comes later, from the history) and
        while a backfill's barrier is in the buffer. A consumer that merges this feed with others
        keeps their event time from running ahead meanwhile (connectors/flink/source.py). What
        the arbitration of redundant lines parks is not held for: it waits at most
        ``line_lag_limit``, which a consumer keeps under its lateness bound (job/main.py)."""
        if self._finished:
            return False  # nothing older than what it delivered can come any more
        return not any(line.open for line in self._lines) or self._buffer.barriers > 0

    @property
    def stats(self) -> dict[str, int]:
        """Counts since the start, which only grow, and levels, which say what is now:
        ``buffered``, ``buffer_capacity``, ``buffer_high_water``, ``connected`` (connections open),
        ``backfilling`` (backfills running). ``copies``: records another connection of this feed
        had delivered already (a handover's overlap, the other lines), dropped; ``duplicates``:
        records delivered before (by the same connection, or before a restart). With redundant
        lines, per line N (from 1): ``lineN_records_first`` (records it delivered first),
        ``lineN_records_second`` (copies it delivered after another line, dropped),
        ``lineN_trail_ms`` (how far its copies came behind the first: a moving average),
        ``lineN_reconnects``, ``lineN_connected``."""
        with self._lock:
            counts = dict(self._counts)
            seq = self._sequencer
            counts.update(
                gaps=seq.gaps,
                missing_ids=seq.missing,
                reordered=seq.reordered,
                duplicates=seq.duplicates,
                copies=sum(line.copies for line in self._lines),
            )
            if self._backfill is not None:
                counts.update(self._backfill.stats)
            if self._redundant:
                for line in self._lines:
                    n = f"line{line.number + 1}_"
                    counts[n + "records_first"] = line.records
                    counts[n + "records_second"] = line.copies
                    counts[n + "trail_ms"] = round(line.trail_ms)
                    counts[n + "reconnects"] = line.reconnects
                    counts[n + "connected"] = int(line.open)
        counts["buffer_dropped"] = self._buffer.dropped
        counts["buffered"] = len(self._buffer)
        counts["buffer_capacity"] = self._buffer.capacity
        counts["buffer_high_water"] = self._buffer.high_water
        counts["connected"] = sum(r.open for line in self._lines for r in line.readers)
        counts["log_suppressed"] = self._rlog.suppressed_total
        return counts

    def close(self, timeout: float = 10.0) -> None:
        self.stopping.set()
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
        for thread in self._join_threads:
            thread.join(timeout)
        self._rlog.flush(force=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the bridge's thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._resolve_start_time()
            self._replay()
            if self._until is not None:
                self._finished = True
                log.info(
                    "%s: history replayed up to %s: no live part", self.name, _utc(self._until)
                )
                return
            self._start_lines()
            while True:
                self._wake.wait(self.config.poll_interval)
                self._wake.clear()
                if self.stopping.is_set():
                    raise Stopped()
                self._rlog.flush()
                self._settle_parked()
                self._extend_joined()
                self._send_due()
                for line in self._lines:
                    if line.error is not None:
                        raise line.error
        except Stopped:
            pass
        except FeedError as exc:
            log.error("feed %s failed: %s", self.name, exc)
            self._error = exc
        except Exception as exc:
            log.exception("bridge %s crashed", self.name)
            self._error = FeedError(f"bridge {self.name} crashed: {exc!r}")
        finally:
            self.stopping.set()
            for line in self._lines:
                line.stop()

    def _start_lines(self) -> None:
        """The lines try their first connection in turn until one opens; a first connect failure
        of every line is the consumer's to handle. Then each goes on in its own thread (one that
        failed reconnects there)."""
        for line in self._lines:
            if line.connect_first():
                break
        else:
            failure = self._lines[-1].first_failure
            assert failure is not None  # connect_first sets it when it fails
            raise failure
        for line in self._lines:
            line.start()

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
                if self.stopping.wait(wait):
                    raise Stopped() from None
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
            if self.stopping.wait(REPLAY_POLL_S):
                raise Stopped()
        with self._lock:
            self._counts["history_behind_ms"] = self._counts["history_eta_s"] = 0
            replayed = self._backfill.counts["backfilled"]
        log.info(
            "%s: history replayed: %d records in %.1fs",
            self.name,
            replayed,
            time.monotonic() - started,
        )

    def _find_starts(self, keys: list[str], start_ms: int | None) -> None:
        """A join's thread: each key's start, then the keys go to the bridge's thread. A key
        whose start cannot be found starts live (said in the log): a join never fails the feed."""
        history = self._history
        if history is not None and start_ms is not None:
            deadline = time.monotonic() + self.config.backfill_timeout
            for key in keys:
                with self._lock:
                    if key in self._sequencer.last_seqs:  # restored from a checkpoint: goes on
                        continue
                try:
                    seq = self._seq_at(history, key, start_ms, deadline)
                    if seq is None:  # nothing since: what comes after its newest is new
                        newest = history.newest_seqs([key]) or {}
                        last = newest.get(key, -1)
                        if last >= 0:  # else it never traded: it starts at its first live one
                            self.resume_after({key: last})
                        continue
                except (FeedError, HistoryUnavailable) as exc:
                    log.warning("%s: %s joins live: %s", self.name, key, exc)
                    continue
                except Stopped:
                    return
                self.resume_after({key: seq - 1})
        self._joins.append(keys)
        self._wake.set()

    def _extend_joined(self) -> None:
        while self._joins:
            keys = self._joins.popleft()
            self.extend(keys)
            self.count("joined", len(keys))

    def _send_due(self) -> None:
        """Writes the queued requests whose connection may take one now, in order per
        connection; the others wait for the next round."""
        now, waiting = time.monotonic(), deque[tuple[Reader, bytes]]()
        held: set[Reader] = set()
        while self._outbox:
            reader, payload = self._outbox.popleft()
            if not reader.open:
                continue
            if reader in held or self._next_send.get(reader, 0.0) > now:
                held.add(reader)
                waiting.append((reader, payload))
                continue
            try:
                reader.conn.send_text(payload)
            except ConnectionLost as exc:  # its reader sees the loss too, and reconnects
                log.info("%s: request not sent: %s", reader.line.name, exc)
                continue
            self.count("requests")
            self._next_send[reader] = now + self._request_interval
        self._outbox.extendleft(reversed(waiting))
        self._next_send = {r: t for r, t in self._next_send.items() if r.open}

    def _settle_parked(self) -> None:
        """Redundant lines: records parked longer than ``line_lag_limit``, or that no other line
        can still fill in, go on: the ids they jumped over are a gap (filled from the history)."""
        if not self._parked:
            return
        now, limit = time.monotonic(), self.config.line_lag_limit
        with self._put_lock:
            with self._lock:
                out: list[Any] = []
                barriers = False
                for key in list(self._parked):
                    parked = self._parked[key]
                    first = parked[min(parked)]
                    last = self._sequencer.last_seqs[key]
                    if now - first[2] < limit and self._may_fill(first[1].line, key, last):
                        continue
                    del self._parked[key]
                    for seq in sorted(parked):
                        item, reader, _ = parked[seq]
                        deliver, barrier = self._sequence(key, seq, out)
                        barriers = barriers or barrier
                        if deliver:
                            out.append(item)
                            reader.records += 1
                            self._counts["records"] += 1
            self._put(out, barriers)

    # -- what the lines ask of the bridge (line.LineHost) ----------------------------------------

    def before_connect(self, line: Line) -> None:
        """A feed that had no line open catches up on what the exchange sent meanwhile: the
        barrier goes into the buffer before anything the new connection delivers. With another
        line open nothing was missed."""
        if self._backfill is None or self._catching_up:
            return
        if any(other.open for other in self._lines):
            return
        with self._put_lock:
            with self._lock:
                barrier = self._backfill.catch_up()
            if barrier is not None:
                self._buffer.put_barrier(barrier)
                self._catching_up = True

    def connected(self, line: Line) -> None:
        if self._backfill is not None:
            with self._lock:
                self._backfill.connected()
        self._catching_up = False
        self.on_connected(line.readers[-1])
        if self._redundant and line.reconnects:
            log.info(
                "%s is back: %d of %d lines open",
                line.name,
                sum(other.open for other in self._lines),
                len(self._lines),
            )

    def lost(self, line: Line) -> None:
        if self._redundant:
            left = [other.name for other in self._lines if other.open]
            if left:
                log.warning("%s: running on %s only until it is back", line.name, ", ".join(left))
            else:
                log.warning(
                    "%s: every line is down: what they miss comes from the history", line.name
                )

    def others_open(self, line: Line) -> bool:
        return all(other.open for other in self._lines if other is not line)

    def another_open(self, line: Line) -> bool:
        return any(other.open for other in self._lines if other is not line)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def caught_up(self, new: Reader) -> bool:
        """True once, for every key delivered so far, the new connection began no later than the
        next record the old one owes."""
        with self._lock:
            return all(
                key in new.first_seen and new.first_seen[key] <= last + 1
                for key, last in self._sequencer.last_seqs.items()
            )

    def flush_stash(self, reader: Reader) -> None:
        with self._put_lock:
            with self._lock:
                items, reader.stash = reader.stash or [], None
                out, barriers = self._decode(reader, items)
            self._put(out, barriers)

    # -- reader threads -----------------------------------------------------------------------

    def ingest(self, reader: Reader, messages: list[bytes | Message]) -> None:
        with self._put_lock:
            stash = reader.stash
            if stash is not None:
                with self._lock:
                    self._keep(reader, stash, messages)
                return
            with self._lock:
                out, barriers = self._decode(reader, messages)
            self._put(out, barriers)

    def _keep(self, reader: Reader, stash: list[object], messages: list[bytes | Message]) -> None:
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

    def _decode(self, reader: Reader, messages: Sequence[object]) -> tuple[list[Any], bool]:
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
        redundant, positions, parked, probes = (
            self._redundant,
            reader.positions,
            self._parked,
            self._probes,
        )
        now = time.monotonic() if redundant else 0.0
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
                    deliver = True
                else:
                    deliver, barrier = self._irregular_record(reader, item, key, seq, out, now)
                    barriers = barriers or barrier
                    watching = backfill is not None and bool(backfill.episodes)
                positions[key] = seq
                if not deliver:
                    continue
                out.append(item)
                n_records += 1
                if redundant:
                    if key not in probes:
                        probes[key] = (seq, now)
                    if key in parked:
                        self._unpark(key, out)
            elif kind in failure_types:
                counts["parse_failures"] += 1
                self._rlog.warning(
                    "parse failure",
                    "dead letter from %s: %s: %s",
                    reader.line.name,
                    item.reason,
                    item.error,
                )
                out.append(item)
            else:
                counts["controls"] += 1
                if not self.on_control(reader, item):
                    log.info("control message on %s: %s", reader.line.name, item)
                if item.wants_reconnect:
                    reader.wants_handover = True
                    reader.line.wake.set()
        counts["messages"] += len(messages)
        counts["records"] += n_records
        reader.records += n_records
        return out, barriers

    def _irregular_record(
        self, reader: Reader, item: Any, key: str, seq: int, out: list[Any], now: float
    ) -> tuple[bool, bool]:
        """A record that is not the next of its key: whether to deliver it now, and whether a
        barrier went into ``out``. The first copy of a record wins: a later copy from another
        connection (a handover's overlap, another line) is dropped. With redundant lines a record
        that jumps ahead waits (parked) while another line may still deliver the ids it skipped."""
        last = self._sequencer.last_seqs[key]  # a key without a position is always next
        if seq <= last:
            before, restored = reader.positions.get(key), self._restored.get(key)
            if (
                (before is None or seq > before)  # this connection has not carried it
                and (restored is None or seq > restored)  # nor was it delivered before a restart
                and not self._sequencer.is_missing(key, seq)
            ):
                reader.copies += 1
                probe = self._probes.get(key)
                if probe is not None and seq >= probe[0]:
                    del self._probes[key]
                    if seq == probe[0]:
                        reader.line.trail(now - probe[1])
                return False, False
        elif self._redundant and (key in self._parked or self._may_fill(reader.line, key, last)):
            self._parked.setdefault(key, {}).setdefault(seq, (item, reader, now))
            return False, False
        return self._sequence(key, seq, out)

    def _sequence(self, key: str, seq: int, out: list[Any]) -> tuple[bool, bool]:
        """The sequencer's verdict on an irregular record, logged and shown to the backfill:
        whether to deliver it, and whether a barrier went into ``out``."""
        verdict, missing = self._sequencer.accept(key, seq)
        self._irregular(key, seq, verdict, missing)
        barrier = False
        if self._backfill is not None:
            before = len(out)
            self._backfill.note_live(key, seq, verdict, missing, out)
            barrier = any(type(i) is Barrier for i in out[before:])
        return verdict.deliver, barrier

    def _may_fill(self, line: Line, key: str, last: int) -> bool:
        """Whether a line other than ``line`` may still deliver ``key``'s ids after ``last``: it
        has a connection open that has not gone quiet and has not passed ``last`` on that key."""
        quiet_after = time.monotonic() - self.config.line_lag_limit
        for other in self._lines:
            if other is line:
                continue
            for r in other.readers:
                if r.open and r.stash is None and r.conn.last_frame_at > quiet_after:
                    at = r.positions.get(key)
                    if at is None or at <= last:
                        return True
        return False

    def _unpark(self, key: str, out: list[Any]) -> None:
        """``key``'s next id was just delivered: the parked records that now follow on go too,
        those already delivered by another line are dropped."""
        parked, last_seqs, backfill = self._parked[key], self._sequencer.last_seqs, self._backfill
        last = last_seqs[key]
        while (entry := parked.pop(last + 1, None)) is not None:
            item, reader, _ = entry
            last = last_seqs[key] = last + 1
            if backfill is not None and backfill.episodes:
                backfill.note_live(key, last, Verdict.NEXT, 0, out)
            out.append(item)
            reader.records += 1
            self._counts["records"] += 1
        for seq in [s for s in parked if s <= last]:
            parked.pop(seq)[1].copies += 1
        if not parked:
            del self._parked[key]

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
        """Logs what the sequencer counted."""
        if verdict is Verdict.GAP:
            self._rlog.warning(
                "sequence gap", "%s: %s jumped to %d, %d ids missing", self.name, key, seq, missing
            )
        elif verdict is Verdict.LATE:
            self._rlog.warning(
                "sequence reorder", "%s: %s id %d arrived late (reordered)", self.name, key, seq
            )
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
