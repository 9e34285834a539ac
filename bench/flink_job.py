"""Runs a Flink job (``job/main.py``, or the FileSource twin) in its own process and session, with
its trades sink followed and the CPU of its whole process tree (driver, JVM, Python workers) at
hand.

Every run gets its own directory: output, checkpoints, Flink's logs, the job's console.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from bench.data import REPO
from bench.sink_tail import SinkTail


class FlinkJob:
    def __init__(
        self,
        script: Path,
        args: list[str],
        work: Path,
        env: dict | None = None,
        keep_event_times: bool = False,
    ):
        self.work = work
        out = work / "out"
        (work / "log").mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            str(script),
            *args,
            "--out",
            str(out),
            # Other jobs may hold 8081 on a shared machine; checkpoints stay in this run.
            "--rest-port",
            "0",
            "--checkpoint-dir",
            f"file://{work / 'checkpoints'}",
        ]
        environment = {
            **os.environ,
            **(env or {}),
            "FLINK_LOG_DIR": str(work / "log"),
            # the Python workers import bench.source_probe and the FileSource job's functions
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        # Open for the job's life (its stdout), closed in stop().
        self.console = open(work / "console.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=environment,
            stdout=self.console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.tail = SinkTail(str(out / "trades"), keep_event_times=keep_event_times)
        self.tail.start()

    def failed(self) -> str | None:
        """Why the job ended early, if it did."""
        if self.proc.poll() is None:
            return None
        text = (self.work / "console.log").read_bytes().decode(errors="replace")
        return f"job exited with {self.proc.returncode}: ...{text[-2000:]}"

    def wait_for_lines(self, n: int, timeout: float) -> float:
        """Waits until the sink holds ``n`` lines; returns the monotonic time it did."""
        deadline = time.monotonic() + timeout
        while self.tail.lines < n:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"sink has {self.tail.lines} of {n} lines after {timeout:g}s "
                    f"({self.failed() or 'job still running'}); see {self.work}"
                )
            if self.failed():
                raise RuntimeError(self.failed())
            time.sleep(0.05)
        return time.monotonic()

    def processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> tuple[dict[str, float], set[int]]:
        """User + system CPU so far of the tree's processes by role, and their pids. ``python`` is
        the job's own process: in process mode PyFlink serves the Python workers from it (Beam's
        loopback mode); in thread mode they run inside ``jvm``, the MiniCluster."""
        by_role, pids = {"python": 0.0, "jvm": 0.0, "other": 0.0}, set()
        for p in self.processes():
            try:
                t = p.cpu_times()
                role = (
                    "python" if p.pid == self.proc.pid else "jvm" if p.name() == "java" else "other"
                )
                by_role[role] += t.user + t.system
                pids.add(p.pid)
            except psutil.NoSuchProcess:
                pass
        return by_role, pids

    def stop(self) -> None:
        """Ends the job at once: what it wrote so far was measured; its commit is not needed."""
        survivors = self.processes()
        try:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
            _, alive = psutil.wait_procs(survivors, timeout=15)
            for p in alive:  # a worker that left the session or ignored SIGTERM
                p.kill()
            self.proc.wait()
        finally:
            self.tail.stop()
            self.console.close()
