"""One-minute OHLCV bars per symbol, in event time, with exact decimal arithmetic.

Implemented as a ``KeyedProcessFunction`` keyed by symbol with event-time timers (one per open
window, at ``window_end - 1``): a window ``[start, start + 60000)`` closes when the watermark passes
its last millisecond, as Flink's tumbling windows do. A trade arriving for a closed window is late:
it goes to the ``LATE_TRADES`` side output (the job writes it as a dead letter) and counts in the
``lateTrades`` metric.

Arithmetic: ``decimal`` with 60 significant digits, so every sum and product is exact.
``volume`` = sum of quantities, ``quote_volume`` = sum of price x quantity, ``vwap`` =
quote_volume / volume rounded half-even to 8 decimal places (Binance's finest price step); empty
volume gives ``vwap`` null. open/close are the prices of the lowest/highest trade id in the window
(aggregate id for ``aggTrade``), high/low the extreme prices, all as the exact strings received.
``trade_count`` counts trades (for aggTrade, ``last_trade_id - first_trade_id + 1`` summed).
"""
from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor

from .metrics import count
from .rows import (T_FIRST, T_ID, T_LAST, T_PRICE, T_QTY, T_SYMBOL, T_TIME, TRADE_TYPE, bar_json,
                   dec_str)

WINDOW_MS = 60_000
CTX = Context(prec=60, rounding=ROUND_HALF_EVEN)
VWAP_STEP = Decimal("0.00000001")
LATE_TRADES = OutputTag("late-trades", TRADE_TYPE)


class BarAccumulator:
    """Pure Python, usable without Flink: ``add(row)`` then ``result(symbol, start)``."""

    __slots__ = ("min_id", "open", "max_id", "close", "high", "low", "volume", "quote", "count",
                 "first", "last")

    def __init__(self):
        self.min_id = self.max_id = None
        self.open = self.close = self.high = self.low = None
        self.volume = Decimal(0)
        self.quote = Decimal(0)
        self.count = 0
        self.first = self.last = None

    def add(self, row) -> None:
        price_s = row[T_PRICE]
        price, qty = Decimal(price_s), Decimal(row[T_QTY])
        tid = row[T_ID]
        if self.min_id is None or tid < self.min_id:
            self.min_id, self.open = tid, price_s
        if self.max_id is None or tid > self.max_id:
            self.max_id, self.close = tid, price_s
        if self.high is None or price > Decimal(self.high):
            self.high = price_s
        if self.low is None or price < Decimal(self.low):
            self.low = price_s
        self.volume = CTX.add(self.volume, qty)
        self.quote = CTX.add(self.quote, CTX.multiply(price, qty))
        self.count += row[T_LAST] - row[T_FIRST] + 1
        self.first = row[T_FIRST] if self.first is None else min(self.first, row[T_FIRST])
        self.last = row[T_LAST] if self.last is None else max(self.last, row[T_LAST])

    def result(self, symbol: str, window_start: int) -> Row:
        vwap = None
        if self.volume:
            vwap = dec_str(CTX.divide(self.quote, self.volume).quantize(VWAP_STEP, context=CTX))
        return Row(symbol, window_start, window_start + WINDOW_MS, self.open, self.high, self.low,
                   self.close, dec_str(self.volume), dec_str(self.quote), vwap, self.count,
                   self.first, self.last)

    # compact, version-tolerant state form (pickled by PyFlink)
    def to_state(self):
        return (self.min_id, self.open, self.max_id, self.close, self.high, self.low,
                str(self.volume), str(self.quote), self.count, self.first, self.last)

    @classmethod
    def from_state(cls, s):
        a = cls()
        (a.min_id, a.open, a.max_id, a.close, a.high, a.low, vol, quote, a.count, a.first,
         a.last) = s
        a.volume, a.quote = Decimal(vol), Decimal(quote)
        return a


def compute_bars(rows) -> list[Row]:
    """Bars of an iterable of TRADE_TYPE-like rows without Flink (reference for tests and docs)."""
    accs: dict[tuple[str, int], BarAccumulator] = {}
    for r in rows:
        start = r[T_TIME] - r[T_TIME] % WINDOW_MS
        accs.setdefault((r[T_SYMBOL], start), BarAccumulator()).add(r)
    return [accs[k].result(*k) for k in sorted(accs)]


class _MinuteBars(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext):
        self.windows = runtime_context.get_map_state(
            MapStateDescriptor("open_windows", Types.LONG(), Types.PICKLED_BYTE_ARRAY()))
        g = runtime_context.get_metrics_group().add_group("bars")
        self.late = count(g, "lateTrades")
        self.emitted = count(g, "barsEmitted")

    def process_element(self, row, ctx: KeyedProcessFunction.Context):
        ts = ctx.timestamp()
        start = ts - ts % WINDOW_MS
        end = start + WINDOW_MS
        if end - 1 <= ctx.timer_service().current_watermark():
            self.late.inc()
            yield LATE_TRADES, row
            return
        state = self.windows.get(start)
        acc = BarAccumulator() if state is None else BarAccumulator.from_state(state)
        acc.add(row)
        self.windows.put(start, acc.to_state())
        if state is None:
            ctx.timer_service().register_event_time_timer(end - 1)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        start = timestamp + 1 - WINDOW_MS
        state = self.windows.get(start)
        if state is None:
            return
        self.windows.remove(start)
        self.emitted.inc()
        # as the JSON line every output of the job takes: no separate encoding operator (bench/)
        yield bar_json(BarAccumulator.from_state(state).result(ctx.get_current_key(), start))


def minute_bars(trades_with_time, parallelism: int | None = None):
    """``(bars, late_trades)`` from a trade stream that already carries event time and watermarks:
    bars as JSON lines (``rows.BAR_FIELDS``), late trades as TRADE_TYPE rows."""
    bars = (trades_with_time.key_by(lambda r: r[T_SYMBOL], key_type=Types.STRING())
            .process(_MinuteBars(), output_type=Types.STRING()).name("1-minute bars").uid("bars-1m"))
    if parallelism:
        bars = bars.set_parallelism(parallelism)
    return bars, bars.get_side_output(LATE_TRADES)
