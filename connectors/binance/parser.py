"""Turn one WebSocket frame into exactly one of: a market record, a control message, a dead letter.

Never raises on bad input: whatever a frame holds, the caller gets a value it can route.

What Binance sends (spot streams, 2026), and what each field means::

    btcusdt@trade     {"e":"trade","E":1723161601438,"s":"BTCUSDT","t":3735693016,
                       "p":"61685.99000000","q":"0.00017000","T":1723161601437,"m":true,"M":true}
        e event type, E event time (ms), s symbol, t trade id, p price, q quantity,
        T trade time (ms), m buyer is the maker, M ignore (older frames also carry the order
        ids b and a: unknown fields are ignored)
    btcusdt@aggTrade  {"e":"aggTrade","E":...,"s":"BTCUSDT","a":665076760,"p":"58012.31000000",
                       "q":"0.00100000","f":758427321,"l":758427322,"T":...,"m":false,"M":true}
        a aggregate trade id, f and l the first and last trade id it aggregates
    combined stream   {"stream":"btcusdt@trade","data":{...one of the above...}}
    control           {"result":null,"id":1}  {"error":{"code":2,"msg":"..."},"id":1}
                      {"e":"serverShutdown","E":...} (combined: stream "!serverShutdown")

What is checked, each failure a dead letter with its reason:

- prices and quantities: plain decimal notation (1 to 10 digits, optionally a point and 1 to 8
  digits: Binance prints 8 decimals, and this is what Flink's ``DECIMAL(18, 8)`` holds, whose
  products stay exact at ``DECIMAL(37, 16)``), strictly positive; no sign, exponent, whitespace,
  NaN or Infinity (``impossible_value``);
- ids: non-negative integers; times: integers from Binance's launch (2017-07-01) to a day ahead of
  the local clock (a microsecond ``timeUnit`` fails here), and a trade time at most
  ``MAX_TRADE_AFTER_EVENT_MS`` after the event time (``impossible_value``);
- the symbol: one of the connection's (when the parser is given them), and on a combined stream
  the one its stream name carries (``unexpected_symbol``);
- types exactly (a JSON ``true`` is no id; ``wrong_type``), presence (``missing_field``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TypeVar

import orjson

from connectors.binance.records import (
    AggTrade,
    Control,
    ControlKind,
    DeadLetter,
    FailureReason,
    Trade,
)

Parsed = Trade | AggTrade | Control | DeadLetter
Data = dict[str, Any]  # a frame's JSON object (a REST entry in the stream's field names)
_T = TypeVar("_T")

BINANCE_LAUNCH_MS = 1_498_867_200_000  # 2017-07-01T00:00:00Z: no trade is older
MAX_AHEAD_OF_CLOCK_MS = 86_400_000  # a day: clock skew is never that large
MAX_TRADE_AFTER_EVENT_MS = 1_000  # T is when orders matched, E when the event left: T <= E
_PLAIN_DECIMAL = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,8})?\Z").match


class _Invalid(Exception):
    def __init__(self, reason: FailureReason, error: str) -> None:
        super().__init__(error)
        self.reason = reason


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _amount(text: str) -> bool:
    return _PLAIN_DECIMAL(text) is not None and text.strip("0.") != ""


def _field(data: Data, name: str, kind: type[_T], label: str) -> _T:
    try:
        value = data[name]
    except KeyError:
        raise _Invalid(FailureReason.MISSING_FIELD, f"missing field {name!r} ({label})") from None
    # bool is an int subclass: a JSON true must not pass as a trade id.
    if type(value) is not kind:
        raise _Invalid(
            FailureReason.WRONG_TYPE,
            f"field {name!r} ({label}) is {type(value).__name__}, expected {kind.__name__}",
        )
    return value


def _check_amount(data: Data, name: str, label: str) -> None:
    text = _field(data, name, str, label)
    if not _amount(text):
        raise _Invalid(
            FailureReason.IMPOSSIBLE_VALUE,
            f"{label} {text!r} is not a positive plain decimal of at most 10.8 digits",
        )


def _check_id(data: Data, name: str, label: str) -> None:
    value = _field(data, name, int, label)
    if value < 0:
        raise _Invalid(FailureReason.IMPOSSIBLE_VALUE, f"{label} {value} is negative")


def _check_time(data: Data, name: str, label: str, latest: int) -> None:
    value = _field(data, name, int, label)
    if not BINANCE_LAUNCH_MS <= value <= latest:
        raise _Invalid(
            FailureReason.IMPOSSIBLE_VALUE,
            f"{label} {value} is not a time in ms between Binance's launch and tomorrow",
        )


# (field, check, label) in the order a diagnosis reports them.
_ID, _AMOUNT, _TIME, _TEXT, _FLAG = "id", "amount", "time", "text", "flag"
_TRADE_FIELDS = (
    ("s", _TEXT, "symbol"),
    ("t", _ID, "trade id"),
    ("p", _AMOUNT, "price"),
    ("q", _AMOUNT, "quantity"),
    ("T", _TIME, "trade time"),
    ("E", _TIME, "event time"),
    ("m", _FLAG, "buyer is maker"),
)
_AGG_FIELDS = (
    ("s", _TEXT, "symbol"),
    ("a", _ID, "aggregate id"),
    ("p", _AMOUNT, "price"),
    ("q", _AMOUNT, "quantity"),
    ("f", _ID, "first trade id"),
    ("l", _ID, "last trade id"),
    ("T", _TIME, "trade time"),
    ("E", _TIME, "event time"),
    ("m", _FLAG, "buyer is maker"),
)


def _diagnose(data: Data, fields: tuple[tuple[str, str, str], ...], latest: int) -> NoReturn:
    """Raises the precise reason a frame failed the fast path (the fast path only says yes or
    no)."""
    for name, check, label in fields:
        if check == _ID:
            _check_id(data, name, label)
        elif check == _AMOUNT:
            _check_amount(data, name, label)
        elif check == _TIME:
            _check_time(data, name, label, latest)
        else:
            _field(data, name, str if check == _TEXT else bool, label)
    if data["T"] > data["E"] + MAX_TRADE_AFTER_EVENT_MS:
        raise _Invalid(
            FailureReason.IMPOSSIBLE_VALUE,
            f"trade time {data['T']} is after event time {data['E']}",
        )
    raise AssertionError(f"fast path rejected a valid frame: {data!r}")


# The fast paths below check every field inline: per-field helper calls cost more than the JSON
# decoding itself (cProfile, bench/). Any doubt goes to _diagnose, which names the reason.
def _trade(data: Data, latest: int) -> Trade:
    try:
        s, t, p, q, T, E, m = (
            data["s"],
            data["t"],
            data["p"],
            data["q"],
            data["T"],
            data["E"],
            data["m"],
        )
        if (
            type(s) is str
            and type(t) is int
            and type(p) is str
            and type(q) is str
            and type(T) is int
            and type(E) is int
            and type(m) is bool
            and t >= 0
            and BINANCE_LAUNCH_MS <= T <= E + MAX_TRADE_AFTER_EVENT_MS
            and latest >= E
            and _PLAIN_DECIMAL(p)
            and _PLAIN_DECIMAL(q)
            and p.strip("0.")
            and q.strip("0.")
        ):
            return Trade(s, t, p, q, T, E, m)
    except KeyError:
        pass
    _diagnose(data, _TRADE_FIELDS, latest)


def _agg_trade(data: Data, latest: int) -> AggTrade:
    try:
        s, a, p, q = data["s"], data["a"], data["p"], data["q"]
        first, last = data["f"], data["l"]
        T, E, m = data["T"], data["E"], data["m"]
        if (
            type(s) is str
            and type(a) is int
            and type(p) is str
            and type(q) is str
            and type(first) is int
            and type(last) is int
            and type(T) is int
            and type(E) is int
            and type(m) is bool
            and a >= 0
            and 0 <= first <= last
            and BINANCE_LAUNCH_MS <= T <= E + MAX_TRADE_AFTER_EVENT_MS
            and latest >= E
            and _PLAIN_DECIMAL(p)
            and _PLAIN_DECIMAL(q)
            and p.strip("0.")
            and q.strip("0.")
        ):
            return AggTrade(s, a, p, q, first, last, T, E, m)
    except KeyError:
        pass
    if type(data.get("f")) is int and type(data.get("l")) is int and data["f"] > data["l"]:
        raise _Invalid(
            FailureReason.IMPOSSIBLE_VALUE, f"first trade id {data['f']} is after last {data['l']}"
        )
    _diagnose(data, _AGG_FIELDS, latest)


Builder = Callable[[Data, int], Trade | AggTrade]  # (frame, latest time allowed) -> record
_BUILDERS: dict[str, Builder] = {"trade": _trade, "aggTrade": _agg_trade}


class Parser:
    """Parses frames of the given event kinds (``trade``, ``aggTrade``); others are unexpected.
    With ``symbols``, records of any other symbol are dead letters (``unexpected_symbol``)."""

    def __init__(
        self, kinds: Iterable[str] = ("trade", "aggTrade"), symbols: Iterable[str] | None = None
    ) -> None:
        kinds = tuple(kinds)
        unknown = set(kinds) - _BUILDERS.keys()
        if unknown:
            raise ValueError(f"unknown event kinds {sorted(unknown)}")
        self._builders = {kind: _BUILDERS[kind] for kind in kinds}
        self._symbols = None if symbols is None else frozenset(s.upper() for s in symbols)

    def allow(self, symbols: Iterable[str]) -> None:
        """Records of ``symbols`` are expected from now on (a subscription added while running).
        Replaced whole: reader threads read it meanwhile."""
        if self._symbols is not None:
            self._symbols = self._symbols | {s.upper() for s in symbols}

    def parse(self, payload: bytes, binary: bool = False) -> Parsed:
        if binary:
            return self.failure(
                FailureReason.BINARY_FRAME, payload, "binary frame; Binance sends text"
            )
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            return self._undecodable(payload, exc)
        try:
            return self._classify(message)
        except _Invalid as exc:
            return self.failure(exc.reason, payload, str(exc))

    def rest_record(self, kind: str, data: Data, raw: bytes) -> Trade | AggTrade | DeadLetter:
        """A REST history entry, already in the stream's field names, checked as a frame is."""
        try:
            record = self._builders[kind](data, _now_ms() + MAX_AHEAD_OF_CLOCK_MS)
            self._check_symbol(record, None)
            return record
        except _Invalid as exc:
            return self.failure(exc.reason, raw, f"REST entry: {exc}")

    def oversized(self, prefix: bytes, size: int, limit: int) -> DeadLetter:
        """A frame too large to hold: only its first bytes are kept as evidence."""
        return self.failure(
            FailureReason.OVERSIZED_FRAME,
            prefix,
            f"frame of {size} bytes exceeds the {limit} byte limit",
        )

    @staticmethod
    def failure(reason: FailureReason, raw: bytes, error: str) -> DeadLetter:
        return DeadLetter(reason=reason, raw=bytes(raw), error=error, received_at=_now_ms())

    def _undecodable(self, payload: bytes, exc: Exception) -> DeadLetter:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError as utf8_error:
            return self.failure(FailureReason.INVALID_UTF8, payload, str(utf8_error))
        return self.failure(FailureReason.INVALID_JSON, payload, str(exc))

    def _classify(self, message: object) -> Trade | AggTrade | Control:
        if type(message) is not dict:
            raise _Invalid(
                FailureReason.NOT_AN_OBJECT, f"JSON {type(message).__name__}, expected an object"
            )
        data, stream = message, None
        if "stream" in message and "data" in message:
            data, stream = message["data"], message["stream"]
            if type(data) is not dict:
                raise _Invalid(
                    FailureReason.NOT_AN_OBJECT,
                    f"'data' is {type(data).__name__}, expected an object",
                )
        elif "id" in message:
            if "result" in message:
                return Control(ControlKind.SUBSCRIPTION_RESULT, message)
            if "error" in message:
                return Control(ControlKind.ERROR_REPLY, message)
        event = data.get("e")
        if event is None:
            raise _Invalid(FailureReason.MISSING_FIELD, "missing field 'e' (event type)")
        builder = self._builders.get(event) if type(event) is str else None
        if builder is not None:
            record = builder(data, _now_ms() + MAX_AHEAD_OF_CLOCK_MS)
            self._check_symbol(record, stream)
            return record
        if event == "serverShutdown":
            return Control(ControlKind.SERVER_SHUTDOWN, data)
        raise _Invalid(FailureReason.UNEXPECTED_EVENT, f"unexpected event type {event!r}")

    def _check_symbol(self, record: Trade | AggTrade, stream: object) -> None:
        symbols = self._symbols
        if symbols is not None and record.symbol not in symbols:
            raise _Invalid(
                FailureReason.UNEXPECTED_SYMBOL,
                f"symbol {record.symbol!r} is not one this "
                f"connection subscribed to ({', '.join(sorted(symbols))})",
            )
        if stream is not None and not (
            type(stream) is str and stream.startswith(record.symbol.lower() + "@")
        ):
            raise _Invalid(
                FailureReason.UNEXPECTED_SYMBOL,
                f"symbol {record.symbol!r} arrived on stream {stream!r}",
            )
