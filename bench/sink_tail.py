"""Follows a FileSink's output as Flink writes it and notes when each line became readable.

FileSink writes each record into a hidden in-progress part file at once and only renames it on
commit (every checkpoint), so reading the in-progress files shows when a trade reached the sink,
without waiting for the checkpoint. Files are followed by inode: the commit's rename does not
disturb them. Polling every ``interval`` seconds bounds the timing error.
"""

from __future__ import annotations

import os
import threading
import time

import orjson


class SinkTail(threading.Thread):
    def __init__(self, root: str, interval: float = 0.002, keep_event_times: bool = False):
        super().__init__(name="sink-tail", daemon=True)
        self.root, self.interval, self.keep_event_times = root, interval, keep_event_times
        self.lines = 0
        self.counts: list[tuple[float, int]] = []  # (time, lines so far) at every change
        self.arrivals: list[tuple[int, float]] = []  # (event_time E, arrival ms) when kept
        self._files: dict[int, tuple] = {}  # inode -> (file, pending partial line)
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self.interval):
            self.poll()

    def stop(self) -> None:
        self._stopping.set()
        self.join()
        for f, _ in self._files.values():
            f.close()

    def poll(self) -> None:
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                path = os.path.join(dirpath, name)
                try:
                    inode = os.stat(path).st_ino
                    if inode not in self._files:
                        # followed until stop() closes it
                        self._files[inode] = (open(path, "rb"), b"")  # noqa: SIM115
                except FileNotFoundError:  # renamed by a commit between listing and opening
                    continue
        new = 0
        for inode, (f, held) in self._files.items():
            data = f.read()
            if not data:
                continue
            now_ms = time.time() * 1000
            complete, _, pending = (held + data).rpartition(b"\n")
            self._files[inode] = (f, pending)
            if complete:
                lines = complete.split(b"\n")
                new += len(lines)
                if self.keep_event_times:
                    self.arrivals.extend(
                        (orjson.loads(line)["event_time"], now_ms) for line in lines
                    )
        if new:
            self.lines += new
            self.counts.append((time.monotonic(), self.lines))

    def lines_at(self, t: float) -> int:
        """Lines seen by monotonic time ``t``."""
        n = 0
        for when, lines in self.counts:
            if when > t:
                break
            n = lines
        return n
