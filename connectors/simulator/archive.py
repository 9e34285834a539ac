"""Binance's public archive (data.binance.vision) of the simulated market: a zip of each complete
UTC day's trades, and its ``.CHECKSUM``, made from what the market published.

    GET /data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2026-12-01.zip            the day's trades
    GET /data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2026-12-01.zip.CHECKSUM   sha256sum's line
    GET /data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2026-12-01.zip      (spot @aggTrade)
    GET /data/futures/um/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2026-12-01.zip  (usdm venue)

As Binance writes them (binance-public-data README, 2025-01-09; rows quoted in its issue #30): one
CSV member named like the zip with ``.csv``, no header, the columns ``id, price, qty, quoteQty,
time, isBuyerMaker, isBestMatch``, booleans ``True``/``False``, time in ms before 2025-01-01 and
in microseconds from then on (here the ms time and a made-up sub-millisecond part). Aggregate
trades: ``aggId, price, qty, firstId, lastId, timestamp, isBuyerMaker`` and on spot
``isBestMatch``; USD-M's files begin with a header row (``agg_trade_id,price,quantity,
first_trade_id,last_trade_id,transact_time,is_buyer_maker``), booleans ``true``/``false``, times in
ms. Which venue serves which folder, and its format, is ``venues.py``'s. A day is
published once it has ended, by the clock and by the symbol's trades (one came after it), and
only with trades in it (404 otherwise). The zip is the same bytes
on every request, so that a download cut short can be resumed with ``Range``.

Faults on command (``Faults``): a day answered 404 although complete (``hide_archive_day``), a zip
whose bytes no longer match its ``.CHECKSUM`` (``corrupt_archive_day``), downloads cut after some
bytes (``cut_archive_downloads``).
"""

from __future__ import annotations

import datetime
import hashlib
import io
import re
import time
import zipfile
from collections.abc import Iterable
from decimal import Decimal

from connectors.simulator.history import Event
from connectors.simulator.market import Market
from connectors.simulator.venues import SPOT, Venue

_FILE = re.compile(
    r"(?P<symbol>[A-Z0-9]+)/(?P=symbol)-(?P<name>trades|aggTrades)-"
    r"(?P<day>\d{4}-\d\d-\d\d)\.zip(?P<checksum>\.CHECKSUM)?"
)
_RANGE = re.compile(r"bytes=(\d+)-$")
_DAY_MS = 86_400_000
_QUOTE_STEP = Decimal("0.00000001")
_BOOL = {True: "True", False: "False"}  # as Python prints them: Binance's spot files do
_LOWER = {True: "true", False: "false"}  # USD-M's files
AGG_HEADER = (
    "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
)
_NAMES = {"trade": "trades", "aggTrade": "aggTrades"}  # stream kind -> its files' name

Answer = tuple[int, bytes, dict[str, str]]


def day_csv(
    events: Iterable[Event], day: datetime.date, kind: str = "trade", venue: Venue = SPOT
) -> bytes:
    """The CSV of a day's ``@trade`` events, as Binance's spot trades files hold them; of
    ``@aggTrade`` events, as ``venue``'s aggTrades files do."""
    since = venue.archive_microseconds_from
    micro = since is not None and day >= since
    if kind == "aggTrade":
        return _agg_csv(events, micro, venue.archive_header)
    lines = []
    for e in events:
        price, qty = e["p"], e["q"]
        quote = (Decimal(price) * Decimal(qty)).quantize(_QUOTE_STEP)
        when = e["T"] * 1000 + e["t"] % 1000 if micro else e["T"]
        lines.append(
            f"{e['t']},{price},{qty},{quote},{when},{_BOOL[e['m']]},{_BOOL[e.get('M', True)]}\n"
        )
    return "".join(lines).encode()


def _agg_csv(events: Iterable[Event], micro: bool, header: bool) -> bytes:
    lines = [AGG_HEADER] if header else []
    for e in events:
        when = e["T"] * 1000 + e["a"] % 1000 if micro else e["T"]
        row = f"{e['a']},{e['p']},{e['q']},{e['f']},{e['l']},{when}"
        if header:  # USD-M's: lower-case booleans, no isBestMatch
            lines.append(f"{row},{_LOWER[e['m']]}\n")
        else:
            lines.append(f"{row},{_BOOL[e['m']]},{_BOOL[e.get('M', True)]}\n")
    return "".join(lines).encode()


def day_zip(symbol: str, day: datetime.date, csv: bytes, name: str = "trades") -> bytes:
    """One member, ``<SYMBOL>-<name>-<day>.csv``, with a fixed date: the same bytes every time."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        stamp = (day.year, day.month, day.day, 0, 0, 0)
        info = zipfile.ZipInfo(f"{symbol}-{name}-{day}.csv", stamp)
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, csv)
    return out.getvalue()


def checksum_line(name: str, data: bytes) -> bytes:
    """What ``sha256sum FILE`` prints, as the ``.CHECKSUM`` files hold it."""
    return f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode()


class ArchiveFiles:
    """Lives on the simulator's event loop; ``answer`` is its one entry."""

    def __init__(self, market: Market) -> None:
        self.market = market
        # folder -> the stream kind of its day files, as the market's venue serves them
        self._roots = {root + "/": kind for kind, root in market.venue.archive_roots.items()}
        # made once, served many times
        self._zips: dict[tuple[str, str, datetime.date], bytes] = {}
        # faults
        self.hidden: set[tuple[str, datetime.date]] = set()
        self.corrupt: set[tuple[str, datetime.date]] = set()
        self.cuts: list[int] = []  # the next zip downloads send only this many bytes, one each
        self.served: list[tuple[str, int, int]] = []  # (path, status, body bytes) of each answer

    def routes(self, path: str) -> bool:
        return path.startswith("/data/")

    def answer(self, path: str, range_header: str | None) -> Answer:
        """Status, body and headers (``Content-Length`` among them: a cut download's promises
        more than its body holds)."""
        status, body, headers = self._answer(path, range_header or "")
        headers.setdefault("Content-Length", str(len(body)))
        self.served.append((path, status, len(body)))
        return status, body, headers

    def _answer(self, path: str, range_header: str) -> Answer:
        root = next((r for r in self._roots if path.startswith(r)), None)
        match = None if root is None else _FILE.fullmatch(path[len(root) :])
        if root is None or match is None or match["name"] != _NAMES[self._roots[root]]:
            return _not_found()
        kind = self._roots[root]
        symbol, day = match["symbol"], datetime.date.fromisoformat(match["day"])
        data = self._zip(kind, symbol, day)
        if data is None:
            return _not_found()
        name = f"{symbol}-{match['name']}-{day}.zip"
        if match["checksum"]:
            return 200, checksum_line(name, data), {"Content-Type": "text/plain"}
        if (symbol, day) in self.corrupt:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        first = 0
        wanted = _RANGE.match(range_header)
        if wanted is not None:
            first = int(wanted[1])
            if first >= len(data):
                return 416, b"", {"Content-Range": f"bytes */{len(data)}"}
        body = data[first:]
        extra = {"Content-Type": "application/zip", "Content-Length": str(len(body))}
        if first:
            extra["Content-Range"] = f"bytes {first}-{len(data) - 1}/{len(data)}"
        if self.cuts:  # the connection ends after this many bytes: Content-Length promised more
            body = body[: self.cuts.pop(0)]
        return (206 if first else 200), body, extra

    def _zip(self, kind: str, symbol: str, day: datetime.date) -> bytes | None:
        """The day's zip; None when it is not published: not over yet (by the clock, and by the
        market's trade times: a replayed capture's day goes on), hidden, or no trades."""
        start = int(datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp())
        start_ms = start * 1000
        if start_ms + _DAY_MS > time.time() * 1000 or (symbol, day) in self.hidden:
            return None
        made = self._zips.get((kind, symbol, day))
        if made is not None:
            return made
        published = self.market.published(symbol, kind)
        if published is None or not published.times or published.times[-1] < start_ms + _DAY_MS:
            return None
        first = published.index_of_time(start_ms)
        events = published.events[first : published.index_of_time(start_ms + _DAY_MS)]
        if not events:
            return None
        venue = self.market.venue
        made = day_zip(symbol, day, day_csv(events, day, kind, venue), _NAMES[kind])
        self._zips[(kind, symbol, day)] = made
        return made


def _not_found() -> Answer:
    return 404, b"<Error><Code>NoSuchKey</Code></Error>", {"Content-Type": "application/xml"}
