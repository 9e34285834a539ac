"""Counting messages, wall time and this process's CPU time (all its threads) over one window.

The window opens at the first message, so connecting and the handshake are not timed, and closes
after ``count`` messages or ``seconds``, whichever comes first. Given the load server's whole count,
a window closed by the count is one whose input ran out (``input_used_up``): the harness sizes the
server's input so that no client gets there (bench/run.py) and fails a run where one did.
"""

from __future__ import annotations

import argparse
import json
import time


class Meter:
    def __init__(self, count: int, seconds: float):
        self.limit, self.seconds = count, seconds
        self.n = 0
        self._start = self._cpu = self._deadline = None
        self._wall = self._cpu_used = None

    def add(self, n: int = 1) -> bool:
        """Counts ``n`` messages; True once the window is over."""
        if self._start is None:
            self._start, self._cpu = time.perf_counter(), time.process_time()
            self._deadline = self._start + self.seconds
        self.n += n
        if self._wall is None and (self.n >= self.limit or time.perf_counter() >= self._deadline):
            self._wall = time.perf_counter() - self._start
            self._cpu_used = time.process_time() - self._cpu
        return self._wall is not None

    @property
    def done(self) -> bool:
        return self._wall is not None

    def result(self, client: str, **extra) -> dict:
        wall = self._wall or 0.0
        # The first message opened the window: it is not part of what the window measured.
        counted = max(0, self.n - 1)
        return {
            "client": client,
            "messages": counted,
            "seconds": round(wall, 4),
            "msgs_per_s": round(counted / wall) if wall else 0,
            "cpu_s": round(self._cpu_used or 0.0, 4),
            "cpu_s_per_million": round(self._cpu_used / counted * 1e6, 3) if counted else None,
            "input_used_up": self.n >= self.limit,
            **extra,
        }


def arguments(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--url", required=True, help="ws://host:port (a load server)")
    p.add_argument("--symbol", default="btcusdt")
    p.add_argument("--count", type=int, default=1_000_000, help="stop after this many messages")
    p.add_argument("--seconds", type=float, default=5.0, help="or after this long")
    return p.parse_args()


def report(result: dict) -> None:
    print(json.dumps(result), flush=True)
