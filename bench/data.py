"""The benchmark's messages: real Binance trades, cycled with rising ids and times.

Each capture message becomes a template with ``%d`` in place of its ``E``, ``t`` and ``T`` values;
every other byte (decimal strings, key order, the old format's extra ``b``/``a`` fields) is sent as
Binance sent it. Ids are renumbered consecutively so that a cycle never looks like a gap or a
duplicate to the bridge's sequencer.
"""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_FIELDS = re.compile(rb'"(E|t|T)":\d+')
_MAX_GAP_MS = 60_000


class Trades:
    """The trade messages of one symbol, in trade-time order, as templates."""

    def __init__(self, symbol: str = "BTCUSDT", directory: Path | None = None):
        from connectors.simulator.captures import CAPTURES_DIR, load_events

        directory = directory or CAPTURES_DIR
        events = load_events(sorted(directory.glob("*.gz")), kinds=("trade",), symbols=(symbol,))
        if not events:
            raise ValueError(f"no {symbol} trades in {directory}")
        events.sort(key=lambda e: e.data["T"])
        self.symbol = symbol.upper()
        self.first_id = events[0].data["t"]
        self.first_time = events[0].data["T"]
        # Captures lie months apart: a gap longer than a minute shrinks to one, so one-minute bars
        # see a continuous market rather than a year of silence.
        self.trade_time_offsets, offset = [0], 0
        for before, after in pairwise(events):
            offset += min(after.data["T"] - before.data["T"], _MAX_GAP_MS)
            self.trade_time_offsets.append(offset)
        # A cycle spans its trade times plus one ms, so the next cycle's times come strictly later.
        self.time_span = offset + 1
        self.templates = [_template(e.raw) for e in events]
        self.event_lags = [e.data["E"] - e.data["T"] for e in events]

    def payload(self, n: int, now_ms: int | None = None) -> bytes:
        """Message ``n`` of the endless sequence. With ``now_ms``, ``E`` and ``T`` are that send
        time (paced runs measure latency from it); else the capture's times shifted by cycle."""
        cycle, i = divmod(n, len(self.templates))
        if now_ms is None:
            trade_time = self.first_time + cycle * self.time_span + self.trade_time_offsets[i]
            return self.templates[i] % (
                trade_time + self.event_lags[i],
                self.first_id + n,
                trade_time,
            )
        return self.templates[i] % (now_ms, self.first_id + n, now_ms)

    def payloads(self, count: int) -> list[bytes]:
        return [self.payload(n) for n in range(count)]


def _template(raw: bytes) -> bytes:
    found = [m.group(1) for m in _FIELDS.finditer(raw)]
    if found != [b"E", b"t", b"T"]:
        raise ValueError(f"unexpected trade layout {found}: {raw[:120]!r}")
    return _FIELDS.sub(lambda m: b'"' + m.group(1) + b'":%d', raw.replace(b"%", b"%%"))
