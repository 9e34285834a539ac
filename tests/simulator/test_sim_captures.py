"""Reading the real captures: both recorder formats, exact payload bytes, filters, the extracts."""

from __future__ import annotations

import gzip
from collections import Counter
from itertools import pairwise

import orjson
import pytest

from connectors.simulator import load_events

AUG_9_0005 = 1723161900000  # 2024-08-09T00:05:00Z in ms


def test_hftbacktest_lines_keep_time_in_ns_and_the_exact_data_bytes(capture_dir):
    path = capture_dir / "btcusdt_20240809.gz"
    events = load_events(path)
    with gzip.open(path, "rb") as lines:
        trade_lines = [
            line.rstrip(b"\n") for line in lines if line.find(b'"stream":"btcusdt@trade"') > 0
        ]
    assert len(events) == len(trade_lines) == 10147
    assert [event.data["t"] for event in events] == list(range(3735693016, 3735703163))
    for event, line in zip(events, trade_lines, strict=True):
        recv_time, _, message = line.partition(b" ")
        assert event.recv_time_ns == int(recv_time)
        assert message == b'{"stream":"btcusdt@trade","data":' + event.raw + b"}"
        assert event.data == orjson.loads(event.raw)
    first = events[0]
    assert (first.stream, first.kind, first.symbol) == ("btcusdt@trade", "trade", "BTCUSDT")
    assert first.data["p"] == "61685.99000000"


def test_older_hftbacktest_file_in_microseconds_keeps_extra_fields(capture_dir):
    events = load_events(capture_dir / "btcusdt_20230405.dat.gz")
    assert len(events) == 3144
    assert events[0].recv_time_ns == 1680652800004107 * 1000
    assert all(b.data["t"] == a.data["t"] + 1 for a, b in pairwise(events))
    assert b'"b":20720542158,"a":20720542592' in events[0].raw


def test_cryptofeed_text_format_skips_header_and_rest_lines(capture_dir, tmp_path):
    path = capture_dir / "cryptofeed_BINANCE-ee25be.0.gz"
    everything = load_events(path, kinds=None)
    with gzip.open(path, "rb") as text:
        lines = text.readlines()
    assert lines[0].startswith(b"wss://") and len(everything) == len(lines) - 1
    # the full capture also holds REST snapshot lines: "https://... -> <time>: {...}"
    with_rest = tmp_path / "with_rest.0"
    with_rest.write_bytes(
        lines[0] + b"https://www.binance.com/api/v1/depth?symbol=BTCUSDT&limit=1000 -> "
        b'1617566592.339385: {"lastUpdateId":1,"bids":[],"asks":[]}\n' + b"".join(lines[1:])
    )
    assert load_events(with_rest, kinds=None) == everything
    assert {event.kind for event in everything} == {"aggTrade"}

    aggs = load_events(path, kinds=("aggTrade",))
    assert Counter(event.symbol for event in aggs) == {
        "BTCUSDT": 1227,
        "ETHUSDT": 506,
        "DOTUSDT": 177,
    }
    assert aggs[0].recv_time_ns == 1617566592629139000  # "1617566592.629139:"
    for symbol in ("BTCUSDT", "ETHUSDT", "DOTUSDT"):
        own = [event.data for event in aggs if event.symbol == symbol]
        assert all(b["a"] == a["a"] + 1 and b["f"] == a["l"] + 1 for a, b in pairwise(own))

    dot = load_events(path, kinds=("aggTrade",), symbols=["dotusdt"])
    assert len(dot) == 177 and {event.stream for event in dot} == {"dotusdt@aggTrade"}


def test_several_captures_merge_in_receive_time_order(capture_dir):
    paths = [capture_dir / "ethusdt_20240809.gz", capture_dir / "btcusdt_20240809.gz"]
    events = load_events(paths)
    assert len(events) == 10147 + 8409
    times = [event.recv_time_ns for event in events]
    assert times == sorted(times)
    assert load_events(paths, symbols=["ETHUSDT"]) == [e for e in events if e.symbol == "ETHUSDT"]


def test_plain_text_files_and_truncated_lines(capture_dir, tmp_path):
    with gzip.open(capture_dir / "btcusdt_20240809.gz", "rb") as lines:
        head = [next(lines) for _ in range(200)]
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"".join(head))
    assert (
        load_events(plain)
        == load_events(capture_dir / "btcusdt_20240809.gz")[: len(load_events(plain))]
    )
    assert len(load_events(plain)) > 10

    truncated = tmp_path / "truncated.txt"
    last_trade = [line for line in head if b"@trade" in line][-1]
    truncated.write_bytes(last_trade[: len(last_trade) // 2] + b"\n")
    with pytest.raises(ValueError, match="truncated"):
        load_events(truncated)


def test_the_extracts_hold_trades_only_as_their_readme_says(capture_paths, demo_captures):
    for path in capture_paths:
        with gzip.open(path, "rb") as lines:
            for line in lines:
                assert b"@trade" in line or b"@aggTrade" in line or line.startswith(b"wss://"), (
                    path,
                    line[:100],
                )
    events = load_events(demo_captures)
    assert Counter(event.symbol for event in events) == {"BTCUSDT": 10147, "ETHUSDT": 8409}
    for symbol, first in (("BTCUSDT", 3735693016), ("ETHUSDT", 1520545031)):
        ids = [event.data["t"] for event in events if event.symbol == symbol]
        assert ids == list(range(first, first + len(ids)))
    # Trades past 00:05 close the 00:04 one-minute bar.
    assert max(event.data["T"] for event in events) > AUG_9_0005
    assert sum(path.stat().st_size for path in capture_paths) < 1_000_000


def test_all_captures_load_together(capture_paths):
    events = load_events(capture_paths, kinds=("trade", "aggTrade"))
    assert Counter(event.kind for event in events) == {
        "trade": 9757 + 10147 + 6106 + 8409 + 3144,
        "aggTrade": 1910,
    }
