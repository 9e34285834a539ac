"""Scale-out on a standalone cluster: one shard on one TaskManager against two shards on two.

In thread mode every subtask of a TaskManager runs in that JVM's one embedded interpreter (one
GIL), so more bridge subtasks in the same TaskManager add no Python throughput: shards scale by
TaskManagers (processes). Each TaskManager here has one slot; the job runs ``--shards N
--parallelism N`` with ``flink run``, every shard a connection of its own to the flood load server
(one symbol each), and the trades sink's lines are counted as in the single-job runs. On this
2-core machine the ceiling of the ratio is 2.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bench.cluster import StandaloneCluster
from bench.flink_runs import STARTUP_TIMEOUT_S
from bench.loadserver import LoadServer
from bench.sink_tail import SinkTail

SYMBOLS = ("btcusdt", "ethusdt")


def throughput(work: Path, taskmanagers: int, count: int, warmup: float, window: float) -> dict:
    symbols = SYMBOLS[:taskmanagers]
    with (
        LoadServer(
            "flood", "--count", str(count), *(f"--symbol={s.upper()}" for s in symbols)
        ) as server,
        StandaloneCluster(work / "cluster", slots=1) as cluster,
    ):
        for _ in range(taskmanagers - 1):
            cluster.add_taskmanager()
        out = work / "out"
        tail = SinkTail(str(out / "trades"))
        tail.start()
        with open(work / "flink-run.txt", "wb") as console:  # `flink run` holds its own copy
            run = cluster.flink(
                "run",
                "--detached",
                "-py",
                str(Path(__file__).parent.parent / "job" / "main.py"),
                "--symbols",
                ",".join(symbols),
                "--shards",
                str(len(symbols)),
                "--parallelism",
                str(len(symbols)),
                "--ws-url",
                server.url,
                "--out",
                str(out),
                stdout=console,
                stderr=subprocess.STDOUT,
            )
        try:
            run.wait(timeout=STARTUP_TIMEOUT_S)
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while tail.lines == 0:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no trades reached the sink; see {work}")
                time.sleep(0.1)
            start = time.monotonic() + warmup
            time.sleep(warmup + window)
            end = time.monotonic()
            lines = tail.lines_at(end) - tail.lines_at(start)
            return {"trades_per_s": round(lines / (end - start)), "taskmanagers": taskmanagers}
        finally:
            tail.stop()
            for job in cluster.jobs():
                if job["state"] == "RUNNING":
                    cluster.flink(
                        "cancel", job["jid"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                    ).wait(120)


def compare(work: Path, count: int, warmup: float, window: float) -> dict:
    one = throughput(work / "1tm", 1, count, warmup, window)
    two = throughput(work / "2tm", 2, count, warmup, window)
    return {
        "flink_scaleout_1tm_trades_per_s": one["trades_per_s"],
        "flink_scaleout_2tm_trades_per_s": two["trades_per_s"],
        "flink_scaleout_2tm_ratio": round(two["trades_per_s"] / max(1, one["trades_per_s"]), 2),
    }
