"""The bridge operator's metrics: FLIP-33 names inside our own group, ``binance_source``.

- ``numRecordsIn`` (trades emitted), ``numRecordsInErrors`` (dead letters), ``feedErrors`` (feeds
  that failed the job), ``currentEmitEventTimeLag`` (ms from the last emitted trade's time to
  now), ``sourceIdleTime`` (ms since the last trade), ``pendingRecords`` (records waiting in the
  feeds), ``activeShards``; ``watermarkHeldTime`` (ms the watermark has been held back now, while
  a shard is disconnected or backfilling; 0 when it is not) and ``watermarkHeldTotal`` (ms held
  back in all, growing);
- ``feed_<name>`` for every entry of ``Bridge.stats``, summed over the subtask's shards, e.g.
  ``feed_gaps``, ``feed_backfilled``, ``feed_unfilled_ids``, ``feed_connected``.

How they reach Flink depends on the Python execution mode. In thread mode a PyFlink gauge is a
Python function that Flink's metric reporter thread calls through pemja, and that call crashed the
JVM (SIGSEGV in ``_PyEval_EvalFrameDefault`` on "Flink-Metric-Reporter-thread-1", under load, once
the reporter pushed every 10 s): there every value goes into a Java counter instead, moved by the
operator's own thread (``publish``, at most once a second), so the reporter reads Java only. In
process mode a PyFlink ``counter()`` never reached the JVM here (absent from the reporter's page,
measured 2026-11) while gauges do, their values sent by the Python worker: gauges there. Flink's
Prometheus reporter exports counters as gauges anyway (a Flink counter may be decreased), so
``rate()`` and ``increase()`` read both alike, under the same names.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyflink.metrics import MetricGroup

    from connectors.websocket.bridge import Bridge

GROUP = "binance_source"


PUBLISH_INTERVAL = 1.0  # s between two updates of the Java counters (thread mode)


def _embedded(group: MetricGroup) -> bool:
    """Thread mode's metric group (pyflink.fn_execution.metrics.embedded) rather than process
    mode's: PyFlink offers no other way to tell."""
    return type(group).__module__.startswith("pyflink.fn_execution.metrics.embedded")


class Count:
    """A count that only grows, published as a gauge."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, n: int = 1) -> None:
        self.value += n


class SourceMetrics:
    """Metrics of one bridge operator instance (all the shards one subtask runs)."""

    def __init__(self, metric_group: MetricGroup, feeds: Mapping[int, Bridge[Any]]) -> None:
        """``feeds``: the subtask's, by shard, as they come and go (the operator's own dict)."""
        self._feeds = feeds
        self._g = metric_group.add_group(GROUP)
        self._embedded = _embedded(self._g)
        self._published: dict[str, tuple[Callable[[], int], Any, int]] = {}  # name -> (value,
        self._published_at = 0.0  # Java counter, value it holds) in thread mode
        self.records_in = self._count("numRecordsIn")
        self.records_in_errors = self._count("numRecordsInErrors")
        self.feed_errors = self._count("feedErrors")
        self.last_event_time = 0
        self.last_record_at = time.time()
        self._stat_names: set[str] = set()
        self._gauge("currentEmitEventTimeLag", self._emit_lag)
        self._gauge("sourceIdleTime", lambda: int((time.time() - self.last_record_at) * 1000))
        self._gauge("pendingRecords", lambda: self._stat_sum("buffered"))
        self._gauge("activeShards", lambda: len(self._feeds))
        self._held_since: float | None = None  # monotonic s when the watermark was held back
        self._held_total = 0.0
        self._gauge("watermarkHeldTime", lambda: int(self._held_now() * 1000))
        self._gauge("watermarkHeldTotal", lambda: int((self._held_total + self._held_now()) * 1000))

    def watermark_held(self, held: bool) -> None:
        """Whether the operator holds the watermark back now (called at every drain)."""
        if held and self._held_since is None:
            self._held_since = time.monotonic()
        elif not held and self._held_since is not None:
            self._held_total += time.monotonic() - self._held_since
            self._held_since = None

    def _held_now(self) -> float:
        since = self._held_since
        return 0.0 if since is None else time.monotonic() - since

    def register_feed_stats(self, feed: Bridge[Any]) -> None:
        """One gauge per entry of the feed's stats, registered when a feed starts."""
        for name in _stats(feed):
            if name not in self._stat_names:
                self._stat_names.add(name)
                self._gauge(f"feed_{name}", functools.partial(self._stat_sum, name))

    def publish(self, force: bool = False) -> None:
        """Thread mode: moves every value into its Java counter, at most once a
        ``PUBLISH_INTERVAL`` unless ``force``. Call it from the operator's thread (it does, at
        every drain); in process mode it does nothing."""
        now = time.monotonic()
        if not self._published or (not force and now - self._published_at < PUBLISH_INTERVAL):
            return
        self._published_at = now
        for name, (value, counter, held) in self._published.items():
            new = value()
            if new != held:
                counter.inc(new - held)
                self._published[name] = (value, counter, new)

    def _gauge(self, name: str, value: Callable[[], int]) -> None:
        if self._embedded:
            self._published[name] = (value, self._g.counter(name), 0)
        else:
            self._g.gauge(name, value)

    def _count(self, name: str) -> Count:
        c = Count()
        self._gauge(name, lambda: c.value)
        return c

    def _emit_lag(self) -> int:
        return int(time.time() * 1000) - self.last_event_time if self.last_event_time else 0

    def _stat_sum(self, name: str) -> int:
        return sum(_stats(feed).get(name, 0) for feed in list(self._feeds.values()))


def _stats(feed: Bridge[Any]) -> dict[str, int]:
    try:
        return dict(feed.stats)
    except Exception:  # a closed feed may refuse; metrics must never fail the job
        return {}
