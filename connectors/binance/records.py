"""Typed records parsed from Binance frames and REST pages.

Prices and quantities are the exact decimal strings Binance sent (trailing zeros included),
checked to be plain positive decimals (see ``parser.py``), so ``Decimal(trade.price)`` is exact and
nothing passes through a binary float. They stay strings because that is what the job hands on:
Flink's SQL does the arithmetic in ``DECIMAL``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, final


@dataclass(slots=True)  # not frozen: a frozen init costs 4x, and this is the hot path
class Trade:
    """One ``<symbol>@trade`` event (or one ``historicalTrades`` entry: then ``event_time`` is
    the trade time, REST has no event time)."""

    symbol: str  # "BTCUSDT": as Binance writes it, upper case
    trade_id: int  # Binance's "t": consecutive per symbol in practice, not promised
    price: str  # "61685.99000000"
    quantity: str  # "0.00017000"
    trade_time: int  # "T": ms since the epoch, when the orders matched
    event_time: int  # "E": ms since the epoch, when Binance sent the event
    buyer_is_maker: bool  # "m": true when the buyer's order rested on the book (a sell hit it)

    @property
    def key(self) -> str:
        return self.symbol

    @property
    def seq(self) -> int:
        return self.trade_id

    @property
    def time(self) -> int:
        return self.trade_time


@dataclass(slots=True)
class AggTrade:
    """One ``<symbol>@aggTrade`` event: trades ``first_trade_id..last_trade_id`` of one taker order
    at one price, their quantities summed (or one ``aggTrades`` REST entry, ``event_time`` as
    above)."""

    symbol: str
    agg_id: int  # "a": consecutive per symbol in practice
    price: str
    quantity: str
    first_trade_id: int  # "f"
    last_trade_id: int  # "l"
    trade_time: int  # "T"
    event_time: int  # "E"
    buyer_is_maker: bool  # "m"

    @property
    def key(self) -> str:
        return self.symbol

    @property
    def seq(self) -> int:
        return self.agg_id

    @property
    def time(self) -> int:
        return self.trade_time


class ControlKind(StrEnum):
    SUBSCRIPTION_RESULT = "subscription_result"
    ERROR_REPLY = "error_reply"
    SERVER_SHUTDOWN = "server_shutdown"


@dataclass(frozen=True, slots=True)
class Control:
    """A frame that is not market data: handled by the bridge, never counted as a failure."""

    kind: ControlKind
    payload: dict[str, Any]  # the frame's JSON object (of a combined stream: its ``data``)

    @property
    def wants_reconnect(self) -> bool:
        return self.kind is ControlKind.SERVER_SHUTDOWN


class FailureReason(StrEnum):
    BINARY_FRAME = "binary_frame"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    IMPOSSIBLE_VALUE = "impossible_value"
    UNEXPECTED_EVENT = "unexpected_event"
    UNEXPECTED_SYMBOL = "unexpected_symbol"
    OVERSIZED_FRAME = "oversized_frame"
    GAP_UNFILLED = "gap_unfilled"  # ids the stream skipped and the REST history could not supply


@final  # so that `type(item) is DeadLetter` tells mypy what an item is otherwise
@dataclass(frozen=True, slots=True)
class DeadLetter:
    """What could not become a record, kept as it came, with the reason: a malformed frame or
    REST entry, or (``GAP_UNFILLED``) a JSON object naming the symbol and the lost id range."""

    reason: FailureReason
    raw: bytes
    error: str
    received_at: int  # ms since the epoch, local clock
