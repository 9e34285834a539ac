"""The whole job on two lines (``--redundancy 2``) to two endpoints of a live exchange that trades
on while connections drop: with the REST history out of reach, losing one line at a time costs
nothing, not even a REST request. Real BTCUSDT and ETHUSDT trades (data/captures), replayed at
about 400 trades/s."""

from __future__ import annotations

import re
import time

import pytest

from connectors.simulator import Market
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


def test_resets_of_one_line_at_a_time_lose_nothing_and_ask_no_rest(
    simulator, demo_captures, tmp_path
):
    """A connection reset every 10 s, on the two endpoints in turn, each endpoint then refusing
    upgrades for 3 s; the second endpoint trails the first by 300 ms, so that the first, back,
    jumps ahead of the second and must wait for it. The REST history answers only 503."""
    sim = simulator(
        Market.replay(demo_captures, speed=SPEED, pause_without_subscribers=False), endpoints=2
    )
    sim.endpoints[1].faults.delay_market(0.3)
    sim.faults.fail_rest(503, times=1_000_000)  # the history out of reach: each ask is logged
    out, logs, stdout = tmp_path / "out", tmp_path / "log", tmp_path / "stdout.txt"
    cmd = job_command(sim, out, tmp_path, duration=40, lines=2)
    proc = start_job(cmd, logs, stdout)
    try:
        sim.wait_for(lambda: all(e.connections for e in sim.endpoints), timeout=300)
        for n in range(3):
            time.sleep(7)
            faults = sim.endpoints[n % 2].faults
            faults.reject_handshake(503, retry_after=None, times=1_000)
            faults.drop_after(0, reset=True)
            time.sleep(3)
            faults.reject_handshake(503, times=0)
    finally:
        finish_job(proc, stdout)

    trades = assert_every_published_trade_once(read_output(out, "trades"), sim)
    assert normalized_bars(read_output(out, "bars")) == expected_bars(trades)
    assert read_output(out, "dead-letters") == []  # no late trade, no unfilled gap
    assert sim.rest_requests == []
    log = flink_log(logs)
    assert (
        len(re.findall(r"line [12]/2: running on .* line [12]/2 only until it is back", log)) == 3
    )
    assert "catching up" not in log
