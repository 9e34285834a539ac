"""``--since`` three days back: the job reads the complete days from the simulator's archive (one
download cut short and resumed, one day corrupt and taken from REST instead), the rest of the gap
from REST, then the live stream; every trade is written once and the bars are exact across both
seams. ``--until`` makes the same history a bounded job that ends by itself. On USD-M futures
(``--market usdm``), whose REST serves asks by time for the last 48 hours only, the days further
back come from the futures archive's aggTrades day files.

The simulated symbols traded for three and a half days before the simulator started, a trade every
20 s (``tests/connectors/test_archive.py``), then live at 20 a second.
"""

from __future__ import annotations

import ast
import datetime
import re

import pytest

from connectors.binance.archive import day_start_ms
from connectors.simulator import GeneratedFeed, Market
from helpers.flinkjob import (
    SYMBOLS,
    assert_every_published_trade_once,
    assert_usdm_outputs,
    expected_bars,
    finish_job,
    flink_log,
    job_command,
    normalized_bars,
    read_output,
    start_job,
)

pytestmark = pytest.mark.slow

DAY = datetime.timedelta(days=1)


def past_market() -> Market:
    feeds = [
        GeneratedFeed(s, rate=20, seed=i, past_seconds=3.5 * 86_400, past_rate=0.05)
        for i, s in enumerate(SYMBOLS)
    ]
    return Market(feeds, pause_without_subscribers=False, history_limit=None)


def today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def history_options(sim, tmp_path) -> list[str]:
    """A cache of the test's own (job_command reads the simulator's archive)."""
    return ["--archive-cache", str(tmp_path / "cache")]


def final_feed_stats(log: str) -> dict:
    """The feed's counters as the bounded run's end logs them."""
    found = re.findall(r"bounded run finished, feed stats (\{.*?\})", log)
    assert found, "no final feed stats in the log"
    return ast.literal_eval(found[-1])


def published_between(sim, start_ms: int, end_ms: int) -> int:
    return sum(
        1 for s in SYMBOLS for e in sim.market.published(s).events if start_ms <= e["T"] < end_ms
    )


def test_since_three_days_back_reads_the_archive_then_rest_then_live(simulator, tmp_path):
    sim = simulator(past_market())
    since = day_start_ms(today() - 3 * DAY)
    sim.faults.cut_archive_downloads(after_bytes=40_000)
    sim.faults.corrupt_archive_day("BTCUSDT", today() - 2 * DAY)
    out, logs = tmp_path / "out", tmp_path / "log"
    stdout = tmp_path / "stdout.txt"
    cmd = job_command(sim, out, tmp_path, "--since", str(since), *history_options(sim, tmp_path))
    console = finish_job(start_job(cmd, logs, stdout), stdout)

    first_ids = {
        s: next(e["t"] for e in sim.market.published(s).events if e["T"] >= since) for s in SYMBOLS
    }
    trades = assert_every_published_trade_once(read_output(out, "trades"), sim, first_ids)
    assert normalized_bars(read_output(out, "bars")) == expected_bars(trades)
    assert read_output(out, "dead-letters") == []  # no late trade, no unfilled gap
    stats = final_feed_stats(flink_log(logs))
    archived = published_between(sim, since, day_start_ms(today())) - sum(
        1
        for e in sim.market.published("BTCUSDT").events
        if day_start_ms(today() - 2 * DAY) <= e["T"] < day_start_ms(today() - DAY)
    )
    # five day files of six; REST's last page of the corrupt day may reach into the next day
    assert archived - 1000 < stats["archive_trades"] <= archived
    assert stats["archive_days_fetched"] == 5 and stats["archive_fallbacks"] == 1
    assert stats["archive_corrupt"] == 2 and stats["archive_resumed"] == 1
    written_today = sum(1 for t in trades if t["T"] >= day_start_ms(today()))
    assert stats["backfilled"] - stats["archive_trades"] >= 4320 // 2  # the corrupt day, by REST
    assert stats["records"] > 0 and stats["records"] < written_today  # live, after REST's part
    assert "history replayed" in console and "archive: BTCUSDT" in console


def test_until_is_a_bounded_backfill_job_that_ends_by_itself(simulator, tmp_path):
    sim = simulator(past_market())
    since = day_start_ms(today() - 3 * DAY)
    until = day_start_ms(today() - DAY) + 12 * 3_600_000 + 30_000  # in the middle of a minute
    out, logs = tmp_path / "out", tmp_path / "log"
    stdout = tmp_path / "stdout.txt"
    cmd = job_command(sim, out, tmp_path, "--since", str(since), *history_options(sim, tmp_path))
    at = cmd.index("--duration")
    cmd[at : at + 2] = ["--until", str(until)]
    console = finish_job(start_job(cmd, logs, stdout), stdout)

    trades = [e for s in SYMBOLS for e in sim.market.published(s).events if since <= e["T"] < until]
    written = read_output(out, "trades")
    assert sorted((w["symbol"], w["trade_id"]) for w in written) == sorted(
        (e["s"], e["t"]) for e in trades
    )
    assert normalized_bars(read_output(out, "bars")) == expected_bars(trades)  # the last one too
    assert sim.connections == []  # no live part
    assert "history replayed up to --until" in console and "job finished" in console


def test_usdm_since_past_rests_48_hours_reads_the_futures_archive_then_rest_then_live(
    simulator, tmp_path
):
    """USD-M's REST serves asks by time for the last 48 hours only: the days further back come
    from the archive's aggTrades day files (``data/futures/um/daily/aggTrades/``), whole, even the
    half hour wanted of --since's day, then ``/fapi/v1/aggTrades`` by id, then the live stream."""
    feeds = [
        GeneratedFeed(
            s,
            rate=20,
            seed=i,
            kind="aggTrade",
            venue="usdm",
            past_seconds=3.5 * 86_400,
            past_rate=0.05,
        )
        for i, s in enumerate(SYMBOLS)
    ]
    sim = simulator(
        Market(feeds, pause_without_subscribers=False, history_limit=None, venue="usdm")
    )
    since = day_start_ms(today() - 3 * DAY) + 23 * 3_600_000 + 1_800_000
    out, logs = tmp_path / "out", tmp_path / "log"
    stdout = tmp_path / "stdout.txt"
    cmd = job_command(
        sim, out, tmp_path, "--since", str(since), *history_options(sim, tmp_path), market="usdm"
    )
    finish_job(start_job(cmd, logs, stdout), stdout)

    published = {s: sim.market.published(s, "aggTrade").events for s in SYMBOLS}
    first_ids = {s: next(e["a"] for e in published[s] if e["T"] >= since) for s in SYMBOLS}
    assert_usdm_outputs(out, sim, first_ids)
    assert read_output(out, "dead-letters") == []
    stats = final_feed_stats(flink_log(logs))
    archived = sum(
        1 for s in SYMBOLS for e in published[s] if since <= e["T"] < day_start_ms(today())
    )
    assert stats["archive_trades"] == archived
    assert stats["archive_days_fetched"] == 6 and stats["archive_fallbacks"] == 0
    assert {p.rsplit("/", 2)[0] for p, _, _ in sim.archive_requests} == {
        "/data/futures/um/daily/aggTrades"
    }
    rest = [(path, status) for path, status, _ in sim.rest_requests]
    assert rest and all(p.startswith("/fapi/v1/aggTrades?") and s == 200 for p, s in rest)
    assert sim.connections  # and then live
