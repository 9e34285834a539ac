"""The simulated market: streams of Binance payloads on a clock, and what they emitted.

A market is a set of feeds, one per stream (``btcusdt@trade``...). Each feed places its
events on its own virtual timeline (nanoseconds from a common origin). The market plays
those timelines against the event loop's clock, scaled by ``speed`` (0 = as fast as the
subscribers take them), and hands every payload to a sink (the server) pre-serialized.

With a ``tick`` the market wakes at most that often, and emits at once every event that fell due
meanwhile (each stamped with the time it goes out, as always): its connections then get them in
one write each, not one write an event (a whole market's thousands of trades a second).

With ``pause_without_subscribers`` a feed's clock only runs while its stream has a
subscriber, so a client that reconnects finds the market where it left it. Without it the
market is live: events nobody is subscribed to are emitted all the same, and only the
published history (``history.py``, what the REST side answers from) keeps them.

Symbols can be listed while the market runs, halted and resumed (``list_feed``, ``halt``,
``resume``). The next event is taken from a heap of the running feeds by due time, so that a
market of thousands of feeds costs O(log n) an event.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
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
from connectors.simulator.symbols import HALT, HALTED_STATUSES, START_PRICES, TRADING
from connectors.simulator.venues import SPOT, VENUES, Venue

# After this many events in a row the market yields to the event loop (and at speed 0
# waits for slow subscribers), so writers and request handlers keep running.
_BURST = 256
# Replays with ``loop=True`` leave this much virtual time between two passes.
_LOOP_GAP_NS = 1_000_000_000
_UNITS = 10**8  # spot prints prices and quantities with 8 decimals
# USD-M prints a price with its tick's decimals and quantities with their step's; most steps are
# 0.001 (BTCUSDT, ETHUSDT)
_USDM_QUANTITY_DECIMALS = 3


class Sink(Protocol):
    def publish(self, stream: str, payload: bytes) -> None: ...

    async def writable(self) -> None:
        """Return once every subscriber has room for more (speed 0 backpressure)."""


class MarketOptions(TypedDict, total=False):
    """``Market``'s keyword arguments, which ``Market.replay`` and ``Market.generated`` pass on."""

    speed: float
    tick: float
    pause_without_subscribers: bool
    history_limit: int | None
    history_seconds: float | None
    venue: str


class Feed(ABC):
    """One stream's events on a virtual timeline."""

    stream: str

    @abstractmethod
    def next_offset_ns(self) -> int | None:
        """Virtual time of the next event, ``None`` once the feed is exhausted."""

    @abstractmethod
    def pop(self) -> tuple[bytes, int]:
        """The next event's payload and its sequence number (trade or aggregate id)."""

    def past(self) -> Iterator[tuple[bytes, int]]:
        """Events published before the market started (payload, sequence number), oldest first:
        what its REST history and archive hold from the start. None by default."""
        return iter(())


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
    (0: unpaced, every event due at once, i.e. as fast as the market goes); or, with ``kind``
    ``aggTrade``, aggregate trades of 1 to 3 trades each, in the form of ``venue`` (``spot``, or
    ``usdm``: USD-M futures, ``venues.py``).

    Ids are consecutive from ``first_id`` (the aggregate ids, and the trade ids but for those
    USD-M's aggregates leave out now and then); prices move
    by one ``tick`` at most between trades; event and trade times are the wall clock at emission.
    Trades come evenly spaced, or with ``poisson`` at random (exponential) intervals averaging
    ``1/rate``, as independent traders' orders do: a whole market's symbols then neither start
    nor tick in step.

    With ``past_seconds``, the symbol traded before the market started: ``past()`` makes that
    many seconds of trades up to now, ``past_rate`` a second, evenly spaced (the days the archive
    serves); the live trades go on from their last id and price.
    """

    def __init__(
        self,
        symbol: str,
        *,
        rate: float = 100.0,
        count: int | None = None,
        start_price: str | None = None,
        tick: str = "0.01",
        first_id: int = 1,
        poisson: bool = False,
        seed: int | None = None,
        kind: str = "trade",
        venue: str = SPOT.name,
        past_seconds: float = 0.0,
        past_rate: float = 0.1,
    ) -> None:
        if rate < 0:
            raise ValueError("rate must be >= 0")
        if kind not in VENUES[venue].stream_kinds:
            raise ValueError(f"{venue} has no @{kind} stream")
        self.stream = f"{symbol.lower()}@{kind}"
        self._kind, self._usdm = kind, venue != SPOT.name
        self._symbol = symbol.upper()
        self._rate = rate
        self._interval_ns = 1e9 / rate if rate else 0.0
        self._count = count
        self._tick = _units(tick)
        if self._tick <= 0:
            raise ValueError(f"tick {tick} is not a positive multiple of 0.00000001")
        start = start_price or START_PRICES.get(self._symbol, "100.00")
        self._price = _units(start)
        self._price_decimals = len(tick.partition(".")[2]) if self._usdm else 8
        self._price_text = _decimal(self._price, self._price_decimals)
        self._next_id = self._next_trade_id = first_id
        self._emitted = 0
        self._random = random.Random(seed)
        self._poisson = poisson and rate > 0
        self._offset_ns = self._gap_ns() if self._poisson else 0
        self._past_ms = round(past_seconds * 1000)
        self._past_rate = past_rate

    def next_offset_ns(self) -> int | None:
        if self._count is not None and self._emitted >= self._count:
            return None
        return self._offset_ns

    def pop(self) -> tuple[bytes, int]:
        payload, trade_id = self._trade(time.time_ns() // 1_000_000)
        self._emitted += 1
        if self._poisson:
            self._offset_ns += self._gap_ns()
        else:
            # From the count, not summed, so that rounding never drifts the pace.
            self._offset_ns = round(self._emitted * self._interval_ns)
        return payload, trade_id

    def past(self) -> Iterator[tuple[bytes, int]]:
        if not self._past_ms:
            return
        end = time.time_ns() // 1_000_000
        count = int(self._past_ms / 1000 * self._past_rate)
        for i in range(count):
            yield self._trade(end - self._past_ms + i * self._past_ms // count)

    def _trade(self, now_ms: int) -> tuple[bytes, int]:
        # One draw per trade (it is the generator's hot path): 2 bits for the price step
        # (down, flat, flat, up), 1 for the maker side, the rest for the quantity.
        bits = self._random.getrandbits(32)
        step = (bits & 3 == 3) - (bits & 3 == 0)
        price = max(self._tick, self._price + step * self._tick)
        if price != self._price:  # else its text stays (half the trades)
            self._price, self._price_text = price, _decimal(price, self._price_decimals)
        # Quantities are below 1: printed as _decimal prints them, without its arithmetic.
        if self._usdm:  # 0.001 .. 0.5
            q = f"0.{(bits >> 3) % 500 + 1:0{_USDM_QUANTITY_DECIMALS}d}"
        else:  # 0.00001 .. 0.5
            q = f"0.{(bits >> 3) % 50_000 + 1:05d}000"
        p, m = self._price_text, "true" if bits & 4 else "false"
        seq = self._next_id
        if self._kind == "trade":
            payload = (
                f'{{"e":"trade","E":{now_ms},"s":"{self._symbol}","t":{seq},'
                f'"p":"{p}","q":"{q}","T":{now_ms},"m":{m},"M":true}}'
            ).encode()
        else:
            first = self._next_trade_id
            last = first + (bits >> 24) % 3  # trades of one taker order at one price
            # USD-M's aggregates hold market trades only: about one in eight is followed by a
            # trade id no aggregate holds (binance-public-data #378: consecutive aggregate ids,
            # trade ids skipping one now and then)
            skipped = 1 if self._usdm and (bits >> 26) % 8 == 0 else 0
            self._next_trade_id = last + 1 + skipped
            payload = (
                (
                    f'{{"e":"aggTrade","E":{now_ms},"a":{seq},"s":"{self._symbol}","p":"{p}",'
                    f'"q":"{q}","nq":"{q}","f":{first},"l":{last},"T":{now_ms},"m":{m},"st":1}}'
                )
                if self._usdm
                else (
                    f'{{"e":"aggTrade","E":{now_ms},"s":"{self._symbol}","a":{seq},"p":"{p}",'
                    f'"q":"{q}","f":{first},"l":{last},"T":{now_ms},"m":{m},"M":true}}'
                )
            ).encode()
        self._next_id += 1
        return payload, seq

    def _gap_ns(self) -> int:
        return round(self._random.expovariate(self._rate) * 1e9)


class _Clock:
    """Where a feed stands on its virtual timeline against the loop's clock."""

    __slots__ = (
        "feed",
        "generation",
        "halted",
        "history",
        "order",
        "running",
        "subscribers",
        "virtual_ns",
        "wall",
    )

    def __init__(self, feed: Feed, history: Published | None, order: int) -> None:
        self.feed = feed
        self.history = history
        self.order = order  # breaks ties between feeds due at once: the first added goes first
        self.subscribers = 0
        self.running = False
        self.halted = False  # its symbol does not trade (``Market.halt``)
        # Bumped on every start and pause: schedule entries of an older generation are stale.
        self.generation = 0
        self.virtual_ns = 0.0  # virtual time at ``wall``
        self.wall = 0.0

    def start(self, now: float) -> None:
        self.running, self.wall = True, now
        self.generation += 1

    def pause(self, now: float, speed: float) -> None:
        nxt = self.feed.next_offset_ns()
        virtual = self.virtual_ns + (now - self.wall) * speed * 1e9
        # An event already due stays due: on resume it goes out first, then the spacing
        # of the following ones is kept.
        self.virtual_ns = virtual if nxt is None else min(virtual, nxt)
        self.running = False
        self.generation += 1

    def due(self, offset_ns: int, speed: float) -> float:
        return self.wall + (offset_ns - self.virtual_ns) / (speed * 1e9)


class Market:
    """Feeds played on one clock; see the module docstring.

    Thread contract: ``subscribe``, ``unsubscribe``, ``list_feed``, ``halt`` and ``resume`` run on
    the market's event loop (the simulator's commands get them there); the read-only members
    (``streams``, ``symbols``, ``published``, ``status``) may be read from any thread, because
    the tables behind them are replaced, never changed in place.
    """

    def __init__(
        self,
        feeds: Iterable[Feed],
        *,
        speed: float = 1.0,
        tick: float = 0.0,
        pause_without_subscribers: bool = True,
        history_limit: int | None = 100_000,
        history_seconds: float | None = None,
        venue: str = SPOT.name,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        if tick < 0:
            raise ValueError("tick must be >= 0")
        self.venue: Venue = VENUES[venue]
        self.speed = speed
        self.tick = tick
        self.pause_without_subscribers = pause_without_subscribers
        self._history_limit, self._history_seconds = history_limit, history_seconds
        self._clocks: dict[str, _Clock] = {}
        self._published: dict[tuple[str, str], Published] = {}  # (symbol, kind) -> history
        self._status: dict[str, str] = {}  # symbol -> TRADING, HALT or BREAK
        # Subscribers of streams no feed serves yet: a symbol listed later starts with them.
        self._waiting: dict[str, int] = defaultdict(int)
        # Running feeds by due time (their offset at speed 0): (due, order, generation, clock).
        self._schedule: list[tuple[float, int, int, _Clock]] = []
        self._unfinished = 0  # feeds with events left, running or not
        self._loop: asyncio.AbstractEventLoop | None = None  # set by run(), with _wake
        self._wake = asyncio.Event()  # binds to no loop until awaited; run() makes its own
        self._finished = False
        for feed in feeds:
            self.list_feed(feed)

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
        kind: str = "trade",
        **options: Unpack[MarketOptions],
    ) -> Market:
        """A market of random-walk trades (``kind``: ``trade`` or ``aggTrade``), one
        ``GeneratedFeed`` per symbol, in the form of ``options``' venue."""
        feeds = [
            GeneratedFeed(
                symbol,
                rate=rate,
                count=count,
                seed=None if seed is None else seed + i,
                kind=kind,
                venue=options.get("venue", SPOT.name),
            )
            for i, symbol in enumerate(symbols)
        ]
        return cls(feeds, **options)

    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(self._clocks)

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols with a published history (a ``@trade`` or ``@aggTrade`` stream), in the order
        they were listed."""
        return tuple(dict.fromkeys(symbol for symbol, _ in self._published))

    @property
    def finished(self) -> bool:
        return self._finished

    def published(self, symbol: str, kind: str = "trade") -> Published | None:
        """What the ``<symbol>@<kind>`` stream published so far (None: the market has no such
        stream)."""
        return self._published.get((symbol.upper(), kind))

    def status(self, symbol: str) -> str | None:
        """``TRADING``, ``HALT`` or ``BREAK``; None for a symbol the market does not list."""
        return self._status.get(symbol.upper())

    def list_feed(self, feed: Feed, status: str = TRADING) -> None:
        """Add a feed: its symbol is listed (``TRADING``) and it plays like the others, at once
        when the market runs already. Listed in ``BREAK`` (as Binance shows a listing before its
        trading opens) or ``HALT`` it waits for ``resume``."""
        if status != TRADING and status not in HALTED_STATUSES:
            raise ValueError(f"a listing is TRADING or one of {HALTED_STATUSES}, not {status!r}")
        if self._finished:
            raise RuntimeError("the market has finished: a feed listed now would never play")
        if feed.stream in self._clocks:
            raise ValueError(f"two feeds for {feed.stream}")
        kind, symbol = stream_kind(feed.stream), stream_symbol(feed.stream)
        if kind in _HISTORIES and kind not in self.venue.stream_kinds:
            raise ValueError(f"{self.venue.name} has no @{kind} stream: {feed.stream}")
        history = (
            _HISTORIES[kind](self._history_limit, self._history_seconds)
            if kind in _HISTORIES
            else None
        )
        if history is not None:
            for payload, seq in feed.past():
                history.append(seq, payload)
        clock = _Clock(feed, history, len(self._clocks))
        clock.subscribers = self._waiting.pop(feed.stream, 0)
        status = self._status.get(symbol, status)  # another kind of its streams listed it
        clock.halted = status != TRADING
        # Replaced, not changed in place: other threads read these tables (class docstring).
        if history is not None:
            self._published = {**self._published, (symbol, kind): history}
            self._status = {**self._status, symbol: status}
        self._clocks = {**self._clocks, feed.stream: clock}
        if feed.next_offset_ns() is not None:
            self._unfinished += 1
        self._reschedule(clock)

    def halt(self, symbol: str, status: str = HALT) -> None:
        """Stop trading ``symbol``: its streams go quiet, its status becomes ``status``."""
        if status not in HALTED_STATUSES:
            raise ValueError(f"a halt is one of {HALTED_STATUSES}, not {status!r}")
        self._set_status(symbol, status)

    def resume(self, symbol: str) -> None:
        """Trade a halted symbol again, its feeds going on where they stopped."""
        self._set_status(symbol, TRADING)

    def subscribe(self, stream: str) -> None:
        """Count a subscriber of ``stream`` (call from the market's event loop)."""
        clock = self._clocks.get(stream)
        if clock is None:
            self._waiting[stream] += 1
            return
        clock.subscribers += 1
        self._reschedule(clock)

    def unsubscribe(self, stream: str) -> None:
        clock = self._clocks.get(stream)
        if clock is None:
            self._waiting[stream] -= 1
            if not self._waiting[stream]:
                del self._waiting[stream]
            return
        clock.subscribers -= 1
        self._reschedule(clock)

    async def run(self, sink: Sink) -> None:
        """Play the feeds into ``sink`` until all are exhausted (forever for endless ones)."""
        self._loop = loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        for clock in self._clocks.values():
            self._reschedule(clock)
        schedule = self._schedule
        burst = 0
        while self._unfinished:
            if not schedule:
                await self._sleep(None)
                continue
            when, _, generation, clock = schedule[0]
            if generation != clock.generation:
                heapq.heappop(schedule)
                continue
            if self.speed:
                now = loop.time()
                if when > now:
                    await self._sleep(max(when - now, self.tick))
                    continue
            heapq.heappop(schedule)
            payload, seq = clock.feed.pop()
            if clock.history is not None:
                clock.history.append(seq, payload)
            sink.publish(clock.feed.stream, payload)
            if not self._enqueue(clock):
                self._unfinished -= 1
            burst += 1
            if burst == _BURST:
                burst = 0
                if self.speed == 0:
                    await sink.writable()
                await asyncio.sleep(0)
        self._finished = True

    def _set_status(self, symbol: str, status: str) -> None:
        symbol = symbol.upper()
        if symbol not in self._status:
            raise ValueError(f"{symbol} is not listed")
        self._status = {**self._status, symbol: status}
        for clock in self._clocks.values():
            if stream_symbol(clock.feed.stream) == symbol:
                clock.halted = status != TRADING
                self._reschedule(clock)

    def _reschedule(self, clock: _Clock) -> None:
        """Start or pause ``clock`` as its symbol's status and its subscribers now say. Before
        ``run`` this only records them: ``run`` starts what should run."""
        wanted = not clock.halted and (clock.subscribers > 0 or not self.pause_without_subscribers)
        if self._loop is None or wanted == clock.running:
            return
        now = self._loop.time()
        if wanted:
            clock.start(now)
            self._enqueue(clock)
        else:
            clock.pause(now, self.speed)
        self._wake.set()

    def _enqueue(self, clock: _Clock) -> bool:
        """Schedule a running clock's next event; False once its feed is exhausted."""
        offset = clock.feed.next_offset_ns()
        if offset is None:
            return False
        when = offset if self.speed == 0 else clock.due(offset, self.speed)
        heapq.heappush(self._schedule, (when, clock.order, clock.generation, clock))
        return True

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


def _decimal(units: int, decimals: int = 8) -> str:
    """Units of 10^-8 as a decimal string of ``decimals`` places (those beyond are zeros)."""
    text = f"{units // _UNITS}.{units % _UNITS:08d}"
    return text[: len(text) - 8 + decimals] if decimals else text[:-9]


def _units(decimal: str) -> int:
    """``"0.01"`` -> 1_000_000 (units of 10^-8); ValueError if it has more than 8 decimals."""
    units = Decimal(decimal) * _UNITS
    if units != units.to_integral_value():
        raise ValueError(f"{decimal} has more than 8 decimals")
    return int(units)
