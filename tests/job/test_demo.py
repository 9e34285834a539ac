"""`python job/main.py --demo`: no network, the embedded simulator, bars on stdout."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import orjson
import pytest

from bench.cluster import get_text, wait_until
from connectors.simulator import load_events
from helpers.flinkjob import (
    MAIN,
    REPO,
    expected_bars,
    job_env,
    normalized_bars,
    wait_until_group_gone,
)
from helpers.listeners import beyond_loopback

pytestmark = pytest.mark.slow

# 2024-08-09T00:05:00Z: the demo loops its captures, and the minute 00:05 mixes the first pass's
# last seconds with the second pass's first trades.
FIRST_PASS_END = 1723161900000


def test_readme_demo_runs_until_interrupted_and_leaves_nothing_behind(tmp_path, demo_captures):
    """README's main command, as is: no --duration. Bars of the captures' first pass must equal
    bars computed here from them; while it runs, no process of it listens beyond loopback and its
    metrics are served where the console says; Ctrl-C must stop the job and every process it
    started."""
    expected = expected_bars([e.data for e in load_events(demo_captures, kinds=("trade",))])
    complete = {key for key in expected if key[1] < FIRST_PASS_END}  # the minutes 00:00 to 00:04
    cmd = [sys.executable, str(MAIN), "--demo", "--checkpoint-dir", (tmp_path / "ckpt").as_uri()]
    stdout = tmp_path / "stdout.txt"
    with open(stdout, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            env=job_env(tmp_path / "log"),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    exposed: set[str] = set()
    try:
        bars = {}
        deadline = time.monotonic() + 300  # a hang guard: bars come within a minute
        while not complete <= bars.keys():
            exposed.update(beyond_loopback([proc.pid]))
            assert proc.poll() is None, stdout.read_text()[-3000:]
            assert time.monotonic() < deadline, "no bars: " + stdout.read_text()[-3000:]
            time.sleep(1)
            lines = [
                orjson.loads(line)
                for line in stdout.read_text().splitlines()
                if line.startswith('{"symbol"')
            ]
            bars = normalized_bars([b for b in lines if b["window_start"] < FIRST_PASS_END])
        assert {key: bars[key] for key in complete} == {key: expected[key] for key in complete}
        (metrics_url,) = re.findall(r"metrics for Prometheus at (\S+)", stdout.read_text())
        assert metrics_url.startswith("http://127.0.0.1:")
        wait_until(
            lambda: re.search(r"binance_source_numRecordsIn\{.*\} [1-9]", get_text(metrics_url)),
            "the bridge's trades counted where the console says",
            timeout=60,
        )
        exposed.update(beyond_loopback([proc.pid]))
        assert not exposed, f"listening beyond loopback: {exposed}"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert proc.wait(timeout=120) in (0, 130)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    wait_until_group_gone(proc.pid)
