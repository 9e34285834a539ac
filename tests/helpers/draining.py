"""Draining a running feed in a test."""

from __future__ import annotations

import time


def drain_until(feed, done, timeout: float = 90.0, items: list | None = None) -> list:
    """Drains ``feed`` into ``items`` (a new list unless given) until ``done(items)`` holds;
    fails the test on timeout, with the feed's counters."""
    items = [] if items is None else items
    deadline = time.monotonic() + timeout
    while not done(items):
        assert time.monotonic() < deadline, f"timed out with {len(items)} items; stats {feed.stats}"
        items += feed.drain(10_000)
        time.sleep(0.01)
    return items
