"""``--symbols all``: the symbols that trade, read from the (simulated) exchange's exchangeInfo at
start, filtered as asked, planned into connections Binance accepts; a failure is one line."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time

import pytest

from connectors.simulator import whole_market
from connectors.simulator.symbols import split_symbol
from helpers.flinkjob import (
    MAIN,
    REPO,
    assert_every_published_trade_once,
    expected_bars,
    finish_job,
    flink_log,
    job_command,
    normalized_bars,
    read_output,
    start_job,
)
from job.main import parse_args, start_demo
from job.main import whole_market as resolve_whole_market


def test_all_symbols_come_from_exchange_info_filtered_and_planned(simulator):
    sim = simulator(whole_market(1500, rate=50))
    sim.faults.halt_symbol("ETHUSDT")
    args = parse_args(["--symbols", "all", "--rest-url", sim.http_url])
    resolve_whole_market(args)
    assert len(args.symbol_list) == 1499 and "ethusdt" not in args.symbol_list
    assert [len(g) for g in args.shard_plan] == [188] * 3 + [187] * 5
    assert sim.log.statuses[200] == 1 and sim.log.statuses[429] == 0

    filters = ["--quote", "usdt,fdusd", "--exclude", "btcusdt"]
    args = parse_args(["--symbols", "all", *filters, "--rest-url", sim.http_url])
    resolve_whole_market(args)
    quoted = {split_symbol(s.upper())[1] for s in args.symbol_list}
    assert quoted <= {"USDT", "FDUSD"} and "USDT" in quoted
    assert "btcusdt" not in args.symbol_list and "ethusdt" not in args.symbol_list


def test_usdm_all_symbols_are_its_perpetuals_that_trade(simulator, caplog):
    """USD-M's exchangeInfo takes no filter: the job keeps the TRADING perpetuals, not the
    quarterly contracts listed beside them (BTCUSDT_YYMMDD), nor a halted one, nor one whose name
    no stream name here can carry (with a warning naming it), and asks /fapi/v1/exchangeInfo
    (weight 1) once."""
    sim = simulator(whole_market(300, rate=50, kind="aggTrade", venue="usdm"))
    sim.faults.halt_symbol("SOLUSDT")
    args = parse_args(["--market", "usdm", "--symbols", "all", "--rest-url", sim.http_url])
    resolve_whole_market(args)
    assert len(args.symbol_list) == 299 and "solusdt" not in args.symbol_list
    assert args.symbol_list[:2] == ["btcusdt", "ethusdt"] and args.stream == "aggTrade"
    assert all(s.isascii() and s.isalnum() for s in args.symbol_list)
    assert "1 usdm symbol left out, not ASCII letters and digits: 币安人生USDT" in caplog.text
    assert [(path.split("?")[0], status) for path, status, _ in sim.rest_requests] == [
        ("/fapi/v1/exchangeInfo", 200)
    ]

    demo = parse_args(["--demo", "--market", "usdm", "--symbols", "all"])
    sim = start_demo(demo)
    try:
        resolve_whole_market(demo, sim.http_url)
    finally:
        sim.stop()
    assert len(demo.symbol_list) == 1500 and sim.market.venue.name == "usdm"


def test_the_demo_of_all_symbols_is_a_generated_whole_market():
    args = parse_args(["--demo", "--symbols", "all"])
    sim = start_demo(args)
    try:
        resolve_whole_market(args, sim.http_url)
    finally:
        sim.stop()
    assert len(args.symbol_list) == 1500 and len(args.shard_plan) == 8
    assert args.symbol_list[:2] == ["btcusdt", "ethusdt"]


def test_filters_without_all_and_an_unreachable_exchange_are_one_line(capsys):
    with pytest.raises(SystemExit) as refused:
        parse_args(["--symbols", "btcusdt", "--quote", "USDT"])
    assert refused.value.code == 2 and "--quote goes with --symbols all" in capsys.readouterr().err
    run = subprocess.run(
        [sys.executable, str(MAIN), "--symbols", "all", "--rest-url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("job/main.py: error: --symbols all: GET http://127.0.0.1:9/api/v3/")
    assert "submitting" not in run.stdout + run.stderr


@pytest.mark.slow
def test_a_listing_joins_the_running_job_complete_and_a_halt_stops_nothing(simulator, tmp_path):
    """``--symbols all`` follows exchangeInfo while it runs: a symbol listed ahead of its trading
    (shown in BREAK, as Binance announces a listing) joins at the next poll and is written
    complete from its first trade, with no trade fetched from REST; a symbol that halts mid-run
    stops no one's bars; nothing is late."""
    sim = simulator(
        whole_market(40, rate=200, pause_without_subscribers=False, seed=17, history_seconds=600)
    )
    out, logs, stdout = tmp_path / "out", tmp_path / "log", tmp_path / "stdout.txt"
    cmd = job_command(
        sim,
        out,
        tmp_path,
        "--listing-refresh",
        "2",
        "--checkpoint-interval",
        "2s",
        duration=35,
        symbols="all",
    )
    proc = start_job(cmd, logs, stdout)
    try:
        sim.wait_for(lambda: len(sim.connections) >= 1, timeout=300)
        time.sleep(5)
        sim.faults.list_symbol("NEWUSDT", rate=20, status="BREAK")
        sim.faults.halt_symbol("ETHUSDT")
        time.sleep(8)  # a few polls: it joins while its trading has not opened
        sim.faults.resume_symbol("NEWUSDT")
    finally:
        finish_job(proc, stdout)

    symbols = sorted(sim.market.symbols)
    trades = assert_every_published_trade_once(read_output(out, "trades"), sim, symbols=symbols)
    listed = [t["t"] for t in trades if t["s"] == "NEWUSDT"]
    assert listed[:1] == [1] and len(listed) > 100  # from its first trade
    assert normalized_bars(read_output(out, "bars")) == expected_bars(trades)
    assert read_output(out, "dead-letters") == []  # nothing late
    # where it starts, looked up once (nothing since the poll before: its newest id, none);
    # no trade needed fetching
    lookups = [p.split("?")[0] for p, _, _ in sim.rest_requests if "exchangeInfo" not in p]
    assert lookups == ["/api/v3/aggTrades", "/api/v3/ticker/24hr"]
    log = flink_log(logs)
    assert "listings: 1 symbol joined (newusdt)" in log
    assert sim.log.close_codes[1008] == 0


@pytest.mark.slow
@pytest.mark.scale
def test_the_whole_market_through_a_reset_loses_nothing_and_makes_nothing_late(simulator, tmp_path):
    """1,500 symbols at 5,000 trades/s (Zipf: a few busy, a long quiet tail) for 2.5 minutes, the
    default plan (8 connections), one connection reset mid-run and refused for 2 s while the
    market trades on, a symbol listed (announced ahead, then trading) and another halted
    meanwhile: every published
    trade written once, the listed symbol's from its first, the bars exact, no late trade, no
    unfilled gap, and nothing in the exchange's log that Binance would have refused or banned.
    (That a reset shard makes no late trade whatever the timing is tests/flink/test_gap_free.py's
    to show: here the catch-up is quick enough that, measured, it made none even without the
    watermark hold.)"""
    # the history keeps the whole run, so that every written trade can be checked against it
    sim = simulator(
        whole_market(1500, rate=5000, pause_without_subscribers=False, seed=11, history_seconds=600)
    )
    out, logs, stdout = tmp_path / "out", tmp_path / "log", tmp_path / "stdout.txt"
    cmd = job_command(
        sim,
        out,
        tmp_path,
        # a reset at 5,000 trades/s leaves most of the connection's 188 symbols with a gap: 25
        # weight each (the redundancy issue takes REST out of this); Binance allows 6,000 a minute
        "--rest-weight-budget",
        "5000",
        "--listing-refresh",
        "5",
        "--checkpoint-interval",
        "2s",
        duration=150,  # a few minutes of the market, the reset 15 s in
        symbols="all",
    )
    proc = start_job(cmd, logs, stdout)
    try:
        sim.wait_for(lambda: len(sim.connections) >= 8, timeout=300)
        sim.faults.list_symbol("NEWUSDT", rate=20, status="BREAK")
        sim.faults.halt_symbol("SOLUSDT")
        time.sleep(15)
        sim.faults.resume_symbol("NEWUSDT")  # joined meanwhile: its trading opens
        sim.faults.refuse_connections()
        sim.faults.drop_after(0, reset=True)  # one of the eight
        time.sleep(2)
        sim.faults.accept_connections()
    finally:
        finish_job(proc, stdout)

    symbols = sorted(sim.market.symbols)
    trades = assert_every_published_trade_once(read_output(out, "trades"), sim, symbols=symbols)
    assert len(trades) > 600_000
    listed = [t["t"] for t in trades if t["s"] == "NEWUSDT"]
    assert listed[:1] == [1] and len(listed) > 200
    assert normalized_bars(read_output(out, "bars")) == expected_bars(trades)
    assert read_output(out, "dead-letters") == []  # no late trade, no unfilled gap
    assert sim.log.statuses[414] == sim.log.statuses[429] == sim.log.statuses[418] == 0
    assert sim.log.close_codes[1008] == 0
    log = flink_log(logs)
    assert len(re.findall(r"\(18[78] symbols@trade \(\w+\.\.\w+\)\) lost after", log)) == 1


@pytest.mark.slow
@pytest.mark.scale
def test_the_whole_market_on_two_lines_through_resets_asks_no_history(simulator, tmp_path):
    """1,500 symbols at 5,000 trades/s on two lines (``--redundancy 2``: 16 connections to two
    endpoints, the second 100 ms behind), a connection reset every 12 s on an endpoint picked at
    random, that endpoint then refusing upgrades for 2 s: every published trade written once,
    the bars exact, nothing late, and not one request to the REST history (only exchangeInfo, at
    start, for --symbols all)."""
    sim = simulator(
        whole_market(
            1500, rate=5000, pause_without_subscribers=False, seed=13, history_seconds=600
        ),
        endpoints=2,
    )
    sim.endpoints[1].faults.delay_market(0.1)
    out, logs, stdout = tmp_path / "out", tmp_path / "log", tmp_path / "stdout.txt"
    cmd = job_command(
        sim, out, tmp_path, "--checkpoint-interval", "2s", duration=50, symbols="all", lines=2
    )
    proc = start_job(cmd, logs, stdout)
    pick = random.Random(13)
    try:
        sim.wait_for(lambda: all(len(e.connections) >= 8 for e in sim.endpoints), timeout=300)
        for _ in range(3):
            time.sleep(10)
            faults = pick.choice(sim.endpoints).faults
            faults.reject_handshake(503, retry_after=None, times=1_000)
            faults.drop_after(0, reset=True)  # the longest open of its eight
            time.sleep(2)
            faults.reject_handshake(503, times=0)
    finally:
        finish_job(proc, stdout)

    symbols = sorted(sim.market.symbols)
    trades = assert_every_published_trade_once(read_output(out, "trades"), sim, symbols=symbols)
    assert len(trades) > 150_000
    assert normalized_bars(read_output(out, "bars")) == expected_bars(trades)
    assert read_output(out, "dead-letters") == []  # no late trade, no unfilled gap
    assert [path for path, _, _ in sim.rest_requests if "exchangeInfo" not in path] == []
    for endpoint in sim.endpoints:
        assert endpoint.log.statuses[414] == endpoint.log.statuses[429] == 0
        assert endpoint.log.close_codes[1008] == 0
    log = flink_log(logs)
    assert len(re.findall(r"line [12]/2: running on .* only until it is back", log)) == 3
