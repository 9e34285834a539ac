"""What a market published, per symbol and stream kind: what its REST side answers from.

Only what was already emitted is there, as on Binance: a trade is in the history once the market
published it, whether anyone was connected or not. Old entries are trimmed beyond a count or an age
(memory: a whole market at 5,000 trades/s fills gigabytes in minutes otherwise); the totals that
the 24 h ticker reports are kept for everything.

Each event is kept as the payload it went out as (~270 bytes with its id and trade time beside it)
and parsed again only when it is read (``events``). A whole market at 20,000 trades a second holds
over a million: a parsed dict for each cost ~750 bytes and, above all, the garbage collector's
full passes over them (0.3-0.5 s each with 2.4 million held, the market standing still
meanwhile); bytes and ints are no work for it.
"""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any, overload

import orjson

Event = dict[str, Any]  # a stream event's JSON object, or a REST entry

_STREAM_ONLY = frozenset(("e", "E", "s", "st"))  # event type and time, symbol, symbol type
_ZERO = Decimal(0)
_QUOTE_STEP = Decimal("0.00000001")  # Binance prints quote quantities with 8 decimals


class Totals:
    """One symbol's trades since the market started, as the 24 h ticker reports them: a simulator
    runs for less than a day, so Binance's rolling window would hold all of it. Decimals, so that
    sums are exact; ids are -1 and prices 0 until the first trade, as Binance shows a symbol that
    did not trade."""

    __slots__ = (
        "count",
        "first_id",
        "high",
        "last",
        "last_id",
        "last_qty",
        "low",
        "open",
        "quote_volume",
        "volume",
    )

    def __init__(self) -> None:
        self.first_id = self.last_id = -1
        self.count = 0
        self.open = self.high = self.low = self.last = self.last_qty = _ZERO
        self.volume = self.quote_volume = _ZERO

    def add(self, first_id: int, last_id: int, price: str, quantity: str) -> None:
        """Count trades ``first_id``..``last_id`` (one aggregate), done at one price."""
        p, q = Decimal(price), Decimal(quantity)
        if self.count == 0:
            self.first_id, self.open, self.high, self.low = first_id, p, p, p
        elif p > self.high:
            self.high = p
        elif p < self.low:
            self.low = p
        self.last_id, self.last, self.last_qty = last_id, p, q
        self.count += last_id - first_id + 1
        self.volume += q
        # Quantized per trade, as Binance sums its trades' quote quantities: the sum then has 8
        # decimals and stays within Decimal's 28 digits.
        self.quote_volume += (p * q).quantize(_QUOTE_STEP)


class Published(ABC):
    """Events of one stream in sequence order (trade ids, or aggregate ids for ``@aggTrade``).

    ``limit`` bounds how many are kept, ``seconds`` how old (by trade time, behind the newest)
    they may grow; ``None``: no bound of that kind.
    """

    def __init__(self, limit: int | None, seconds: float | None = None) -> None:
        self._limit = limit
        self._window_ms = None if seconds is None else round(seconds * 1000)
        self.ids: list[int] = []
        self.times: list[int] = []  # trade time T of each
        self.payloads: list[bytes] = []  # each event as it was published
        self.events = Events(self.payloads)
        self.totals = Totals()

    def append(self, seq: int, payload: bytes) -> Event:
        """Keep an event just published; returns it parsed (for the subclass' own columns)."""
        event: Event = orjson.loads(payload)
        time_ms = event["T"]
        self.ids.append(seq)
        self.times.append(time_ms)
        self.payloads.append(payload)
        self.totals.add(*self._trade_ids(event), event["p"], event["q"])
        # Trimming in halves (by count, or once the oldest is twice the window old) keeps appends
        # amortised O(1).
        if self._limit is not None and len(self.ids) >= 2 * self._limit:
            self._trim(len(self.ids) - self._limit)
        elif self._window_ms is not None and self.times[0] < time_ms - 2 * self._window_ms:
            self._trim(self.index_of_time(time_ms - self._window_ms))
        return event

    def _trim(self, drop: int) -> None:
        """Forget the ``drop`` oldest events."""
        for column in (self.ids, self.times, self.payloads):
            del column[:drop]

    @staticmethod
    @abstractmethod
    def _trade_ids(event: Event) -> tuple[int, int]:
        """The first and last trade id an event stands for."""

    def index_of_id(self, seq: int) -> int:
        """Index of the first event with an id at or after ``seq``."""
        return bisect.bisect_left(self.ids, seq)

    def index_of_time(self, time_ms: int) -> int:
        """Index of the first event with a trade time at or after ``time_ms``."""
        return bisect.bisect_left(self.times, time_ms)

    @abstractmethod
    def aggregates(
        self, start: int, end_time: int | None, limit: int, hidden: set[int]
    ) -> list[Event]:
        """Up to ``limit`` aggregate trades (``aggTrades`` REST entries) from the one holding event
        ``start`` on, none with a trade time after ``end_time``, none holding an id in
        ``hidden``."""

    @abstractmethod
    def index_of_agg_id(self, agg_id: int) -> int:
        """Index of the first event in an aggregate trade with an id at or after ``agg_id``."""


class PublishedTrades(Published):
    """``@trade`` events, and the aggregate trades Binance makes of them: consecutive trades of one
    taker order at one price (here: same trade time, price and side) are one aggregate, numbered
    from 1 in the order they were published."""

    def __init__(self, limit: int | None, seconds: float | None = None) -> None:
        super().__init__(limit, seconds)
        self.agg_ids: list[int] = []
        self._order: tuple[int, str, bool] | None = None  # the last trade's time, price, side

    @staticmethod
    def _trade_ids(event: Event) -> tuple[int, int]:
        return event["t"], event["t"]

    def append(self, seq: int, payload: bytes) -> Event:
        event = super().append(seq, payload)
        order = (event["T"], event["p"], event["m"])
        agg_ids = self.agg_ids
        agg_ids.append(agg_ids[-1] + (order != self._order) if agg_ids else 1)
        self._order = order
        if len(agg_ids) > len(self.ids):
            del agg_ids[: len(agg_ids) - len(self.ids)]
        return event

    def aggregates(
        self, start: int, end_time: int | None, limit: int, hidden: set[int]
    ) -> list[Event]:
        """Aggregate trades from the one holding event ``start`` on. An aggregate holding a trade
        in ``hidden`` is left out whole: its ``f``..``l`` would otherwise claim the hidden ids."""
        out: list[Event] = []
        dropped = None  # the aggregate id of the last hidden trade
        # begin at the first trade of the aggregate that index ``start`` belongs to
        while 0 < start < len(self.ids) and self.agg_ids[start - 1] == self.agg_ids[start]:
            start -= 1
        for i in range(start, len(self.ids)):
            event = self.events[i]
            if event["t"] in hidden or self.agg_ids[i] == dropped:
                dropped = self.agg_ids[i]
                if out and out[-1]["a"] == dropped:
                    out.pop()
                continue
            if end_time is not None and event["T"] > end_time:
                break
            if out and out[-1]["a"] == self.agg_ids[i]:
                last = out[-1]
                last["q"] = _sum8(last["q"], event["q"])
                last["l"] = event["t"]
                continue
            if len(out) == limit:
                break
            out.append(
                {
                    "a": self.agg_ids[i],
                    "p": event["p"],
                    "q": event["q"],
                    "f": event["t"],
                    "l": event["t"],
                    "T": event["T"],
                    "m": event["m"],
                    "M": event.get("M", True),
                }
            )
        return out

    def index_of_agg_id(self, agg_id: int) -> int:
        return bisect.bisect_left(self.agg_ids, agg_id)


class PublishedAggTrades(Published):
    """``@aggTrade`` events, served as they were published, without the fields only a stream
    event has (spot's entries then carry ``M``, USD-M's ``nq``, as each venue's REST does)."""

    @staticmethod
    def _trade_ids(event: Event) -> tuple[int, int]:
        return event["f"], event["l"]

    def aggregates(
        self, start: int, end_time: int | None, limit: int, hidden: set[int]
    ) -> list[Event]:
        out: list[Event] = []
        for i in range(start, len(self.payloads)):
            if (end_time is not None and self.times[i] > end_time) or len(out) == limit:
                break
            if self.ids[i] not in hidden:
                event = orjson.loads(self.payloads[i])
                out.append({k: v for k, v in event.items() if k not in _STREAM_ONLY})
        return out

    def index_of_agg_id(self, agg_id: int) -> int:
        return self.index_of_id(agg_id)  # the events' ids are the aggregate ids


class Events(Sequence[Event]):
    """A history's events, each parsed from its payload when it is read: a fresh dict each time,
    the caller's to keep or change. Iterating reads the events there were when it began."""

    __slots__ = ("_payloads",)

    def __init__(self, payloads: list[bytes]) -> None:
        self._payloads = payloads

    def __len__(self) -> int:
        return len(self._payloads)

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        if isinstance(index, slice):
            return [orjson.loads(payload) for payload in self._payloads[index]]
        event: Event = orjson.loads(self._payloads[index])
        return event

    def __iter__(self) -> Iterator[Event]:
        return map(orjson.loads, self._payloads[:])


def _sum8(a: str, b: str) -> str:
    """Binance prints quantities with 8 decimals."""
    return f"{Decimal(a) + Decimal(b):.8f}"
