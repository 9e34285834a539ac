"""Binance's public archive (data.binance.vision) of the simulated market: a zip of each complete
UTC day's trades, and its ``.CHECKSUM``, made from what the market published.

    GET /data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2026-12-01.zip            the day's trades
    GET /data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2026-12-01.zip.CHECKSUM   sha256sum's line

As Binance writes them (binance-public-data README, 2025-01-09; rows quoted in its issue #30): one
CSV member named like the zip with ``.csv``, no header, the columns ``id, price, qty, quoteQty,
time, isBuyerMaker, isBestMatch``, booleans ``True``/``False``, time in ms before 2025-01-01 and
in microseconds from then on (here the ms time and a made-up sub-millisecond part). A day is
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

PREFIX = "/data/spot/daily/trades/"
_PATH = re.compile(
    r"/data/spot/daily/trades/(?P<symbol>[A-Z0-9]+)/(?P=symbol)-trades-"
    r"(?P<day>\d{4}-\d\d-\d\d)\.zip(?P<checksum>\.CHECKSUM)?"
)
_RANGE = re.compile(r"bytes=(\d+)-$")
MICROSECONDS_FROM = datetime.date(2025, 1, 1)  # spot files' times are in µs from this day on
_DAY_MS = 86_400_000
_QUOTE_STEP = Decimal("0.00000001")
_BOOL = {True: "True", False: "False"}  # as Python prints them: Binance's spot files do

Answer = tuple[int, bytes, dict[str, str]]


def day_csv(events: Iterable[Event], day: datetime.date) -> bytes:
    """The CSV of a day's ``@trade`` events, as Binance's spot trades files hold them."""
    micro = day >= MICROSECONDS_FROM
    lines = []
    for e in events:
        price, qty = e["p"], e["q"]
        quote = (Decimal(price) * Decimal(qty)).quantize(_QUOTE_STEP)
        when = e["T"] * 1000 + e["t"] % 1000 if micro else e["T"]
        lines.append(
            f"{e['t']},{price},{qty},{quote},{when},{_BOOL[e['m']]},{_BOOL[e.get('M', True)]}\n"
        )
    return "".join(lines).encode()


def day_zip(symbol: str, day: datetime.date, csv: bytes) -> bytes:
    """One member, ``<SYMBOL>-trades-<day>.csv``, with a fixed date: the same bytes every time."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        stamp = (day.year, day.month, day.day, 0, 0, 0)
        info = zipfile.ZipInfo(f"{symbol}-trades-{day}.csv", stamp)
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
        self._zips: dict[tuple[str, datetime.date], bytes] = {}  # made once, served many times
        # faults
        self.hidden: set[tuple[str, datetime.date]] = set()
        self.corrupt: set[tuple[str, datetime.date]] = set()
        self.cuts: list[int] = []  # the next zip downloads send only this many bytes, one each
        self.served: list[tuple[str, int, int]] = []  # (path, status, body bytes) of each answer

    @staticmethod
    def routes(path: str) -> bool:
        return path.startswith(PREFIX)

    def answer(self, path: str, range_header: str | None) -> Answer:
        """Status, body and headers (``Content-Length`` among them: a cut download's promises
        more than its body holds)."""
        status, body, headers = self._answer(path, range_header or "")
        headers.setdefault("Content-Length", str(len(body)))
        self.served.append((path, status, len(body)))
        return status, body, headers

    def _answer(self, path: str, range_header: str) -> Answer:
        match = _PATH.fullmatch(path)
        if match is None:
            return _not_found()
        symbol, day = match["symbol"], datetime.date.fromisoformat(match["day"])
        data = self._zip(symbol, day)
        if data is None:
            return _not_found()
        name = f"{symbol}-trades-{day}.zip"
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

    def _zip(self, symbol: str, day: datetime.date) -> bytes | None:
        """The day's zip; None when it is not published: not over yet (by the clock, and by the
        market's trade times: a replayed capture's day goes on), hidden, or no trades."""
        start = int(datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp())
        start_ms = start * 1000
        if start_ms + _DAY_MS > time.time() * 1000 or (symbol, day) in self.hidden:
            return None
        made = self._zips.get((symbol, day))
        if made is not None:
            return made
        published = self.market.published(symbol, "trade")
        if published is None or not published.times or published.times[-1] < start_ms + _DAY_MS:
            return None
        first = published.index_of_time(start_ms)
        events = published.events[first : published.index_of_time(start_ms + _DAY_MS)]
        if not events:
            return None
        made = day_zip(symbol, day, day_csv(events, day))
        self._zips[(symbol, day)] = made
        return made


def _not_found() -> Answer:
    return 404, b"<Error><Code>NoSuchKey</Code></Error>", {"Content-Type": "application/xml"}
