"""Row types carried between the operators, and their JSON-lines form.

Prices, quantities and every sum of them travel as decimal strings, never floats:
a trade's ``price`` is the exact string Binance sent (``str(Decimal)`` of the parsed record).
"""
from __future__ import annotations

import base64
import time
from decimal import Decimal

import orjson
from pyflink.common import Row
from pyflink.common.typeinfo import Types

# One row type for both streams. For ``@trade``: trade_id is Binance's ``t`` and
# first_trade_id == last_trade_id == trade_id. For ``@aggTrade``: trade_id is the aggregate id ``a``
# and first/last_trade_id are ``f``/``l``.
TRADE_FIELDS = ["symbol", "trade_id", "price", "quantity", "trade_time", "event_time",
                "buyer_is_maker", "first_trade_id", "last_trade_id"]
TRADE_TYPE = Types.ROW_NAMED(TRADE_FIELDS, [
    Types.STRING(), Types.LONG(), Types.STRING(), Types.STRING(), Types.LONG(), Types.LONG(),
    Types.BOOLEAN(), Types.LONG(), Types.LONG()])
T_SYMBOL, T_ID, T_PRICE, T_QTY, T_TIME, T_EVENT_TIME, T_MAKER, T_FIRST, T_LAST = range(9)

# Dead letters leave their operators as JSON lines already (one Python operator less per path,
# bench/). raw is the frame as text when it is valid UTF-8 (raw_encoding "utf-8"), else base64
# ("base64"): lossless either way.
DEAD_LETTER_FIELDS = ["reason", "raw", "raw_encoding", "error", "received_at"]

BAR_FIELDS = ["symbol", "window_start", "window_end", "open", "high", "low", "close", "volume",
              "quote_volume", "vwap", "trade_count", "first_trade_id", "last_trade_id"]


def dec_str(d: Decimal) -> str:
    """Plain notation, never exponent form (``Decimal('0E-8')`` -> ``'0.00000000'``)."""
    return format(d, "f")


def trade_row(rec) -> Row:
    """A ``Trade`` or ``AggTrade`` record as a TRADE_TYPE row."""
    if hasattr(rec, "agg_id"):
        return Row(rec.symbol, rec.agg_id, str(rec.price), str(rec.quantity), rec.trade_time,
                   rec.event_time, rec.buyer_is_maker, rec.first_trade_id, rec.last_trade_id)
    return Row(rec.symbol, rec.trade_id, str(rec.price), str(rec.quantity), rec.trade_time,
               rec.event_time, rec.buyer_is_maker, rec.trade_id, rec.trade_id)


def encode_raw(raw: bytes) -> tuple[str, str]:
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def decode_raw(text: str, encoding: str) -> bytes:
    return base64.b64decode(text) if encoding == "base64" else text.encode("utf-8")


def dead_letter_line(reason: str, raw: bytes, error: str, received_at: int) -> str:
    text, encoding = encode_raw(raw)
    return row_json((reason, text, encoding, error, received_at), DEAD_LETTER_FIELDS)


def failure_line(failure) -> str:
    """A ``DeadLetter`` as a dead-letter JSON line."""
    return dead_letter_line(str(failure.reason), failure.raw, failure.error, failure.received_at)


def late_trade_line(row) -> str:
    """A trade whose bar was already emitted, as a dead-letter JSON line."""
    return dead_letter_line("late_trade", trade_json(row).encode(),
                            f"trade time {row[T_TIME]} is behind the watermark: its 1-minute bar was already emitted",
                            time.time_ns() // 1_000_000)


def trade_json(row, stream: str = "trade") -> str:
    if stream == "aggTrade":
        d = {"symbol": row[T_SYMBOL], "agg_id": row[T_ID], "price": row[T_PRICE],
             "quantity": row[T_QTY], "first_trade_id": row[T_FIRST], "last_trade_id": row[T_LAST],
             "trade_time": row[T_TIME], "event_time": row[T_EVENT_TIME],
             "buyer_is_maker": row[T_MAKER]}
    else:
        d = {"symbol": row[T_SYMBOL], "trade_id": row[T_ID], "price": row[T_PRICE],
             "quantity": row[T_QTY], "trade_time": row[T_TIME], "event_time": row[T_EVENT_TIME],
             "buyer_is_maker": row[T_MAKER]}
    return orjson.dumps(d).decode()


def row_json(row, fields) -> str:
    return orjson.dumps(dict(zip(fields, row))).decode()


def bar_json(row) -> str:
    return row_json(row, BAR_FIELDS)
