"""`flink run -py job/main.py` against a standalone cluster started from the pip-installed Flink
(site-packages/pyflink/bin) with the project's conf/ (bench/cluster.py: free ports, its own pid
files and logs, every daemon stopped even when a test fails), reading the simulator on loopback,
with nothing listening beyond loopback; and the same job surviving the loss of its TaskManager."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from bench.cluster import StandaloneCluster, get_json, get_text, wait_until
from connectors.simulator import Market
from helpers.flinkjob import (
    CAPTURES,
    SYMBOLS,
    assert_every_published_trade_once,
    assert_trades_exact,
    capture_trades,
    cluster_job,
    expected_bars,
    in_progress_files,
    normalized_bars,
    read_output,
)
from helpers.listeners import beyond_loopback

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path):
    # a lost TaskManager is noticed in seconds rather than the default 50 s
    with StandaloneCluster(
        tmp_path / "cluster",
        settings={"heartbeat": {"interval": 1000, "timeout": 5000}},
        metrics_interval="1 s",
    ) as c:
        yield c


def flink_run(sim, out, duration: int) -> list[str]:
    return ["run", *cluster_job(sim, out, duration)]


def test_flink_run_on_a_standalone_cluster(cluster, simulator, capture_dir, tmp_path):
    """The job's trades and bars exact; while it runs, nothing of the cluster or of the client
    listens beyond loopback, and its metrics reach Prometheus through the loopback gateway."""
    capture = capture_trades(capture_dir)
    sim = simulator(Market.replay([capture_dir / c for c in CAPTURES], symbols=SYMBOLS, speed=0))
    out, stdout = tmp_path / "out", tmp_path / "flink-run.txt"
    with open(stdout, "wb") as sink:
        run = cluster.flink(
            *flink_run(sim, out, 12), cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT
        )
    exposed: set[str] = set()

    def bridge_metrics_pushed() -> bool:
        exposed.update(beyond_loopback([*cluster.daemon_pids(), run.pid]))
        metrics = get_text(cluster.metrics.scrape_url)
        return "flink_jobmanager_numRegisteredTaskManagers" in metrics and re.search(
            r"binance_source_numRecordsIn\{.*\} [1-9]", metrics
        )

    try:
        wait_until(bridge_metrics_pushed, "the bridge's trades counted at the gateway", 300)
        run.wait(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, stdout.read_text(errors="replace")[-4000:]
    assert not exposed, f"listening beyond loopback: {exposed}"

    assert [j["state"] for j in cluster.jobs()] == ["FINISHED"]
    assert sim.market.finished
    sent = {s: sim.sent_trade_ids(s) for s in SYMBOLS}
    assert sum(map(len, sent.values())) == len(capture)
    assert_trades_exact(read_output(out, "trades"), sent, capture)
    assert normalized_bars(read_output(out, "bars")) == expected_bars(capture)
    assert in_progress_files(out) == []
    assert (
        "starting feed btcusdt,ethusdt@trade" in cluster.taskmanager_logs()
    )  # the bridge ran in the TaskManager


def test_a_killed_taskmanager_is_replaced_and_nothing_is_lost(
    cluster, simulator, demo_captures, tmp_path
):
    """SIGKILL the TaskManager mid-run, start a new one: the job restarts from its last checkpoint,
    the feed resumes after the checkpointed ids and fetches what the exchange published
    meanwhile."""
    sim = simulator(
        Market.replay(demo_captures, speed=6.5, pause_without_subscribers=False)
    )  # ~400 trades/s
    out, stdout = tmp_path / "out", tmp_path / "flink-run.txt"
    with open(stdout, "wb") as sink:
        run = cluster.flink(
            *flink_run(sim, out, 40), cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        sim.wait_for(lambda: len(sim.connections) >= 1, timeout=300)
        job_id = cluster.jobs()[0]["jid"]
        wait_until(
            lambda: (
                get_json(f"{cluster.url}/jobs/{job_id}/checkpoints")["counts"]["completed"] >= 3
            ),
            "three completed checkpoints",
        )
        (taskmanager,) = cluster.taskmanager_pids()
        os.kill(taskmanager, signal.SIGKILL)
        time.sleep(3)  # the exchange trades on while no TaskManager runs the job
        cluster.add_taskmanager()
        rc = run.wait(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert rc == 0, stdout.read_text(errors="replace")[-4000:]

    assert [j["state"] for j in cluster.jobs()] == ["FINISHED"]
    trades = assert_every_published_trade_once(read_output(out, "trades"), sim)
    assert normalized_bars(read_output(out, "bars")) == expected_bars(trades)
    assert read_output(out, "dead-letters") == []
    assert re.search(
        r"starting feed \S+ at \S+, last ids \{'\w+USDT': \d+", cluster.taskmanager_logs()
    ), "no resume from state"
