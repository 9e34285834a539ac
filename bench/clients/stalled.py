"""Memory under a stalled consumer: BinanceFeed against a flood it never drains. The buffer fills
to its bound, the reader blocks, the socket backs up; this process's RSS must stop growing."""

from __future__ import annotations

import time

from bench.clients.meter import arguments, report
from connectors.feed import BinanceFeed


def memory_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (the peak so far) of this process, from the kernel."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def main() -> None:
    args = arguments(__doc__)
    baseline = memory_mb("VmRSS")
    feed = BinanceFeed([args.symbol], base_url=args.url).start()
    capacity = feed.config.buffer_size
    full_at = rss_at_full = None
    start = time.monotonic()
    try:
        while time.monotonic() - start < args.seconds:
            time.sleep(0.1)
            if full_at is None and feed.stats["buffered"] >= capacity:
                full_at, rss_at_full = time.monotonic() - start, memory_mb("VmRSS")
        stats = feed.stats
        rss_end = memory_mb("VmRSS")
    finally:
        feed.close()
    peak = memory_mb("VmHWM")
    report(
        {
            "client": "stalled",
            "seconds": args.seconds,
            "buffer_size": capacity,
            "buffered": stats["buffered"],
            "messages_read": stats["messages"],
            "full_after_s": None if full_at is None else round(full_at, 2),
            "baseline_rss_mb": round(baseline, 1),
            "rss_at_full_mb": None if rss_at_full is None else round(rss_at_full, 1),
            "rss_end_mb": round(rss_end, 1),
            "peak_rss_mb": round(peak, 1),
        }
    )


if __name__ == "__main__":
    main()
