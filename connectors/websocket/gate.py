"""Connection attempts to one host, paced across every process on this machine.

Binance counts attempts per IP (300 per 5 minutes) and a 429/418 ``Retry-After`` binds the IP, not
the process: a Flink job restarting in a fresh Python worker must still wait it out. So the gate keeps
its state in a small file per host, updated under ``flock``.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

ATTEMPTS_PER_WINDOW = 300
WINDOW_SECONDS = 300.0


class AttemptGate:
    def __init__(self, url: str, state_dir: str | None = None,
                 limit: int = ATTEMPTS_PER_WINDOW, window: float = WINDOW_SECONDS):
        host = urlsplit(url).netloc or "unknown"
        name = "binance-flink-gate-" + re.sub(r"[^A-Za-z0-9_.-]", "_", host) + ".json"
        self.path = os.path.join(state_dir or tempfile.gettempdir(), name)
        self.limit, self.window = limit, window

    def reserve(self) -> float:
        """Books the next attempt; returns how long to sleep before making it (0 when it may go now)."""
        with self._state() as state:
            now = time.time()
            recent = [t for t in state["attempts"] if t > now - self.window]
            start = max(now, state["not_before"])
            if len(recent) >= self.limit:
                start = max(start, recent[-self.limit] + self.window)
            recent.append(start)
            state["attempts"] = recent[-self.limit :]
            return start - now

    def hold_off(self, seconds: float) -> None:
        """No attempt from this machine before ``seconds`` from now (a Retry-After)."""
        with self._state() as state:
            state["not_before"] = max(state["not_before"], time.time() + seconds)

    @contextmanager
    def _state(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                state = json.loads(f.read() or "{}")
            except ValueError:  # a torn file from a killed process: start afresh
                state = {}
            state.setdefault("attempts", [])
            state.setdefault("not_before", 0.0)
            yield state
            f.seek(0)
            f.truncate()
            f.write(json.dumps(state))
