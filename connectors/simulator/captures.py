"""Read recorded Binance stream captures.

Two recorder formats are understood, gzip-compressed or plain:

- hftbacktest: ``<local receive time> <combined-stream JSON>`` a line; the time is in
  nanoseconds (2024 files) or microseconds (older files), told apart by its magnitude.
- cryptofeed: ``<receive time, float seconds>: <combined-stream JSON>``, with a ``wss://``
  header line and ``https://`` REST snapshot lines that are not stream events.

Each event keeps the exact bytes of its ``data`` object, so replaying it sends what Binance
sent (decimal strings, key order and all).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import orjson

from connectors.shipped import shipped

StrPath = str | PathLike[str]  # a capture file's path

# The recorded trades shipped with the project (data/captures/README.md): in the repo, or where an
# installed wheel put them.
CAPTURES_DIR = shipped("data/captures")
# The default market of the simulator and of the ``--demo`` job: BTCUSDT and ETHUSDT trades,
# 2024-08-09 00:00:01 to 00:05:05 UTC.
DEMO_CAPTURES = (CAPTURES_DIR / "btcusdt_20240809.gz", CAPTURES_DIR / "ethusdt_20240809.gz")

_GZIP_MAGIC = b"\x1f\x8b"
# Both recorders write the combined-stream envelope with "data" as the last key, so the
# data object is the line's remainder minus the envelope's closing brace.
_ENVELOPE = re.compile(rb'\{"stream":"([^"]+)","data":')


@dataclass(frozen=True, slots=True)
class CaptureEvent:
    """One recorded stream event."""

    recv_time_ns: int
    stream: str
    data: dict[str, Any]  # the ``data`` object, parsed
    raw: bytes  # the ``data`` object exactly as recorded

    @property
    def kind(self) -> str:
        return stream_kind(self.stream)

    @property
    def symbol(self) -> str:
        return stream_symbol(self.stream)


def stream_kind(stream: str) -> str:
    """``btcusdt@depth@100ms`` -> ``depth@100ms``."""
    return stream.partition("@")[2]


def stream_symbol(stream: str) -> str:
    """``btcusdt@trade`` -> ``BTCUSDT``."""
    return stream.partition("@")[0].upper()


def iter_capture(
    path: StrPath, kinds: Iterable[str] | None = None, symbols: Iterable[str] | None = None
) -> Iterator[CaptureEvent]:
    """Yield the stream events of one capture file in file order.

    ``kinds`` (e.g. ``("trade", "aggTrade")``) and ``symbols`` (any case) filter before any
    JSON is parsed; ``None`` keeps everything.
    """
    wanted_kinds = None if kinds is None else frozenset(kinds)
    wanted_symbols = None if symbols is None else frozenset(s.upper() for s in symbols)
    for line in _read_lines(Path(path)):
        head, sep, body = line.partition(b" ")
        if not sep or not body.startswith(b"{"):
            # cryptofeed's header and REST lines start with a URL, not a time.
            continue
        match = _ENVELOPE.match(body)
        if match is None:
            # hftbacktest also records REST depth snapshots, which have no envelope.
            continue
        stream = match.group(1).decode()
        if wanted_kinds is not None and stream_kind(stream) not in wanted_kinds:
            continue
        if wanted_symbols is not None and stream_symbol(stream) not in wanted_symbols:
            continue
        raw = body[match.end() :].rstrip()
        if not raw.endswith(b"}}"):
            raise ValueError(f"{path}: truncated or unexpected line: {line[:120]!r}")
        raw = raw[:-1]
        yield CaptureEvent(_parse_time(head), stream, orjson.loads(raw), raw)


def load_events(
    paths: StrPath | Iterable[StrPath],
    kinds: Iterable[str] | None = ("trade",),
    symbols: Iterable[str] | None = None,
) -> list[CaptureEvent]:
    """Events of one or more captures merged in receive-time order (stable for ties)."""
    if isinstance(paths, (str, PathLike)):
        paths = [paths]
    kinds = None if kinds is None else tuple(kinds)
    symbols = None if symbols is None else tuple(symbols)
    events = [event for path in paths for event in iter_capture(path, kinds, symbols)]
    events.sort(key=lambda event: event.recv_time_ns)
    return events


def _read_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as probe:
        compressed = probe.read(2) == _GZIP_MAGIC
    opener = gzip.open if compressed else open
    with opener(path, "rb") as lines:
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            if line:
                yield line


def _parse_time(field: bytes) -> int:
    """Receive time in ns from seconds (with a fraction and cryptofeed's colon), µs or ns."""
    field = field.rstrip(b":")
    if b"." in field:
        whole, _, fraction = field.partition(b".")
        return int(whole) * 1_000_000_000 + int(fraction[:9].ljust(9, b"0"))
    value = int(field)
    # 2001..2286 in seconds is 1e9..1e10, so each unit has a decade of its own.
    if value >= 10**17:
        return value
    if value >= 10**14:
        return value * 1_000
    if value >= 10**11:
        return value * 1_000_000
    return value * 1_000_000_000
