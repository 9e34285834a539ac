"""The Flink-free parts of connectors.flink: row encoding, shard planning, bar arithmetic."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from connectors.binance.records import AggTrade, FailureReason, DeadLetter, Trade
from connectors.flink.bars import BarAccumulator, compute_bars
from connectors.flink.rows import (BAR_FIELDS, DEAD_LETTER_FIELDS, bar_json, decode_raw, failure_line,
                                   trade_json, trade_row)
from connectors.flink.source import plan_shards


def test_trade_row_keeps_the_exact_decimal_strings():
    t = Trade("BTCUSDT", 7, Decimal("60000.10000000"), Decimal("0.00010000"), 1000, 1001, True)
    row = trade_row(t)
    assert json.loads(trade_json(row)) == {
        "symbol": "BTCUSDT", "trade_id": 7, "price": "60000.10000000", "quantity": "0.00010000",
        "trade_time": 1000, "event_time": 1001, "buyer_is_maker": True}


def test_agg_trade_row():
    a = AggTrade("ETHUSDT", 5, Decimal("2600.01"), Decimal("1.5"), 10, 12, 1000, 1001, False)
    d = json.loads(trade_json(trade_row(a), "aggTrade"))
    assert (d["agg_id"], d["first_trade_id"], d["last_trade_id"], d["price"]) == (5, 10, 12, "2600.01")


@pytest.mark.parametrize("raw, encoding", [(b'{"a":1}\n\\x80', "utf-8"), (b"\xff\xfe\x00bad", "base64")])
def test_dead_letter_raw_is_lossless(raw, encoding):
    d = json.loads(failure_line(DeadLetter(FailureReason.INVALID_UTF8, raw, "boom", 123)))
    assert list(d) == DEAD_LETTER_FIELDS
    assert (d["reason"], d["raw_encoding"], d["error"], d["received_at"]) == ("invalid_utf8", encoding, "boom", 123)
    assert decode_raw(d["raw"], d["raw_encoding"]) == raw


def test_plan_shards():
    assert plan_shards(["BTCUSDT", "ethusdt"], None) == [["btcusdt", "ethusdt"]]
    assert plan_shards(["a", "b", "c"], 2) == [["a", "c"], ["b"]]
    assert plan_shards(["a", "b"], 5) == [["a"], ["b"]]
    assert plan_shards(["a", "b"], [["b"], ["a"]]) == [["b"], ["a"]]
    with pytest.raises(ValueError):
        plan_shards([], None)


def _row(tid, price, qty, t, first=None, last=None):
    return ("BTCUSDT", tid, price, qty, t, t, False, tid if first is None else first, tid if last is None else last)


def test_bar_arithmetic_is_exact_and_order_independent():
    rows = [_row(3, "100.10", "0.30000000", 61_000), _row(1, "100.00", "0.10000000", 60_000),
            _row(2, "99.90", "0.20000000", 60_500), _row(4, "101.00", "1.00000000", 121_000)]
    bars = [json.loads(bar_json(b)) for b in compute_bars(rows)]
    assert [list(b) for b in bars] == [BAR_FIELDS, BAR_FIELDS]
    b = bars[0]
    assert (b["window_start"], b["window_end"]) == (60_000, 120_000)
    assert (b["open"], b["high"], b["low"], b["close"]) == ("100.00", "100.10", "99.90", "100.10")
    assert Decimal(b["volume"]) == Decimal("0.6")
    assert Decimal(b["quote_volume"]) == Decimal("100.00") * Decimal("0.1") + Decimal("99.90") * Decimal("0.2") + Decimal("100.10") * Decimal("0.3")
    # 60.01 / 0.6 = 100.01666..., half-even to 8 places
    assert b["vwap"] == "100.01666667"
    assert (b["trade_count"], b["first_trade_id"], b["last_trade_id"]) == (3, 1, 3)
    assert bars[1]["trade_count"] == 1


def test_accumulator_state_round_trip_and_agg_trade_counts():
    acc = BarAccumulator()
    acc.add(_row(10, "1.00000001", "3", 0, first=100, last=104))
    acc = BarAccumulator.from_state(acc.to_state())
    acc.add(_row(11, "1.00000002", "0", 1, first=105, last=105))
    bar = acc.result("X", 0)
    assert bar[10] == 6 and bar[11] == 100 and bar[12] == 105
    assert bar[9] == "1.00000001"  # (3.00000003 + 0) / 3


def test_zero_volume_has_no_vwap():
    acc = BarAccumulator()
    acc.add(_row(1, "5", "0", 0))
    assert acc.result("X", 0)[9] is None
