"""Gap filling: the records a stream skipped, fetched from the exchange's history, in order.

An *episode* starts where the stream may have skipped records: at a (re)connect of a feed that
already delivered something (or resumes after checkpointed positions), and where a live record
jumps over ids. It puts a ``Barrier`` into the buffer at that point: the live records after it are
held, the fetched ones are added to the barrier and drain first. An episode has one *fill* per key:
the ids to fetch, from the first missing one up to ``target`` (the last id before the key's first
live record after the barrier; unknown until that record comes: then the fill fetches until the
history has nothing newer). The barrier closes once every fill is done, or at the episode's
deadline; ids the history could not supply are reported as failures (dead letters) there. A
catch-up that starts while an earlier episode still waits for a key's first live record (its
connection was lost before one came) takes the key over from where it stands: at any time one fill
at most waits for a key's live record, the newest catch-up's, whose barrier that record follows.

Fetched records of several keys leave merged by time, so that a backfill never runs ahead of the
event time of another key it holds back.

Thread contract: the bridge calls ``catch_up``, ``note_live`` and ``close`` holding its lock (the
one that also guards the sequencer); the backfill thread takes that same lock for every look at
an episode or the sequencer, and never holds it across a history request or a wait.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from connectors.websocket.buffer import Barrier, BoundedBuffer
from connectors.websocket.sequencing import SequenceTracker, Verdict

log = logging.getLogger(__name__)

LAG_RETRY = 0.25  # s before asking again when the history is behind the live stream
# After a (re)connect, how long a catch-up waits for a key's first live record, which tells how far
# to fetch; a key that stays quiet longer is fetched up to the history's newest.
CATCH_UP_GRACE = 1.0
RETRY_INITIAL, RETRY_MAX = 0.2, 5.0  # backoff on errors without a Retry-After


class HistoryUnavailable(Exception):
    """The history did not answer this time. ``retry_after``: seconds it asked to wait;
    ``permanent``: retrying cannot help (e.g. an unknown symbol)."""

    def __init__(self, cause: str, retry_after: float | None = None, permanent: bool = False):
        super().__init__(cause)
        self.retry_after, self.permanent = retry_after, permanent


class History(Protocol):
    """What an exchange plugs in to fill gaps. Records carry ``key`` (a str), ``seq`` and ``time``
    (ints); what they are besides is the exchange's, and passes through untouched."""

    @property
    def page_size(self) -> int: ...

    @property
    def record_types(self) -> tuple[type, ...]:
        """Anything else a page holds is a failure (a dead letter)."""
        ...

    def fetch(self, key: str, first_seq: int) -> Sequence[object]:
        """Up to ``page_size`` records of ``key`` with seq >= ``first_seq``, ascending (failures for
        entries it cannot read may come among them). Fewer: the history has nothing newer yet.
        Raises ``HistoryUnavailable``."""
        ...

    def seq_at(self, key: str, time_ms: int) -> int | None:
        """The first seq at or after ``time_ms`` (None: none yet). Raises ``HistoryUnavailable``."""
        ...

    def newest_seqs(self, keys: Sequence[str]) -> Mapping[str, int] | None:
        """The newest seq the history has for each of ``keys``, in one request far cheaper than
        a page per key (None: this history cannot tell). Raises ``HistoryUnavailable``."""
        ...

    def unfilled(self, key: str, first: int, last: int, why: str) -> object:
        """The failure record reporting ids ``first..last`` of ``key`` as lost."""
        ...

    @property
    def stats(self) -> dict[str, int]: ...

    def close(self) -> None: ...


@dataclass(eq=False)
class _Fill:
    key: str
    cursor: int  # next seq to fetch
    target: int | None  # last seq to fetch; None: up to the newest the history has
    start: int = 0  # first seq of the range this fill answers for (unfilled reports)
    # fetched, accepted, not yet released: the history's records and failures
    pending: deque[Any] = field(default_factory=deque)
    last_time: int | None = None  # time of the last record fetched: how far this fill has come
    done: bool = False
    retry_at: float = 0.0
    retry_delay: float = RETRY_INITIAL
    why: str = ""  # why ids are left over, if any

    def __post_init__(self) -> None:
        self.start = self.cursor


@dataclass(eq=False)
class _Episode:
    barrier: Barrier
    deadline: float
    started: float
    fills: dict[str, _Fill] = field(default_factory=dict)  # key -> its fill
    seen_after: set[str] = field(default_factory=set)  # keys delivered live after the barrier
    screened: bool = False  # whether the history's newest seqs have been asked for


# What goes into the buffer, outside the lock: (barrier, records to add to it, close it after).
_Action = tuple[Barrier, list[Any], bool]


class Backfiller:
    """Runs the episodes in a thread of its own; see the module docstring."""

    def __init__(
        self,
        history: History,
        buffer: BoundedBuffer,
        sequencer: SequenceTracker,
        lock: threading.Lock,
        timeout: float,
        name: str,
    ) -> None:
        self.history, self.buffer, self.sequencer, self.lock = history, buffer, sequencer, lock
        self.timeout, self.name = timeout, name
        self.episodes: list[_Episode] = []  # open ones, oldest first
        self.counts = dict.fromkeys(
            ("backfilled", "backfill_requests", "backfill_screened", "unfilled_ids", "backfill_ms"),
            0,
        )
        # key -> why its catch-up ended before its first live record came
        self._gave_up: dict[str, str] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"backfill-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -- called by the bridge, holding the lock ------------------------------------------------

    def catch_up(self) -> Barrier | None:
        """Starts an episode fetching, for every key with a position, what came after it (at a
        connect): returns its barrier, which the caller puts into the buffer before anything the
        connection delivers."""
        positions = self.sequencer.last_seqs
        if not positions:
            return None
        self._take_over(positions)
        episode = self._new_episode()
        for key, last in positions.items():
            episode.fills[key] = _Fill(
                key, last + 1, None, retry_at=math.inf
            )  # until ``connected``
        log.info(
            "%s: catching up after %s",
            self.name,
            ", ".join(f"{k} {s}" for k, s in positions.items())
            if len(positions) <= 3
            else f"the positions of {len(positions)} keys",
        )
        return episode.barrier

    def _take_over(self, positions: Mapping[str, int]) -> None:
        """A catch-up starting while earlier episodes are open (the connection an earlier one waits
        for was lost before it delivered a key): every key is this catch-up's from its position on.
        A fill of an earlier episode still waiting for its key's first live record ends at that
        position (what it fetched up to there stays its own, a page in flight is dropped, and its
        end reports nothing: the ids after it are this catch-up's to fetch or report), and the key
        counts as seen after those barriers. So a key has one fill without a target at most, the
        newest catch-up's, and its next live record, which comes after the newest barrier, bounds
        that one: left without a target, the newest fill would go on past the live stream and put
        records into its barrier ahead of the live ones it holds back (issue 18)."""
        for earlier in self.episodes:
            for key, fill in earlier.fills.items():
                if fill.target is None and not fill.done and key in positions:
                    fill.target, fill.done = positions[key], True
            earlier.seen_after.update(positions)

    def replay(self, targets: Mapping[str, int]) -> Barrier | None:
        """Before any connection opens (a start in the past): an episode fetching, for every key
        with a position, what came after it, up to its target if it has one, else up to the
        history's newest; without a deadline, however long it takes. Returns its barrier, which
        the caller puts into the buffer; ``replay_position`` follows it."""
        positions = self.sequencer.last_seqs
        if not positions:
            return None
        episode = self._new_episode()
        episode.deadline = math.inf
        for key, last in positions.items():
            episode.fills[key] = _Fill(key, last + 1, targets.get(key))
        self._wake.set()
        return episode.barrier

    def replay_position(self, barrier: Barrier) -> int | None:
        """How far the episode of ``barrier`` has come: the time of the record fetched last by
        the key that is furthest behind (0 before each key has one); None once it has ended."""
        episode = next((e for e in self.episodes if e.barrier is barrier), None)
        if episode is None:
            return None
        open_fills = [f for f in episode.fills.values() if not f.done]
        return min((f.last_time or 0 for f in open_fills), default=0)

    def connected(self) -> None:
        """The connection a catch-up waits for is open: its deadline starts now, and each key is
        fetched once its first live record has come or the grace has passed."""
        now = time.monotonic()
        for episode in self.episodes:
            if any(f.retry_at == math.inf for f in episode.fills.values()):
                episode.deadline = now + self.timeout
                for fill in episode.fills.values():
                    if fill.retry_at == math.inf:
                        fill.retry_at = now + CATCH_UP_GRACE
        self._wake.set()

    def note_live(self, key: str, seq: int, verdict: Verdict, missing: int, out: list[Any]) -> None:
        """A live record of ``key`` passed the sequencer: bounds the fill waiting for it, and for a
        gap appends to ``out`` (before the record) what the gap needs: a new barrier, or the
        failure reporting it when no fill can be made."""
        first_unseen = next((e for e in self.episodes if key not in e.seen_after), None)
        if first_unseen is not None and verdict is not Verdict.LATE:
            fill = first_unseen.fills.get(key)
            if fill is not None and fill.target is None:
                fill.target = seq - 1  # the key's first live record after the barrier: up to it
                fill.retry_at = min(fill.retry_at, time.monotonic())
                self._wake.set()
        if verdict is Verdict.GAP:
            first, last = seq - missing, seq - 1
            why = self._gave_up.pop(key, None)
            if why is not None:
                out.append(self._unfilled(key, first, last, why))
            elif first_unseen is not None:
                self._extend(first_unseen, key, first, last)
            else:
                episode = self._new_episode()
                episode.fills[key] = _Fill(key, first, last)
                out.append(episode.barrier)
                log.info("%s: %s skipped ids %d..%d: fetching them", self.name, key, first, last)
                self._wake.set()
        for episode in self.episodes:
            episode.seen_after.add(key)

    def close(self) -> None:
        """Stops the thread (call ``join`` next, without the lock)."""
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float) -> None:
        """Waits for the thread; open episodes end with what they fetched, the rest reported."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        with self.lock:
            actions = [
                action
                for episode in list(self.episodes)
                for action in self._end(episode, "the feed was closed during the backfill")
            ]
        self._apply(actions)
        self.history.close()

    @property
    def stats(self) -> dict[str, int]:
        """Counters, and ``backfilling``: how many episodes are open now (read under the lock)."""
        counts = dict(self.counts)
        counts.update(self.history.stats)
        counts["backfilling"] = len(self.episodes)
        return counts

    # -- the backfill thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                delay = self._step()
                if delay:
                    self._wake.wait(delay)
                    self._wake.clear()
        except Exception:
            log.exception("backfill of %s crashed", self.name)  # a bug: loud, and the episodes end
            with self.lock:
                actions = [
                    action
                    for episode in list(self.episodes)
                    for action in self._end(episode, "the backfill crashed (see the log)")
                ]
            self._apply(actions)

    def _step(self) -> float | None:
        """One request, or the end of an episode; returns how long to wait before the next step
        (None: go on at once). What goes into the buffer is put there after the lock is released:
        the buffer may wait for the consumer, who must not wait for the lock meanwhile."""
        now = time.monotonic()
        with self.lock:
            if not self.episodes:
                return 1.0
            episode = self.episodes[0]
            for f in episode.fills.values():
                if f.target is not None and f.cursor > f.target:
                    f.done = True
            waiting = [f for f in episode.fills.values() if not f.done]
            screen, unbounded = False, []
            fill: _Fill | None
            if now >= episode.deadline or not waiting:
                why = f"the backfill did not finish within {self.timeout:g}s" if waiting else ""
                actions = self._end(episode, why)
                fill = None
            else:
                ready = [f for f in waiting if f.retry_at <= now]
                if not ready:
                    return min(min(f.retry_at for f in waiting) - now, 1.0)
                unbounded = [f.key for f in waiting if f.target is None]
                screen = not episode.screened and len(unbounded) > 1
                episode.screened = True
                # the fill that has come least far holds back the merge: it goes first
                fill = min(ready, key=lambda f: (f.last_time is not None, f.last_time or 0))
                key, cursor = fill.key, fill.cursor
        if fill is None:
            self._apply(actions)
            return None
        if screen:
            self._screen(episode, unbounded)
            return None
        self.counts["backfill_requests"] += 1
        try:
            page = self.history.fetch(key, cursor)
        except HistoryUnavailable as exc:
            with self.lock:
                self._failed(fill, exc)
            return None
        with self.lock:
            if not fill.done and fill.cursor == cursor:  # else the episode ended while we asked
                self._take(fill, page)
            actions = self._release(episode)
        self._apply(actions)
        return None

    def _screen(self, episode: _Episode, keys: list[str]) -> None:
        """A catch-up of many keys: one question for the newest seq of each, so that the keys that
        have nothing after their position (most, on a wide market after a short outage) cost no
        request of their own. The connection was open before the question, so what came after
        the answer arrives live."""
        self.counts["backfill_requests"] += 1
        try:
            newest = self.history.newest_seqs(keys)
        except HistoryUnavailable as exc:
            log.info("%s: newest ids unknown (%s): fetching every key", self.name, exc)
            return
        if newest is None:
            return
        with self.lock:
            quiet = [
                f
                for f in episode.fills.values()
                if not f.done and f.target is None and newest.get(f.key, f.cursor) < f.cursor
            ]
            for fill in quiet:
                fill.done = True
            self.counts["backfill_screened"] += len(quiet)
        log.info("%s: %d of %d keys have nothing to fetch", self.name, len(quiet), len(keys))

    def _take(self, fill: _Fill, page: Sequence[Any]) -> None:
        """Passes a fetched page through the sequencer, up to the fill's target."""
        record_types, records, beyond = self.history.record_types, 0, False
        for item in page:
            if type(item) not in record_types:
                fill.pending.append(item)  # an entry the history could not read: a dead letter
                continue
            records += 1
            if fill.target is not None and item.seq > fill.target:
                beyond = True  # ids up to the target the history skipped are reported at the end
                break
            verdict, _ = self.sequencer.accept(fill.key, item.seq)
            if verdict.deliver:
                fill.pending.append(item)
            fill.cursor = item.seq + 1
            fill.last_time = item.time
        fill.retry_delay, fill.why = RETRY_INITIAL, ""
        if fill.target is None:
            fill.done = records < self.history.page_size  # the history has nothing newer
        elif fill.cursor > fill.target or beyond:
            fill.done = True
        elif records < self.history.page_size:
            fill.retry_at = time.monotonic() + LAG_RETRY  # the history is behind the live stream

    def _failed(self, fill: _Fill, exc: HistoryUnavailable) -> None:
        fill.why = str(exc)
        if exc.permanent:
            fill.done = True
            log.error("%s: backfill of %s cannot go on: %s", self.name, fill.key, exc)
            return
        delay = exc.retry_after if exc.retry_after is not None else fill.retry_delay
        fill.retry_delay = min(RETRY_MAX, fill.retry_delay * 2)
        fill.retry_at = time.monotonic() + delay
        log.warning(
            "%s: backfill of %s from %d: %s; again in %.2fs",
            self.name,
            fill.key,
            fill.cursor,
            exc,
            delay,
        )

    def _release(self, episode: _Episode) -> list[_Action]:
        """What no unfinished fill can still precede, merged by time, as an action for the
        buffer."""
        open_fills = [f for f in episode.fills.values() if not f.done]
        times = [f.last_time for f in open_fills if f.last_time is not None]
        if len(times) < len(open_fills):  # one of them has fetched nothing yet
            return []
        horizon = min(times, default=None)
        out = _merge_by_time([f.pending for f in episode.fills.values()], horizon)
        if not out:
            return []
        self.counts["backfilled"] += sum(type(r) in self.history.record_types for r in out)
        return [(episode.barrier, out, False)]

    def _end(self, episode: _Episode, why: str) -> list[_Action]:
        """Releases what was fetched, reports what was not, and opens the barrier."""
        for fill in episode.fills.values():
            fill.done = True
        actions = self._release(episode)
        failures: list[object] = []
        for key, fill in episode.fills.items():
            reason = fill.why or why
            if fill.target is None and reason:
                # ended before the key's first live record came: that record's gap reports the rest
                self._gave_up[key] = reason
            end = fill.cursor - 1 if fill.target is None else fill.target
            for first, last in self.sequencer.open_gaps(key, fill.start, end):
                failures.append(
                    self._unfilled(
                        key, first, last, reason or "the history does not have these ids"
                    )
                )
        actions.append((episode.barrier, failures, True))
        self.episodes.remove(episode)
        elapsed = time.monotonic() - episode.started
        self.counts["backfill_ms"] += int(elapsed * 1000)
        log.info("%s: backfill done in %.2fs%s", self.name, elapsed, f" ({why})" if why else "")
        return actions

    def _apply(self, actions: list[_Action]) -> None:
        for barrier, records, close in actions:
            if records:
                self.buffer.add_to_barrier(barrier, records)
            if close:
                self.buffer.close_barrier(barrier)

    def _unfilled(self, key: str, first: int, last: int, why: str) -> object:
        self.counts["unfilled_ids"] += last - first + 1
        log.warning("%s: %s ids %d..%d are lost: %s", self.name, key, first, last, why)
        return self.history.unfilled(key, first, last, why)

    def _new_episode(self) -> _Episode:
        now = time.monotonic()
        episode = _Episode(Barrier(), now + self.timeout, now)
        self.episodes.append(episode)
        return episode

    def _extend(self, episode: _Episode, key: str, first: int, last: int) -> None:
        fill = episode.fills.get(key)
        if fill is None or fill.done:
            episode.fills[key] = _Fill(key, first, last)
        else:
            fill.target = max(fill.target if fill.target is not None else last, last)
        self._wake.set()


def _merge_by_time(queues: list[deque[Any]], horizon: int | None) -> list[Any]:
    """Takes from the front of the queues, oldest first across them, every record not later than
    ``horizon`` (None: all). An item without a time (a failure) goes out when it is at a front."""
    out: list[Any] = []
    while True:
        oldest: deque[Any] | None = None
        for queue in queues:
            while queue and getattr(queue[0], "time", None) is None:
                out.append(queue.popleft())
            if (
                queue
                and (horizon is None or queue[0].time <= horizon)
                and (oldest is None or queue[0].time < oldest[0].time)
            ):
                oldest = queue
        if oldest is None:
            return out
        out.append(oldest.popleft())
