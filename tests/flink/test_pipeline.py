"""The whole job on a real MiniCluster (``python job/main.py``, one subprocess per test) reading the
real exchange simulator on loopback, which replays the real 2024-08-09 BTCUSDT and ETHUSDT captures
(18,556 trades) as fast as the job takes them.

No timed assertions: the job ends by itself (``--duration``), and waits have generous bounds that
only guard against hangs.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from connectors.simulator import Market
from helpers.flinkjob import (
    CAPTURES,
    SYMBOLS,
    assert_every_published_trade_once,
    capture_trades,
    expected_bars,
    finish_job,
    flink_log,
    in_progress_files,
    job_command,
    normalized_bars,
    read_output,
    start_job,
)

pytestmark = pytest.mark.slow

BAD_TEXT_FRAMES = [
    b"this is not json",  # invalid_json
    b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1}}',  # missing_field
    (  # wrong_type
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":"x","p":"1",'
        b'"q":"1","T":1,"m":true}}'
    ),
    b"[1, 2, 3]",  # not_an_object
    b"\xff\xfe invalid utf-8",  # invalid_utf8
]
BAD_BINARY_FRAMES = [b"\x00\x01binary"]  # binary_frame
EXPECTED_REASONS = Counter(
    {
        "invalid_json": 1,
        "missing_field": 1,
        "wrong_type": 1,
        "not_an_object": 1,
        "invalid_utf8": 1,
        "binary_frame": 1,
    }
)


@pytest.fixture(scope="module")
def capture(capture_dir):
    trades = capture_trades(capture_dir)
    assert len(trades) == 10_147 + 8_409
    return trades


def replay_market(capture_dir):
    return Market.replay([capture_dir / c for c in CAPTURES], symbols=SYMBOLS, speed=0)


def check_outputs(out, sim, capture):
    """Trades written == every trade of the capture, which the simulator published (ids, once each,
    exact strings); bars == bars computed here from the capture; no file left uncommitted."""
    assert sim.market.finished, "the simulator had not sent the whole capture when the job ended"
    first_ids = {s: sim.market.published(s).ids[0] for s in SYMBOLS}
    trades = assert_every_published_trade_once(read_output(out, "trades"), sim, first_ids)
    assert len(trades) == len(capture)
    assert normalized_bars(read_output(out, "bars")) == expected_bars(capture)
    assert in_progress_files(out) == [], "files left uncommitted"


def test_trades_bars_dead_letters_and_a_dropped_connection(
    simulator, capture_dir, capture, tmp_path
):
    sim = simulator(replay_market(capture_dir))
    sim.faults.drop_after(5000, code=1001)  # the first connection ends after 5,000 messages
    out, logs = tmp_path / "out", tmp_path / "log"
    proc = start_job(job_command(sim, out, tmp_path), logs, tmp_path / "stdout.txt")
    try:
        # once the job has reconnected, inject malformed frames into its connection
        sim.wait_for(lambda: len(sim.connections) >= 2, timeout=300)
        sim.faults.send_frames(BAD_TEXT_FRAMES)
        sim.faults.send_frames(BAD_BINARY_FRAMES, binary=True)
    finally:
        finish_job(proc, tmp_path / "stdout.txt")

    # What the market published between the drop and the reconnect was never sent: it comes from
    # the REST history.
    check_outputs(out, sim, capture)

    dead = read_output(out, "dead-letters")
    assert Counter(d["reason"] for d in dead) == EXPECTED_REASONS
    by_reason = {d["reason"]: d for d in dead}
    assert by_reason["invalid_json"]["raw"] == "this is not json"
    assert by_reason["invalid_utf8"]["raw_encoding"] == "base64"
    from connectors.flink.rows import decode_raw

    assert decode_raw(by_reason["invalid_utf8"]["raw"], "base64") == BAD_TEXT_FRAMES[-1]
    assert (
        decode_raw(by_reason["binary_frame"]["raw"], by_reason["binary_frame"]["raw_encoding"])
        == BAD_BINARY_FRAMES[0]
    )
    assert all(d["error"] and d["received_at"] > 0 for d in dead)

    log = flink_log(logs)
    assert re.search(
        r"connection to ws://127\.0\.0\.1:\d+/stream\S* \(btcusdt,ethusdt@trade\) lost", log
    )
    assert len(re.findall(r"connected to ws://127\.0\.0\.1", log)) == 2
    assert "dead letter" in log  # rate-limited warning from the bridge operator
    assert len(sim.connections) == 2


def test_refused_connections_fail_the_job_which_restarts_and_delivers(
    simulator, capture_dir, capture, tmp_path
):
    sim = simulator(replay_market(capture_dir))
    sim.faults.refuse_connections(times=2)
    out, logs = tmp_path / "out", tmp_path / "log"
    cmd = job_command(
        sim,
        out,
        tmp_path,
        "--max-reconnect-attempts",
        "1",
        "--backoff-initial",
        "0.1",
        "--set",
        "restart-strategy.exponential-delay.initial-backoff=200ms",
    )
    proc = start_job(cmd, logs, tmp_path / "stdout.txt")
    finish_job(proc, tmp_path / "stdout.txt")

    log = flink_log(logs)
    assert sim.faults.refused == 2
    assert "feed failed, failing the job so Flink restarts it" in log
    restarts = re.findall(r"switched from state RUNNING to RESTARTING", log)
    assert len(restarts) >= 1, "the job never restarted"
    check_outputs(out, sim, capture)
    assert read_output(out, "dead-letters") == []


def test_two_shards_on_two_subtasks(simulator, capture_dir, capture, tmp_path):
    """One raw-stream connection per symbol, with two bridge subtasks. (Flink places the shards
    by the hash of their key: these two land on the same subtask, README's Scaling out says so.)"""
    sim = simulator(replay_market(capture_dir))
    out, logs = tmp_path / "out", tmp_path / "log"
    proc = start_job(
        job_command(sim, out, tmp_path, "--shards", "2", "--parallelism", "2"),
        logs,
        tmp_path / "stdout.txt",
    )
    finish_job(proc, tmp_path / "stdout.txt")

    assert sorted(c.path for c in sim.connections) == ["/ws/btcusdt@trade", "/ws/ethusdt@trade"]
    check_outputs(out, sim, capture)
