"""Binance's public archive of trades (data.binance.vision): day files, downloaded once into a
cache folder, checksum verified, read as the same ``Trade`` (or ``AggTrade``) records the stream
delivers.

What Binance publishes (binance/binance-public-data README as of its commit 5c7f319, 2025-01-09;
rows quoted in its issue #30)::

    GET https://data.binance.vision/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2026-12-01.zip
        one CSV member, no header row (detected and skipped should one appear), one trade a row:
        id, price, qty, quoteQty, time, isBuyerMaker, isBestMatch
        3735693016,61685.99000000,0.00017000,0.01048661,1723161601437,True,True
        time: ms before 2025-01-01, microseconds from then on ("The timestamp for SPOT Data
        from January 1st 2025 onwards will be in microseconds"); told apart by size, row by row
    GET <the zip's URL>.CHECKSUM
        "<sha256 hex>  BTCUSDT-trades-2026-12-01.zip", as ``sha256sum`` prints it
    GET .../data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2026-12-01.zip
    GET .../data/futures/um/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2026-12-01.zip
        aggregate trades (``@aggTrade``), one a row:
        aggId, price, qty, firstId, lastId, timestamp, isBuyerMaker[, isBestMatch (spot only)]
        USD-M's files carry a header row (``agg_trade_id,price,quantity,first_trade_id,
        last_trade_id,transact_time,is_buyer_maker``, from about 2022-08-11 on), detected as
        for trades; their times are ms (spot's microseconds from 2025 on, detected alike)

Where each market keeps which kind of day file is ``markets.py``'s ``archive_paths``.

A day's file appears the day after ("new daily data becoming available the next day"), costs no
request weight, and holds the trades of that UTC day, ids ascending: the archive's last id of a
day is where the next day, or the REST history, goes on. Licence: the README of
binance-public-data says MIT; the data is Binance's market data under Binance's terms of use.

``ArchiveHistory`` puts the archive in front of the REST history (``BinanceHistory``) as one
``History``: the complete days from a start time on come from the archive, the rest from REST.
A day the archive does not have (not yet published: 404) or cannot prove (its checksum does not
match, twice) is fetched from REST instead, with a warning: never a silent gap.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import fcntl
import hashlib
import io
import logging
import os
import time
import zipfile
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from connectors.binance.history import PAGE_SIZE, BinanceHistory
from connectors.binance.markets import SPOT
from connectors.binance.parser import Parser
from connectors.binance.records import AggTrade, DeadLetter, FailureReason, Trade
from connectors.settings import check_settings, check_url, setting
from connectors.websocket.ratelimited_log import RateLimitedLog

log = logging.getLogger(__name__)

DEFAULT_ARCHIVE_URL = "https://data.binance.vision"
DAY_MS = 86_400_000
# A day is read from the archive only if at least this much of it is wanted (the day of --since
# may be nearly over): below, REST is cheaper than a whole day's file. One hour of BTCUSDT is about
# 126,000 trades, 126 historicalTrades pages, 3,150 weight: more than a minute of the default
# budget (3,000 a minute), against a day's file of tens of MB, seconds to download and no weight.
# A quiet symbol's hour costs a page; its day file is as small. So the break-even is a fraction of
# the day, whatever the symbol: an hour, 1/24.
MIN_ARCHIVE_SPAN_MS = 3_600_000
# Times at or above this are microseconds: in ms it is the year 5138, in µs 1973.
MICROSECONDS_FROM = 10**14
DOWNLOAD_ATTEMPTS = 5  # an interrupted download is resumed (Range) up to this many times
CHUNK = 1 << 20  # read to hash
# written as received: a download interrupted keeps what came up to its last whole piece
DOWNLOAD_PIECE = 1 << 14

Record = Trade | AggTrade | DeadLetter  # what a history page holds


def default_cache() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "binance-flink", "archive")


@dataclass(frozen=True)
class ArchiveConfig:
    archive_url: str = setting(
        DEFAULT_ARCHIVE_URL,
        "Binance's public archive of day files, read for --since further back than a day",
        metavar="URL",
    )
    archive_cache: str = setting(
        default_cache(),
        "where the archive's day files are kept once downloaded and verified (reused by later "
        "runs; delete what you no longer need)",
        metavar="DIR",
    )

    def __post_init__(self) -> None:
        check_settings(self)
        check_url(self.archive_url, ("http", "https"), "archive_url")


class ArchiveUnavailable(Exception):
    """A day file the archive could not supply, and why."""


class ArchiveUnreachable(ArchiveUnavailable):
    """The archive itself does not answer (no route, refused, timed out, 5xx): the other days
    will not fare better."""


def day_of(time_ms: int) -> datetime.date:
    return datetime.datetime.fromtimestamp(time_ms / 1000, datetime.UTC).date()


def day_start_ms(day: datetime.date) -> int:
    return int(datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp()) * 1000


def archive_days(
    since_ms: int,
    until_ms: int | None = None,
    now_ms: int | None = None,
    rest_window_ms: int | None = None,
) -> list[datetime.date]:
    """The complete UTC days from ``since_ms`` on (to ``until_ms``) worth reading from the archive:
    each has ended, and at least ``MIN_ARCHIVE_SPAN_MS`` of it is wanted, or REST cannot serve
    the rest of it: it began before ``rest_window_ms`` (an hour spared) back from now, when REST's
    history reaches back only that far (USD-M's, 48 hours)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    rest_from = None if rest_window_ms is None else now_ms - rest_window_ms + 3_600_000
    first = day_of(since_ms)
    if day_start_ms(first) + DAY_MS - since_ms < MIN_ARCHIVE_SPAN_MS and (
        rest_from is None or since_ms >= rest_from
    ):
        first += datetime.timedelta(days=1)
    last = day_of(now_ms) - datetime.timedelta(days=1)
    if until_ms is not None:
        cut = day_of(until_ms - MIN_ARCHIVE_SPAN_MS)
        if rest_from is not None and day_start_ms(day_of(until_ms)) < rest_from:
            cut = day_of(until_ms - 1)  # REST could not serve until's day up to it
        last = min(last, cut)
    return [first + datetime.timedelta(days=n) for n in range((last - first).days + 1)]


class Archive:
    """Day files, downloaded into ``config.archive_cache`` and verified against their checksum.

    ``path``: where the archive keeps a symbol's day file (``markets.py``'s ``archive_paths``;
    by default spot's trades). Layout of the cache: that path under ``<cache>``
    (``<cache>/data/spot/daily/trades/<SYMBOL>/<file>.zip``) with its ``.CHECKSUM`` beside it, as
    on the archive; a download in progress is ``<file>.zip.part`` (locked while written), resumed
    from where it stopped by the next attempt or run.
    """

    def __init__(
        self,
        config: ArchiveConfig = ArchiveConfig(),
        ca_file: str | None = None,
        path: str = SPOT.archive_paths["trade"],
    ):
        self._path = path
        self._base = config.archive_url.rstrip("/")
        self._cache = Path(config.archive_cache)
        self._verify = ca_file or True
        self._session = requests.Session()
        self._timeout = 30.0
        self.counts = dict.fromkeys(
            (
                "archive_downloaded",  # day files downloaded and verified
                "archive_cached",  # day files found in the cache, verified
                "archive_bytes",  # downloaded
                "archive_resumed",  # downloads resumed after an interruption (HTTP Range)
                "archive_corrupt",  # downloads whose checksum did not match
                "archive_missing",  # days the archive answered 404 for
            ),
            0,
        )

    def day_file(self, symbol: str, day: datetime.date) -> Path:
        """The verified zip of ``symbol``'s trades on ``day``; raises ``ArchiveUnavailable``."""
        relative = self._path.format(symbol=symbol, day=day)
        name = relative.rsplit("/", 1)[-1]
        path = self._cache / relative
        checksum_path = path.with_name(name + ".CHECKSUM")
        if path.exists() and checksum_path.exists():
            expected = _expected_sha(checksum_path.read_bytes(), name)
            if expected is not None and _sha256(path) == expected:
                self.counts["archive_cached"] += 1
                return path
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"{self._base}/{relative}"
        checksum = self._get_small(url + ".CHECKSUM", name)
        expected = _expected_sha(checksum, name)
        if expected is None:
            raise ArchiveUnavailable(f"{name}.CHECKSUM holds no sha256 for {name}: {checksum!r}")
        part = path.with_name(name + ".part")
        for attempt in (1, 2):  # a mismatch may be a bad resume: once more from the start
            with open(part, "ab") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # another process downloading it waits
                if path.exists() and _sha256(path) == expected:
                    break  # that process did it
                self._download(url, part, name)
                got = _sha256(part)
                if got == expected:
                    checksum_path.write_bytes(checksum)
                    os.replace(part, path)
                    break
                self.counts["archive_corrupt"] += 1
                part.unlink()
                log.warning(
                    "archive: %s: sha256 %s, its .CHECKSUM says %s%s",
                    name,
                    got,
                    expected,
                    ": downloading it again" if attempt == 1 else "",
                )
        else:
            raise ArchiveUnavailable(f"{name} does not match its .CHECKSUM (downloaded twice)")
        self.counts["archive_downloaded"] += 1
        return path

    def close(self) -> None:
        self._session.close()

    def _get_small(self, url: str, name: str) -> bytes:
        try:
            response = self._session.get(url, timeout=self._timeout, verify=self._verify)
        except requests.RequestException as exc:
            raise ArchiveUnreachable(f"GET {url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 404:
            self.counts["archive_missing"] += 1
            raise ArchiveUnavailable(f"{name} is not published (HTTP 404)")
        if response.status_code >= 500:
            raise ArchiveUnreachable(f"GET {url}: HTTP {response.status_code}")
        if response.status_code != 200:
            raise ArchiveUnavailable(f"GET {url}: HTTP {response.status_code}")
        return response.content

    def _download(self, url: str, part: Path, name: str) -> None:
        """Into ``part``, going on from its size with ``Range`` (the caller holds its lock)."""
        cause = ""
        for attempt in range(DOWNLOAD_ATTEMPTS):
            have = part.stat().st_size
            headers = {"Range": f"bytes={have}-"} if have else {}
            if have:
                self.counts["archive_resumed"] += 1
                log.info("archive: %s: resuming the download at byte %d", name, have)
            try:
                with self._session.get(
                    url, headers=headers, stream=True, timeout=self._timeout, verify=self._verify
                ) as response:
                    status = response.status_code
                    if status == 416:  # the partial file is no prefix of this one: start over
                        part.write_bytes(b"")
                        continue
                    if status == 404:
                        self.counts["archive_missing"] += 1
                        raise ArchiveUnavailable(f"{name} is not published (HTTP 404)")
                    if status not in (200, 206):
                        raise requests.HTTPError(f"HTTP {status}")
                    with open(part, "ab" if status == 206 else "wb") as out:
                        for chunk in response.iter_content(DOWNLOAD_PIECE):
                            out.write(chunk)
                            self.counts["archive_bytes"] += len(chunk)
                return
            except requests.RequestException as exc:
                cause = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "archive: %s: download interrupted at byte %d: %s",
                    name,
                    part.stat().st_size,
                    cause,
                )
                time.sleep(min(5.0, 0.2 * 2**attempt))
        raise ArchiveUnreachable(f"{name}: download failed {DOWNLOAD_ATTEMPTS} times: {cause}")


def read_day(
    path: Path, symbol: str, parser: Parser, kind: str = "trade"
) -> Generator[Record, None, None]:
    """The trades (``kind`` ``trade``) or aggregate trades (``aggTrade``) of a day file in its
    order, each row checked as a REST entry is; a row that fails is a dead letter. Raises
    ``ArchiveUnavailable`` for a file that is no archive day file, or once an id is not above the
    one before (the rest of the day is then REST's)."""
    row_record = _ROWS[kind]
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ArchiveUnavailable(f"{path.name} is no zip file: {exc}") from exc
    with archive:
        members = archive.namelist()
        if len(members) != 1:
            raise ArchiveUnavailable(f"{path.name} holds {len(members)} files, not one CSV")
        try:
            with archive.open(members[0]) as raw:
                rows = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", errors="replace"))
                last = -1
                for row in rows:
                    if rows.line_num == 1 and row and not row[0].isdigit():
                        continue  # a header row
                    record = row_record(row, symbol, parser)
                    if type(record) is not DeadLetter:
                        if record.seq <= last:  # the replay reads ids in order: REST's
                            raise ArchiveUnavailable(
                                f"{path.name}: id {record.seq} after {last} "
                                f"(row {rows.line_num}): not in ascending order"
                            )
                        last = record.seq
                    yield record
        except (zipfile.BadZipFile, OSError, EOFError, csv.Error) as exc:
            raise ArchiveUnavailable(f"{path.name} cannot be read to its end: {exc}") from exc


def _trade(row: list[str], symbol: str, parser: Parser) -> Record:
    raw = ",".join(row).encode()
    if len(row) < 6:
        return Parser.failure(
            FailureReason.MISSING_FIELD, raw, f"archive row of {len(row)} columns, expected 7"
        )
    trade_id, when, maker = row[0], row[4], row[5].lower()
    if not (trade_id.isdigit() and when.isdigit() and maker in ("true", "false")):
        return Parser.failure(FailureReason.WRONG_TYPE, raw, "archive row: id, time or side")
    ms = _ms(int(when))
    data = {
        "e": "trade",
        "s": symbol,
        "t": int(trade_id),
        "p": row[1],
        "q": row[2],
        "T": ms,
        "E": ms,
        "m": maker == "true",
    }
    return parser.rest_record("trade", data, raw)


def _agg_trade(row: list[str], symbol: str, parser: Parser) -> Record:
    """aggId, price, qty, firstId, lastId, timestamp, isBuyerMaker[, isBestMatch]"""
    raw = ",".join(row).encode()
    if len(row) < 7:
        return Parser.failure(
            FailureReason.MISSING_FIELD, raw, f"archive row of {len(row)} columns, expected 7"
        )
    agg_id, first, last, when, maker = row[0], row[3], row[4], row[5], row[6].lower()
    if not (
        all(field.isdigit() for field in (agg_id, first, last, when)) and maker in ("true", "false")
    ):
        return Parser.failure(
            FailureReason.WRONG_TYPE, raw, "archive row: ids, time or side of an aggregate trade"
        )
    ms = _ms(int(when))
    data = {
        "e": "aggTrade",
        "s": symbol,
        "a": int(agg_id),
        "p": row[1],
        "q": row[2],
        "f": int(first),
        "l": int(last),
        "T": ms,
        "E": ms,
        "m": maker == "true",
    }
    return parser.rest_record("aggTrade", data, raw)


def _ms(when: int) -> int:
    """A file's time in ms: spot's files hold microseconds from 2025 on, told by size."""
    return when // 1000 if when >= MICROSECONDS_FROM else when


_ROWS = {"trade": _trade, "aggTrade": _agg_trade}  # stream kind -> its day files' row reader


class _Hole:
    """Where a planned day the archive could not supply stands in a replay: REST's from there
    (why is logged where it happens)."""


_HOLE = _Hole()


@dataclass(eq=False)
class _Cursor:
    """Where one symbol's replay stands in its archive days."""

    items: Iterator[Record | _Hole]
    days: list[datetime.date]  # the days it reads, in order
    head: Record | _Hole | None = None
    peeked: bool = False
    # whether ids before the head may be missing from the archive: before its first day (the
    # start's partial day), and after a day it could not supply; those come from REST
    rest_before_head: bool = True
    done: bool = False
    failures: list[DeadLetter] = field(default_factory=list)

    def peek(self) -> Record | _Hole | None:
        if not self.peeked:
            self.head, self.peeked = next(self.items, None), True
        return self.head

    def pop(self) -> None:
        self.peeked = False


class ArchiveHistory:
    """The archive's complete days from ``since_ms`` (to ``until_ms``) in front of the REST
    history, as one ``History`` (``connectors.websocket.backfill``): a page from ``first_seq`` comes
    from the day files while they cover it, else from REST, where ids the archive lacks (before
    its first day, in a day it could not supply, after its last) are fetched. One thread at a time,
    the backfill's."""

    page_size = PAGE_SIZE
    record_types = (Trade, AggTrade)

    def __init__(
        self,
        rest: BinanceHistory,
        archive: Archive,
        since_ms: int,
        until_ms: int | None = None,
        symbols: int = 1,
        rest_window_ms: int | None = None,
    ) -> None:
        """``symbols``: how many will be replayed, for the progress (days needed);
        ``rest_window_ms``: how far back REST's history serves asks by time (None: any), the days
        further back come from the archive whole. ``archive`` holds day files of ``rest.kind``."""
        self._rest, self._archive = rest, archive
        self._since, self._until = since_ms, until_ms
        self._days = archive_days(since_ms, until_ms, rest_window_ms=rest_window_ms)
        self._kind = rest.kind
        self._parser = Parser(kinds=(rest.kind,))
        self._cursors: dict[str, _Cursor] = {}
        self._needed = len(self._days) * symbols  # day files to read, over every symbol
        self._rlog = RateLimitedLog(log)  # a whole market's days would flood the console
        self._unreachable = ""  # why the archive is given up for this run, once it is
        self.counts = dict.fromkeys(
            ("archive_days_fetched", "archive_trades", "archive_fallbacks"), 0
        )

    def fetch(self, key: str, first_seq: int) -> list[Record]:
        """A full page unless the history has nothing newer (the backfill reads a short page so):
        where the archive lacks ids, the page goes on with REST's."""
        cursor = self._cursors.get(key) or self._resumed(key, first_seq)
        page: list[Record] = list(cursor.failures)
        cursor.failures.clear()
        while not cursor.done and len(page) < PAGE_SIZE:
            head = cursor.peek()
            if head is None:
                cursor.done = True
                self._rlog.log(
                    logging.INFO,
                    "archive: days done",
                    "archive: %s: archive days done, REST from id %d",
                    key,
                    first_seq,
                )
            elif head is _HOLE:
                cursor.pop()
                cursor.rest_before_head = True
            elif type(head) is DeadLetter:
                page.append(head)
                cursor.pop()
            elif isinstance(head, (Trade, AggTrade)):
                if head.seq < first_seq:
                    cursor.pop()  # before the start, or already fetched from REST
                    cursor.rest_before_head = False
                    continue
                if head.seq > first_seq and cursor.rest_before_head:
                    break  # ids the archive lacks: from REST
                page.append(head)
                cursor.pop()
                cursor.rest_before_head = False
                first_seq = head.seq + 1
                self.counts["archive_trades"] += 1
        if len(page) < PAGE_SIZE and not (cursor.done and self._covers_until(cursor)):
            page += self._rest.fetch(key, first_seq)[: PAGE_SIZE - len(page)]
        return page

    def _covers_until(self, cursor: _Cursor) -> bool:
        """Whether the archive read to its end holds everything up to ``until_ms``: then a short
        last page is the end (a replay stops before ``until_ms``), no REST page is needed."""
        last = cursor.days[-1] if cursor.days else None
        return (
            self._until is not None
            and last is not None
            and not cursor.rest_before_head
            and day_start_ms(last) + DAY_MS >= self._until
        )

    def seq_at(self, key: str, time_ms: int) -> int | None:
        """The first id at or after ``time_ms``: read from the archive when its day is there. The
        start (``since_ms``) is found by the replay's own reading, which then goes on from there
        rather than reading that day again."""
        day = day_of(time_ms)
        if time_ms == self._since and day in self._days and key not in self._cursors:
            cursor = self._cursor(key, self._days)
            while (head := cursor.peek()) is not None:
                if head is _HOLE:
                    cursor.pop()
                    cursor.rest_before_head = True
                    break
                if type(head) is DeadLetter:
                    cursor.failures.append(head)
                elif isinstance(head, (Trade, AggTrade)):
                    if head.time >= time_ms:
                        return head.seq
                    cursor.rest_before_head = False
                cursor.pop()
        elif day in self._days and not self._unreachable:
            try:
                for record in self._day_records(key, day):
                    if type(record) is not DeadLetter and record.time >= time_ms:
                        return record.seq
            except ArchiveUnavailable as exc:
                log.info("archive: %s %s: %s: looking the time up over REST", key, day, exc)
        return self._rest.seq_at(key, time_ms)

    def newest_seqs(self, keys: Sequence[str]) -> Mapping[str, int] | None:
        return self._rest.newest_seqs(keys)

    def unfilled(self, key: str, first: int, last: int, why: str) -> DeadLetter:
        return self._rest.unfilled(key, first, last, why)

    @property
    def stats(self) -> dict[str, int]:
        counts = self._rest.stats
        counts.update(self._archive.counts)
        counts.update(self.counts)
        counts["archive_days_needed"] = self._needed
        return counts

    def close(self) -> None:
        self._rlog.flush(force=True)
        self._rest.close()
        self._archive.close()

    def _cursor(self, key: str, days: list[datetime.date]) -> _Cursor:
        self._needed -= len(self._days) - len(days)
        cursor = self._cursors[key] = _Cursor(self._replay(key, days), days)
        cursor.done = not days
        return cursor

    def _resumed(self, key: str, first_seq: int) -> _Cursor:
        """A replay that begins at an id rather than at the start time (a restart from a
        checkpoint, or a start whose first day REST serves): the days before that id's are passed
        over, not read through. Its time costs a page of REST (weight 25)."""
        days = self._days
        if days:
            probe = self._rest.fetch(key, first_seq)[:1]
            when = probe[0].time if probe and type(probe[0]) is not DeadLetter else None
            days = [] if when is None else [d for d in days if d >= day_of(when)]
        return self._cursor(key, days)

    def _replay(self, key: str, days: list[datetime.date]) -> Iterator[Record | _Hole]:
        for n, day in enumerate(days):
            if self._unreachable:
                self.counts["archive_fallbacks"] += len(days) - n
                yield _HOLE
                return
            try:
                yield from self._day_records(key, day, replay=True)
            except ArchiveUnreachable as exc:
                self._unreachable = str(exc)
                log.warning("archive: unreachable (%s): the history comes from REST instead", exc)
                self.counts["archive_fallbacks"] += len(days) - n
                yield _HOLE
                return
            except ArchiveUnavailable as exc:
                self.counts["archive_fallbacks"] += 1
                self._rlog.warning(
                    "archive: fallback",
                    "archive: %s %s: %s: its trades come from REST instead",
                    key,
                    day,
                    exc,
                )
                yield _HOLE

    def _day_records(self, key: str, day: datetime.date, replay: bool = False) -> Iterator[Record]:
        """The day file's records; for the ``replay``, counted and said (rate-limited: a whole
        market's days are thousands of files)."""
        started = time.monotonic()
        path = self._archive.day_file(key, day)
        if replay:
            self.counts["archive_days_fetched"] += 1
            self._rlog.flush()
            self._rlog.log(
                logging.INFO,
                "archive: day ready",
                "archive: %s %s ready (%d of %d day files, %.1f MB, %.1fs)",
                key,
                day,
                self.counts["archive_days_fetched"],
                self._needed,
                path.stat().st_size / 1e6,
                time.monotonic() - started,
            )
        with contextlib.closing(read_day(path, key, self._parser, self._kind)) as records:
            yield from records


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _expected_sha(checksum: bytes, name: str) -> str | None:
    """The hash a ``.CHECKSUM`` gives for ``name`` (``sha256sum``'s ``<hex>  <name>`` lines)."""
    for line in checksum.decode("ascii", "replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == name and len(parts[0]) == 64:
            return parts[0].lower()
    return None
