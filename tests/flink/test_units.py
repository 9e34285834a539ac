"""The Flink-free parts of connectors.flink: the tuples the bridge hands to Flink, shard
planning."""

from __future__ import annotations

import pytest

from connectors.binance.records import AggTrade, DeadLetter, FailureReason, Trade
from connectors.flink.rows import (
    DEAD_LETTER_FIELDS,
    TRADE_FIELDS,
    dead_letter_tuple,
    decode_raw,
    trade_tuple,
)
from connectors.flink.source import plan_shards


def test_trade_tuples_keep_the_exact_strings_and_name_the_ids():
    trade = trade_tuple(Trade("BTCUSDT", 7, "60000.10000000", "0.00010000", 1000, 1001, True))
    assert dict(zip(TRADE_FIELDS, trade, strict=True)) == {
        "symbol": "BTCUSDT",
        "trade_id": 7,
        "price": "60000.10000000",
        "quantity": "0.00010000",
        "trade_time": 1000,
        "event_time": 1001,
        "buyer_is_maker": True,
        "first_trade_id": 7,
        "last_trade_id": 7,
        "watermark_time": 1000,
    }
    held = trade_tuple(Trade("BTCUSDT", 8, "1.0", "1.0", 1000, 1001, True), watermark_cap=400)
    assert held[TRADE_FIELDS.index("watermark_time")] == 400  # held back, the trade time kept
    assert held[TRADE_FIELDS.index("trade_time")] == 1000
    agg = dict(
        zip(
            TRADE_FIELDS,
            trade_tuple(AggTrade("ETHUSDT", 5, "2600.01", "1.5", 10, 12, 1000, 1001, False)),
            strict=True,
        )
    )
    assert (agg["trade_id"], agg["first_trade_id"], agg["last_trade_id"], agg["price"]) == (
        5,
        10,
        12,
        "2600.01",
    )


@pytest.mark.parametrize(
    "raw, encoding", [(b'{"a":1}\n\\x80', "utf-8"), (b"\xff\xfe\x00bad", "base64")]
)
def test_dead_letter_raw_is_lossless(raw, encoding):
    letter = dict(
        zip(
            DEAD_LETTER_FIELDS,
            dead_letter_tuple(DeadLetter(FailureReason.INVALID_UTF8, raw, "boom", 123)),
            strict=True,
        )
    )
    assert (letter["reason"], letter["raw_encoding"], letter["error"], letter["received_at"]) == (
        "invalid_utf8",
        encoding,
        "boom",
        123,
    )
    assert decode_raw(letter["raw"], letter["raw_encoding"]) == raw


def test_plan_shards():
    assert plan_shards(["BTCUSDT", "ethusdt"], None) == [["btcusdt", "ethusdt"]]
    assert plan_shards(["a", "b", "c"], 2) == [["a", "c"], ["b"]]
    assert plan_shards(["a", "b"], 5) == [["a"], ["b"]]
    assert plan_shards(["a", "b"], [["b"], ["a"]]) == [["b"], ["a"]]
    assert plan_shards(["a", "b", "c"], None, streams_per_connection=2) == [["a", "c"], ["b"]]
    assert plan_shards(["a", "b", "c"], 1, streams_per_connection=1) == [["a"], ["b"], ["c"]]
    with pytest.raises(ValueError):
        plan_shards([], None)
    with pytest.raises(ValueError):
        plan_shards(["a"], 0)
    with pytest.raises(ValueError, match="1024"):
        plan_shards(["a"], 1, streams_per_connection=1025)
