"""Operating the job on a standalone cluster (bench/cluster.py), as README's "Operating it" says,
against an exchange that trades on throughout (the simulator runs in this process):

- an upgrade: `flink stop --savepointPath`, the cluster restarted, then `flink run -s` of the job
  with other settings;
- the whole cluster lost (JobManager and TaskManager SIGKILLed, no HA), started again, and the job
  run with `-s` from its last retained checkpoint.

Both times every published trade is written once across the two runs, the bars are exact, nothing
is late, and the second run's feed resumed after the positions in the state it was given."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bench.cluster import StandaloneCluster, get_json, wait_until
from connectors.simulator import Market
from helpers.flinkjob import (
    assert_every_published_trade_once,
    cluster_job,
    expected_bars,
    normalized_bars,
    read_output,
)

pytestmark = [pytest.mark.slow, pytest.mark.ops]


@pytest.fixture
def cluster(tmp_path):
    with StandaloneCluster(tmp_path / "cluster") as c:
        yield c


def submit(
    cluster: StandaloneCluster,
    sim,
    out: Path,
    log: Path,
    flink: tuple[str, ...] = (),
    job: tuple[str, ...] = (),
) -> str:
    """``flink run -d [flink] -py job/main.py ... [job]``; the job's id."""
    with open(log, "ab") as sink:
        done = cluster.flink(
            "run",
            "-d",
            *flink,
            *cluster_job(sim, out, 40),
            *job,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        assert done.wait(timeout=300) == 0, log.read_text()[-3000:]
    (job_id,) = re.findall(r"JobID ([0-9a-f]{32})", log.read_text())[-1:]
    return job_id


def checkpoints_completed(cluster: StandaloneCluster, job_id: str) -> int:
    return get_json(f"{cluster.url}/jobs/{job_id}/checkpoints")["counts"]["completed"]


def wait_finished(cluster: StandaloneCluster, job_id: str) -> None:
    def state() -> str:
        return get_json(f"{cluster.url}/jobs/{job_id}")["state"]

    wait_until(lambda: state() in ("FINISHED", "FAILED", "CANCELED"), "the job's end", 600)
    assert state() == "FINISHED"


def assert_exact_across_both_runs(out: Path, sim, cluster: StandaloneCluster) -> None:
    trades = assert_every_published_trade_once(read_output(out, "trades"), sim)
    assert normalized_bars(read_output(out, "bars")) == expected_bars(trades)
    assert read_output(out, "dead-letters") == []
    assert re.search(
        r"starting feed \S+ at \S+, last ids \{'\w+USDT': \d+", cluster.taskmanager_logs()
    ), "the second run did not resume from the state it was given"


def live_market() -> Market:
    from connectors.simulator import DEMO_CAPTURES

    return Market.replay(DEMO_CAPTURES, speed=6.5, loop=True, pause_without_subscribers=False)


def test_stop_with_savepoint_then_run_a_changed_job_from_it(cluster, simulator, tmp_path):
    sim = simulator(live_market())
    out, log = tmp_path / "out", tmp_path / "flink.txt"
    job_id = submit(cluster, sim, out, log)
    wait_until(lambda: checkpoints_completed(cluster, job_id) >= 3, "three checkpoints")
    with open(log, "ab") as sink:
        stopped = cluster.flink(
            "stop",
            "--savepointPath",
            str(tmp_path / "savepoints"),
            job_id,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        assert stopped.wait(timeout=300) == 0, log.read_text()[-3000:]
    (savepoint,) = re.findall(r"Savepoint completed\. Path: (\S+)", log.read_text())
    # A new version of the job's Python code reaches the TaskManagers' interpreters only when they
    # start (thread mode imports it once per TaskManager; nor can PyFlink 2.3 start a second
    # thread-mode job in one: pemja fails with NoSuchFieldException: loadedLibraryNames)
    cluster.restart()
    # the new version: other event-time and bridge settings
    second = submit(
        cluster,
        sim,
        out,
        log,
        flink=("-s", savepoint),
        job=("--out-of-orderness", "3000", "--max-batch", "500", "--drain-interval", "20"),
    )
    wait_finished(cluster, second)
    assert_exact_across_both_runs(out, sim, cluster)


def test_a_lost_cluster_started_again_resumes_from_the_retained_checkpoint(
    cluster, simulator, tmp_path
):
    sim = simulator(live_market())
    out, log = tmp_path / "out", tmp_path / "flink.txt"
    job_id = submit(cluster, sim, out, log)
    wait_until(lambda: checkpoints_completed(cluster, job_id) >= 3, "three checkpoints")
    cluster.kill()
    cluster.start()
    # README's runbook: the newest retained checkpoint of the job
    (latest,) = sorted(
        (tmp_path / "cluster" / "checkpoints" / job_id).glob("chk-*/_metadata"),
        key=lambda p: p.stat().st_mtime,
    )[-1:]
    second = submit(cluster, sim, out, log, flink=("-s", str(latest.parent)))
    wait_finished(cluster, second)
    assert_exact_across_both_runs(out, sim, cluster)
