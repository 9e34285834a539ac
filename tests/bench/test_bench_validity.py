"""The benchmark's validity checks (bench/validity.py): an input that ran out, a window that did not
fill, a warm-up that did not end make a failed run, not a figure. Fast: a small flood and fake sink
tails, no Flink."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import run
from bench.loadserver import LoadServer
from bench.validity import InvalidRun, flood_flags, problems, require, sink_flags

REPO = Path(__file__).resolve().parents[2]


class FakeTail:
    def __init__(self, counts):
        self.counts = counts


def raw_client(url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "bench.clients.raw", "--url", url],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_flood_server_tells_what_it_sent_and_when_it_ran_out():
    with LoadServer("flood", "--count", "5000") as server:
        since = time.monotonic()
        raw_client(server.url)  # reads every frame, then leaves
        (conn,) = server.connections(since, ended_within=10)
        assert conn["count"] == conn["sent"] == 5000
        assert since <= conn["connected_at"] <= conn["ran_out_at"] <= conn["ended_at"]
        ran_out = conn["ran_out_at"]
        after = flood_flags(server, since, end=ran_out + 1, expected=1)
        before = flood_flags(server, since, end=ran_out - 1, expected=1)
    assert after["input_used_up"] and not before["input_used_up"]
    assert after["input_trades"] == after["input_sent"] == 5000
    assert "input ran out" in problems(after)[0]
    assert problems(before) == [], "ended after the window: a valid input"
    with pytest.raises(InvalidRun, match="the load server sent its last of 5,000 trades"):
        require("Flink job via the bridge, round 1", after)


def test_a_reconnect_is_not_one_flood():
    with LoadServer("flood", "--count", "1000") as server:
        since = time.monotonic()
        raw_client(server.url)
        raw_client(server.url)
        flags = flood_flags(server, since, end=since, expected=1)
    assert flags["input_connections"] == 2
    assert any("2 connection(s)" in p for p in problems(flags))


def test_a_client_that_reads_all_the_server_has_ran_out():
    with LoadServer("flood", "--count", "3000") as server:
        out = run.run_client("bridge", server.url, 3000, 30.0)
    assert out["input_used_up"] and out["seconds"] < 30
    with pytest.raises(InvalidRun, match="client bridge, round 1: its input ran out"):
        require("client bridge, round 1", {**out, "input_trades": 3000})
    with LoadServer("flood", "--count", "300000") as server:
        lasted = run.run_client("bridge", server.url, 300_000, 0.2)  # ~40,000 msgs in 0.2 s
    assert not lasted["input_used_up"]
    require("client bridge", lasted)


def test_window_filled_and_warmup_ended_from_the_sink():
    flowing = FakeTail([(t / 10, t * 100) for t in range(1, 200)])  # 0.1 .. 19.9 s
    flags = sink_flags(flowing, start=5.0, end=15.0, window=10.0)
    assert flags["warmup_ended"] and flags["window_filled"]
    dry = FakeTail([(t / 10, t * 100) for t in range(1, 100)])  # stops growing at 9.9 s
    flags = sink_flags(dry, start=5.0, end=15.0, window=10.0)
    assert flags["warmup_ended"] and not flags["window_filled"]
    assert any("the window did not fill" in p for p in problems({**flags, "window_s": 10.0}))
    stalled_start = FakeTail([(1.0, 5), *((t / 10, t * 100) for t in range(60, 200))])
    flags = sink_flags(stalled_start, start=5.0, end=15.0, window=10.0)
    assert not flags["warmup_ended"] and flags["window_filled"]
    assert any("the warm-up did not end" in p for p in problems(flags))
    # a window cut short (a bounded input used up) is neither filled nor a figure
    flags = sink_flags(flowing, start=5.0, end=9.0, window=10.0)
    assert not flags["window_filled"]
    never_opened = sink_flags(flowing, start=5.0, end=4.0, window=10.0)
    assert not never_opened["warmup_ended"]


def test_file_input_used_up_names_the_file():
    found = problems({"input_used_up": True, "input_lines": 1000})
    assert found == [
        "its input ran out: all 1,000 lines of the file reached the sink before the window's end"
    ]


@pytest.mark.parametrize("plan", sorted(run.PLANS))
def test_every_plan_sizes_its_input_to_outlast_its_windows(plan):
    p = run.PLANS[plan]
    count = run.input_size(p)
    job_needs = run.JOB_CEILING_TRADES_PER_S * (p["flink_warmup"] + p["flink_window"])
    assert count >= 2.5 * job_needs
    assert count >= 2.5 * run.CLIENT_CEILING_MSGS_PER_S * p["seconds"]
