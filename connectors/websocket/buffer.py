"""The bounded buffer between the connection threads and the consumer, with barriers.

A ``Barrier`` is a point in the buffer that ``drain()`` does not pass until it is closed: what the
connections deliver after it waits behind it ("held"), while the records a backfill adds to the
barrier itself drain first. So the records a backfill fetches leave before the live records that
followed the gap, whatever the timing of the threads.

Thread contract: readers call ``put_many`` (one at a time: the bridge serialises them); the
backfill thread calls ``add_to_barrier`` and ``close_barrier``; the consumer calls ``drain``. Every
method takes the buffer's one lock; only ``put_many`` (policy ``block``) and ``add_to_barrier``
wait, on a condition that releases it.
"""

from __future__ import annotations

import threading
from collections import deque
from enum import StrEnum
from typing import Any

from connectors.websocket.errors import BufferOverflow


class Overflow(StrEnum):
    BLOCK = "block"  # the reader waits: nothing is dropped, the socket backs up (the default)
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"
    FAIL = "fail"  # the feed fails with BufferOverflow, and the job restarts


class Barrier:
    """Records added by a backfill; ``closed`` once the backfill has added all it will."""

    __slots__ = ("closed", "items")

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self.closed = False


class BoundedBuffer:
    """``capacity`` bounds the live records (held ones included) and, separately, each barrier's.
    Records are the producers' (typed ``Any`` here): the buffer only moves them."""

    def __init__(self, capacity: int, overflow: Overflow | str = Overflow.BLOCK):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.overflow = Overflow(overflow)
        self._items: deque[Any] = deque()  # records and barriers, oldest first
        self._barriers = 0  # how many of _items are barriers (0: the plain fast paths)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closed = False
        self.dropped = 0
        self.high_water = 0

    @property
    def barriers(self) -> int:
        """Barriers in the buffer now, open or not yet drained past (read without the lock: a
        consumer's glance, which may be one put or drain behind)."""
        return self._barriers

    def __len__(self) -> int:
        """Records waiting, those of barriers included."""
        with self._lock:
            return len(self._items) - self._barriers + self._barrier_items()

    def put_many(self, items: list[Any]) -> int:
        """Adds records by the overflow policy; returns how many were dropped."""
        with self._lock:
            free = self.capacity - len(self._items)
            if len(items) <= free:
                self._items.extend(items)
            elif self.overflow is Overflow.BLOCK:
                self._put_blocking(items)
            elif self.overflow is Overflow.FAIL:
                raise BufferOverflow(self.capacity)
            elif self.overflow is Overflow.DROP_NEWEST:
                self._items.extend(items[:free])
                self.dropped += len(items) - free
                self._note_high_water()
                return len(items) - free
            else:
                self._items.extend(items)
                lost = self._drop_oldest(len(self._items) - self.capacity)
                self._note_high_water()
                return lost
            self._note_high_water()
            return 0

    def put_barrier(self, barrier: Barrier) -> None:
        """Places a barrier after everything put so far (records may be in it already)."""
        with self._lock:
            self._items.append(barrier)
            self._barriers += 1

    def add_to_barrier(self, barrier: Barrier, records: list[Any]) -> None:
        """Backfilled records, drained before anything behind the barrier; waits while the
        barrier already holds ``capacity`` records (the consumer is behind)."""
        with self._lock:
            while len(barrier.items) >= self.capacity and not self._closed:
                self._changed.wait(0.5)
            barrier.items.extend(records)

    def close_barrier(self, barrier: Barrier) -> None:
        with self._lock:
            barrier.closed = True

    def drain(self, max_items: int) -> list[Any]:
        """Never blocks. Stops at a barrier that is still open once its records are taken."""
        with self._lock:
            items = self._items
            if not self._barriers:
                if len(items) <= max_items:
                    out = list(items)
                    items.clear()
                else:
                    out = [items.popleft() for _ in range(max_items)]
            else:
                out = self._drain_through_barriers(max_items)
            if out:
                self._changed.notify_all()
            return out

    def close(self) -> None:
        """Releases a producer blocked on a full buffer; later puts are discarded."""
        with self._lock:
            self._closed = True
            self._changed.notify_all()

    def _drain_through_barriers(self, max_items: int) -> list[Any]:
        items = self._items
        out: list[Any] = []
        while items and len(out) < max_items:
            head = items[0]
            if type(head) is not Barrier:
                out.append(items.popleft())
                continue
            while head.items and len(out) < max_items:
                out.append(head.items.popleft())
            if head.items or not head.closed:
                break
            items.popleft()
            self._barriers -= 1
        return out

    def _put_blocking(self, items: list[Any]) -> None:
        start = 0
        while start < len(items) and not self._closed:
            free = self.capacity - len(self._items)
            if free:
                self._items.extend(items[start : start + free])
                start += free
                self._note_high_water()
            else:
                self._changed.wait(0.5)

    def _drop_oldest(self, n: int) -> int:
        """Drops the ``n`` oldest records, never a barrier."""
        if not self._barriers:
            for _ in range(n):
                self._items.popleft()
            self.dropped += n
            return n
        kept: deque[Any] = deque()
        dropped = 0
        for item in self._items:
            if dropped < n and type(item) is not Barrier:
                dropped += 1
            else:
                kept.append(item)
        self._items = kept
        self.dropped += dropped
        return dropped

    def _barrier_items(self) -> int:
        return (
            sum(len(item.items) for item in self._items if type(item) is Barrier)
            if self._barriers
            else 0
        )

    def _note_high_water(self) -> None:
        if len(self._items) > self.high_water:
            self.high_water = len(self._items)
