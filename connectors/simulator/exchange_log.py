"""What the exchange answered and how it ended connections, in order: the log a test reads to
say "no 414, no 429, no 1008 anywhere".

    assert not {414, 418, 429} & set(sim.log.statuses)
    assert sim.log.close_codes[1008] == 0

An entry is made before its answer or close frame goes out, so a client that has read one finds
it logged; except a request websockets refuses itself (a request line over 8 KiB: 414, path
``""``), logged just after.

Thread contract: entries are appended on the simulator's loop only; any thread may read, since
appending to a list and copying one are each atomic under the GIL, and the readers copy first.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

HTTP = "http"  # an HTTP status answered: REST, or a handshake (101 when it was accepted)
CLOSE = "close"  # a close frame the server started the closing handshake with
RESET = "reset"  # a connection the server cut with a TCP reset (no close frame: code 1006)


@dataclass(frozen=True, slots=True)
class LogEntry:
    at: float  # time.time()
    kind: str  # HTTP, CLOSE or RESET
    code: int  # the HTTP status, or the close code (1006 for a reset)
    path: str  # the request target, or the path the connection was opened with
    reason: str = ""  # a close frame's reason
    connection: int | None = None  # the connection's record id (CLOSE and RESET)


class ExchangeLog:
    def __init__(self) -> None:
        self._entries: list[LogEntry] = []

    def answered(self, path: str, status: int) -> None:
        self._entries.append(LogEntry(time.time(), HTTP, status, path))

    def closed(self, connection: int, path: str, code: int, reason: str) -> None:
        self._entries.append(LogEntry(time.time(), CLOSE, code, path, reason, connection))

    def reset(self, connection: int, path: str) -> None:
        self._entries.append(LogEntry(time.time(), RESET, 1006, path, "", connection))

    @property
    def entries(self) -> list[LogEntry]:
        """Everything so far, oldest first (a copy)."""
        return list(self._entries)

    @property
    def statuses(self) -> Counter[int]:
        """How often each HTTP status was answered (101: handshakes accepted)."""
        return Counter(entry.code for entry in self.entries if entry.kind == HTTP)

    @property
    def close_codes(self) -> Counter[int]:
        """How often the server closed with each code; resets count as 1006."""
        return Counter(entry.code for entry in self.entries if entry.kind != HTTP)
