"""The exchanges the simulator can be, as data: Binance spot and Binance USD-M futures.

What differs between them, as Binance documents it (2026; sources in connectors/binance/markets.py,
which the simulator does not import: the exchange and its client each state what they believe):

- where streams are served: spot at the root; USD-M under ``/market`` (``/market/ws/<stream>``,
  ``/market/stream?streams=``). USD-M's other roots (``/public``, ``/private``, and the legacy root
  retired in April 2026) take the connection and never deliver a trade stream;
- the trade streams: spot ``@trade`` and ``@aggTrade``; USD-M ``@aggTrade`` only, its events
  ``{"e","E","a","s","p","q","nq","f","l","T","m","st"}`` (``nq``: the quantity without RPI
  orders; ``st``: undocumented, 1 in the frames another client captured in October 2026) and
  no ``M``;
- REST: spot ``/api/v3`` (historicalTrades 25, aggTrades 4, exchangeInfo 20, ticker/24hr by
  symbols) at 6,000 weight a minute; USD-M ``/fapi/v1`` (aggTrades 20, exchangeInfo 1) at 2,400,
  its ``aggTrades`` asked by time refused beyond the last 48 hours (``-4166``);
- per connection: 5 incoming messages a second on spot, 10 on USD-M; pings every 20 s (pong due
  within a minute) on spot, every 3 minutes (within 10) on USD-M;
- the public archive's day files (data.binance.vision, ``archive.py``): spot's under
  ``/data/spot/daily/{trades|aggTrades}/``, no header row, times in microseconds from 2025 on;
  USD-M's ``/data/futures/um/daily/aggTrades/``, with a header row, times in ms.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from connectors.simulator.limits import ConnectionLimits


@dataclass(frozen=True, slots=True)
class Venue:
    name: str
    stream_root: str  # the path prefix its trade streams are served under ("" for the root)
    silent_roots: tuple[str, ...]  # prefixes that take a connection and never deliver them
    stream_kinds: tuple[str, ...]  # the first is what its generated feeds publish unless told
    rest_root: str  # the path prefix of its REST endpoints
    # REST endpoint -> request weight; None: by the symbols asked for (market_info.ticker_weight)
    weights: Mapping[str, int | None]
    weight_limit: int  # request weight a minute, per IP
    limits: ConnectionLimits
    ping_interval: float
    pong_timeout: float
    history_window_ms: int | None  # how far back aggTrades answers asks by time; None: any
    archive_roots: Mapping[str, str]  # stream kind -> the folder of its archive's day files
    archive_header: bool  # whether its day files begin with a header row
    archive_microseconds_from: datetime.date | None  # its files' times are µs from this day on

    def route(self, path: str) -> tuple[str, bool] | None:
        """``(the path under its root, whether streams asked for there are delivered)``; None for
        a path under no root of this venue."""
        roots = [(self.stream_root, True), *((root, False) for root in self.silent_roots)]
        for root, delivers in sorted(roots, key=lambda r: -len(r[0])):
            if path == root or path.startswith(root + "/"):
                return path[len(root) :], delivers
        return None

    def endpoint(self, path: str) -> str | None:
        """The REST endpoint a path names (``aggTrades``...), None if this venue has none there."""
        if not path.startswith(self.rest_root + "/"):
            return None
        name = path[len(self.rest_root) + 1 :]
        return name if name in self.weights else None


SPOT = Venue(
    name="spot",
    stream_root="",
    silent_roots=(),
    stream_kinds=("trade", "aggTrade"),
    rest_root="/api/v3",
    weights={"historicalTrades": 25, "aggTrades": 4, "exchangeInfo": 20, "ticker/24hr": None},
    weight_limit=6000,
    limits=ConnectionLimits(),  # limits.py's figures are spot's
    ping_interval=20.0,
    pong_timeout=60.0,
    history_window_ms=None,
    archive_roots={"trade": "/data/spot/daily/trades", "aggTrade": "/data/spot/daily/aggTrades"},
    archive_header=False,
    archive_microseconds_from=datetime.date(2025, 1, 1),
)
USDM = Venue(
    name="usdm",
    stream_root="/market",
    silent_roots=("", "/public", "/private"),
    stream_kinds=("aggTrade",),
    rest_root="/fapi/v1",
    weights={"aggTrades": 20, "exchangeInfo": 1},
    weight_limit=2400,
    limits=ConnectionLimits(max_incoming_per_second=10),
    ping_interval=180.0,
    pong_timeout=600.0,
    history_window_ms=48 * 3_600_000,
    archive_roots={"aggTrade": "/data/futures/um/daily/aggTrades"},
    archive_header=True,
    archive_microseconds_from=None,
)
VENUES = {venue.name: venue for venue in (SPOT, USDM)}
