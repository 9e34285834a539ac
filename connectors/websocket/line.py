"""One line of a bridge: its streams over one endpoint, one connection at a time (two during a
handover), opened, watched and re-opened by a supervisor thread of its own.

A bridge has one line, or several reading the same streams (redundancy), ideally from different
endpoints; the bridge merges what they deliver (bridge.py). Lines are independent but for two
rules that keep them from failing together: they never open connections at the same moment (the
host's ``connecting`` lock, held for one attempt), and a line hands over to a new connection only
while every other line is open, unless its connection is about to reach the exchange's age limit.

Threads: the line's supervisor alone opens, replaces and closes its connections and changes
``readers`` (a tuple, replaced whole, which other threads may read at any time); each reader
thread reads one connection and hands what it reads to the host (``ingest``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from connectors.websocket.backoff import Backoff
from connectors.websocket.config import BridgeConfig
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

log = logging.getLogger(__name__)


class Stopped(Exception):
    """The bridge is closing: whoever waits gives up."""


class LineHost(Protocol):
    """What a line needs of its bridge (``Bridge``); every method but ``ingest`` is called from
    the line's supervisor thread."""

    config: BridgeConfig
    name: str
    stopping: threading.Event
    connecting: threading.Lock  # held for one connection attempt of any line

    def before_connect(self, line: Line) -> None:
        """Holding ``connecting``, before an attempt: a catch-up, if the feed needs one."""

    def connected(self, line: Line) -> None: ...

    def lost(self, line: Line) -> None: ...

    def ingest(self, reader: Reader, messages: list[bytes | Message]) -> None:
        """From the reader's thread: what its connection received, in order."""

    def caught_up(self, new: Reader) -> bool:
        """Whether a handover's new connection began no later than what the old one owes."""

    def flush_stash(self, reader: Reader) -> None: ...

    def others_open(self, line: Line) -> bool:
        """Whether every other line has a connection open (True for a line alone)."""

    def another_open(self, line: Line) -> bool:
        """Whether some other line has a connection open (False for a line alone)."""

    def count(self, name: str, n: int = 1) -> None: ...


class Reader(threading.Thread):
    """Reads one connection until it is lost or stopped."""

    def __init__(self, line: Line, conn: Connection, number: int, stash: bool) -> None:
        super().__init__(name=f"ws-reader-{line.name}-{number}", daemon=True)
        self.line, self.conn = line, conn
        # A handover's new connection keeps what it reads here until the old one has caught up
        # with it (``first_seen``: key -> its first seq); then it goes through the sequencer.
        self.stash: list[object] | None = [] if stash else None  # decoded, not yet sequenced
        self.first_seen: dict[str, int] = {}
        # key -> the last seq this connection carried: where a redundant line stands (bridge.py)
        self.positions: dict[str, int] = {}
        self.records = 0  # records this connection delivered first
        self.copies = 0  # records another line had delivered already
        self.wants_handover = False
        self.lost: ConnectionLost | None = None
        self.fatal: BaseException | None = None
        self.ended = threading.Event()
        self._stopping = False

    @property
    def open(self) -> bool:
        return not self.ended.is_set()

    def run(self) -> None:
        conn, silence = self.conn, self.line.host.config.silence_timeout
        try:
            while not self._stopping:
                messages = conn.receive()
                if messages:
                    self.line.host.ingest(self, messages)
                elif time.monotonic() - conn.last_frame_at > silence:
                    raise SilenceTimeout(f"no frame for {silence:g}s (timeout)")
        except ConnectionLost as exc:
            self.lost = exc
        except FeedError as exc:
            self.fatal = exc
        except Exception as exc:
            # stop() closes the socket under the reader: errors then are expected
            if not self._stopping:
                # a bug must surface, not end silently
                log.exception("reader for %s crashed", self.line.where)
                self.fatal = FeedError(f"reader for {self.line.where} crashed: {exc!r}")
        finally:
            if self._stopping:
                self.lost = None
            self.ended.set()
            self.line.wake.set()

    def stop(self) -> None:
        self._stopping = True
        self.conn.close()
        self.join(timeout=5.0)


class Line:
    """Line ``number`` (from 0) of ``host``, reading ``url``; ``start()`` runs its supervisor."""

    def __init__(self, host: LineHost, number: int, url: str, lines: int) -> None:
        self.host, self.number = host, number
        self.url = url  # replaced by the bridge's thread when keys join; read at each attempt
        self.where = short_url(url)  # what log lines show of the URL
        self.name = host.name if lines == 1 else f"{host.name} line {number + 1}/{lines}"
        self.readers: tuple[Reader, ...] = ()  # open or just ended; two during a handover
        self.wake = threading.Event()
        self.error: FeedError | None = None
        self.ended = threading.Event()
        self.reconnects = 0
        # how far behind another line's first copy this line's copies come, in ms (a moving
        # average: see ``trail``); 0 for a line that leads
        self.trail_ms = 0.0
        self.first_failure: ConnectFailed | None = None
        cfg = host.config
        self._gate = AttemptGate(url, cfg.gate_dir)
        self._backoff = Backoff(cfg.backoff_initial, cfg.backoff_max, cfg.backoff_jitter)
        self._opened = 0
        self._records_before = self._copies_before = 0  # of the connections it has closed
        self._thread = threading.Thread(target=self._run, name=f"ws-line-{self.name}", daemon=True)

    @property
    def open(self) -> bool:
        return any(reader.open for reader in self.readers)

    @property
    def records(self) -> int:
        """Records this line delivered first, since the start."""
        return sum(r.records for r in self.readers) + self._records_before

    @property
    def copies(self) -> int:
        """Records this line delivered after another line had (dropped), since the start."""
        return sum(r.copies for r in self.readers) + self._copies_before

    def trail(self, seconds: float) -> None:
        """One copy came ``seconds`` after the first (called under the bridge's lock)."""
        self.trail_ms += 0.01 * (seconds * 1000 - self.trail_ms)

    def connect_first(self) -> bool:
        """The line's first attempt, in the caller's thread (the bridge tries its lines in turn
        before starting them). False, with ``first_failure`` set, if it failed."""
        try:
            self._add(self._open())
        except ConnectFailed as exc:
            self.first_failure = exc
            return False
        return True

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Call after setting the host's ``stopping``: ends the supervisor and every reader."""
        self.wake.set()
        if self._thread.ident is not None:
            self._thread.join(10.0)
            if self._thread.is_alive():
                log.error("line %s did not stop within 10s", self.name)
        for reader in self.readers:
            reader.stop()

    # -- the supervisor thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._supervise()
        except Stopped:
            pass
        except FeedError as exc:
            self.error = exc
        except Exception as exc:
            log.exception("line %s crashed", self.name)
            self.error = FeedError(f"line {self.name} crashed: {exc!r}")
        finally:
            for reader in self.readers:
                reader.stop()
            self.ended.set()

    def _supervise(self) -> None:
        cfg, host = self.host.config, self.host
        if not self.readers:  # not tried yet, or the first attempt failed
            cause: Exception | None = self.first_failure
            if cause is None:
                try:
                    self._add(self._open())
                except ConnectFailed as exc:
                    cause = exc
            if cause is not None:
                self._add(self._reconnect(cause))
        while True:
            self.wake.wait(cfg.poll_interval)
            self.wake.clear()
            if host.stopping.is_set():
                raise Stopped()
            reader = self.readers[-1]
            if reader.fatal is not None:
                raise reader.fatal
            if reader.ended.is_set():
                self._remove(reader)
                self._on_lost(reader)
                if reader.records or reader.copies:
                    self._backoff.reset()  # that connection worked: start the backoff afresh
                self._add(self._reconnect(reader.lost))
                continue
            age = time.monotonic() - reader.conn.opened_at
            # never with another line down, unless this connection is near its end anyway
            due = reader.wants_handover or age > cfg.max_connection_age
            if due and (host.others_open(self) or age > cfg.max_connection_age):
                why = (
                    "server announced shutdown"
                    if reader.wants_handover
                    else f"connection age {age:.0f}s"
                )
                self._handover(why)

    def _add(self, reader: Reader) -> None:
        self.readers = (*self.readers, reader)
        self.host.connected(self)

    def _remove(self, reader: Reader) -> None:
        self.readers = tuple(r for r in self.readers if r is not reader)
        self._records_before += reader.records
        self._copies_before += reader.copies

    def _open(self, stash: bool = False) -> Reader:
        host, cfg = self.host, self.host.config
        delay = self._gate.reserve()
        if delay > 0:
            log.info(
                "waiting %.1fs before connecting to %s (attempt rate limit or Retry-After)",
                delay,
                self.where,
            )
            if host.stopping.wait(delay):
                raise Stopped()
        conn = Connection(
            self.url, cfg.connect_timeout, cfg.poll_interval, cfg.max_frame_bytes, cfg.ca_file
        )
        with host.connecting:
            if not stash:
                host.before_connect(self)
            try:
                conn.open()
            except ConnectFailed as exc:
                host.count("connect_failures")
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
        host.count("connects")
        self._opened += 1
        log.info("connected to %s (%s)", self.where, self.name)
        reader = Reader(self, conn, self._opened, stash)
        reader.start()
        return reader

    def _on_lost(self, reader: Reader) -> None:
        lost = reader.lost or ConnectionLost("connection ended")
        self.host.count("silence_timeouts" if isinstance(lost, SilenceTimeout) else "disconnects")
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
        self.host.lost(self)

    def _reconnect(self, cause: Exception | None) -> Reader:
        """Until a connection opens. Past ``max_reconnect_attempts`` the feed fails, unless another
        line is open: a line alone in trouble keeps trying at the longest backoff."""
        host, max_attempts, backoff = (
            self.host,
            self.host.config.max_reconnect_attempts,
            self._backoff,
        )
        while True:
            if backoff.attempts >= max_attempts and not host.another_open(self):
                raise ReconnectsExhausted(self.url, backoff.attempts, str(cause))
            delay = backoff.next_delay()
            log.info(
                "reconnecting %s to %s in %.2fs (attempt %d of %d)",
                self.name,
                self.where,
                delay,
                backoff.attempts,
                max_attempts,
            )
            if host.stopping.wait(delay):
                raise Stopped()
            try:
                reader = self._open()
            except ConnectFailed as exc:
                cause = exc
                continue
            host.count("reconnects")
            self.reconnects += 1
            return reader

    def _handover(self, why: str) -> None:
        """Opens the next connection before closing the old: the new one's records wait until the
        old one has delivered up to where the new one began, so the switch loses nothing."""
        host, cfg = self.host, self.host.config
        old = self.readers[-1]
        old.wants_handover = False
        log.info("handing over %s to a new connection: %s", self.name, why)
        try:
            new = self._open(stash=True)
        except ConnectFailed:
            return  # the old connection goes on; its loss, when it comes, reconnects as usual
        self._add(new)
        host.count("handovers")
        deadline = time.monotonic() + cfg.handover_timeout
        while not host.caught_up(new) and time.monotonic() < deadline:
            if old.ended.is_set() or new.ended.is_set() or host.stopping.wait(cfg.poll_interval):
                break
        if new.ended.is_set() and not old.ended.is_set():
            log.warning(
                "handover of %s: the new connection was lost; the old one goes on", self.name
            )
            self._remove(new)
            new.stop()
            return
        if not host.caught_up(new):
            log.warning(
                "handover of %s: the old connection did not reach where the new one began "
                "(a gap, if any, is filled from the history)",
                self.name,
            )
        self._remove(old)
        old.stop()
        host.flush_stash(new)
