"""The bounded buffer between the connection thread and the consumer."""
from __future__ import annotations

import threading
from collections import deque
from enum import StrEnum

from connectors.websocket.errors import BufferOverflow


class Overflow(StrEnum):
    BLOCK = "block"  # the reader waits: nothing is dropped, the socket backs up (the default)
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"
    FAIL = "fail"  # the feed fails with BufferOverflow, and the job restarts


class BoundedBuffer:
    def __init__(self, capacity: int, overflow: Overflow | str = Overflow.BLOCK):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.overflow = Overflow(overflow)
        self._items: deque = deque()
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._closed = False
        self.dropped = 0
        self.high_water = 0

    def __len__(self) -> int:
        return len(self._items)

    def put_many(self, items: list) -> int:
        """Adds items by the overflow policy; returns how many were dropped."""
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
                lost = len(self._items) - self.capacity
                for _ in range(lost):
                    self._items.popleft()
                self.dropped += lost
                self._note_high_water()
                return lost
            self._note_high_water()
            return 0

    def drain(self, max_items: int) -> list:
        """Never blocks."""
        with self._lock:
            items = self._items
            if len(items) <= max_items:
                out = list(items)
                items.clear()
            else:
                out = [items.popleft() for _ in range(max_items)]
            if out:
                self._space.notify_all()
            return out

    def close(self) -> None:
        """Releases a producer blocked on a full buffer; later puts are discarded."""
        with self._lock:
            self._closed = True
            self._space.notify_all()

    def _put_blocking(self, items: list) -> None:
        start = 0
        while start < len(items) and not self._closed:
            free = self.capacity - len(self._items)
            if free:
                self._items.extend(items[start : start + free])
                start += free
                self._note_high_water()
            else:
                self._space.wait(0.5)

    def _note_high_water(self) -> None:
        if len(self._items) > self.high_water:
            self.high_water = len(self._items)
