"""Source metrics from Python, FLIP-33 names inside our own group.

Gauges only. PyFlink's ``distribution`` is exported as 0 (see REFERENCE.md), and counters made with
``metric_group.counter()`` in a KeyedProcessFunction's ``open()`` never showed up in the REST API
here (2.3, process mode) while gauges registered beside them did: so every count is a Python int
published through a gauge (monotonic; a reporter shows it as a gauge).
"""
from __future__ import annotations

import time

GROUP = "binance_source"


class Count:
    """A monotonic count published as a gauge."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = 0

    def inc(self, n: int = 1) -> None:
        self.value += n


def count(group, name: str) -> Count:
    c = Count()
    group.gauge(name, lambda: c.value)
    return c


class SourceMetrics:
    """Metrics of one bridge operator instance (all the shards one subtask runs).

    FLIP-33: ``numRecordsIn`` (trades taken from the feeds), ``numRecordsInErrors`` (parse failures),
    ``currentEmitEventTimeLag`` (ms between now and the trade time of the last record emitted),
    ``pendingRecords`` (records waiting in the feeds' buffers), ``sourceIdleTime`` (ms since the last
    record). Ours: ``feedErrors``, ``activeShards`` and one gauge ``feed_<name>`` per counter of
    ``BinanceFeed.stats`` (summed over the shards), e.g. ``feed_gaps``, ``feed_missing_ids``,
    ``feed_duplicates`` (dropped, after a restart too), ``feed_disconnects``.
    """

    def __init__(self, metric_group, feeds: dict):
        self._feeds = feeds
        self._g = metric_group.add_group(GROUP)
        self.records_in = count(self._g, "numRecordsIn")
        self.records_in_errors = count(self._g, "numRecordsInErrors")
        self.feed_errors = count(self._g, "feedErrors")
        self.last_event_time = 0
        self.last_record_at = time.time()
        self._stat_names: set[str] = set()
        self._g.gauge("currentEmitEventTimeLag", self._emit_lag)
        self._g.gauge("sourceIdleTime", lambda: int((time.time() - self.last_record_at) * 1000))
        self._g.gauge("pendingRecords", lambda: self._stat_sum("buffered"))
        self._g.gauge("activeShards", lambda: len(self._feeds))

    def _emit_lag(self) -> int:
        return int(time.time() * 1000) - self.last_event_time if self.last_event_time else 0

    def _stat_sum(self, name: str) -> int:
        return sum(_stats(feed).get(name, 0) for feed in list(self._feeds.values()))

    def register_feed_stats(self, feed) -> None:
        """One gauge per feed counter, registered when a feed starts (names come from the feed)."""
        for name in _stats(feed):
            if name not in self._stat_names:
                self._stat_names.add(name)
                self._g.gauge(f"feed_{name}", lambda n=name: self._stat_sum(n))


def _stats(feed) -> dict:
    try:
        return dict(feed.stats)
    except Exception:  # a closed feed may refuse; metrics must never fail the job
        return {}
