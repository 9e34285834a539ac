"""Limits that bind this machine's IP, not one process: paced across every process here.

Binance counts connection attempts (300 per 5 minutes) and REST request weight (per minute) per IP,
and a 429/418 ``Retry-After`` binds the IP: a Flink job restarting in a fresh Python worker must
still honour them. So each gate keeps its state in a small file per host, updated under ``flock``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

ATTEMPTS_PER_WINDOW = 300
WINDOW_SECONDS = 300.0


def retry_after_seconds(value: str | None) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds (None: absent, or not a number)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


@contextmanager
def _shared_state(path: str) -> Iterator[dict[str, Any]]:
    """The JSON state in ``path``, exclusively locked; what the block leaves in it is saved."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            state = json.loads(f.read() or "{}")
        except ValueError:  # a torn file from a killed process: start afresh
            state = {}
        yield state
        f.seek(0)
        f.truncate()
        f.write(json.dumps(state))


def _state_path(kind: str, url: str, state_dir: str | None) -> str:
    host = urlsplit(url).netloc or "unknown"
    name = f"binance-flink-{kind}-" + re.sub(r"[^A-Za-z0-9_.-]", "_", host) + ".json"
    return os.path.join(state_dir or tempfile.gettempdir(), name)


class AttemptGate:
    """Connection attempts to one host: at most ``limit`` per ``window`` seconds, and none while a
    Retry-After holds."""

    def __init__(
        self,
        url: str,
        state_dir: str | None = None,
        limit: int = ATTEMPTS_PER_WINDOW,
        window: float = WINDOW_SECONDS,
    ):
        self.path = _state_path("gate", url, state_dir)
        self.limit, self.window = limit, window

    def reserve(self) -> float:
        """Books the next attempt; returns how long to sleep before making it (0 when it may go
        now)."""
        with _shared_state(self.path) as state:
            now = time.time()
            recent = [t for t in state.get("attempts", []) if t > now - self.window]
            start: float = max(now, state.get("not_before", 0.0))
            if len(recent) >= self.limit:
                start = max(start, recent[-self.limit] + self.window)
            recent.append(start)
            state["attempts"] = recent[-self.limit :]
            return start - now

    def hold_off(self, seconds: float) -> None:
        """No attempt from this machine before ``seconds`` from now (a Retry-After)."""
        with _shared_state(self.path) as state:
            state["not_before"] = max(state.get("not_before", 0.0), time.time() + seconds)


class WeightGate:
    """Request weight spent on one host per calendar minute (Binance's ``X-MBX-USED-WEIGHT-1M``
    resets each minute), kept within ``budget``, and no request while a Retry-After holds."""

    def __init__(self, url: str, budget: int, state_dir: str | None = None):
        self.path = _state_path("weight", url, state_dir)
        self.budget = budget

    def reserve(self, weight: int) -> float:
        """Books ``weight`` now and returns 0, or books nothing and returns how long to wait."""
        with _shared_state(self.path) as state:
            now = time.time()
            minute = int(now // 60)
            if state.get("minute") != minute:
                state["minute"], state["used"] = minute, 0
            not_before: float = state.get("not_before", 0.0)
            if now < not_before:
                return not_before - now
            if state["used"] + weight > self.budget:
                return (minute + 1) * 60 - now
            state["used"] += weight
            return 0.0

    def observe(self, used: int) -> None:
        """The weight the server says this IP has used this minute (other programs' included)."""
        with _shared_state(self.path) as state:
            minute = int(time.time() // 60)
            if state.get("minute") != minute:
                state["minute"], state["used"] = minute, 0
            state["used"] = max(state["used"], used)

    def hold_off(self, seconds: float) -> None:
        """No request from this machine before ``seconds`` from now (a Retry-After)."""
        with _shared_state(self.path) as state:
            state["not_before"] = max(state.get("not_before", 0.0), time.time() + seconds)
