"""The whole market: ``job/main.py --symbols all`` against the simulator's generated market of
1,500 symbols (Zipf activity, Poisson arrivals, event time = the wall clock at emission), at a
total rate, on one line or two (``--redundancy 2``, the simulator serving two endpoints).

One run: ``warmup`` s after the first trade reached the sink, a ``window`` of steady trading
(trades/s into the trades sink, latency exchange -> sink of every trade, the peak RSS of the job's
process tree, the newest checkpoint's size and duration), then, if asked, one connection reset
(refused for ``refuse`` s, as an upgrade would) and ``after`` s more: the REST weight the job
spent, the symbols it fetched, how long it held the watermark back (the job's own metric,
``watermarkHeldTotal``), and the latency of the live trades over that phase.

The simulator runs in this process when the run resets a connection (its faults are commands
here), and in a process of its own otherwise: one Python thread does not generate and send 20,000
trades a second beside this process's reading of the sink. The input is checked, not assumed:
``published_per_s`` is what the market published over the window (the sum of the 24 h ticker's
``count``, before and after); a market that fell short of its rate is not that rate's run, and
the harness refuses it. ``sustained`` says whether the job carried what was published
(its trades/s at least ``SHORT_OF_RATE`` of it).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import psutil

from bench.cluster import free_port, get_text
from bench.flink_job import FlinkJob
from bench.flink_runs import JOB, STARTUP_TIMEOUT_S, _percentiles
from connectors.simulator import ExchangeSimulator, whole_market
from connectors.simulator.market_info import ticker_weight
from connectors.simulator.venues import SPOT

SYMBOLS = 1500
SHORT_OF_RATE = 0.95
SEED = 21
_METRICS_URL = re.compile(r"metrics for Prometheus at (http://\S+/metrics)")
_HELD_TOTAL = re.compile(r"^\S*binance_source_watermarkHeldTotal\S* (\S+)$", re.M)


def run(
    work: Path,
    rate: int,
    lines: int,
    warmup: float,
    window: float,
    reset: bool = False,
    refuse: float = 2.0,
    after: float = 25.0,
) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    if reset:
        market = whole_market(SYMBOLS, rate=rate, pause_without_subscribers=False, seed=SEED)
        simulator: Any = ExchangeSimulator(market, endpoints=lines, keep_frames=False)
    else:
        simulator = SimulatorProcess(rate, work / "simulator.log")
    with simulator as sim:
        job = FlinkJob(
            JOB,
            [
                "--symbols",
                "all",
                "--ws-url",
                ",".join(sim.ws_urls),
                "--redundancy",
                str(lines),
                "--rest-url",
                sim.http_url,
                "--checkpoint-interval",
                "10s",
            ],
            work,
            keep_event_times=True,
        )
        try:
            first = job.wait_for_lines(1, STARTUP_TIMEOUT_S)
            start = first + warmup
            _sleep_until(start, job)
            n0, peak, published0 = job.tail.lines, 0.0, _published(sim.http_url)
            while time.monotonic() < start + window:
                peak = max(peak, _rss_mb(job))
                _sleep_until(min(time.monotonic() + 1.0, start + window), job)
            end = time.monotonic()
            out = {
                "published_per_s": round((_published(sim.http_url) - published0) / (end - start)),
                "trades_per_s": round((job.tail.lines - n0) / (end - start)),
                "peak_rss_mb": round(peak),
                **_checkpoint(work),
            }
            out["sustained"] = out["trades_per_s"] >= SHORT_OF_RATE * out["published_per_s"]
            out.update(_latency(job, start, end, "latency_ms"))
            if reset:
                out.update(_reset(sim, job, refuse, after))
        finally:
            job.stop()
    return out


def _published(http_url: str) -> int:
    """Trades the market has published in the last 24 h (all of them, in a benchmark's time)."""
    return sum(entry["count"] for entry in _json(f"{http_url}/api/v3/ticker/24hr"))


class SimulatorProcess:
    """``python -m connectors.simulator`` generating the whole market in a process of its own."""

    def __init__(self, rate: int, log: Path) -> None:
        self.rate, self.log_path = rate, log

    def __enter__(self) -> SimulatorProcess:
        self._log = open(self.log_path, "w+b")  # closed in __exit__
        port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "connectors.simulator",
                *("--market-symbols", str(SYMBOLS), "--rate", str(self.rate)),
                *("--seed", str(SEED), "--live", "--port", str(port)),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.ws_urls = [f"ws://127.0.0.1:{port}"]
        self.http_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while b"Ctrl-C to stop" not in self.log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the simulator did not start; see {self.log_path}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def _reset(sim: ExchangeSimulator, job: FlinkJob, refuse: float, after: float) -> dict:
    metrics = _metrics_url(job)
    held_before = _held_total_ms(metrics)
    rest_before = len(sim.rest_requests)
    faults = sim.endpoints[0].faults
    at = time.monotonic()
    faults.refuse_connections()
    faults.drop_after(0, reset=True)  # the longest open connection of the first endpoint
    _sleep_until(at + refuse, job)
    faults.accept_connections()
    _sleep_until(at + after, job)
    requests = sim.rest_requests[rest_before:]
    fetched = {
        parse_qs(urlsplit(path).query).get("symbol", [""])[0]
        for path, _, _ in requests
        if "historicalTrades" in path
    }
    out = {
        "reset_rest_weight": sum(_weight(path) for path, _, _ in requests),
        "reset_rest_requests": len(requests),
        "reset_symbols_fetched": len(fetched - {""}),
        "hold_s": round((_held_total_ms(metrics) - held_before) / 1000, 2),
    }
    out.update(_latency(job, at, time.monotonic(), "reset_latency_ms"))
    return out


def _weight(path: str) -> int:
    split = urlsplit(path)
    endpoint = SPOT.endpoint(split.path)
    if endpoint is None:
        return 0
    weight = SPOT.weights[endpoint]
    if weight is None:  # by the symbols asked for
        return ticker_weight({k: v[0] for k, v in parse_qs(split.query).items()})
    return weight


def _latency(job: FlinkJob, start: float, end: float, name: str) -> dict:
    """Percentiles of arrival - event time of the trades that arrived between monotonic
    ``start`` and ``end`` (the tail notes arrivals in wall-clock ms)."""
    offset = time.time() * 1000 - time.monotonic() * 1000
    lo, hi = start * 1000 + offset, end * 1000 + offset
    samples = [arrived - e for e, arrived in job.tail.arrivals if lo <= arrived <= hi]
    found = {f"{name}_{q}": v for q, v in _percentiles(samples).items()}
    found[f"{name}_max"] = round(max(samples), 1) if samples else None
    return found


def _checkpoint(work: Path) -> dict:
    """The newest completed checkpoint: its size on disk (MB) and how long it took (s), from
    Flink's REST API of the embedded run (its port: the Flink log)."""
    # at any depth: a run's checkpoints are under its job's folder, then Flink's job id
    found = glob.glob(str(work / "checkpoints" / "**" / "chk-*"), recursive=True)
    newest = max(found, key=os.path.getmtime)
    size = sum(
        os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(newest) for f in files
    )
    out = {"checkpoint_mb": round(size / 1e6, 2)}
    logs = " ".join(Path(p).read_text(errors="replace") for p in glob.glob(f"{work}/log/*.log"))
    port = re.search(r"Rest endpoint listening at [\w.]+:(\d+)", logs)
    if port:
        base = f"http://127.0.0.1:{port.group(1)}"
        jobs = _json(f"{base}/jobs")["jobs"]
        stats = _json(f"{base}/jobs/{jobs[0]['id']}/checkpoints")["latest"]["completed"]
        out["checkpoint_s"] = round(stats["end_to_end_duration"] / 1000, 2)
    return out


def _json(url: str) -> dict:
    return orjson.loads(get_text(url))


def _metrics_url(job: FlinkJob) -> str:
    console = (job.work / "console.log").read_text(errors="replace")
    found = _METRICS_URL.search(console)
    if found is None:
        raise RuntimeError(f"the job printed no metrics address; see {job.work}")
    return found.group(1)


def _held_total_ms(metrics: str) -> float:
    """The job's watermarkHeldTotal, after the next push of its reporter (every 10 s)."""
    time.sleep(11)
    return sum(float(v) for v in _HELD_TOTAL.findall(get_text(metrics)))


def _rss_mb(job: FlinkJob) -> float:
    total = 0
    for p in job.processes():
        with contextlib.suppress(psutil.NoSuchProcess):  # a process that just ended
            total += p.memory_info().rss
    return total / 1e6


def _sleep_until(t: float, job: FlinkJob) -> None:
    while time.monotonic() < t:
        if job.failed():
            raise RuntimeError(job.failed())
        time.sleep(min(0.2, max(0.0, t - time.monotonic())))
