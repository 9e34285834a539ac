"""A full output disk: the output folder is a 64 MB tmpfs of the job's own (mounted in a mount
namespace of its own, `unshare --mount`, so nothing outlives the job); for 20 s mid-run a file
fills it. The job fails, restarts with its backoff, says why on the console and in a metric, and
once the space is back every published trade is written once, the bars exact, nothing late."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bench.cluster import get_text, wait_until
from connectors.simulator import Market
from helpers.flinkjob import (
    JOB_TIMEOUT,
    SYMBOLS,
    assert_every_published_trade_once,
    expected_bars,
    job_command,
    job_env,
    normalized_bars,
    read_output,
    tail,
)

pytestmark = [pytest.mark.slow, pytest.mark.ops]

DISK_MB = 64
FULL_FOR_S = 20


def mounts_refused() -> str | None:
    """Why this machine cannot give the job a tmpfs of its own, or None."""
    if shutil.which("unshare") is None:
        return "no unshare(1)"
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.stderr.strip() or None if probe.returncode else None


def fill(folder: Path) -> Path:
    """Writes a file into ``folder`` until its file system is full."""
    filler = folder / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError as exc:
            assert "No space left on device" in str(exc)
    return filler


def test_a_full_output_disk_restarts_the_job_and_loses_nothing(simulator, demo_captures, tmp_path):
    refused = mounts_refused()
    if refused:
        pytest.skip(f"this machine refuses a tmpfs of the test's own: {refused}")
    sim = simulator(
        Market.replay(demo_captures, speed=6.5, loop=True, pause_without_subscribers=False)
    )
    out = tmp_path / "out"
    out.mkdir()
    job = job_command(
        sim,
        out,
        tmp_path,
        "--metrics-port",
        "0",
        "--set",
        "restart-strategy.exponential-delay.max-backoff=4s",
        duration=45,
    )
    # The job in a mount namespace of its own, its output folder a tmpfs there. The shell keeps
    # the namespace (and the outputs) until the test has copied them and closes its stdin.
    cmd = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f'mount -t tmpfs -o size={DISK_MB}m tmpfs "{out}" || exit 97; "$@"; rc=$?;'
        ' echo "job exited with $rc"; read _; exit $rc',
        "job",
        *job,
    ]
    stdout = tmp_path / "stdout.txt"
    (tmp_path / "log").mkdir()
    with open(stdout, "wb") as sink:
        proc = subprocess.Popen(
            cmd,
            env=job_env(tmp_path / "log"),
            stdin=subprocess.PIPE,
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
    try:
        # the job's view of the output folder: its tmpfs, seen through its mount namespace
        disk = Path(f"/proc/{proc.pid}/root") / out.relative_to("/")
        sim.wait_for(lambda: len(sim.connections) >= 1, timeout=300)
        wait_until(lambda: read_output(disk, "trades"), "trades committed", timeout=60)
        filler = fill(disk)
        time.sleep(FULL_FOR_S)
        filler.unlink()
        freed_at = {s: sim.market.published(s).ids[-1] for s in SYMBOLS}
        (metrics,) = re.findall(r"metrics for Prometheus at (\S+)", stdout.read_text())
        restarts = r'binance_job_restarts_total\{reason="disk_full"\} ([0-9.]+)'
        wait_until(lambda: re.search(restarts, get_text(metrics)), "disk_full in the metric", 60)
        wait_until(lambda: "job exited with" in stdout.read_text(), "the job's end", JOB_TIMEOUT)
        shutil.copytree(disk, tmp_path / "written")
    finally:
        if "job exited with" not in stdout.read_text():  # the test failed: end the job now
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stdin.close()
        proc.wait()
    console = stdout.read_text()
    assert proc.returncode == 0, tail(stdout)

    written = tmp_path / "written"
    trades = assert_every_published_trade_once(read_output(written, "trades"), sim)
    assert all(max(t["t"] for t in trades if t["s"] == s) > freed_at[s] for s in SYMBOLS)
    assert normalized_bars(read_output(written, "bars")) == expected_bars(trades)
    assert read_output(written, "dead-letters") == []
    assert re.search(r"job restarting \(attempt \d+\) after: IOException: No space left", console)
