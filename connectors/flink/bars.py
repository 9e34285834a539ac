"""One-minute OHLCV bars per symbol, in event time, in Flink SQL with exact decimal arithmetic.

A TUMBLE window table function over the trades: a window ``[start, start + 60000)`` is emitted when
the watermark passes its last millisecond. Trades arriving after that are late: the window
dropped them, and ``late_trades`` reports exactly those (the same watermark decides both).

Types, from Flink's result-type rules (precision caps at 38 digits, and a product past it loses
scale, i.e. gets rounded): price and quantity are ``DECIMAL(18, 8)`` (the parser admits at most
10 digits before the point, Binance prints 8 after), so ``price * quantity`` is an exact
``DECIMAL(37, 16)``; ``quote_volume`` = SUM of those, ``DECIMAL(38, 16)``; ``volume`` = SUM of the
quantities, ``DECIMAL(38, 8)``, above 0 (the parser admits no zero quantity). ``vwap`` =
quote_volume / volume rounded half-even to 8 decimals,
computed in integers (Flink rounds division half-up): with Q = quote_volume x 10^16 and V = volume x
10^8, n = Q div V, r = Q mod V, and n + 1 when 2r > V, or 2r = V and n is odd. That is exact while
a bar's quote volume stays under 10^16 (Q must fit 38 digits); beyond, Flink's own division (half-
up, so different on an exact tie only). open and close are the prices of the lowest and highest
trade id in the window, whatever the arrival order; high and low the exact strings of the extreme
prices (Flink has no ARG_MIN: MIN/MAX over a fixed-width sortable key joined to the string).
``trade_count`` counts trades (for aggTrade, ``last_trade_id - first_trade_id + 1`` summed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyflink.table import StreamTableEnvironment, Table

DECIMAL = "DECIMAL(18, 8)"
WINDOW_MS = 60_000
BAR_FIELDS = [
    "symbol",
    "window_start",
    "window_end",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "vwap",
    "trade_count",
    "first_trade_id",
    "last_trade_id",
]

_ID_KEY = (
    "LPAD(CAST(trade_id AS STRING), 20, '0') || '|' || price"  # sorts by id; the price follows
)
_PRICE_KEY = (
    f"LPAD(CAST(CAST(price AS {DECIMAL}) AS STRING), 19, '0') || '|' || price"  # sorts by value
)
# In the SQL below, a backslash at the end of a line joins it to the next in the query's text.
_WINDOWS = """
  SELECT symbol, MIN(trade_time) AS t0,
    SPLIT_INDEX(MIN({id_key}), '|', 1) AS o, SPLIT_INDEX(MAX({id_key}), '|', 1) AS c,
    SPLIT_INDEX(MAX({price_key}), '|', 1) AS hi, SPLIT_INDEX(MIN({price_key}), '|', 1) AS lo,
    SUM(CAST(quantity AS {decimal})) AS v,
    SUM(CAST(price AS {decimal}) * CAST(quantity AS {decimal})) AS q,
    SUM(last_trade_id - first_trade_id + 1) AS cnt, MIN(first_trade_id) AS fid, \
MAX(last_trade_id) AS lid
  FROM TABLE(TUMBLE(TABLE {trades}, DESCRIPTOR(rowtime), INTERVAL '1' MINUTE))
  GROUP BY symbol, window_start, window_end"""
_SCALED = """
  SELECT *, CAST(qi - MOD(qi, vi) AS DECIMAL(38, 0)) / vi AS n0, MOD(qi, vi) AS r
  FROM (SELECT *, CAST(q * CAST(10000000000000000 AS DECIMAL(17, 0)) AS DECIMAL(38, 0)) AS qi,
                  CAST(v * CAST(100000000 AS DECIMAL(9, 0)) AS DECIMAL(38, 0)) AS vi
        FROM ({windows}))"""
_N = "CAST(n0 AS DECIMAL(20, 0))"
_HALF_EVEN = (
    f"CAST(CAST(({_N} + CASE WHEN 2 * r > vi OR (2 * r = vi AND MOD({_N}, 2) = 1) "
    "THEN 1 ELSE 0 END)"
    f" / CAST(100000000 AS DECIMAL(9, 0)) AS DECIMAL(28, 8)) AS STRING)"
)
_BARS = f"""
  SELECT symbol, t0 - MOD(t0, {WINDOW_MS}) AS window_start, \
t0 - MOD(t0, {WINDOW_MS}) + {WINDOW_MS} AS window_end,
    o AS `open`, hi AS high, lo AS low, c AS `close`, CAST(v AS STRING) AS volume, \
CAST(q AS STRING) AS quote_volume,
    COALESCE({_HALF_EVEN}, CAST(q / v AS STRING)) AS vwap,
    cnt AS trade_count, fid AS first_trade_id, lid AS last_trade_id
  FROM ({{scaled}})"""

# A window [s, s + 60000) is emitted once the watermark reaches s + 59999; the window operator
# drops what comes for it later. Fed by the same watermark assigner, this filter sees the same
# watermarks, so it picks exactly the dropped trades (with several bridge subtasks it judges by
# its subtask's watermark, never behind the windows': README, Gap-free delivery).
_LATE = f"""
  SELECT * FROM {{trades}}
  WHERE CURRENT_WATERMARK(rowtime) IS NOT NULL
    AND TO_TIMESTAMP_LTZ(trade_time - MOD(trade_time, {WINDOW_MS}) + {WINDOW_MS - 1}, 3) \
<= CURRENT_WATERMARK(rowtime)"""


# One line a minute for a whole market, where a bar per symbol would flood the console.
_SUMMARY = """
  SELECT MIN(trade_time) - MOD(MIN(trade_time), {window_ms}) AS `minute`,
    COUNT(DISTINCT symbol) AS symbols,
    SUM(last_trade_id - first_trade_id + 1) AS trades, MIN(trade_time) AS first_trade_time,
    MAX(trade_time) AS last_trade_time
  FROM TABLE(TUMBLE(TABLE {trades}, DESCRIPTOR(rowtime), INTERVAL '1' MINUTE))
  GROUP BY window_start, window_end"""


def market_summary(t_env: StreamTableEnvironment, trades: Table) -> Table:
    """Per event-time minute (``minute``: its start, ms): how many symbols traded and how many
    trades, emitted as the bars are."""
    return t_env.sql_query(_SUMMARY.format(trades=trades, window_ms=WINDOW_MS))


def minute_bars(t_env: StreamTableEnvironment, trades: Table) -> Table:
    """The bars (BAR_FIELDS; decimals as plain strings) of a trades table with ``rowtime``."""
    windows = _WINDOWS.format(id_key=_ID_KEY, price_key=_PRICE_KEY, decimal=DECIMAL, trades=trades)
    return t_env.sql_query(_BARS.format(scaled=_SCALED.format(windows=windows)))


def late_trades(t_env: StreamTableEnvironment, trades: Table) -> Table:
    """The trades (same columns) whose bar was already emitted when they came."""
    return t_env.sql_query(_LATE.format(trades=trades))
