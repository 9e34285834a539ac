"""History replay: the same two days of trades from the archive's day files and from REST alone,
against the exchange simulator; and through the whole job into its trades sink.

    python bench/history.py                 # writes bench/history.json, prints a table
    python bench/history.py --rate 2 --days 2 --flink

One symbol traded for ``--days`` complete UTC days before the simulator started, ``--rate`` trades a
second. Measured for each way (``BinanceFeed(since_ms=, until_ms=)``, drained flat out):

- the feed alone: trades/s from the feed's start until it is ``finished`` (the archive's run
  includes downloading and verifying its day files from the simulator, on loopback), request
  weight spent;
- with ``--flink``: ``job/main.py --since --until --out``, the job's own account of its replay
  ("history replayed: N records in S s", the bridge's buffer bounding it to what the job drains),
  and the trades the sink committed, checked to be every trade of the range once.

REST's figure on loopback has no network latency and no budget wait; on Binance the default budget
(3,000 weight a minute) caps REST history at 120 pages, 120,000 trades a minute (2,000 a second),
and whatever it spends is missing for the live feeds' gap filling. The table says both.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from connectors.binance.archive import ArchiveConfig, day_start_ms
from connectors.binance.markets import SPOT
from connectors.binance.records import Trade
from connectors.binance.rest import RestConfig
from connectors.feed import BinanceFeed
from connectors.flink.outputs import committed_rows
from connectors.simulator import ExchangeSimulator, GeneratedFeed, Market
from connectors.websocket.config import BridgeConfig

REPO = Path(__file__).resolve().parents[1]
BUDGET = 3000  # the job's default --rest-weight-budget, weight a minute


def market(days: int, rate: float) -> Market:
    now = time.time()
    midnight = day_start_ms(datetime.datetime.now(datetime.UTC).date()) / 1000
    past = now - midnight + days * 86_400  # back to the start of the first whole day
    feed = GeneratedFeed("BTCUSDT", rate=1.0, count=0, past_seconds=past, past_rate=rate)
    return Market([feed], pause_without_subscribers=False, history_limit=None)


def replay(sim: ExchangeSimulator, since: int, until: int, work: Path, archive: bool) -> dict:
    work.mkdir(parents=True)
    feed = BinanceFeed(
        ["btcusdt"],
        "trade",
        sim.ws_url,
        BridgeConfig(gate_dir=str(work), buffer_size=100_000),
        rest=RestConfig(rest_url=sim.http_url, rest_weight_budget=6000),  # all of Binance's
        since_ms=since,
        archive=ArchiveConfig(archive_url=sim.http_url, archive_cache=str(work / "cache"))
        if archive
        else None,
        until_ms=until,
    )
    ids: list[int] = []
    started = time.perf_counter()
    with feed:
        while not feed.finished:
            ids += [t.trade_id for t in feed.drain(100_000) if type(t) is Trade]
            time.sleep(0.001)
        seconds = time.perf_counter() - started
        stats = feed.stats
    return {
        "trades": len(ids),
        "seconds": round(seconds, 2),
        "trades_per_s": round(len(ids) / seconds),
        "weight": stats["rest_weight_used"],
        "rest_requests": stats["rest_requests"],
        "archive_bytes": stats.get("archive_bytes", 0),
        "ids": ids,
    }


def flink_replay(sim: ExchangeSimulator, since: int, until: int, work: Path, want: list) -> dict:
    out = work / "out"
    cmd = [
        sys.executable,
        str(REPO / "job" / "main.py"),
        *("--ws-url", sim.ws_url, "--rest-url", sim.http_url, "--symbols", "btcusdt"),
        *("--since", str(since), "--until", str(until), "--out", str(out)),
        *("--archive-url", sim.http_url, "--archive-cache", str(work / "cache")),
        *("--checkpoint-dir", (work / "ckpt").as_uri(), "--rest-port", "0"),
    ]
    started = time.perf_counter()
    run = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=REPO, timeout=1800)
    total = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"the job failed:\n{run.stdout[-3000:]}{run.stderr[-3000:]}")
    found = re.search(r"history replayed: (\d+) records in ([\d.]+)s", run.stdout)
    assert found, run.stdout[-3000:]
    records, seconds = int(found[1]), float(found[2])
    written = sorted(row["trade_id"] for _, row in committed_rows(out, "trades"))
    if written != want:
        raise IncompleteReplay("the job did not write every trade of the range once")
    return {
        "trades": records,
        "replay_seconds": seconds,
        "trades_per_s": round(records / seconds),
        "job_seconds": round(total, 1),
    }


class IncompleteReplay(Exception):
    """A way did not deliver every trade of the range once: its rate is not a figure."""


def measure(days: int, rate: float, work: Path, flink: bool) -> dict:
    """Both ways (and through the job with ``flink``) over the same ``days``; raises
    ``IncompleteReplay`` if one did not deliver every trade of the range once."""
    today = datetime.datetime.now(datetime.UTC).date()
    since = day_start_ms(today - datetime.timedelta(days=days))
    until = day_start_ms(today)
    results: dict = {"days": days, "rate": rate}
    with ExchangeSimulator(market(days, rate)) as sim:
        want = [e["t"] for e in sim.market.published("BTCUSDT").events if since <= e["T"] < until]
        for name, archive in (("archive", True), ("rest", False)):
            print(f"replaying {len(want)} trades from {name} ...", flush=True)
            result = replay(sim, since, until, work / name, archive)
            if result.pop("ids") != want:
                raise IncompleteReplay(f"{name}: not every trade of the range once")
            results[name] = result
        if flink:
            print("replaying them through the job ...", flush=True)
            results["flink"] = flink_replay(sim, since, until, work / "flink", want)
    rest_pages = -(-len(want) // 1000)
    weight = SPOT.weights["historicalTrades"]
    results["rest_at_budget_s"] = round(rest_pages * weight / BUDGET * 60)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=int, default=2)
    p.add_argument("--rate", type=float, default=2.0, help="trades a second in those days")
    p.add_argument("--flink", action="store_true", help="also through the job (a minute or more)")
    p.add_argument("--output", type=Path, default=REPO / "bench" / "history.json")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(args.days, args.rate, Path(tmp), args.flink)
    trades = results["archive"]["trades"]
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    a, r = results["archive"], results["rest"]
    print(f"\n{trades:,} trades ({args.days} days at {args.rate:g}/s):")
    print("| way | trades/s | weight | requests | note |")
    print("|---|---|---|---|---|")
    print(
        f"| archive | {a['trades_per_s']:,} | {a['weight']} | {a['rest_requests']} | "
        f"{a['archive_bytes']:,} bytes downloaded |"
    )
    print(
        f"| REST only | {r['trades_per_s']:,} | {r['weight']:,} | {r['rest_requests']} | "
        f"at {BUDGET} weight/min: {results['rest_at_budget_s']} s |"
    )
    if "flink" in results:
        f = results["flink"]
        print(
            f"| archive, through the job | {f['trades_per_s']:,} | | | "
            f"job {f['job_seconds']} s in all |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
