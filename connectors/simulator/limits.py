"""Binance's limits on one WebSocket connection, as data, and the sliding window that counts
a connection's incoming messages against one of them.

What breaking each limit gets (``server.py`` answers so):

- a request target (``/stream?streams=...``) longer than ``max_url_bytes``: HTTP 414 to the
  handshake. Binance does not document its figure; clients measured about 8,000 characters.
  websockets itself refuses a request line over 8,192 bytes with 414 as well, so a larger
  setting changes nothing beyond that.
- more than ``max_streams`` streams on one connection: by URL, HTTP 400 to the handshake; by
  ``SUBSCRIBE``, the error answer ``{"error":{"code":2,"msg":...},"id":N}``, none of its streams
  subscribed.
- more than ``max_incoming_per_second`` messages from the client within any one second (text,
  binary, ping and pong frames alike): close code 1008, reason ``Too many requests``.

``None`` lifts a limit.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

# Spot's figures; USD-M futures allow 10 incoming messages a second (venues.py).
MAX_URL_BYTES = 8000
MAX_STREAMS = 1024
MAX_INCOMING_PER_SECOND = 5
TOO_MANY_REQUESTS = (1008, "Too many requests")  # the close Binance sends a flooding client


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_url_bytes: int | None = MAX_URL_BYTES
    max_streams: int | None = MAX_STREAMS
    max_incoming_per_second: int | None = MAX_INCOMING_PER_SECOND


class IncomingRate:
    """Arrival times of a connection's messages over the last second (a sliding window, not
    calendar seconds: 5 at the end of one second and 5 at the start of the next are 10 in one)."""

    def __init__(self, per_second: int | None) -> None:
        self._per_second = per_second
        self._arrivals: deque[float] = deque()

    def admit(self, now: float) -> bool:
        """Count a message arriving at ``now`` (monotonic seconds); False if it is one too many."""
        if self._per_second is None:
            return True
        arrivals = self._arrivals
        while arrivals and arrivals[0] <= now - 1.0:
            arrivals.popleft()
        arrivals.append(now)
        return len(arrivals) <= self._per_second
