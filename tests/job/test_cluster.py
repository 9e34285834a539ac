"""`flink run -py job/main.py` against a standalone cluster started from the pip-installed Flink
(site-packages/pyflink/bin) with the project's conf/, reading the simulator on loopback; and the
same job surviving the loss of its TaskManager.

The cluster runs on free ports with its pid files and logs in tmp, so it cannot touch any other
cluster on this machine; every daemon is stopped in the fixture's finalizer, even on failure.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
import yaml

from connectors.simulator import Market
from helpers.flinkjob import (CAPTURES, MAIN, REPO, SYMBOLS, assert_every_published_trade_once,
                              assert_trades_exact, capture_trades, expected_bars, in_progress_files,
                              normalized_bars, read_output)

PYFLINK_BIN = Path(sys.executable).resolve().parent.parent / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "pyflink" / "bin"
if not PYFLINK_BIN.is_dir():  # a venv whose python is a symlink: ask pyflink itself
    import pyflink
    PYFLINK_BIN = Path(pyflink.__file__).parent / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return orjson.loads(r.read())


def wait_until(predicate, what: str, timeout: float = 180):
    """A hang guard, not a timed assertion."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.5)


@pytest.fixture
def cluster(tmp_path):
    conf_dir, log_dir, pid_dir = tmp_path / "conf", tmp_path / "log", tmp_path / "pid"
    shutil.copytree(REPO / "conf", conf_dir)
    log_dir.mkdir()
    pid_dir.mkdir()
    config = yaml.safe_load((conf_dir / "config.yaml").read_text())
    rest_port = free_port()
    config["rest"]["port"] = rest_port
    config["jobmanager"]["rpc"]["port"] = free_port()
    config.setdefault("env", {})["pid"] = {"dir": str(pid_dir)}
    config["execution"]["checkpointing"]["dir"] = (tmp_path / "checkpoints").as_uri()
    # a lost TaskManager is noticed in seconds rather than the default 50 s
    config["heartbeat"] = {"interval": 1000, "timeout": 5000}
    (conf_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (conf_dir / "masters").write_text(f"localhost:{rest_port}\n")
    env = dict(os.environ, FLINK_CONF_DIR=str(conf_dir), FLINK_LOG_DIR=str(log_dir),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("PYTHONPATH", None)
    url = f"http://localhost:{rest_port}"
    subprocess.run([str(PYFLINK_BIN / "start-cluster.sh")], env=env, check=True, timeout=120,
                   capture_output=True)
    try:
        wait_until(lambda: get_json(f"{url}/overview")["slots-available"] >= 1, "a TaskManager with a free slot")
        yield {"env": env, "url": url, "log_dir": log_dir, "pid_dir": pid_dir}
    finally:
        pids = [int(p) for f in pid_dir.glob("*.pid") for p in f.read_text().split()]
        subprocess.run([str(PYFLINK_BIN / "stop-cluster.sh")], env=env, timeout=120, capture_output=True)
        for pid in pids:  # stop-cluster.sh signals them; make sure they are gone
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
            else:
                os.kill(pid, signal.SIGKILL)


def test_flink_run_on_a_standalone_cluster(cluster, simulator, capture_dir, tmp_path):
    capture = capture_trades(capture_dir)
    sim = simulator(Market.replay([capture_dir / c for c in CAPTURES], symbols=SYMBOLS, speed=0))
    out = tmp_path / "out"
    cmd = flink_run(sim, out, 12)
    run = subprocess.run(cmd, env=cluster["env"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]

    jobs = get_json(f"{cluster['url']}/jobs/overview")["jobs"]
    assert [j["state"] for j in jobs] == ["FINISHED"]
    assert sim.market.finished
    sent = {s: sim.sent_trade_ids(s) for s in SYMBOLS}
    assert sum(map(len, sent.values())) == len(capture)
    assert_trades_exact(read_output(out, "trades"), sent, capture)
    assert normalized_bars(read_output(out, "bars")) == expected_bars(capture)
    assert in_progress_files(out) == []
    tm_logs = "".join(p.read_text(errors="replace") for p in cluster["log_dir"].glob("*taskexecutor*.log"))
    assert "starting feed btcusdt,ethusdt@trade" in tm_logs  # the bridge ran in the TaskManager


def test_a_killed_taskmanager_is_replaced_and_nothing_is_lost(cluster, simulator, demo_captures, tmp_path):
    """SIGKILL the TaskManager mid-run, start a new one: the job restarts from its last checkpoint,
    the feed resumes after the checkpointed ids and fetches what the exchange published meanwhile."""
    sim = simulator(Market.replay(demo_captures, speed=6.5, pause_without_subscribers=False))  # ~400 trades/s
    out, stdout = tmp_path / "out", tmp_path / "flink-run.txt"
    with open(stdout, "wb") as sink:
        run = subprocess.Popen(flink_run(sim, out, 40), env=cluster["env"], cwd=tmp_path, stdout=sink,
                               stderr=subprocess.STDOUT)
    try:
        sim.wait_for(lambda: len(sim.connections) >= 1, timeout=300)
        job_id = get_json(f"{cluster['url']}/jobs/overview")["jobs"][0]["jid"]
        wait_until(lambda: get_json(f"{cluster['url']}/jobs/{job_id}/checkpoints")["counts"]["completed"] >= 3,
                   "three completed checkpoints")
        (taskmanager,) = _taskmanager_pids(cluster)
        os.kill(taskmanager, signal.SIGKILL)
        time.sleep(3)  # the exchange trades on while no TaskManager runs the job
        subprocess.run([str(PYFLINK_BIN / "taskmanager.sh"), "start"], env=cluster["env"], check=True,
                       timeout=120, capture_output=True)
        rc = run.wait(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert rc == 0, stdout.read_text(errors="replace")[-4000:]

    assert [j["state"] for j in get_json(f"{cluster['url']}/jobs/overview")["jobs"]] == ["FINISHED"]
    trades = assert_every_published_trade_once(read_output(out, "trades"), sim)
    assert normalized_bars(read_output(out, "bars")) == expected_bars(trades)
    assert read_output(out, "dead-letters") == []
    tm_logs = "".join(p.read_text(errors="replace") for p in cluster["log_dir"].glob("*taskexecutor*.log"))
    assert re.search(r"starting feed \S+ at \S+, last ids \{'\w+USDT': \d+", tm_logs), "no resume from state"


def flink_run(sim, out, duration: int) -> list[str]:
    return [str(PYFLINK_BIN / "flink"), "run", "-py", str(MAIN), "--ws-url", sim.ws_url, "--rest-url",
            sim.http_url, "--symbols", "btcusdt,ethusdt", "--duration", str(duration), "--out", str(out),
            "--checkpoint-interval", "1s"]


def _taskmanager_pids(cluster) -> list[int]:
    return [int(p) for f in cluster["pid_dir"].glob("*taskexecutor*.pid") for p in f.read_text().split()]
