"""Event time from the trade time ``T``, bounded out-of-orderness, idleness."""
from __future__ import annotations

from pyflink.common import Duration, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner

from .rows import T_TIME


class TradeTimeAssigner(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp: int) -> int:
        return value[T_TIME]


def trade_watermarks(out_of_orderness_ms: int = 2000, idleness_ms: int | None = 10_000) -> WatermarkStrategy:
    """Watermark = max trade time seen - out_of_orderness - 1; a subtask without trades for
    ``idleness_ms`` stops holding the watermark back (e.g. a bridge subtask with no shard).

    ``with_idleness`` drops an assigner set before it, so the assigner is set last.
    """
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(out_of_orderness_ms))
    if idleness_ms:
        strategy = strategy.with_idleness(Duration.of_millis(idleness_ms))
    return strategy.with_timestamp_assigner(TradeTimeAssigner())


def with_trade_time(trades, out_of_orderness_ms: int = 2000, idleness_ms: int | None = 10_000):
    return trades.assign_timestamps_and_watermarks(
        trade_watermarks(out_of_orderness_ms, idleness_ms)).name("trade-time watermarks")
