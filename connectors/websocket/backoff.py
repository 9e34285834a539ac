"""Capped exponential backoff with jitter."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial: float, maximum: float, jitter: float, multiplier: float = 2.0):
        self.initial, self.maximum, self.jitter, self.multiplier = (
            initial,
            maximum,
            jitter,
            multiplier,
        )
        self.attempts = 0

    def next_delay(self) -> float:
        """The wait before the next attempt; each call counts one attempt."""
        base = min(self.maximum, self.initial * self.multiplier**self.attempts)
        self.attempts += 1
        return base * (1 + random.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self.attempts = 0
