"""A BinanceFeed that notes, for every trade the Flink bridge operator drains, how long ago the
load server sent it: the latency to the moment the trade leaves the source operator.

Passed to the job as ``--feed-factory bench.source_probe:StampedFeed``. The paced load server
stamps each trade's ``E`` with its send time (ms); the drain happens in the operator's timer,
right before the records are emitted, so ``now - E`` here is send -> out of the source, short of
PyFlink's bundle flush to the JVM (which the sink-side measurement includes). Samples go as
``E,latency_ms`` lines to ``$BENCH_SOURCE_SAMPLES.<pid>``.
"""

from __future__ import annotations

import os
import time

from connectors.feed import BinanceFeed

ENV = "BENCH_SOURCE_SAMPLES"
_FLUSH_EVERY_S = 1.0


class StampedFeed(BinanceFeed):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # open for the feed's life, closed in close()
        self._samples = open(f"{os.environ[ENV]}.{os.getpid()}", "a")  # noqa: SIM115
        self._flushed_at = time.monotonic()

    def drain(self, max_items: int = 10_000) -> list:
        items = super().drain(max_items)
        if items:
            now_ms = time.time() * 1000
            self._samples.write(
                "".join(
                    f"{r.event_time},{now_ms - r.event_time:.2f}\n"
                    for r in items
                    if hasattr(r, "event_time")
                )
            )
            if time.monotonic() - self._flushed_at > _FLUSH_EVERY_S:
                self._samples.flush()
                self._flushed_at = time.monotonic()
        return items

    def close(self, timeout: float = 10.0) -> None:
        super().close(timeout)
        self._samples.close()
