"""Soak: the job for a long while under faults, watching its processes for growth.

    python bench/soak.py                     # 10 minutes: writes bench/soak.json, and its
                                             # section of results.md
    python bench/soak.py --minutes 2         # a shorter look

``job/main.py`` (embedded cluster) reads the exchange simulator, live (it trades on while nobody
is connected) at 5,000 trades/s over BTCUSDT and ETHUSDT, WebSocket and REST. Every 60 s the
connection is reset (TCP RST), every 1,000 messages a malformed frame is sent. Every 10 s the RSS,
threads and open file descriptors of the job's processes (the Python driver and the JVM that runs
the cluster and the Python operator) are sampled. At the end (the job runs ``--duration``, so
everything it received is committed) the trades written are checked against what the exchange
published, and the dead letters against the malformed frames it sent.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent)
)  # run as a script, bench/ is not installed

from bench import report
from bench.data import REPO
from connectors.flink.outputs import committed_rows
from connectors.simulator import ExchangeSimulator, Market
from connectors.simulator.session import INJECTED

SYMBOLS = ("BTCUSDT", "ETHUSDT")
MALFORMED = b'{"stream":"btcusdt@trade","data":{"e":"trade","broken"'  # invalid_json


def sample(root: psutil.Process) -> dict:
    rss = threads = fds = 0
    for p in [root, *root.children(recursive=True)]:
        try:
            rss += p.memory_info().rss
            threads += p.num_threads()
            fds += p.num_fds()
        except psutil.NoSuchProcess:
            pass
    return {"rss_mb": round(rss / 2**20, 1), "threads": threads, "fds": fds}


def check_trades(trades: list[dict], sim: ExchangeSimulator) -> dict:
    """Per symbol: the published ids from the first written to the last, each written once."""
    out = {}
    for symbol in SYMBOLS:
        ids = [t["trade_id"] for t in trades if t["symbol"] == symbol]
        first, last = (min(ids), max(ids)) if ids else (0, -1)
        published = [i for i in sim.market.published(symbol).ids if first <= i <= last]
        out[symbol] = {
            "written": len(ids),
            "duplicates": len(ids) - len(set(ids)),
            "missing": len(set(published) - set(ids)),
            "extra": len(set(ids) - set(published)),
        }
    return out


def run(minutes: float, rate: int, work: Path) -> dict:
    market = Market.generated(
        [s.lower() for s in SYMBOLS],
        rate=rate / len(SYMBOLS),
        pause_without_subscribers=False,
        history_limit=None,
        seed=1,
    )  # the whole history: every id is checked
    with ExchangeSimulator(market, keep_frames=False) as sim:
        out = work / "out"
        seconds = minutes * 60
        command = [
            sys.executable,
            str(REPO / "job" / "main.py"),
            "--ws-url",
            sim.ws_url,
            "--rest-url",
            sim.http_url,
            "--symbols",
            ",".join(s.lower() for s in SYMBOLS),
            "--duration",
            str(seconds),
            "--out",
            str(out),
            "--rest-port",
            "0",
            "--checkpoint-dir",
            (work / "checkpoints").as_uri(),
        ]
        with open(work / "console.log", "wb") as console:  # the job holds its own copy
            job = subprocess.Popen(
                command,
                cwd=REPO,
                stdout=console,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, FLINK_LOG_DIR=str(work / "log")),
                start_new_session=True,
            )
        series, resets = [], 0
        try:
            sim.wait_for(lambda: len(sim.connections) >= 1, timeout=300)
            root, started = psutil.Process(job.pid), time.monotonic()
            next_sample = next_reset = started
            while job.poll() is None and time.monotonic() - started < seconds:
                now = time.monotonic()
                if now >= next_sample:
                    series.append({"t_s": round(now - started), **sample(root)})
                    next_sample += 10
                if now >= next_reset + 60:
                    sim.faults.drop_after(0, reset=True)
                    resets += 1
                    next_reset += 60
                sim.faults.send_frames([MALFORMED])
                time.sleep(1000 / rate)  # a malformed frame every 1,000 messages
            job.wait(timeout=600)
        finally:
            if job.poll() is None:
                job.kill()
                job.wait()
        injected = sum(r.sent_counts.get(INJECTED, 0) for r in sim.connections)
        trades = [row for _, row in committed_rows(out, "trades")]
        reasons = Counter(row["reason"] for _, row in committed_rows(out, "dead-letters"))
        checked = check_trades(trades, sim)
    later = [s for s in series if s["t_s"] >= 120] or series
    growth = {
        key: round((later[-1][key] - later[0][key]) / later[0][key] * 100, 1)
        for key in ("rss_mb", "threads", "fds")
    }
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "minutes": minutes,
        "rate": rate,
        "exit_code": job.returncode,
        "resets": resets,
        "malformed_sent": injected,
        "dead_letters": dict(reasons),
        "trades": checked,
        "series": series,
        "growth_from_minute_2_pct": growth,
        "lost_trades": sum(c["missing"] for c in checked.values()),
        "duplicate_trades": sum(c["duplicates"] for c in checked.values()),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--rate", type=int, default=5000, help="trades per second, over both symbols")
    p.add_argument("--output", type=Path, default=REPO / "bench" / "soak.json")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="soak-", dir=os.environ.get("BENCH_SCRATCH")))
    result = run(args.minutes, args.rate, work)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    results_md = args.output.parent / "results.md"
    if results_md.exists():
        report.replace_soak(results_md, result)
    print(json.dumps({k: v for k, v in result.items() if k != "series"}, indent=2))
    return 0 if result["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
