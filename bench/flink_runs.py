"""The Flink benchmarks: throughput of the job against its FileSource twin, and, in one paced
run, latency at two rates followed by the idle cost of a feed that only pings.

Throughput counts the lines reaching the trades sink over a window that opens ``warmup`` seconds
after the first line (JVM, Python workers and the first bundles make a slow start) and ends
``window`` seconds later, or when a bounded input is used up. The job is then killed: what it wrote
was measured, and waiting for its final commit would only cost time. Each result carries the flags
of ``bench.validity`` (input used up, window filled, warm-up ended) for the harness to require.
"""

from __future__ import annotations

import bisect
import glob
import time
from pathlib import Path

from bench.data import REPO
from bench.flink_job import FlinkJob
from bench.loadserver import LoadServer
from bench.source_probe import ENV as SOURCE_SAMPLES_ENV
from bench.validity import flood_flags, sink_flags

JOB = REPO / "job" / "main.py"
FILESOURCE_JOB = REPO / "bench" / "filesource_job.py"
STARTUP_TIMEOUT_S = 240
BACKLOG_TIMEOUT_S = 180


def _rate(job: FlinkJob, warmup: float, window: float, total: int | None = None) -> dict:
    first = job.wait_for_lines(1, STARTUP_TIMEOUT_S)
    start = first + warmup
    end = start + window
    while time.monotonic() < end and (total is None or job.tail.lines < total):
        if job.failed():
            raise RuntimeError(job.failed())
        time.sleep(0.1)
    times = [t for t, _ in job.tail.counts]
    n_start = job.tail.lines_at(start)
    if total is not None and job.tail.lines >= total:
        end = times[bisect.bisect_left([n for _, n in job.tail.counts], total)]
    n_end = job.tail.lines_at(end)
    result = {
        "trades_per_s": round((n_end - n_start) / (end - start)) if end > start else None,
        "window_s": round(end - start, 1),
        "lines": n_end - n_start,
        "sink_lines_at_end": n_end,
        "input_used_up": total is not None and n_end >= total,
        "window_start": start,
        "window_end": end,
        **sink_flags(job.tail, start, end, window),
    }
    if total is not None:
        result["input_lines"] = total
    return result


def bridge_throughput(server: LoadServer, work: Path, warmup: float, window: float) -> dict:
    """The job against the flood. Its input lasted if the load server still had trades left for
    the job's one connection at the window's end (``validity.flood_flags``)."""
    opened = time.monotonic()
    job = FlinkJob(JOB, ["--symbols", "btcusdt", "--ws-url", server.url], work)
    try:
        result = _rate(job, warmup, window)
    finally:
        job.stop()
    result.update(flood_flags(server, opened, result["window_end"], expected=1))
    return result


def filesource_throughput(
    trades_file: Path, lines: int, work: Path, warmup: float, window: float
) -> dict:
    """The FileSource twin. Its input lasted if the sink had fewer than all the file's lines at
    the window's end (the window closes early when it has them all)."""
    job = FlinkJob(FILESOURCE_JOB, ["--file", str(trades_file), "--symbols", "btcusdt"], work)
    try:
        return _rate(job, warmup, window, total=lines)
    finally:
        job.stop()


def paced(work: Path, warmup: float, phase_s: float, settle: float, idle: float) -> dict:
    """Latency at 1,000 then 10,000 trades/s (after ``warmup`` s at 1,000), then pings only: once
    every trade has reached the sink and ``settle`` s more have passed, the CPU of the job's
    whole process tree is measured over ``idle`` s."""
    ping_interval = min(
        20.0, idle / 3
    )  # Binance's 20 s, but at least three pings in a short window
    rates = [(1000, warmup), (1000, phase_s), (10000, phase_s)]  # then pings only, until the end
    phases = ",".join(f"{r}:{s:g}" for r, s in rates)
    with LoadServer("paced", "--phases", phases, "--ping-interval", f"{ping_interval:g}") as server:
        job = FlinkJob(
            JOB,
            [
                "--symbols",
                "btcusdt",
                "--ws-url",
                server.url,
                "--feed-factory",
                "bench.source_probe:StampedFeed",
            ],
            work,
            env={SOURCE_SAMPLES_ENV: str(work / "source-samples")},
            keep_event_times=True,
        )
        try:
            server.wait_for(
                lambda e: e.get("phase") == 3 and "start_ms" in e,
                STARTUP_TIMEOUT_S + warmup + 2 * phase_s,
            )
            # Every trade sent must reach the sink first: latency samples are then complete (no
            # survivor bias), and a backlog still draining is not idle.
            sent_total = sum(e["sent"] for e in server.events if "sent" in e and e["conn"] == 1)
            job.wait_for_lines(sent_total, max(BACKLOG_TIMEOUT_S, sent_total / 1000))
            time.sleep(settle)
            job.tail.stop()  # its polling would compete with the job for the cores being measured
            cpu0, pids0, t0 = *job.cpu_seconds(), time.monotonic()
            time.sleep(idle)
            cpu1, pids1, t1 = *job.cpu_seconds(), time.monotonic()
            if job.failed():
                raise RuntimeError(job.failed())
        finally:
            job.stop()
        events = list(server.events)
    starts = {e["phase"]: e["start_ms"] for e in events if "start_ms" in e and e["conn"] == 1}
    sent = {e["phase"]: e["sent"] for e in events if "sent" in e and e["conn"] == 1}
    sink = _by_phase(((e, arrived - e) for e, arrived in job.tail.arrivals), starts)
    source = _by_phase(_source_samples(work), starts)
    pct = {role: round((cpu1[role] - cpu0[role]) / (t1 - t0) * 100, 2) for role in cpu0}
    out = {
        "idle_cpu_pct": round(sum(pct.values()), 2),
        "idle_window_s": round(t1 - t0, 1),
        **{f"idle_cpu_pct_{role}": value for role, value in pct.items()},
        "idle_processes": len(pids1),
        "idle_processes_changed": pids0 != pids1,
        "ping_interval_s": ping_interval,
        "connections": len({e["conn"] for e in events}),
    }
    for phase, label in ((1, "1k"), (2, "10k")):
        out[f"sent_{label}"] = sent.get(phase, 0)
        out[f"received_{label}"] = len(sink.get(phase, []))
        for name, samples in (
            ("latency_ms", sink.get(phase, [])),
            ("source_latency_ms", source.get(phase, [])),
        ):
            for q, value in _percentiles(samples).items():
                out[f"{name}_{q}_{label}"] = value
    return out


def _source_samples(work: Path):
    for path in glob.glob(f"{work / 'source-samples'}.*"):
        with open(path) as f:
            for line in f:
                event_time, latency = line.split(",")
                yield int(event_time), float(latency)


def _by_phase(samples, starts: dict) -> dict[int, list[float]]:
    """Latencies grouped by the phase that sent them (told by their send time ``E``)."""
    order = sorted(starts)
    bounds = [int(starts[p]) for p in order]
    grouped: dict[int, list[float]] = {}
    for event_time, latency in samples:
        i = bisect.bisect_right(bounds, event_time) - 1
        if i >= 0:
            grouped.setdefault(order[i], []).append(latency)
    return grouped


def _percentiles(samples: list[float]) -> dict[str, float | None]:
    ordered = sorted(samples)
    pick = (
        (lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1))
        if ordered
        else (lambda q: None)
    )
    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99)}


def lines_compared(work: Path, warmup: float, phase_s: float, lines: int) -> dict:
    """The job on ``lines`` lines (``--redundancy``) to the paced server at 10,000 trades/s, after
    ``warmup`` s at 1,000/s: latency of each trade to the sink (the first copy's), and the CPU of
    the job's whole process tree per million trades over the 10,000/s phase. Every connection of
    the paced server sends the same trades (ids from the same start), each on its own schedule:
    the lines' copies of a trade come a few ms apart, as from two hosts."""
    phases = f"1000:{warmup:g},10000:{phase_s:g}"
    with LoadServer("paced", "--phases", phases) as server:
        job = FlinkJob(
            JOB,
            [
                "--symbols",
                "btcusdt",
                "--ws-url",
                ",".join([server.url] * lines),
                "--redundancy",
                str(lines),
            ],
            work,
            keep_event_times=True,
        )
        try:
            server.wait_for(
                lambda e: e.get("phase") == 1 and "start_ms" in e, STARTUP_TIMEOUT_S + warmup
            )
            cpu0, t0 = job.cpu_seconds()[0], time.monotonic()
            server.wait_for(lambda e: e.get("phase") == 2 and "start_ms" in e, phase_s + 60)
            cpu1, t1 = job.cpu_seconds()[0], time.monotonic()
            sent_total = sum(e["sent"] for e in server.events if "sent" in e and e["conn"] == 1)
            job.wait_for_lines(sent_total, max(BACKLOG_TIMEOUT_S, sent_total / 1000))
            if job.failed():
                raise RuntimeError(job.failed())
        finally:
            job.stop()
        events = list(server.events)
    starts = {e["phase"]: e["start_ms"] for e in events if "start_ms" in e and e["conn"] == 1}
    sent = {e["phase"]: e["sent"] for e in events if "sent" in e and e["conn"] == 1}
    sink = _by_phase(((e, arrived - e) for e, arrived in job.tail.arrivals), starts)
    cpu = sum(cpu1.values()) - sum(cpu0.values())
    out = {
        "connections": len({e["conn"] for e in events}),
        "sent": sent.get(1, 0),
        "received": len(sink.get(1, [])),
        "cpu_s_per_million": round(cpu / (sent.get(1, 0) / 1e6), 2) if sent.get(1) else None,
        "cpu_pct": round(cpu / (t1 - t0) * 100, 1),
    }
    for q, value in _percentiles(sink.get(1, [])).items():
        out[f"latency_ms_{q}"] = value
    return out
