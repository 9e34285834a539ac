"""The whole job against a live exchange that trades on while the job is disconnected: every
trade it published is written once, the bars equal bars computed from the published trades, and
no trade is late. Real BTCUSDT and ETHUSDT trades (data/captures), replayed at about 400 trades/s.
"""

from __future__ import annotations

import re
import time

import pytest

from connectors.simulator import Market, whole_market
from helpers.flinkjob import (
    assert_every_published_trade_once,
    expected_bars,
    finish_job,
    flink_log,
    job_command,
    normalized_bars,
    read_output,
    start_job,
)

pytestmark = pytest.mark.slow

SPEED = 6.5  # the captures hold about 61 trades/s: about 400/s


def live_market(demo_captures) -> Market:
    return Market.replay(demo_captures, speed=SPEED, pause_without_subscribers=False)


def test_resets_and_refused_upgrades_cost_nothing_and_since_starts_in_the_past(
    simulator, demo_captures, tmp_path
):
    """The README's command against a live exchange: two connection resets, each followed by 3 s of
    refused connections; ``--since`` the exchange's first trade, published before the job
    started."""
    sim = simulator(live_market(demo_captures))
    sim.wait_for(
        lambda: all(sim.market.published(s).ids for s in ("BTCUSDT", "ETHUSDT")), timeout=10
    )
    since = min(sim.market.published(s).times[0] for s in ("BTCUSDT", "ETHUSDT"))
    out, logs = tmp_path / "out", tmp_path / "log"
    proc = start_job(
        # the captures' trades are of 2024-08-09: their history is REST's (the archive's days
        # from then to today would be 2 years of Binance's)
        job_command(sim, out, tmp_path, "--since", str(since), "--no-archive", duration=40),
        logs,
        tmp_path / "stdout.txt",
    )
    try:
        sim.wait_for(lambda: len(sim.connections) >= 1, timeout=300)
        for _ in range(2):
            time.sleep(8)
            sim.faults.refuse_connections()
            sim.faults.drop_after(0, reset=True)
            time.sleep(3)
            sim.faults.accept_connections()
    finally:
        finish_job(proc, tmp_path / "stdout.txt")

    first_ids = {s: sim.market.published(s).ids[0] for s in ("BTCUSDT", "ETHUSDT")}
    trades = assert_every_published_trade_once(read_output(out, "trades"), sim, first_ids)
    assert normalized_bars(read_output(out, "bars")) == expected_bars(trades)
    assert read_output(out, "dead-letters") == []  # no late trade, no unfilled gap
    log = flink_log(logs)
    assert len(re.findall(r"connection to ws://\S+ \(btcusdt,ethusdt@trade\) lost", log)) == 2
    assert "catching up after" in log


def test_one_shard_reset_while_the_other_trades_on_makes_no_late_trade(
    simulator, demo_captures, tmp_path
):
    """Two shards, one connection each, in one bridge subtask: one watermark. Only one connection
    is reset, seconds before a minute ends in market time, and refused for 3 s (20 s of market
    time) while the other goes on delivering: the watermark waits until the reset shard has
    fetched what it missed, so that minute's bar closes with its trades in it and none is late."""
    sim = simulator(live_market(demo_captures))
    out, logs = tmp_path / "out", tmp_path / "log"
    proc = start_job(
        job_command(sim, out, tmp_path, "--shards", "2", duration=40),
        logs,
        tmp_path / "stdout.txt",
    )

    def seconds_into_the_minute() -> float:
        newest = max(sim.market.published(s).times[-1] for s in ("BTCUSDT", "ETHUSDT"))
        return newest % 60_000 / 1000

    try:
        sim.wait_for(lambda: len(sim.connections) >= 2, timeout=300)
        time.sleep(5)
        sim.wait_for(lambda: 50 <= seconds_into_the_minute() <= 54, timeout=60)
        sim.faults.refuse_connections()
        sim.faults.drop_after(0, reset=True)  # one of the two connections
        time.sleep(3)
        sim.faults.accept_connections()
    finally:
        finish_job(proc, tmp_path / "stdout.txt")

    trades = assert_every_published_trade_once(read_output(out, "trades"), sim)
    assert normalized_bars(read_output(out, "bars")) == expected_bars(trades)
    assert read_output(out, "dead-letters") == []  # no late trade, no unfilled gap
    log = flink_log(logs)
    assert len(re.findall(r"connection to ws://\S+ \((btcusdt|ethusdt)@trade\) lost", log)) == 1


def test_a_restart_resumes_after_the_checkpoint_and_fetches_what_it_missed(
    simulator, demo_captures, tmp_path
):
    """The feed gives up (reconnects exhausted while the exchange refuses), the job fails, Flink
    restarts it from the last checkpoint, and the feed resumes after the checkpointed ids."""
    sim = simulator(live_market(demo_captures))
    out, logs = tmp_path / "out", tmp_path / "log"
    cmd = job_command(
        sim,
        out,
        tmp_path,
        "--max-reconnect-attempts",
        "1",
        "--backoff-initial",
        "0.2",
        "--set",
        "restart-strategy.exponential-delay.initial-backoff=1s",
        duration=30,
    )
    proc = start_job(cmd, logs, tmp_path / "stdout.txt")
    try:
        sim.wait_for(lambda: len(sim.connections) >= 1, timeout=300)
        time.sleep(6)  # a few checkpoints
        sim.faults.refuse_connections()
        sim.faults.drop_after(0, reset=True)
        time.sleep(4)
        sim.faults.accept_connections()
    finally:
        finish_job(proc, tmp_path / "stdout.txt")

    trades = assert_every_published_trade_once(read_output(out, "trades"), sim)
    assert normalized_bars(read_output(out, "bars")) == expected_bars(trades)
    assert read_output(out, "dead-letters") == []
    log = flink_log(logs)
    assert "switched from state RUNNING to RESTARTING" in log
    restored = re.findall(r"starting feed \S+ at \S+, last ids (\{.+\})", log)
    assert "BTCUSDT" in restored[-1], restored  # the restarted feed resumed after checkpointed ids


@pytest.mark.scale
def test_a_reset_on_one_of_two_bridge_subtasks_holds_the_bars_of_both(simulator, tmp_path):
    """Eight symbols on eight connections over two bridge subtasks (``--parallelism 2``: Flink
    spreads the shards by the hash of their key, five and three here). Each subtask has a
    watermark of its own, and the bars' windows go by the older: one connection reset seconds
    before a minute ends and refused for 8 s, past the minute's end, while the seven others trade
    on holds the bars of every symbol until the reset one has fetched what it missed; none is
    late. (Scale tier: about 100 s.)"""
    market = whole_market(
        8, rate=400, pause_without_subscribers=False, seed=23, history_seconds=600
    )
    sim = simulator(market)
    out, logs = tmp_path / "out", tmp_path / "log"
    cmd = job_command(sim, out, tmp_path, "--shards", "8", "--parallelism", "2", duration=90)
    cmd[cmd.index("btcusdt,ethusdt")] = ",".join(s.lower() for s in market.symbols)
    proc = start_job(cmd, logs, tmp_path / "stdout.txt")
    try:
        sim.wait_for(lambda: len(sim.connections) >= 8, timeout=300)
        time.sleep(3)
        sim.wait_for(lambda: 55 <= time.time() % 60 <= 57, timeout=60)
        sim.faults.refuse_connections()
        sim.faults.drop_after(0, reset=True)  # one of the eight
        time.sleep(8)
        sim.faults.accept_connections()
    finally:
        finish_job(proc, tmp_path / "stdout.txt")

    symbols = sorted(market.symbols)
    trades = assert_every_published_trade_once(read_output(out, "trades"), sim, symbols=symbols)
    assert normalized_bars(read_output(out, "bars")) == expected_bars(trades)
    assert read_output(out, "dead-letters") == []  # no late trade, no unfilled gap
    assert len(re.findall(r"connection to ws://\S+ \(\w+@trade\) lost", flink_log(logs))) == 1
