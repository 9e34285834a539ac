"""``--symbols all``: the symbols that trade, read from the (simulated) exchange's exchangeInfo at
start, filtered as asked, planned into connections Binance accepts; a failure is one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from connectors.simulator import whole_market
from connectors.simulator.symbols import split_symbol
from helpers.flinkjob import MAIN, REPO
from job.main import parse_args
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
