"""A rerun carries on: `python job/main.py ... --out DIR` killed with SIGKILL of its whole process
group (the client and its JVM at once), then the same command again, against an exchange that
trades on meanwhile (the simulator runs in this process): every published trade written once
across both runs, the bars exact, nothing late. (With --duration both times: the seed's position
is in the checkpoint, so the two runs read about that long together.)"""

from __future__ import annotations

import re
import time

import pytest

from connectors.simulator import Market, whole_market
from helpers.flinkjob import (
    SYMBOLS,
    assert_every_published_trade_once,
    completed_checkpoints,
    expected_bars,
    finish_job,
    in_progress_files,
    job_command,
    kill_group,
    normalized_bars,
    read_output,
    start_job,
)

pytestmark = [pytest.mark.slow, pytest.mark.ops]


def test_the_same_command_after_kill_9_resumes_from_the_last_checkpoint(
    simulator, demo_captures, tmp_path
):
    sim = simulator(
        Market.replay(demo_captures, speed=6.5, loop=True, pause_without_subscribers=False)
    )
    out = tmp_path / "out"
    cmd = job_command(sim, out, tmp_path, duration=30)
    first = start_job(cmd, tmp_path / "log1", tmp_path / "stdout1.txt", group=True)
    try:
        sim.wait_for(lambda: len(sim.connections) >= 1, timeout=300)
        sim.wait_for(
            lambda: len(completed_checkpoints(tmp_path / "checkpoints")) >= 2,
            timeout=120,
            interval=0.5,
        )
        time.sleep(4)  # trades past the last checkpoint: the rerun must not write them again
    finally:
        kill_group(first)
    written_by_first = len(read_output(out, "trades"))
    assert written_by_first > 0
    time.sleep(5)  # the exchange trades on while the job is down
    down_until = {s: sim.market.published(s).ids[-1] for s in SYMBOLS}

    second = start_job(cmd, tmp_path / "log2", tmp_path / "stdout2.txt")
    console = finish_job(second, tmp_path / "stdout2.txt")

    assert re.search(r"resuming from \S+/chk-\d+ \(taken", console), console[-3000:]
    trades = assert_every_published_trade_once(read_output(out, "trades"), sim)
    assert len(trades) > written_by_first
    assert all(max(t["t"] for t in trades if t["s"] == s) > down_until[s] for s in SYMBOLS)
    assert normalized_bars(read_output(out, "bars")) == expected_bars(trades)
    assert read_output(out, "dead-letters") == []  # no late trade, no unfilled gap
    # What the killed run wrote after its last checkpoint stays in a hidden in-progress file that
    # no checkpoint names (its trades came again from the REST history, above): the rerun removes
    # those once it has checkpointed. Nothing is left in progress.
    assert in_progress_files(out) == []
    assert "catching up after" in console  # the time it was down, from the REST history


def test_a_listing_joined_before_the_kill_carries_on_in_the_rerun(simulator, tmp_path):
    """``--symbols all`` over 4 connections: a symbol listed while the first run runs joins its
    home shard; the run is killed with SIGKILL, the market trades on, the same command again
    plans it on that same shard (a round-robin plan of the longer list would put it on another,
    where its checkpointed position is not): every trade of every symbol written once across both
    runs, the listed one's from its first, nothing late."""
    sim = simulator(
        whole_market(40, rate=200, pause_without_subscribers=False, seed=19, history_seconds=600)
    )
    out = tmp_path / "out"
    cmd = job_command(sim, out, tmp_path, duration=30)
    cmd[cmd.index("btcusdt,ethusdt")] = "all"
    cmd += ["--shards", "4", "--listing-refresh", "1"]
    first = start_job(cmd, tmp_path / "log1", tmp_path / "stdout1.txt", group=True)
    try:
        sim.wait_for(lambda: len(sim.connections) >= 4, timeout=300)
        sim.faults.list_symbol("NEWUSDT", rate=20, status="BREAK")
        time.sleep(4)  # it joins
        sim.faults.resume_symbol("NEWUSDT")
        time.sleep(3)

        def newest() -> int:
            done = completed_checkpoints(tmp_path / "checkpoints")
            return max((int(p.name.removeprefix("chk-")) for p in done), default=0)

        taken = newest()
        sim.wait_for(lambda: newest() > taken, timeout=120, interval=0.5)  # one with it
        time.sleep(2)
    finally:
        kill_group(first)
    assert any(w["symbol"] == "NEWUSDT" for w in read_output(out, "trades"))
    time.sleep(5)  # the exchange trades on while the job is down

    second = start_job(cmd, tmp_path / "log2", tmp_path / "stdout2.txt")
    console = finish_job(second, tmp_path / "stdout2.txt")

    assert re.search(r"resuming from \S+/chk-\d+ \(taken", console), console[-3000:]
    assert "on another connection than in the run checkpointed" not in console
    symbols = sorted(sim.market.symbols)
    trades = assert_every_published_trade_once(read_output(out, "trades"), sim, symbols=symbols)
    listed = [t["t"] for t in trades if t["s"] == "NEWUSDT"]
    assert listed[0] == 1 and listed[-1] > sim.market.published("NEWUSDT").ids[0] + 150
    assert normalized_bars(read_output(out, "bars")) == expected_bars(trades)
    assert read_output(out, "dead-letters") == []
