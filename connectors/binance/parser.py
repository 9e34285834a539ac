"""Turn one WebSocket frame into exactly one of: a market record, a control message, a parse failure.

Never raises on bad input: whatever a frame holds, the caller gets a value it can route.
"""
from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation

import orjson

from connectors.binance.records import (
    AggTrade,
    Control,
    ControlKind,
    FailureReason,
    ParseFailure,
    Trade,
)

Parsed = Trade | AggTrade | Control | ParseFailure


class _Invalid(Exception):
    def __init__(self, reason: FailureReason, error: str):
        super().__init__(error)
        self.reason = reason


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _field(data: dict, name: str, kind: type, label: str):  # every check has this signature
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


def _amount(data: dict, name: str, kind: type, label: str) -> Decimal:
    text = _field(data, name, str, label)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _Invalid(FailureReason.IMPOSSIBLE_VALUE, f"{label} {text!r} is not a number") from None
    if not value.is_finite() or value.is_signed():
        raise _Invalid(FailureReason.IMPOSSIBLE_VALUE, f"{label} {text!r} is negative or not finite")
    return value


def _non_negative(data: dict, name: str, kind: type, label: str) -> int:
    value = _field(data, name, kind, label)
    if value < 0:
        raise _Invalid(FailureReason.IMPOSSIBLE_VALUE, f"{label} {value} is negative")
    return value


_CHECKS = {str: _field, int: _non_negative, bool: _field, Decimal: _amount}

# (field, type, label) in the order a diagnosis reports them.
_TRADE_FIELDS = (("s", str, "symbol"), ("t", int, "trade id"), ("p", Decimal, "price"),
                 ("q", Decimal, "quantity"), ("T", int, "trade time"), ("E", int, "event time"),
                 ("m", bool, "buyer is maker"))
_AGG_FIELDS = (("s", str, "symbol"), ("a", int, "aggregate id"), ("p", Decimal, "price"),
               ("q", Decimal, "quantity"), ("f", int, "first trade id"), ("l", int, "last trade id"),
               ("T", int, "trade time"), ("E", int, "event time"), ("m", bool, "buyer is maker"))


def _diagnose(data: dict, fields) -> None:
    """Raises the precise reason a frame failed the fast path (the fast path only says yes or no)."""
    for name, kind, label in fields:
        _CHECKS[kind](data, name, kind, label)
    raise AssertionError(f"fast path rejected a valid frame: {data!r}")


_ZERO, _INFINITY = Decimal(0), Decimal("Infinity")  # NaN compares by raising InvalidOperation


# The fast paths below check every field inline: per-field helper calls cost more than the JSON
# decoding itself (cProfile, bench/). Any doubt goes to _diagnose, which names the reason.
def _trade(data: dict) -> Trade:
    try:
        s, t, p, q, T, E, m = data["s"], data["t"], data["p"], data["q"], data["T"], data["E"], data["m"]
        if (type(s) is str and type(t) is int and type(p) is str and type(q) is str and type(T) is int
                and type(E) is int and type(m) is bool and t >= 0 and T >= 0 and E >= 0):
            price, quantity = Decimal(p), Decimal(q)
            if _ZERO <= price < _INFINITY and _ZERO <= quantity < _INFINITY:
                return Trade(s, t, price, quantity, T, E, m)
    except (KeyError, InvalidOperation):
        pass
    _diagnose(data, _TRADE_FIELDS)


def _agg_trade(data: dict) -> AggTrade:
    try:
        s, a, p, q, f, l = data["s"], data["a"], data["p"], data["q"], data["f"], data["l"]
        T, E, m = data["T"], data["E"], data["m"]
        if (type(s) is str and type(a) is int and type(p) is str and type(q) is str and type(f) is int
                and type(l) is int and type(T) is int and type(E) is int and type(m) is bool
                and a >= 0 and f >= 0 and l >= 0 and T >= 0 and E >= 0):
            price, quantity = Decimal(p), Decimal(q)
            if _ZERO <= price < _INFINITY and _ZERO <= quantity < _INFINITY:
                return AggTrade(s, a, price, quantity, f, l, T, E, m)
    except (KeyError, InvalidOperation):
        pass
    _diagnose(data, _AGG_FIELDS)


_BUILDERS = {"trade": _trade, "aggTrade": _agg_trade}


class Parser:
    """Parses frames of the given event kinds (``trade``, ``aggTrade``); others are unexpected."""

    def __init__(self, kinds: tuple[str, ...] = ("trade", "aggTrade")):
        unknown = set(kinds) - _BUILDERS.keys()
        if unknown:
            raise ValueError(f"unknown event kinds {sorted(unknown)}")
        self._builders = {kind: _BUILDERS[kind] for kind in kinds}

    def parse(self, payload: bytes, binary: bool = False) -> Parsed:
        if binary:
            return self.failure(FailureReason.BINARY_FRAME, payload, "binary frame; Binance sends text")
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            return self._undecodable(payload, exc)
        try:
            return self._classify(message)
        except _Invalid as exc:
            return self.failure(exc.reason, payload, str(exc))

    def oversized(self, prefix: bytes, size: int, limit: int) -> ParseFailure:
        """A frame too large to hold: only its first bytes are kept as evidence."""
        return self.failure(
            FailureReason.OVERSIZED_FRAME, prefix, f"frame of {size} bytes exceeds the {limit} byte limit"
        )

    @staticmethod
    def failure(reason: FailureReason, raw: bytes, error: str) -> ParseFailure:
        return ParseFailure(reason=reason, raw=bytes(raw), error=error, received_at=_now_ms())

    def _undecodable(self, payload: bytes, exc: Exception) -> ParseFailure:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError as utf8_error:
            return self.failure(FailureReason.INVALID_UTF8, payload, str(utf8_error))
        return self.failure(FailureReason.INVALID_JSON, payload, str(exc))

    def _classify(self, message) -> Trade | AggTrade | Control:
        if type(message) is not dict:
            raise _Invalid(FailureReason.NOT_AN_OBJECT, f"JSON {type(message).__name__}, expected an object")
        data = message
        if "stream" in message and "data" in message:
            data = message["data"]
            if type(data) is not dict:
                raise _Invalid(FailureReason.NOT_AN_OBJECT, f"'data' is {type(data).__name__}, expected an object")
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
            return builder(data)
        if event == "serverShutdown":
            return Control(ControlKind.SERVER_SHUTDOWN, data)
        raise _Invalid(FailureReason.UNEXPECTED_EVENT, f"unexpected event type {event!r}")
