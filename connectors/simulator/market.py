"""The simulated market: streams of Binance payloads on a clock, and what they emitted.

A market is a set of feeds, one per stream (``btcusdt@trade``...). Each feed places its
events on its own virtual timeline (nanoseconds from a common origin). The market plays
those timelines against the event loop's clock, scaled by ``speed`` (0 = as fast as the
subscribers take them), and hands every payload to a sink (the server) pre-serialized.

With ``pause_without_subscribers`` a feed's clock only runs while its stream has a
subscriber, so a client that reconnects finds the market where it left it. Without it the
market is live: events nobody is subscribed to are emitted all the same, and only the
published history (``history.py``, what the REST side answers from) keeps them.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Protocol, TypedDict, Unpack

import orjson

from connectors.simulator.captures import (
    CaptureEvent,
    StrPath,
    load_events,
    stream_kind,
    stream_symbol,
)
from connectors.simulator.history import Published, PublishedAggTrades, PublishedTrades

# After this many events in a row the market yields to the event loop (and at speed 0
# waits for slow subscribers), so writers and request handlers keep running.
_BURST = 256
# Replays with ``loop=True`` leave this much virtual time between two passes.
_LOOP_GAP_NS = 1_000_000_000
_UNITS = 10**8  # Binance prints prices and quantities with 8 decimals
_DEFAULT_START_PRICES = {"BTCUSDT": "60000.00", "ETHUSDT": "2600.00"}


class Sink(Protocol):
    def publish(self, stream: str, payload: bytes) -> None: ...

    async def writable(self) -> None:
        """Return once every subscriber has room for more (speed 0 backpressure)."""


class MarketOptions(TypedDict, total=False):
    """``Market``'s keyword arguments, which ``Market.replay`` and ``Market.generated`` pass on."""

    speed: float
    pause_without_subscribers: bool
    history_limit: int | None


class Feed(ABC):
    """One stream's events on a virtual timeline."""

    stream: str

    @abstractmethod
    def next_offset_ns(self) -> int | None:
        """Virtual time of the next event, ``None`` once the feed is exhausted."""

    @abstractmethod
    def pop(self) -> tuple[bytes, int]:
        """The next event's payload and its sequence number (trade or aggregate id)."""


class ReplayFeed(Feed):
    """Recorded events of one stream, at their recorded spacing.

    With ``period_ns`` the feed starts over after its last event, ``period_ns`` of virtual
    time after the previous pass; each new pass shifts ids and event times so that ids keep
    counting up without a gap and times keep moving forward, as a consumer expects.
    """

    def __init__(
        self,
        stream: str,
        events: Sequence[CaptureEvent],
        origin_ns: int,
        period_ns: int | None = None,
    ) -> None:
        if not events:
            raise ValueError(f"no events for {stream}")
        self.stream = stream
        self._events = events
        self._offsets = [event.recv_time_ns - origin_ns for event in events]
        self._seq_field = "a" if stream_kind(stream) == "aggTrade" else "t"
        self._period_ns = period_ns
        self._index = 0
        self._pass = 0
        # What one pass adds to each field that must keep moving forward.
        self._shifts: dict[str, int] = {}
        if period_ns is not None:
            first, last, seq = events[0].data, events[-1].data, self._seq_field
            self._shifts[seq] = last[seq] - first[seq] + 1
            if seq == "a":  # aggregate trades also name the trades they cover
                self._shifts["f"] = self._shifts["l"] = last["l"] - first["f"] + 1
            self._shifts["E"] = self._shifts["T"] = math.ceil(period_ns / 1_000_000)

    def next_offset_ns(self) -> int | None:
        if not self._wrap():
            return None
        return self._offsets[self._index] + self._pass * (self._period_ns or 0)

    def pop(self) -> tuple[bytes, int]:
        if not self._wrap():
            raise IndexError(f"{self.stream} replay is exhausted")
        event = self._events[self._index]
        self._index += 1
        if self._pass == 0:
            return event.raw, event.data[self._seq_field]
        data = dict(event.data)
        for field, step in self._shifts.items():
            if field in data:
                data[field] += self._pass * step
        return orjson.dumps(data), data[self._seq_field]

    def _wrap(self) -> bool:
        """Start the next pass if this one is over; False when there is none."""
        if self._index == len(self._events):
            if self._period_ns is None:
                return False
            self._index = 0
            self._pass += 1
        return True


class GeneratedFeed(Feed):
    """Random-walk ``@trade`` events for one symbol at ``rate`` events per virtual second
    (0: unpaced, every event due at once, i.e. as fast as the market goes).

    Ids are consecutive from ``first_id``; prices move by one 0.01 tick at most between
    trades; event and trade times are the wall clock at emission.
    """

    def __init__(
        self,
        symbol: str,
        *,
        rate: float = 100.0,
        count: int | None = None,
        start_price: str | None = None,
        first_id: int = 1,
        seed: int | None = None,
    ) -> None:
        if rate < 0:
            raise ValueError("rate must be >= 0")
        self.stream = f"{symbol.lower()}@trade"
        self._symbol = symbol.upper()
        self._interval_ns = 1e9 / rate if rate else 0.0
        self._count = count
        start = start_price or _DEFAULT_START_PRICES.get(self._symbol, "100.00")
        self._price = int(Decimal(start) * _UNITS)
        self._tick = _UNITS // 100
        self._next_id = first_id
        self._emitted = 0
        self._random = random.Random(seed)

    def next_offset_ns(self) -> int | None:
        if self._count is not None and self._emitted >= self._count:
            return None
        return round(self._emitted * self._interval_ns)

    def pop(self) -> tuple[bytes, int]:
        # One draw per trade (it is the generator's hot path): 2 bits for the price step
        # (down, flat, flat, up), 1 for the maker side, the rest for the quantity.
        bits = self._random.getrandbits(32)
        step = (bits & 3 == 3) - (bits & 3 == 0)
        self._price = max(self._tick, self._price + step * self._tick)
        quantity = ((bits >> 3) % 50_000 + 1) * 1_000  # 0.00001 .. 0.5
        trade_id = self._next_id
        now_ms = time.time_ns() // 1_000_000
        payload = (
            f'{{"e":"trade","E":{now_ms},"s":"{self._symbol}","t":{trade_id},'
            f'"p":"{_decimal(self._price)}","q":"{_decimal(quantity)}","T":{now_ms},'
            f'"m":{"true" if bits & 4 else "false"},"M":true}}'
        ).encode()
        self._next_id += 1
        self._emitted += 1
        return payload, trade_id


class _Clock:
    """Where a feed stands on its virtual timeline against the loop's clock."""

    __slots__ = ("feed", "history", "running", "subscribers", "virtual_ns", "wall")

    def __init__(self, feed: Feed, history: Published | None) -> None:
        self.feed = feed
        self.history = history
        self.subscribers = 0
        self.running = False
        self.virtual_ns = 0.0  # virtual time at ``wall``
        self.wall = 0.0

    def start(self, now: float) -> None:
        self.running, self.wall = True, now

    def pause(self, now: float, speed: float) -> None:
        nxt = self.feed.next_offset_ns()
        virtual = self.virtual_ns + (now - self.wall) * speed * 1e9
        # An event already due stays due: on resume it goes out first, then the spacing
        # of the following ones is kept.
        self.virtual_ns = virtual if nxt is None else min(virtual, nxt)
        self.running = False

    def due(self, offset_ns: int, speed: float) -> float:
        return self.wall + (offset_ns - self.virtual_ns) / (speed * 1e9)


class Market:
    """Feeds played on one clock; see the module docstring."""

    def __init__(
        self,
        feeds: Iterable[Feed],
        *,
        speed: float = 1.0,
        pause_without_subscribers: bool = True,
        history_limit: int | None = 100_000,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self.speed = speed
        self.pause_without_subscribers = pause_without_subscribers
        self._clocks: dict[str, _Clock] = {}
        self._published: dict[tuple[str, str], Published] = {}  # (symbol, kind) -> history
        for feed in feeds:
            if feed.stream in self._clocks:
                raise ValueError(f"two feeds for {feed.stream}")
            kind = stream_kind(feed.stream)
            history = _HISTORIES[kind](history_limit) if kind in _HISTORIES else None
            if history is not None:
                self._published[(stream_symbol(feed.stream), kind)] = history
            self._clocks[feed.stream] = _Clock(feed, history)
        self._loop: asyncio.AbstractEventLoop | None = None  # set by run(), with _wake
        self._wake = asyncio.Event()  # binds to no loop until awaited; run() makes its own
        self._finished = False

    @classmethod
    def replay(
        cls,
        paths: StrPath | Iterable[StrPath],
        *,
        kinds: Iterable[str] = ("trade",),
        symbols: Iterable[str] | None = None,
        loop: bool = False,
        **options: Unpack[MarketOptions],
    ) -> Market:
        """A market replaying captures; ``options`` are ``Market``'s keyword arguments."""
        return cls(replay_feeds(paths, kinds=kinds, symbols=symbols, loop=loop), **options)

    @classmethod
    def generated(
        cls,
        symbols: Iterable[str],
        *,
        rate: float = 100.0,
        count: int | None = None,
        seed: int | None = None,
        **options: Unpack[MarketOptions],
    ) -> Market:
        """A market of random-walk trades, one ``GeneratedFeed`` per symbol."""
        feeds = [
            GeneratedFeed(symbol, rate=rate, count=count, seed=None if seed is None else seed + i)
            for i, symbol in enumerate(symbols)
        ]
        return cls(feeds, **options)

    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(self._clocks)

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols with a published history (a ``@trade`` or ``@aggTrade`` stream)."""
        return tuple(dict.fromkeys(symbol for symbol, _ in self._published))

    @property
    def finished(self) -> bool:
        return self._finished

    def published(self, symbol: str, kind: str = "trade") -> Published | None:
        """What the ``<symbol>@<kind>`` stream published so far (None: the market has no such
        stream)."""
        return self._published.get((symbol.upper(), kind))

    def subscribe(self, stream: str) -> None:
        """Count a subscriber of ``stream`` (call from the market's event loop)."""
        clock = self._clocks.get(stream)
        if clock is None:
            return
        clock.subscribers += 1
        if clock.subscribers == 1 and self.pause_without_subscribers and self._loop is not None:
            clock.start(self._loop.time())
            self._wake.set()

    def unsubscribe(self, stream: str) -> None:
        clock = self._clocks.get(stream)
        if clock is None:
            return
        clock.subscribers -= 1
        if clock.subscribers == 0 and self.pause_without_subscribers and self._loop is not None:
            clock.pause(self._loop.time(), self.speed)
            self._wake.set()

    async def run(self, sink: Sink) -> None:
        """Play the feeds into ``sink`` until all are exhausted (forever for endless ones)."""
        self._loop = loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        now = loop.time()
        for idle in self._clocks.values():
            if idle.subscribers or not self.pause_without_subscribers:
                idle.start(now)
        burst = 0
        while True:
            now = loop.time()
            clock, when, pending = self._next(now)
            if not pending:
                break
            if clock is None or (self.speed and when > now):
                await self._sleep(None if clock is None else when - now)
                continue
            payload, seq = clock.feed.pop()
            if clock.history is not None:
                clock.history.append(seq, payload)
            sink.publish(clock.feed.stream, payload)
            burst += 1
            if burst == _BURST:
                burst = 0
                if self.speed == 0:
                    await sink.writable()
                await asyncio.sleep(0)
        self._finished = True

    def _next(self, now: float) -> tuple[_Clock | None, float, bool]:
        """The running feed to emit from next, with its due time (its offset at speed 0),
        and whether any feed, running or paused, has events left."""
        best: _Clock | None = None
        best_when = 0.0
        pending = False
        for clock in self._clocks.values():
            offset = clock.feed.next_offset_ns()
            if offset is None:
                continue
            pending = True
            if not clock.running:
                continue
            when = offset if self.speed == 0 else clock.due(offset, self.speed)
            if best is None or when < best_when:
                best, best_when = clock, when
        return best, best_when, pending

    async def _sleep(self, seconds: float | None) -> None:
        """Sleep until ``seconds`` pass or a subscription changes the schedule."""
        self._wake.clear()
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass


def replay_feeds(
    paths: StrPath | Iterable[StrPath],
    *,
    kinds: Iterable[str] = ("trade",),
    symbols: Iterable[str] | None = None,
    loop: bool = False,
) -> list[ReplayFeed]:
    """One ``ReplayFeed`` per stream found in the captures, all on a common origin so that
    the streams keep their recorded interleaving."""
    events = load_events(paths, kinds=kinds, symbols=symbols)
    if not events:
        raise ValueError("the captures hold no matching events")
    origin = events[0].recv_time_ns
    period = events[-1].recv_time_ns - origin + _LOOP_GAP_NS if loop else None
    by_stream: dict[str, list[CaptureEvent]] = defaultdict(list)
    for event in events:
        by_stream[event.stream].append(event)
    return [ReplayFeed(stream, evs, origin, period) for stream, evs in by_stream.items()]


_HISTORIES = {"trade": PublishedTrades, "aggTrade": PublishedAggTrades}


def _decimal(units: int) -> str:
    return f"{units // _UNITS}.{units % _UNITS:08d}"
