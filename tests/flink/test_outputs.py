"""The three file outputs as a reader finds them, on a real MiniCluster: the fields of a line in
their documented order for both stream kinds (and USD-M's ``market`` last), late trades as dead
letters carrying the trade's own line, a bridge dead letter's awkward text intact, and the hour
folders."""

from __future__ import annotations

import pytest
from pyflink.common import Configuration
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.flink.bars import late_trades, minute_bars
from connectors.flink.outputs import (
    add_file_output,
    bar_lines,
    committed_rows,
    dead_letter_lines,
    trade_lines,
)
from connectors.flink.rows import DEAD_LETTER_TYPE, TRADE_TYPE
from connectors.flink.source import trade_tables
from connectors.flink.watermarks import TradeWatermarks

pytestmark = pytest.mark.slow

MINUTE = 1_723_161_600_000  # 2024-08-09T00:00:00Z
AWKWARD = 'a "quote", a line separator \u2028 and a backslash \\'


def trade(n, at):
    return ("BTCUSDT", n, "1.5", "2.00000000", at, at + 1, n % 2 == 0, n * 10, n * 10 + 2, at)


# the third comes after the watermark (newest - 2 s) passed the end of its minute: late
TRADES = [
    trade(1, MINUTE),
    trade(2, MINUTE + 62_500),
    trade(3, MINUTE + 59_999),
    trade(4, MINUTE + 61_000),
]


def write_outputs(out_dir, kind: str, market: str | None) -> None:
    config = Configuration()
    config.set_string("parallelism.default", "1")
    config.set_string("pipeline.auto-watermark-interval", "0")  # a watermark after every trade
    config.set_string("execution.checkpointing.interval", "1 s")
    env = StreamExecutionEnvironment.get_execution_environment(config)
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("table.local-time-zone", "UTC")
    letters = env.from_collection(
        [("invalid_json", AWKWARD, "utf-8", "boom", 5)], type_info=DEAD_LETTER_TYPE
    )
    tables = trade_tables(
        t_env,
        env.from_collection(TRADES, type_info=TRADE_TYPE),
        letters,
        TradeWatermarks(out_of_orderness_ms=2000, idleness_ms=None),
    )
    statements = t_env.create_statement_set()
    add_file_output(
        t_env,
        statements,
        trade_lines(t_env, tables.trades, kind, market),
        out_dir,
        "trades",
        "1 s",
    )
    add_file_output(
        t_env,
        statements,
        bar_lines(t_env, minute_bars(t_env, tables.trades), market),
        out_dir,
        "bars",
        "1 s",
    )
    add_file_output(
        t_env,
        statements,
        dead_letter_lines(
            t_env, tables.dead_letters, late_trades(t_env, tables.trades), kind, market
        ),
        out_dir,
        "dead-letters",
        "1 s",
    )
    statements.execute().wait()


@pytest.mark.parametrize(
    "kind, market", [("trade", None), ("aggTrade", None), ("aggTrade", "usdm")]
)
def test_lines_fields_late_trades_and_folders(tmp_path, kind, market):
    write_outputs(tmp_path, kind, market)
    marked = {} if market is None else {"market": market}
    trades = [row for _, row in committed_rows(tmp_path, "trades")]
    third = next(t for t in trades if t.get("trade_id", t.get("agg_id")) == 3)
    if kind == "trade":
        expected = {
            "symbol": "BTCUSDT",
            "trade_id": 3,
            "price": "1.5",
            "quantity": "2.00000000",
            "trade_time": MINUTE + 59_999,
            "event_time": MINUTE + 60_000,
            "buyer_is_maker": False,
        }
    else:
        expected = {
            "symbol": "BTCUSDT",
            "agg_id": 3,
            "price": "1.5",
            "quantity": "2.00000000",
            "first_trade_id": 30,
            "last_trade_id": 32,
            "trade_time": MINUTE + 59_999,
            "event_time": MINUTE + 60_000,
            "buyer_is_maker": False,
        }
    expected |= marked
    assert third == expected and list(third) == list(
        expected
    )  # the keys in the documented order too
    assert sorted(t.get("trade_id", t.get("agg_id")) for t in trades) == [1, 2, 3, 4]

    letters = {row["reason"]: row for _, row in committed_rows(tmp_path, "dead-letters")}
    assert set(letters) == {"invalid_json", "late_trade"}
    assert (letters["invalid_json"]["raw"], letters["invalid_json"]["error"]) == (AWKWARD, "boom")
    late = letters["late_trade"]
    line = (
        '{"symbol":"BTCUSDT","trade_id":3,"price":"1.5","quantity":"2.00000000","trade_time":1723161659999,'
        '"event_time":1723161660000,"buyer_is_maker":false}'
    )
    if kind == "aggTrade":
        line = line.replace('"trade_id":3,', '"agg_id":3,').replace(
            '"quantity":"2.00000000",',
            '"quantity":"2.00000000","first_trade_id":30,"last_trade_id":32,',
        )
    if market is not None:
        line = line.replace("}", f',"market":"{market}"}}')
    assert (late["raw"], late["raw_encoding"]) == (line, "utf-8")
    assert all(row.get("market") == market for row in letters.values())
    assert (
        late["error"]
        == "trade time 1723161659999 is behind the watermark: its 1-minute bar was already emitted"
    )

    bar_rows = [row for _, row in committed_rows(tmp_path, "bars")]
    assert all(list(row)[-1] == "market" for row in bar_rows) == (market is not None)
    bars = sorted((row["window_start"], row["trade_count"]) for row in bar_rows)
    assert bars == [(MINUTE, 3), (MINUTE + 60_000, 6)]  # the late trade is in no bar
    folders = {p.parent.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("part-*")}
    assert {"trades/hour=2024-08-09--00", "bars/hour=2024-08-09--00"} <= folders
