"""What the bridge operator hands to Flink: one tuple per trade and per dead letter.

Tuples because they are the cheapest record to build in Python and to convert into Java
(``pyflink.common.Row`` guards every attribute it sets); the columns get their names when the
stream becomes a table (``source.py``). Prices and quantities travel as the exact decimal strings
Binance sent, never as floats: Flink's SQL turns them into ``DECIMAL`` where it computes.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from pyflink.common.typeinfo import Types

from connectors.binance.records import AggTrade

if TYPE_CHECKING:
    from connectors.binance.records import DeadLetter, Trade

# For ``@trade``: trade_id is Binance's ``t`` and first_trade_id == last_trade_id == trade_id. For
# ``@aggTrade``: trade_id is the aggregate id ``a`` and first/last_trade_id are ``f``/``l``.
TRADE_FIELDS = [
    "symbol",
    "trade_id",
    "price",
    "quantity",
    "trade_time",
    "event_time",
    "buyer_is_maker",
    "first_trade_id",
    "last_trade_id",
    # How far this trade may move the watermark: its trade time, or less while another shard of
    # the same bridge subtask is disconnected or backfilling (source.py). Not written anywhere.
    "watermark_time",
]
TradeTuple = tuple[str, int, str, str, int, int, bool, int, int, int]  # TRADE_FIELDS' values
NO_CAP = 2**63 - 1  # a watermark cap that caps nothing
TRADE_TYPE = Types.TUPLE(
    [
        Types.STRING(),
        Types.LONG(),
        Types.STRING(),
        Types.STRING(),
        Types.LONG(),
        Types.LONG(),
        Types.BOOLEAN(),
        Types.LONG(),
        Types.LONG(),
        Types.LONG(),
    ]
)

# raw is the frame as text when it is valid UTF-8 (raw_encoding "utf-8"), else base64 ("base64"):
# lossless either way.
DEAD_LETTER_FIELDS = ["reason", "raw", "raw_encoding", "error", "received_at"]
DeadLetterTuple = tuple[str, str, str, str, int]
DEAD_LETTER_TYPE = Types.TUPLE(
    [Types.STRING(), Types.STRING(), Types.STRING(), Types.STRING(), Types.LONG()]
)


def trade_tuple(rec: Trade | AggTrade, watermark_cap: int = NO_CAP) -> TradeTuple:
    """A ``Trade`` or ``AggTrade`` as a TRADE_TYPE tuple; its ``watermark_time`` is its trade time
    or ``watermark_cap``, whichever is less."""
    t = rec.trade_time
    if isinstance(rec, AggTrade):
        return (
            rec.symbol,
            rec.agg_id,
            rec.price,
            rec.quantity,
            t,
            rec.event_time,
            rec.buyer_is_maker,
            rec.first_trade_id,
            rec.last_trade_id,
            t if t < watermark_cap else watermark_cap,
        )
    tid = rec.trade_id
    return (
        rec.symbol,
        tid,
        rec.price,
        rec.quantity,
        t,
        rec.event_time,
        rec.buyer_is_maker,
        tid,
        tid,
        t if t < watermark_cap else watermark_cap,
    )


def dead_letter_tuple(letter: DeadLetter) -> DeadLetterTuple:
    """A ``DeadLetter`` as a DEAD_LETTER_TYPE tuple."""
    text, encoding = encode_raw(letter.raw)
    return str(letter.reason), text, encoding, letter.error, letter.received_at


def encode_raw(raw: bytes) -> tuple[str, str]:
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def decode_raw(text: str, encoding: str) -> bytes:
    return base64.b64decode(text) if encoding == "base64" else text.encode("utf-8")
