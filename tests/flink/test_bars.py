"""The one-minute bars in Flink SQL, on a real MiniCluster, against Decimal arithmetic done here:
exact at the largest values the parser admits, half-even vwap on exact ties, open and close by
trade id whatever the arrival order, aggregate trades counted, and late trades picked out."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

import pytest
from pyflink.common import Configuration
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment
from pyflink.table.expressions import col

from connectors.flink.bars import late_trades, market_summary, minute_bars
from connectors.flink.rows import DEAD_LETTER_TYPE, TRADE_TYPE
from connectors.flink.source import trade_tables
from connectors.flink.watermarks import TradeWatermarks

pytestmark = pytest.mark.slow

MINUTE = 1_723_161_600_000  # 2024-08-09T00:00:00Z
EXACT = Context(prec=80)


def trade(trade_id, price, quantity, at, first=None, last=None):
    return (
        "BTCUSDT",
        trade_id,
        price,
        quantity,
        at,
        at,
        True,
        first or trade_id,
        last or trade_id,
        at,
    )


def run(trades, what=minute_bars) -> list[dict]:
    """``what`` (minute_bars or late_trades) of these trades, in arrival order, with a watermark
    after every trade (2 s behind the newest)."""
    config = Configuration()
    config.set_string("parallelism.default", "1")
    config.set_string("pipeline.auto-watermark-interval", "0")
    env = StreamExecutionEnvironment.get_execution_environment(config)
    t_env = StreamTableEnvironment.create(env)
    letters = env.from_collection([("x", "x", "utf-8", "x", 0)], type_info=DEAD_LETTER_TYPE)
    tables = trade_tables(
        t_env,
        env.from_collection(trades, type_info=TRADE_TYPE),
        letters,
        TradeWatermarks(out_of_orderness_ms=2000, idleness_ms=None),
    )
    result = what(t_env, tables.trades)
    if "rowtime" in result.get_schema().get_field_names():
        result = result.drop_columns(col("rowtime"))  # an Instant does not cross to Python
    with result.execute().collect() as rows:
        return [dict(zip(result.get_schema().get_field_names(), row, strict=True)) for row in rows]


def test_largest_values_are_summed_and_multiplied_exactly():
    biggest, smallest = "9999999999.99999999", "0.00000001"
    (bar,) = run(
        [
            trade(1, biggest, biggest, MINUTE),
            trade(2, smallest, smallest, MINUTE + 1),
            trade(3, biggest, smallest, MINUTE + 2),
        ]
    )
    prices, quantities = (
        [Decimal(biggest), Decimal(smallest), Decimal(biggest)],
        [Decimal(biggest), Decimal(smallest), Decimal(smallest)],
    )
    quote = volume = Decimal(0)
    for p, q in zip(prices, quantities, strict=True):
        quote, volume = EXACT.add(quote, EXACT.multiply(p, q)), EXACT.add(volume, q)
    assert (
        bar["quote_volume"] == format(quote, "f") == "99999999999999999900.0000000000000001"
    )  # every digit
    assert bar["volume"] == format(volume, "f")
    assert (bar["high"], bar["low"]) == (biggest, smallest)


@pytest.mark.parametrize(
    "prices, vwap",
    [
        (("1.00000000", "1.00000001"), "1.00000000"),  # 1.000000005: half-even keeps the even digit
        (("1.00000001", "1.00000002"), "1.00000002"),  # 1.000000015: rounds up to the even one
        (("2.00000000", "1.00000001"), "1.50000000"),  # 1.500000005 -> 1.50000000
    ],
)
def test_vwap_rounds_half_even_on_exact_ties(prices, vwap):
    (bar,) = run([trade(i + 1, p, "1.00000000", MINUTE + i) for i, p in enumerate(prices)])
    quote = sum((Decimal(p) for p in prices), Decimal(0))
    assert (
        bar["vwap"] == vwap == str((quote / 2).quantize(Decimal("1e-8"), rounding=ROUND_HALF_EVEN))
    )


def test_open_close_by_trade_id_whatever_the_arrival_order_and_exact_strings():
    trades = [
        trade(12, "100.10", "0.30000000", MINUTE + 1000),
        trade(10, "100.00", "0.10000000", MINUTE + 900),
        trade(11, "99.9", "0.20000000", MINUTE + 950),
        trade(20, "101.00", "1.00000000", MINUTE + 61_000, first=20, last=24),
    ]
    first, second = run(trades)
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        "100.00",
        "100.10",
        "99.9",
        "100.10",
    )
    assert (first["window_start"], first["window_end"]) == (MINUTE, MINUTE + 60_000)
    assert (first["trade_count"], first["first_trade_id"], first["last_trade_id"]) == (3, 10, 12)
    assert (second["trade_count"], second["first_trade_id"], second["last_trade_id"]) == (
        5,
        20,
        24,
    )  # an aggTrade


def test_late_trades_are_exactly_those_whose_bar_was_emitted():
    trades = [
        trade(1, "1.00000000", "1.00000000", MINUTE),
        trade(2, "1.00000000", "1.00000000", MINUTE + 62_500),
        trade(
            3, "1.00000000", "1.00000000", MINUTE + 59_999
        ),  # its window closed at watermark 60,500
        trade(4, "1.00000000", "1.00000000", MINUTE + 61_000),
    ]  # behind the newest, not late
    assert [t["trade_id"] for t in run(trades, late_trades)] == [3]
    first, second = run(trades)
    assert (first["trade_count"], second["trade_count"]) == (1, 2)  # the late trade is in no bar


def test_the_market_summary_counts_symbols_and_trades_per_minute():
    def of(symbol, trade_id, at, first=None, last=None):
        return (symbol, *trade(trade_id, "1.0", "1.0", at, first, last)[1:])

    rows = run(
        [
            of("BTCUSDT", 1, MINUTE + 5),
            of("ETHUSDT", 7, MINUTE + 10, 70, 72),  # an aggregate trade of three
            of("BTCUSDT", 2, MINUTE + 59_999),
            of("XRPUSDT", 9, MINUTE + 60_000),
            of("BTCUSDT", 3, MINUTE + 125_000),  # moves the watermark past the second minute
        ],
        what=market_summary,
    )
    assert sorted(rows, key=lambda r: r["minute"])[:2] == [
        {
            "minute": MINUTE,
            "symbols": 2,
            "trades": 5,
            "first_trade_time": MINUTE + 5,
            "last_trade_time": MINUTE + 59_999,
        },
        {
            "minute": MINUTE + 60_000,
            "symbols": 1,
            "trades": 1,
            "first_trade_time": MINUTE + 60_000,
            "last_trade_time": MINUTE + 60_000,
        },
    ]
