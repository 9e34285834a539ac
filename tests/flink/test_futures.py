"""The whole job on USD-M futures (``--market usdm``) against the simulated futures exchange: its
streams under ``/market``, its aggregate trades in the futures form (``nq``, ``st``, no ``M``), its
history at ``/fapi/v1/aggTrades`` (weight 20), its 10 messages a second. A connection reset while
the exchange trades on is filled from that history; ``--since`` starts in the past through its
time search; every aggregate trade is written once, the bars are exact, a malformed frame is a
dead letter, every line says it is USD-M's, and the metrics count the gap's backfill under the
job's usdm name."""

from __future__ import annotations

import re
import time

import orjson
import pytest

from bench.cluster import get_text, wait_until
from connectors.simulator import Market
from helpers.flinkjob import (
    assert_usdm_outputs,
    finish_job,
    flink_log,
    job_command,
    read_output,
    start_job,
)

pytestmark = pytest.mark.slow

SYMBOLS = ("BTCUSDT", "ETHUSDT")
RATE = 40  # aggregate trades a second per symbol, about 80 trades
# Metrics pushed every 2 s, not 10, so that the run can be short.
OPTIONS = ("--set", "metrics.reporter.prom.interval=2 s")
BACKFILLED = re.compile(r'binance_source_feed_backfilled\{[^}]*job_name="binance.usdm[^}]*\} [1-9]')


def test_usdm_reset_is_filled_from_fapi_agg_trades_and_every_line_says_usdm(simulator, tmp_path):
    sim = simulator(
        Market.generated(
            SYMBOLS,
            rate=RATE,
            seed=18,
            kind="aggTrade",
            venue="usdm",
            pause_without_subscribers=False,
        )
    )
    sim.wait_for(lambda: all(len(sim.market.published(s, "aggTrade").ids) > 40 for s in SYMBOLS))
    since = min(sim.market.published(s, "aggTrade").times[0] for s in SYMBOLS)
    first_ids = {s: sim.market.published(s, "aggTrade").ids[0] for s in SYMBOLS}
    out, logs, stdout = tmp_path / "out", tmp_path / "log", tmp_path / "stdout.txt"
    proc = start_job(
        job_command(
            sim, out, tmp_path, *OPTIONS, "--since", str(since), duration=26, market="usdm"
        ),
        logs,
        stdout,
    )
    try:
        sim.wait_for(lambda: len(sim.connections) >= 1, timeout=300)
        time.sleep(4)
        now = int(time.time() * 1000)
        negative_price = {"e": "aggTrade", "E": now, "a": 1, "s": "BTCUSDT", "p": "-1.00"}
        negative_price |= {"q": "0.001", "nq": "0.001", "f": 1, "l": 1, "T": now, "m": True}
        sim.faults.send_frames(
            [orjson.dumps({"stream": "btcusdt@aggTrade", "data": negative_price})]
        )
        time.sleep(4)
        sim.faults.refuse_connections()
        sim.faults.drop_after(0, reset=True)
        time.sleep(3)
        sim.faults.accept_connections()
        (metrics,) = re.findall(r"metrics for Prometheus at (\S+)", stdout.read_text())
        wait_until(lambda: BACKFILLED.search(get_text(metrics)), "backfill counted", timeout=60)
    finally:
        finish_job(proc, stdout)

    assert_usdm_outputs(out, sim, first_ids)
    # the one malformed frame; no late trade, no unfilled gap
    letters = read_output(out, "dead-letters")
    assert [(d["reason"], d["market"], orjson.loads(d["raw"])["data"]) for d in letters] == [
        ("impossible_value", "usdm", negative_price)
    ]

    # two connections, both where USD-M serves trade streams; the gap between them and the
    # trades before the job started both came from the futures history
    assert [c.path.split("?")[0] for c in sim.connections] == ["/market/stream"] * 2
    history = [(path, status) for path, status, _ in sim.rest_requests]
    assert history and all(p.startswith("/fapi/v1/aggTrades?") and s == 200 for p, s in history)
    assert any("startTime=" in path for path, _ in history)  # --since: a time became an id
    assert any("fromId=" in path for path, _ in history)
    log = flink_log(logs)
    assert len(re.findall(r"connection to ws://\S+ \(btcusdt,ethusdt@aggTrade\) lost", log)) == 1
    assert "catching up after" in log
