"""The bridge operator's metrics: FLIP-33 names inside our own group, ``binance_source``.

- ``numRecordsIn`` (trades emitted), ``numRecordsInErrors`` (dead letters), ``feedErrors`` (feeds
  that failed the job), ``currentEmitEventTimeLag`` (ms from the last emitted trade's time to
  now), ``sourceIdleTime`` (ms since the last trade), ``pendingRecords`` (records waiting in the
  feeds), ``activeShards``;
- ``feed_<name>`` for every entry of ``Bridge.stats``, summed over the subtask's shards, e.g.
  ``feed_gaps``, ``feed_backfilled``, ``feed_unfilled_ids``, ``feed_connected``.

All are gauges, the counts among them only growing. Flink's Prometheus reporter exports Flink
counters as gauges anyway (a Flink counter may be decreased), so ``rate()`` and ``increase()``
read both alike; and a PyFlink ``counter()`` registered in process mode never reached the JVM
here (absent from the reporter's page, measured 2026-11), while gauges work in both modes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyflink.metrics import MetricGroup

    from connectors.websocket.bridge import Bridge

GROUP = "binance_source"


class Count:
    """A count that only grows, published as a gauge."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, n: int = 1) -> None:
        self.value += n


def count(group: MetricGroup, name: str) -> Count:
    c = Count()
    group.gauge(name, lambda: c.value)
    return c


class SourceMetrics:
    """Metrics of one bridge operator instance (all the shards one subtask runs)."""

    def __init__(self, metric_group: MetricGroup, feeds: Mapping[int, Bridge[Any]]) -> None:
        """``feeds``: the subtask's, by shard, as they come and go (the operator's own dict)."""
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

    def register_feed_stats(self, feed: Bridge[Any]) -> None:
        """One gauge per entry of the feed's stats, registered when a feed starts."""
        for name in _stats(feed):
            if name not in self._stat_names:
                self._stat_names.add(name)
                self._g.gauge(f"feed_{name}", lambda n=name: self._stat_sum(n))

    def _emit_lag(self) -> int:
        return int(time.time() * 1000) - self.last_event_time if self.last_event_time else 0

    def _stat_sum(self, name: str) -> int:
        return sum(_stats(feed).get(name, 0) for feed in list(self._feeds.values()))


def _stats(feed: Bridge[Any]) -> dict[str, int]:
    try:
        return dict(feed.stats)
    except Exception:  # a closed feed may refuse; metrics must never fail the job
        return {}
