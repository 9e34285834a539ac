"""A standalone Flink cluster started from the pip-installed Flink (``site-packages/pyflink/bin``)
with the project's conf/, on free ports, its config, pid files and logs in a folder of its own, so
it cannot touch any other cluster on the machine. Used by the benchmark's scale-out run and by the
``flink run`` tests; ``stop()`` ends every daemon it started, SIGKILL for any that lingers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import yaml

from bench.data import REPO
from job.metrics_gateway import MetricsGateway

PYFLINK_BIN = Path(__import__("pyflink").__file__).parent / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return orjson.loads(response.read())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until(predicate, what: str, timeout: float = 180) -> None:
    """A hang guard, not a timing: polls ``predicate`` (connection errors count as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        time.sleep(0.5)


class StandaloneCluster:
    def __init__(
        self,
        work: Path,
        slots: int = 2,
        settings: dict | None = None,
        metrics_interval: str | None = None,
    ):
        """``settings``: nested keys of config.yaml to override, e.g. ``{"heartbeat": {...}}``;
        ``metrics_interval``: how often the daemons push their metrics (default: conf's)."""
        self.conf_dir, self.log_dir, self.pid_dir = work / "conf", work / "log", work / "pid"
        shutil.copytree(REPO / "conf", self.conf_dir)
        self.log_dir.mkdir(parents=True)
        self.pid_dir.mkdir()
        config = yaml.safe_load((self.conf_dir / "config.yaml").read_text())
        rest_port = free_port()
        config["rest"]["port"] = rest_port
        config["jobmanager"]["rpc"]["port"] = free_port()
        config["taskmanager"]["numberOfTaskSlots"] = slots
        config.setdefault("env", {})["pid"] = {"dir": str(self.pid_dir)}
        config["execution"]["checkpointing"]["dir"] = (work / "checkpoints").as_uri()
        # the daemons push their metrics to a gateway of this cluster's own, not the 9249 of others
        self.metrics = MetricsGateway(port=0)
        config["metrics"]["reporter"]["prom"]["hostUrl"] = "http://127.0.0.1:{port}"
        if metrics_interval:
            config["metrics"]["reporter"]["prom"]["interval"] = metrics_interval
        for key, value in (settings or {}).items():
            config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
        self._config = config
        (self.conf_dir / "masters").write_text(f"localhost:{rest_port}\n")
        # the daemons' Python workers run this interpreter, which has the project installed
        self.env = dict(
            os.environ,
            FLINK_CONF_DIR=str(self.conf_dir),
            FLINK_LOG_DIR=str(self.log_dir),
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        )
        self.env.pop("PYTHONPATH", None)
        self.url = f"http://localhost:{rest_port}"

    def start(self) -> StandaloneCluster:
        """Starts the daemons; again after ``kill()``: same ports, same checkpoint folder."""
        if not (self.conf_dir / "config.yaml.written").exists():
            self.metrics.start()
            reporter = self._config["metrics"]["reporter"]["prom"]
            reporter["hostUrl"] = reporter["hostUrl"].format(port=self.metrics.port)
            (self.conf_dir / "config.yaml").write_text(yaml.safe_dump(self._config))
            (self.conf_dir / "config.yaml.written").touch()
        self._script("start-cluster.sh")
        wait_until(
            lambda: get_json(f"{self.url}/overview")["slots-available"] >= 1,
            "a TaskManager with a free slot",
        )
        return self

    def add_taskmanager(self) -> None:
        registered = get_json(f"{self.url}/overview")["taskmanagers"]
        self._script("taskmanager.sh", "start")
        wait_until(
            lambda: get_json(f"{self.url}/overview")["taskmanagers"] > registered,
            "another TaskManager",
        )

    def taskmanager_pids(self) -> list[int]:
        return [
            int(p) for f in self.pid_dir.glob("*taskexecutor*.pid") for p in f.read_text().split()
        ]

    def flink(self, *args: str, **options) -> subprocess.Popen:
        """``bin/flink ARGS`` as a process of its own (``options`` for Popen)."""
        return subprocess.Popen([str(PYFLINK_BIN / "flink"), *args], env=self.env, **options)

    def jobs(self) -> list[dict]:
        return get_json(f"{self.url}/jobs/overview")["jobs"]

    def taskmanager_logs(self) -> str:
        return "".join(
            p.read_text(errors="replace") for p in self.log_dir.glob("*taskexecutor*.log")
        )

    def daemon_pids(self) -> list[int]:
        return [int(p) for f in self.pid_dir.glob("*.pid") for p in f.read_text().split()]

    def kill(self) -> None:
        """SIGKILL to every daemon at once (JobManager and TaskManagers), as a lost machine or
        the OOM killer would, and back once they are gone; ``start()`` brings the cluster up
        again."""
        pids = self.daemon_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            wait_until(lambda pid=pid: not _alive(pid), f"daemon {pid} gone", timeout=30)
        for pid_file in self.pid_dir.glob("*.pid"):
            pid_file.unlink()

    def restart(self) -> None:
        """The daemons stopped as ``stop-cluster.sh`` stops them and started again, e.g. to load
        a new version of the job's Python code into the TaskManagers."""
        self._stop_daemons()
        self.start()

    def stop(self) -> None:
        self._stop_daemons()
        self.metrics.stop()

    def _stop_daemons(self) -> None:
        pids = self.daemon_pids()
        subprocess.run(
            [str(PYFLINK_BIN / "stop-cluster.sh")],
            env=self.env,
            timeout=120,
            capture_output=True,
            check=False,  # whatever it leaves running is killed below
        )
        for pid in pids:  # stop-cluster.sh signals them; make sure they are gone
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
            else:
                os.kill(pid, signal.SIGKILL)
        for pid_file in self.pid_dir.glob("*.pid"):
            pid_file.unlink()

    def __enter__(self) -> StandaloneCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def _script(self, name: str, *args: str) -> None:
        subprocess.run(
            [str(PYFLINK_BIN / name), *args],
            env=self.env,
            check=True,
            timeout=120,
            capture_output=True,
        )
