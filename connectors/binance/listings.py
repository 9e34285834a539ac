"""Which symbols join a ``--symbols all`` job while it runs: exchangeInfo, polled.

A symbol joins when exchangeInfo lists it for the first time, whatever its status (Binance shows
an announced listing in ``BREAK`` until its trading opens: subscribed then, it is complete from
its first trade with nothing to fetch), or when it trades and the job does not read it yet (a
listing that opened between two polls, a halt before the job started that ended): it starts at
the time of the previous poll, and what it traded since is fetched. A symbol that halts or is
delisted needs nothing: its stream goes quiet, the others' watermark moves on.

The plan the job started with (every symbol listed then, and when) is the first poll's
"previous": the same after a restart from a checkpoint, so a restarted job finds the same joins.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from connectors.binance.exchange_info import TRADING, ExchangeInfoUnavailable, listed_symbols
from connectors.binance.markets import MARKETS
from connectors.binance.rest import RestConfig
from connectors.binance.streams import first_few
from connectors.websocket.ratelimited_log import RateLimitedLog

log = logging.getLogger(__name__)

# How often exchangeInfo is read (weight 20 on spot): 0.3% of the IP's budget of 6,000 a minute.
DEFAULT_REFRESH_S = 60.0


@dataclass(frozen=True)
class Listings:
    """What a job's watch needs; pickled into the job (it runs where the bridge runs)."""

    rest: RestConfig
    market: str
    quotes: tuple[str, ...]
    exclude: tuple[str, ...]
    listed: frozenset[str]  # every symbol listed when the job planned its connections (lower)
    planned_at_ms: int
    refresh_s: float = DEFAULT_REFRESH_S
    gate_dir: str | None = None
    ca_file: str | None = None

    def read(self) -> dict[str, str]:
        return listed_symbols(
            self.rest,
            self.quotes,
            self.exclude,
            self.gate_dir,
            self.ca_file,
            MARKETS[self.market],
        )


class SymbolWatch:
    """Polls ``read`` (symbol -> status) every ``refresh_s`` in a thread of its own; ``take()``
    (from any thread) hands over the symbols that joined since, each with the time (ms) from
    which it is to be complete. ``known``: the symbols the job reads already; ``listed`` and
    ``polled_at_ms``: what the previous poll saw, and when."""

    def __init__(
        self,
        read: Callable[[], dict[str, str]],
        known: Collection[str],
        listed: Collection[str],
        polled_at_ms: int,
        refresh_s: float = DEFAULT_REFRESH_S,
    ) -> None:
        self.read, self.refresh_s = read, refresh_s
        self.known, self.listed, self.polled_at_ms = set(known), set(listed), polled_at_ms
        self._joined: dict[str, int] = {}  # symbol -> its start (ms), not taken yet
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rlog = RateLimitedLog(log)
        self._thread = threading.Thread(target=self._run, name="binance-listings", daemon=True)

    @classmethod
    def of(cls, listings: Listings, known: Collection[str]) -> SymbolWatch:
        return cls(
            listings.read, known, listings.listed, listings.planned_at_ms, listings.refresh_s
        )

    def start(self) -> SymbolWatch:
        self._thread.start()
        return self

    def take(self) -> dict[str, int]:
        with self._lock:
            joined, self._joined = self._joined, {}
        return joined

    def close(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(10.0)

    def poll(self) -> None:
        """One poll (the watch's thread's): what joined goes to ``take``."""
        now = int(time.time() * 1000)
        statuses = self.read()
        joined = {
            symbol: self.polled_at_ms
            for symbol, status in statuses.items()
            if symbol not in self.known and (symbol not in self.listed or status == TRADING)
        }
        self.listed |= statuses.keys()
        self.known |= joined.keys()
        self.polled_at_ms = now
        if joined:
            log.info(
                "listings: %d symbol%s joined (%s)",
                len(joined),
                "s" * (len(joined) > 1),
                first_few(sorted(joined), 5),
            )
            with self._lock:
                self._joined.update(joined)

    def _run(self) -> None:
        while True:
            try:
                self.poll()
            except ExchangeInfoUnavailable as exc:
                self._rlog.warning("listings", "listings: exchangeInfo not read: %s", exc)
            except Exception:  # a bug must show; the job goes on without new listings
                log.exception("listings: the watch failed; no symbol joins until a restart")
                return
            self._rlog.flush()
            if self._stop.wait(self.refresh_s):
                return
