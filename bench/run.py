"""Runs every benchmark and writes bench/results.md and bench/results.json.

    python bench/run.py            # about 12 minutes on 2 cores
    python bench/run.py --quick    # under 6 minutes: shorter windows, one Flink round, 15 s idle
    python bench/run.py --smoke    # about 4 minutes: every stage once, windows of seconds;
                                   # checks the harness (the test suite runs it), its figures
                                   # are not worth quoting

Every rate is checked before it counts (``bench/validity.py``): its input lasted through its
window, the window ran in full with the work flowing at its end, the warm-up ended with the work
flowing. A run that fails a check exits with 2, naming the run and why, and writes no results.

Needs Java 17 (Flink), psutil and, for the bridge's profile, py-spy
(``pip install .[bench] py-spy``).
Captures: the trades-only extracts in data/captures.
Scratch (job output, logs, the FileSource input): $BENCH_SCRATCH or the system temp dir.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent)
)  # run as a script, bench/ is not installed

from bench import bridge_profile, flink_runs, history, report, scaleout, wholemarket
from bench.data import REPO, Trades
from bench.loadserver import LoadServer
from bench.validity import SERVER_HEADROOM, InvalidRun, require

PLANS = {
    "full": {
        "history_days": 2,
        "history_rate": 2.0,
        "wholemarket_warmup": 20.0,
        "wholemarket_window": 30.0,
        "wholemarket_after": 30.0,
        "seconds": 4.0,
        "rounds": 3,
        "stalled_seconds": 10.0,
        "flink_rounds": 2,
        "flink_warmup": 10.0,
        "flink_window": 30.0,
        "latency_warmup": 10.0,
        "latency_phase": 30.0,
        "idle_settle": 10.0,
        "idle": 60.0,
    },
    "quick": {
        "history_days": 1,
        "history_rate": 2.0,
        "wholemarket_warmup": 10.0,
        "wholemarket_window": 15.0,
        "wholemarket_after": 25.0,
        "seconds": 2.0,
        "rounds": 2,
        "stalled_seconds": 4.0,
        "flink_rounds": 1,
        "flink_warmup": 8.0,
        "flink_window": 12.0,
        "latency_warmup": 5.0,
        "latency_phase": 10.0,
        "idle_settle": 3.0,
        "idle": 15.0,
    },
    "smoke": {
        "history_days": 1,
        "history_rate": 0.5,
        "wholemarket_warmup": 5.0,
        "wholemarket_window": 5.0,
        "wholemarket_after": 20.0,
        "seconds": 1.0,
        "rounds": 1,
        "stalled_seconds": 3.0,
        "flink_rounds": 1,
        "flink_warmup": 2.0,
        "flink_window": 3.0,
        "latency_warmup": 2.0,
        "latency_phase": 3.0,
        "idle_settle": 1.0,
        "idle": 6.0,
    },
}
# Every flood input (the load server's trades per connection, the FileSource twin's lines) is
# sized to outlast its window: INPUT_MARGIN times what a consumer at a rate well above the best
# measured would take, over the Flink runs' warm-up + window and the clients' seconds. The load
# server pre-builds its frames so that sending costs it next to no CPU (bench/loadserver.py); so
# the input is finite, and every run checks that it lasted (bench/validity.py).
JOB_CEILING_TRADES_PER_S = 120_000  # the job's best measured: 100,280/s
CLIENT_CEILING_MSGS_PER_S = 600_000  # the fastest client's (picows) best: 443,746 msg/s
INPUT_MARGIN = 2.5
# module under bench.clients -> result key prefix
CLIENTS = {
    "raw": "load_server",
    "bridge": "bridge",
    "bridge_backfill": "bridge_backfill",
    "seed_style": "seed_style",
    "websockets_sync": "websockets",
    "picows_orjson": "picows",
}


def input_size(plan: dict) -> int:
    """Trades per connection of the flood, and lines of the FileSource twin's file."""
    job = JOB_CEILING_TRADES_PER_S * (plan["flink_warmup"] + plan["flink_window"])
    clients = CLIENT_CEILING_MSGS_PER_S * plan["seconds"]
    return math.ceil(INPUT_MARGIN * max(job, clients))


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_client(module: str, url: str, count: int, seconds: float) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            f"bench.clients.{module}",
            "--url",
            url,
            "--count",
            str(count),
            "--seconds",
            str(seconds),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"client {module} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_of(rounds: list[dict], key: str):
    values = [r[key] for r in rounds if r.get(key) is not None]
    return statistics.median(values) if values else None


def bridge_benchmarks(plan: dict, server: LoadServer, count: int, results: dict) -> None:
    """Every client reads for ``seconds``; one that reached the end of the server's ``count``
    messages first ran out of input (the raw reader takes them all by design: it measures how fast
    the server empties its frames, the ceiling every client figure must stay well below)."""
    by_client: dict[str, list[dict]] = {name: [] for name in CLIENTS.values()}
    for n in range(plan["rounds"]):
        for module, name in CLIENTS.items():  # alternated, so load changes hit every client alike
            result = run_client(module, server.url, count, plan["seconds"])
            if module != "raw":
                require(f"client {name}, round {n + 1}", {**result, "input_trades": count})
            by_client[name].append(result)
            log(f"round {n + 1}: {name} {result['msgs_per_s']:,} msg/s")
    for name, rounds in by_client.items():
        results[f"{name}_msgs_per_s"] = round(median_of(rounds, "msgs_per_s"))
        results[f"{name}_cpu_s_per_million"] = median_of(rounds, "cpu_s_per_million")
    fastest = max(
        r["msgs_per_s"]
        for name, rounds in by_client.items()
        if name != "load_server"
        for r in rounds
    )
    headroom = min(r["msgs_per_s"] for r in by_client["load_server"]) / max(1, fastest)
    if headroom < SERVER_HEADROOM:
        raise InvalidRun(
            f"clients: the load server alone delivered only {headroom:.1f}x what the fastest "
            f"client took ({fastest:,} msg/s; at least {SERVER_HEADROOM:g}x needed): a client "
            "figure may be the server's limit. No rate is reported."
        )
    results["load_server_headroom"] = round(headroom, 1)
    results["client_input_used_up"] = any(
        r["input_used_up"]
        for name, rounds in by_client.items()
        if name != "load_server"
        for r in rounds
    )
    pairs = list(
        zip(by_client["bridge"], by_client["seed_style"], by_client["picows"], strict=True)
    )
    results["bridge_vs_seed_style"] = round(
        statistics.median(b["msgs_per_s"] / s["msgs_per_s"] for b, s, _ in pairs), 2
    )
    results["bridge_vs_picows"] = round(
        statistics.median(b["msgs_per_s"] / p["msgs_per_s"] for b, _, p in pairs), 3
    )
    results["bridge_backfill_vs_bridge"] = round(
        statistics.median(
            f["msgs_per_s"] / b["msgs_per_s"]
            for b, f in zip(by_client["bridge"], by_client["bridge_backfill"], strict=True)
        ),
        3,
    )
    results["bridge_parse_failures"] = sum(r["parse_failures"] for r in by_client["bridge"])
    results["bridge_gaps"] = sum(r["gaps"] for r in by_client["bridge"])
    results["client_count"], results["client_seconds"] = count, plan["seconds"]


def stalled_benchmark(plan: dict, server: LoadServer, results: dict) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.clients.stalled",
            "--url",
            server.url,
            "--seconds",
            str(plan["stalled_seconds"]),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=plan["stalled_seconds"] + 60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"stalled consumer failed: {done.stderr[-2000:]}")
    stalled = json.loads(done.stdout.strip().splitlines()[-1])
    for key in (
        "peak_rss_mb",
        "baseline_rss_mb",
        "rss_at_full_mb",
        "rss_end_mb",
        "buffer_size",
        "buffered",
        "full_after_s",
        "seconds",
    ):
        results[f"stalled_{key}"] = stalled[key]
    log(f"stalled consumer: peak RSS {stalled['peak_rss_mb']} MB, buffered {stalled['buffered']:,}")


def write_trades_file(path: Path, lines: int) -> None:
    """The very messages the load server sends, one per line, written in slices."""
    trades = Trades()
    with open(path, "wb") as f:
        for first in range(0, lines, 100_000):
            f.write(b"\n".join(map(trades.payload, range(first, min(lines, first + 100_000)))))
            f.write(b"\n")


def flink_throughput(
    plan: dict, server: LoadServer, count: int, scratch: Path, results: dict
) -> None:
    trades_file = scratch / "trades.jsonl"
    write_trades_file(trades_file, count)
    bridge, files = [], []
    try:
        for n in range(plan["flink_rounds"]):
            bridge.append(
                flink_runs.bridge_throughput(
                    server,
                    scratch / f"flink-bridge-{n}",
                    plan["flink_warmup"],
                    plan["flink_window"],
                )
            )
            require(f"Flink job via the bridge, round {n + 1}", bridge[-1])
            log(
                f"round {n + 1}: Flink job {bridge[-1]['trades_per_s']:,} trades/s (the server "
                f"sent {bridge[-1]['input_sent']:,} of {count:,} trades)"
            )
            files.append(
                flink_runs.filesource_throughput(
                    trades_file,
                    count,
                    scratch / f"flink-file-{n}",
                    plan["flink_warmup"],
                    plan["flink_window"],
                )
            )
            require(f"Flink job via the FileSource twin, round {n + 1}", files[-1])
            log(
                f"round {n + 1}: FileSource twin {files[-1]['trades_per_s']:,} trades/s "
                f"({files[-1]['sink_lines_at_end']:,} of {count:,} lines in the sink)"
            )
    finally:
        trades_file.unlink()  # up to gigabytes; the rest of the scratch stays for its logs
    results["flink_trades_per_s"] = round(median_of(bridge, "trades_per_s"))
    results["flink_filesource_trades_per_s"] = round(median_of(files, "trades_per_s"))
    results["flink_vs_filesource"] = round(
        statistics.median(
            b["trades_per_s"] / f["trades_per_s"] for b, f in zip(bridge, files, strict=True)
        ),
        3,
    )
    results["flink_filesource_input_used_up"] = any(f["input_used_up"] for f in files)
    results["flink_input_used_up"] = any(b["input_used_up"] for b in bridge)
    results["flink_window_filled"] = all(r["window_filled"] for r in bridge + files)
    results["flink_warmup_ended"] = all(r["warmup_ended"] for r in bridge + files)
    results["flink_input_trades"] = count
    results["input_ceiling_trades_per_s"] = JOB_CEILING_TRADES_PER_S
    results["input_margin"] = INPUT_MARGIN
    results["flink_input_sent_max"] = max(b["input_sent"] for b in bridge)
    results["flink_filesource_input_lines"] = count
    results["flink_filesource_sink_lines_max"] = max(f["sink_lines_at_end"] for f in files)
    results["flink_warmup_s"], results["flink_window_s"] = (
        plan["flink_warmup"],
        plan["flink_window"],
    )


def python_operators(results: dict) -> None:
    """How many operators of the job's graph run Python, read from the graph itself (job.graph)."""
    done = subprocess.run(
        [sys.executable, "-m", "job.graph", "--symbols", "btcusdt", "--out", "/nonexistent"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"job.graph failed: {done.stderr[-2000:]}")
    operators = [line for line in done.stdout.splitlines() if line.startswith(("python", "java"))]
    results["flink_python_operators"] = sum(line.startswith("python") for line in operators)
    results["flink_operators"] = len(operators)
    log(f"job graph: {results['flink_python_operators']} Python operator(s) of {len(operators)}")


def scale_out(plan: dict, server: LoadServer, scratch: Path, results: dict) -> None:
    found = scaleout.compare(
        scratch / "scaleout", server, plan["flink_warmup"], plan["flink_window"]
    )
    results.update(found)
    log(
        f"standalone cluster: {found['flink_scaleout_1tm_trades_per_s']:,} trades/s on one "
        f"TaskManager, {found['flink_scaleout_2tm_trades_per_s']:,} on two "
        f"({found['flink_scaleout_2tm_ratio']}x)"
    )


def latency_and_idle(plan: dict, scratch: Path, results: dict) -> None:
    paced = flink_runs.paced(
        scratch / "flink-paced",
        plan["latency_warmup"],
        plan["latency_phase"],
        plan["idle_settle"],
        plan["idle"],
    )
    # The paced server keeps its schedule by the ms; a phase it sent short of was not at its rate.
    for label, rate in (("1k", 1000), ("10k", 10_000)):
        planned = rate * plan["latency_phase"]
        if paced[f"sent_{label}"] < 0.95 * planned:
            raise InvalidRun(
                f"latency at {rate:,}/s: the paced load server sent {paced[f'sent_{label}']:,} "
                f"trades of the {planned:,.0f} its phase plans: the phase was not at its rate. "
                "No latency is reported for it."
            )
    paced["latency_load_delivered"] = True
    results.update(paced)
    results["latency_warmup_s"], results["latency_phase_s"] = (
        plan["latency_warmup"],
        plan["latency_phase"],
    )
    results["idle_settle_s"] = plan["idle_settle"]
    log(
        f"latency p99 {paced['latency_ms_p99_1k']} ms at 1k/s, {paced['latency_ms_p99_10k']} ms at "
        f"10k/s; idle {paced['idle_cpu_pct']}% of a core"
    )


def redundant_lines(plan: dict, scratch: Path, results: dict) -> None:
    """One line against two at 10,000 trades/s, side by side: the cost of ``--redundancy 2``."""
    for lines in (1, 2):
        found = flink_runs.lines_compared(
            scratch / f"flink-lines-{lines}", plan["latency_warmup"], plan["latency_phase"], lines
        )
        planned = 10_000 * plan["latency_phase"]
        if found["sent"] < 0.95 * planned or found["connections"] != lines:
            raise InvalidRun(
                f"{lines} line(s) at 10,000/s: {found['connections']} connection(s), "
                f"{found['sent']:,} trades sent of the {planned:,.0f} planned: not that load"
            )
        results.update({f"lines_{lines}_{key}": value for key, value in found.items()})
    one, two = (results[f"lines_{n}_cpu_s_per_million"] for n in (1, 2))
    results["lines_2_cpu_ratio"] = round(two / one, 2) if one and two else None
    log(
        f"two lines vs one at 10k/s: CPU {results['lines_2_cpu_ratio']}x, p99 "
        f"{results['lines_2_latency_ms_p99']} vs {results['lines_1_latency_ms_p99']} ms"
    )


def whole_market(plan: dict, scratch: Path, results: dict) -> None:
    """1,500 symbols (bench/wholemarket.py) at 5,000 trades/s with one connection reset, on one
    line and on two, and at 20,000 trades/s on one line."""
    runs = {
        "5k": (5000, 1, True),
        "5k_2lines": (5000, 2, True),
        "20k": (20_000, 1, False),
    }
    for label, (rate, lines, reset) in runs.items():
        found = wholemarket.run(
            scratch / f"wholemarket-{label}",
            rate,
            lines,
            plan["wholemarket_warmup"],
            plan["wholemarket_window"],
            reset=reset,
            after=plan["wholemarket_after"],
        )
        if found["published_per_s"] < 0.95 * rate:
            raise InvalidRun(
                f"whole market at {rate:,}/s ({lines} line(s)): the simulator published only "
                f"{found['published_per_s']:,}/s over the window: not that rate's run"
            )
        results.update({f"wholemarket_{label}_{key}": value for key, value in found.items()})
        log(
            f"whole market {label}: {found['trades_per_s']:,} trades/s of "
            f"{found['published_per_s']:,} published, p99 {found['latency_ms_p99']} ms, "
            f"RSS {found['peak_rss_mb']} MB"
            + (
                f", reset: weight {found['reset_rest_weight']}, held {found['hold_s']} s"
                if reset
                else ""
            )
        )
    results["wholemarket_warmup_s"] = plan["wholemarket_warmup"]
    results["wholemarket_window_s"] = plan["wholemarket_window"]
    results["wholemarket_p99_ms_5k"] = results["wholemarket_5k_latency_ms_p99"]
    results["wholemarket_p99_ms_20k"] = results["wholemarket_20k_latency_ms_p99"]
    results["wholemarket_peak_rss_mb"] = max(
        results[f"wholemarket_{label}_peak_rss_mb"] for label in runs
    )
    results["wholemarket_hold_max_s"] = results["wholemarket_5k_hold_s"]
    results["wholemarket_hold_max_s_2lines"] = results["wholemarket_5k_2lines_hold_s"]


def history_replay(plan: dict, scratch: Path, results: dict) -> None:
    """The same complete days of one symbol's trades from the archive and from REST alone, and
    from the archive through the job into its trades sink (bench/history.py)."""
    try:
        found = history.measure(
            plan["history_days"], plan["history_rate"], scratch / "history", flink=True
        )
    except history.IncompleteReplay as incomplete:
        raise InvalidRun(f"history replay: {incomplete}") from None
    for way in ("archive", "rest", "flink"):
        results.update({f"history_{way}_{k}": v for k, v in found[way].items()})
    results["history_days"], results["history_rate"] = found["days"], found["rate"]
    results["history_rest_at_budget_s"] = found["rest_at_budget_s"]
    log(
        f"history: archive {found['archive']['trades_per_s']:,} trades/s for "
        f"{found['archive']['weight']} weight, REST {found['rest']['trades_per_s']:,} for "
        f"{found['rest']['weight']:,}; through the job {found['flink']['trades_per_s']:,}/s"
    )


def measure(plan: dict, scratch: Path, results: dict) -> dict | None:
    """Every benchmark in turn, into ``results``; the bridge's profile if py-spy is there. Raises
    ``InvalidRun`` at the first measurement that is not a figure."""
    count = input_size(plan)
    log(f"flood: {count:,} trades per connection, BTCUSDT and ETHUSDT; building")
    profiled = None
    with LoadServer(
        "flood", "--count", str(count), *(f"--symbol={s.upper()}" for s in scaleout.SYMBOLS)
    ) as server:
        bridge_benchmarks(plan, server, count, results)
        stalled_benchmark(plan, server, results)
        if bridge_profile.available():
            profiled = bridge_profile.profile_bridge(server.url, count, plan["seconds"], scratch)
        else:
            log("py-spy not installed: no profile of the bridge")
        flink_throughput(plan, server, count, scratch, results)
        python_operators(results)
        scale_out(plan, server, scratch, results)
    latency_and_idle(plan, scratch, results)
    redundant_lines(plan, scratch, results)
    whole_market(plan, scratch, results)
    history_replay(plan, scratch, results)
    return profiled


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="finish in under 6 minutes")
    size.add_argument(
        "--smoke",
        action="store_true",
        help="every stage once, in about 4 minutes: checks the harness",
    )
    p.add_argument("--output", type=Path, default=REPO / "bench", help="where results.md/json go")
    args = p.parse_args(argv)
    plan_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    plan = PLANS[plan_name]
    scratch = Path(tempfile.mkdtemp(prefix="bench-", dir=os.environ.get("BENCH_SCRATCH")))
    started = time.monotonic()
    results = {
        "plan": plan_name,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "load_avg_start": round(os.getloadavg()[0], 2),
        "rounds": plan["rounds"],
        "flink_rounds": plan["flink_rounds"],
    }
    log(f"scratch {scratch}")
    try:
        profiled = measure(plan, scratch, results)
    except InvalidRun as invalid:
        log(f"INVALID RUN, no results written: {invalid}")
        return 2
    results["load_avg_end"] = round(os.getloadavg()[0], 2)
    results["run_seconds"] = round(time.monotonic() - started)
    report.judge(results)
    soak = args.output / "soak.json"
    report.write(
        results, profiled, json.loads(soak.read_text()) if soak.exists() else None, args.output
    )
    log(f"wrote {args.output / 'results.md'} and results.json in {results['run_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
