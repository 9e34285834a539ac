"""Scale-out on a standalone cluster: one shard on one TaskManager against two shards on two.

In thread mode every subtask of a TaskManager runs in that JVM's one embedded interpreter (one
GIL), so more bridge subtasks in the same TaskManager add no Python throughput: shards scale by
TaskManagers (processes). Each TaskManager here has one slot; the job runs ``--shards N
--parallelism N`` with ``flink run``, every shard a connection of its own to the flood load server
(one symbol each), and the trades sink's lines are counted as in the single-job runs. On this
2-core machine the ceiling of the ratio is 2. Each run is checked as the single-job runs are: no
shard's input ran out before the window's end, one connection per shard, the window ran in full
with the sink growing at its start and end, the job still running.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bench.cluster import StandaloneCluster
from bench.flink_runs import STARTUP_TIMEOUT_S
from bench.loadserver import LoadServer
from bench.sink_tail import SinkTail
from bench.validity import flood_flags, require, sink_flags

SYMBOLS = ("btcusdt", "ethusdt")


def throughput(
    work: Path, server: LoadServer, taskmanagers: int, warmup: float, window: float
) -> dict:
    """``server``: a flood load server with (at least) the first ``taskmanagers`` of SYMBOLS."""
    symbols = SYMBOLS[:taskmanagers]
    with StandaloneCluster(work / "cluster", slots=1) as cluster:
        for _ in range(taskmanagers - 1):
            cluster.add_taskmanager()
        out = work / "out"
        tail = SinkTail(str(out / "trades"))
        tail.start()
        opened = time.monotonic()
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
            running = any(job["state"] == "RUNNING" for job in cluster.jobs())
            lines = tail.lines_at(end) - tail.lines_at(start)
            result = {
                "trades_per_s": round(lines / (end - start)),
                "taskmanagers": taskmanagers,
                "window_s": round(end - start, 1),
                "job_running": running,
                **sink_flags(tail, start, end, window),
            }
        finally:
            tail.stop()
            for job in cluster.jobs():
                if job["state"] == "RUNNING":
                    cluster.flink(
                        "cancel", job["jid"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                    ).wait(120)
    result.update(flood_flags(server, opened, end, expected=taskmanagers))
    return result


def compare(work: Path, server: LoadServer, warmup: float, window: float) -> dict:
    """Both runs, each required to be valid (``bench.validity``); raises ``InvalidRun`` if not."""
    runs = [throughput(work / f"{n}tm", server, n, warmup, window) for n in (1, 2)]
    for n, run in enumerate(runs, 1):
        require(f"scale-out, {n} TaskManager(s)", run)
    one, two = runs
    return {
        "flink_scaleout_1tm_trades_per_s": one["trades_per_s"],
        "flink_scaleout_2tm_trades_per_s": two["trades_per_s"],
        "flink_scaleout_2tm_ratio": round(two["trades_per_s"] / max(1, one["trades_per_s"]), 2),
        "flink_scaleout_input_used_up": any(r["input_used_up"] for r in runs),
        "flink_scaleout_window_filled": all(r["window_filled"] for r in runs),
        "flink_scaleout_warmup_ended": all(r["warmup_ended"] for r in runs),
        "flink_scaleout_input_trades": one["input_trades"],
        "flink_scaleout_input_sent_max": max(r["input_sent"] for r in runs),
    }
