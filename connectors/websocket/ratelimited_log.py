"""Logging that cannot flood: per kind of event, a burst, then a summary with the suppressed
count."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass


@dataclass(slots=True)
class _Window:
    start: float
    level: int
    logged: int = 0
    suppressed: int = 0


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, burst: int = 5, interval: float = 10.0):
        self._logger, self._burst, self._interval = logger, burst, interval
        self._windows: dict[str, _Window] = {}
        self.suppressed_total = 0

    def log(self, level: int, kind: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        window = self._windows.get(kind)
        if window is None or now - window.start >= self._interval:
            if window is not None:
                self._summarize(kind, window)
            window = self._windows[kind] = _Window(now, level)
        if window.logged < self._burst:
            window.logged += 1
            self._logger.log(level, msg, *args)
        else:
            window.suppressed += 1
            self.suppressed_total += 1

    def warning(self, kind: str, msg: str, *args: object) -> None:
        self.log(logging.WARNING, kind, msg, *args)

    def flush(self, force: bool = False) -> None:
        """Reports what was suppressed in windows that have ended (all of them when ``force``)."""
        now = time.monotonic()
        for kind, window in list(self._windows.items()):
            if force or now - window.start >= self._interval:
                self._summarize(kind, window)
                del self._windows[kind]

    def _summarize(self, kind: str, window: _Window) -> None:
        if window.suppressed:
            self._logger.log(
                window.level,
                "%s: %d similar messages suppressed in %.0fs",
                kind,
                window.suppressed,
                time.monotonic() - window.start,
            )
