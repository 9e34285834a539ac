"""Typed records parsed from Binance frames.

Prices and quantities are ``Decimal`` built from the exact strings Binance sent, so
``str(trade.price)`` gives those strings back unchanged (trailing zeros included).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


@dataclass(slots=True)  # not frozen: a frozen init costs 4x, and this is the hot path
class Trade:
    """One ``<symbol>@trade`` event."""

    symbol: str
    trade_id: int
    price: Decimal
    quantity: Decimal
    trade_time: int
    event_time: int
    buyer_is_maker: bool

    @property
    def key(self) -> str:
        return self.symbol

    @property
    def seq(self) -> int:
        return self.trade_id


@dataclass(slots=True)
class AggTrade:
    """One ``<symbol>@aggTrade`` event: trades ``first_trade_id..last_trade_id`` at one price."""

    symbol: str
    agg_id: int
    price: Decimal
    quantity: Decimal
    first_trade_id: int
    last_trade_id: int
    trade_time: int
    event_time: int
    buyer_is_maker: bool

    @property
    def key(self) -> str:
        return self.symbol

    @property
    def seq(self) -> int:
        return self.agg_id


class ControlKind(StrEnum):
    SUBSCRIPTION_RESULT = "subscription_result"
    ERROR_REPLY = "error_reply"
    SERVER_SHUTDOWN = "server_shutdown"


@dataclass(frozen=True, slots=True)
class Control:
    """A frame that is not market data: handled by the bridge, never counted as a failure."""

    kind: ControlKind
    payload: dict

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
    OVERSIZED_FRAME = "oversized_frame"


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """A frame that could not become a record: goes to the dead-letter output as it came."""

    reason: FailureReason
    raw: bytes
    error: str
    received_at: int  # ms since the epoch, local clock
