"""What an idle PyFlink job costs before any of this project's code: a datagen source at one row
per second into a blackhole, with no Python operator, then with one Python map between them. The
difference is the idle price of one Python operator in PyFlink's process mode; the job's idle cost
(bench/run.py, section 4) is about this floor plus that price per Python operator it runs.

    python bench/idle_floor.py [--seconds 20] [--mode process|thread]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import psutil


def measure(python_operator: bool, mode: str, settle: float, seconds: float) -> float:
    """Runs in a child process (one embedded cluster each); prints the CPU % of one core."""
    from pyflink.common import Configuration
    from pyflink.common.typeinfo import Types
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    conf = Configuration()
    for key, value in (
        ("execution.checkpointing.interval", "10s"),
        ("rest.port", "0"),
        ("python.execution-mode", mode),
        ("python.executable", sys.executable),
    ):
        conf.set_string(key, value)
    t_env = StreamTableEnvironment.create(
        StreamExecutionEnvironment.get_execution_environment(conf)
    )
    t_env.execute_sql(
        "CREATE TABLE ticks (x BIGINT) WITH ('connector'='datagen', 'rows-per-second'='1')"
    )
    t_env.execute_sql("CREATE TABLE sink (x BIGINT) WITH ('connector'='blackhole')")
    if python_operator:
        mapped = t_env.to_data_stream(t_env.from_path("ticks")).map(
            lambda row: row[0], output_type=Types.LONG()
        )
        t_env.from_data_stream(mapped).execute_insert("sink")
    else:
        t_env.execute_sql("INSERT INTO sink SELECT x FROM ticks")
    time.sleep(settle)
    me = psutil.Process(os.getpid())
    tree = [me, *me.children(recursive=True)]

    def cpu() -> float:
        return sum(p.cpu_times().user + p.cpu_times().system for p in tree)

    before, started = cpu(), time.monotonic()
    time.sleep(seconds)
    return (cpu() - before) / (time.monotonic() - started) * 100


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--settle", type=float, default=20.0)
    p.add_argument("--mode", choices=("process", "thread"), default="process")
    p.add_argument("--child", choices=("java", "python"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(
            round(measure(args.child == "python", args.mode, args.settle, args.seconds), 2),
            flush=True,
        )
        os._exit(0)  # the embedded cluster's threads would keep the process alive
    results = {}
    for child in ("java", "python"):
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                child,
                "--mode",
                args.mode,
                "--seconds",
                str(args.seconds),
                "--settle",
                str(args.settle),
            ],
            capture_output=True,
            text=True,
            timeout=args.settle + args.seconds + 180,
            check=True,
        )
        results[
            f"idle_cpu_pct_{child}_only" if child == "java" else "idle_cpu_pct_one_python_operator"
        ] = float(done.stdout.strip().splitlines()[-1])
    results["python_operator_idle_pct"] = round(
        results["idle_cpu_pct_one_python_operator"] - results["idle_cpu_pct_java_only"], 2
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
