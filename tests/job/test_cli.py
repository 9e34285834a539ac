"""job/main.py's command line: parsed in-process, and one run of the script as a user types it;
bad configuration ends the command at once with one line naming the option."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from connectors.binance.markets import SPOT, USDM
from helpers.flinkjob import MAIN, REPO
from job.main import parse_args

# 1,500 symbols of Binance's longest name length (1000SATSFDUSD: 13 characters)
MARKET = ",".join(f"s{i:04d}xxxxusdt" for i in range(1500))
THREE_DAYS_AGO = str(round(time.time() * 1000) - 3 * 86_400_000)


def test_help_lists_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit) as done:
        parse_args(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--symbols",
        "--stream",
        "--ws-url",
        "--redundancy",
        "--line-lag-limit",
        "--rest-url",
        "--since",
        "--no-backfill",
        "--backfill-timeout",
        "--rest-weight-budget",
        "--ca-file",
        "--out",
        "--duration",
        "--demo",
        "--parallelism",
        "--checkpoint-interval",
        "--buffer-size",
        "--connect-timeout",
        "--silence-timeout",
        "--max-reconnect-attempts",
        "--backoff-initial",
        "--backoff-max",
        "--python-mode",
        "--bundle-time",
        "--fresh",
        "--from-checkpoint",
        "--out-of-orderness",
        "--shards",
        "--drain-interval",
        "--max-batch",
    ):
        assert option in text, option
    words = " ".join(text.split())  # as argparse wrapped them
    assert (
        "(default: 100000)" in words and f"(default: {SPOT.rest_url})" in words
    )  # from the config's own fields


def test_options_reach_the_settings():
    args = parse_args(
        [
            "--symbols",
            " BTCUSDT,ethusdt,btcusdt ",
            "--buffer-size",
            "5000",
            "--overflow",
            "drop_oldest",
            "--backfill-timeout",
            "30",
            "--rest-url",
            "http://127.0.0.1:9",
            "--since",
            "2024-08-09T00:00:00Z",
            "--max-batch",
            "50",
        ]
    )
    assert args.symbol_list == ["btcusdt", "ethusdt"]
    assert (args.bridge.buffer_size, args.bridge.overflow, args.bridge.backfill_timeout) == (
        5000,
        "drop_oldest",
        30.0,
    )
    assert args.rest.rest_url == "http://127.0.0.1:9" and args.since == 1723161600000
    assert (
        args.drain.max_batch == 50
        and parse_args(["--since", "1723161600000"]).since == 1723161600000
    )
    assert parse_args(["--no-backfill"]).rest is None


def test_redundant_lines_default_to_both_binance_hosts():
    assert parse_args([]).ws_url == ["wss://stream.binance.com:9443"]
    args = parse_args(["--redundancy", "2", "--line-lag-limit", "0.5"])
    assert args.ws_url == ["wss://stream.binance.com:9443", "wss://data-stream.binance.vision"]
    assert args.bridge.line_lag_limit == 0.5
    given = parse_args(["--redundancy", "3", "--ws-url", "ws://a.example, ws://b.example"])
    assert given.ws_url == ["ws://a.example", "ws://b.example"]


def test_the_market_sets_the_defaults_the_options_left_out():
    spot, usdm = parse_args([]), parse_args(["--market", "usdm"])
    assert (spot.stream, spot.ws_url, spot.rest.rest_url, spot.rest.rest_weight_budget) == (
        "trade",
        ["wss://stream.binance.com:9443"],
        "https://api.binance.com",
        3000,
    )
    assert (usdm.stream, usdm.ws_url, usdm.rest.rest_url, usdm.rest.rest_weight_budget) == (
        "aggTrade",
        ["wss://fstream.binance.com/market"],
        "https://fapi.binance.com",
        1200,
    )
    # USD-M's server pings every 3 minutes, spot's every 20 s: neither connection is silent longer
    assert (spot.bridge.silence_timeout, usdm.bridge.silence_timeout) == (45.0, 365.0)
    recently = str(int(THREE_DAYS_AGO) + 36 * 3_600_000)
    given = parse_args(
        [
            *("--market", "usdm", "--rest-weight-budget", "600", "--silence-timeout", "30"),
            *("--ws-url", "ws://127.0.0.1:9/market/", "--since", recently),
        ]
    )
    assert (given.rest.rest_weight_budget, given.bridge.silence_timeout, given.ws_url) == (
        600,
        30.0,
        ["ws://127.0.0.1:9/market/"],
    )
    assert USDM.ws_url.endswith(USDM.ws_route) and not SPOT.ws_route


def test_a_whole_market_is_planned_into_connections_binance_accepts():
    """1,500 symbols: by default 8 connections of 187-188 streams; --shards asks for more, never
    for fewer than the streams per connection allow."""
    assert len(symbols := MARKET.split(",")) == 1500
    plan = parse_args(["--symbols", MARKET]).shard_plan
    assert [len(group) for group in plan] == [188] * 4 + [187] * 4
    assert sorted(s for group in plan for s in group) == sorted(symbols)
    assert len(parse_args(["--symbols", MARKET, "--shards", "2"]).shard_plan) == 8
    assert len(parse_args(["--symbols", MARKET, "--shards", "12"]).shard_plan) == 12
    assert len(parse_args(["--symbols", MARKET, "--streams-per-connection", "300"]).shard_plan) == 5


@pytest.mark.parametrize(
    "argv, option",
    [
        (["--ws-url", "http://127.0.0.1:1"], "--ws-url"),
        (["--ws-url", "ws://"], "--ws-url"),
        (["--rest-url", "ws://127.0.0.1:1"], "--rest-url"),
        (["--config", "/nonexistent/config.yaml"], "--config"),
        (["--shards", "0"], "--shards"),
        (["--parallelism", "0"], "--parallelism"),
        (["--buffer-size", "0"], "--buffer-size"),
        (["--max-reconnect-attempts", "0"], "--max-reconnect-attempts"),
        (["--connect-timeout", "0"], "--connect-timeout"),
        (["--max-batch", "0"], "--max-batch"),
        (["--stream", "depth"], "--stream"),
        (["--overflow", "sometimes"], "--overflow"),
        (["--python-mode", "fiber"], "--python-mode"),
        (["--duration", "0"], "--duration"),
        (["--symbols", ","], "--symbols"),
        (["--symbols", "btc-usdt"], "--symbols"),
        (["--since", "yesterday"], "--since"),
        (["--since", "2999-01-01"], "--since"),
        (["--since", "1723161600000", "--no-backfill"], "--since"),
        (["--set", "no-equals-sign"], "--set"),
        (["--streams-per-connection", "1025"], "--streams-per-connection"),
        (["--ws-url", "ws://a.example,ws://b.example"], "--ws-url"),  # two endpoints, one line
        (["--ws-url", "ws://a.example,http://b.example", "--redundancy", "2"], "--ws-url"),
        (["--redundancy", "0"], "--redundancy"),
        (["--line-lag-limit", "0"], "--line-lag-limit"),
        (["--line-lag-limit", "2"], "--line-lag-limit"),  # the default lateness bound: 2,000 ms
        (["--symbols", MARKET, "--streams-per-connection", "1024"], "--streams-per-connection"),
        (["--market", "coinm"], "--market"),
        (["--market", "usdm", "--stream", "trade"], "--stream"),
        (["--market", "usdm", "--ws-url", "wss://fstream.binance.com"], "--ws-url"),
        (["--market", "usdm", "--ws-url", "wss://fstream.binance.com/public"], "--ws-url"),
        (["--market", "usdm", "--since", THREE_DAYS_AGO, "--no-archive"], "--since"),
        (["--from-checkpoint", "/nonexistent/chk-1"], "--from-checkpoint"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_option(argv, option, capsys):
    with pytest.raises(SystemExit) as refused:
        parse_args(argv)
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and option in err, err


def test_the_script_refuses_before_starting_flink():
    run = subprocess.run(
        [sys.executable, str(MAIN), "--ws-url", "http://127.0.0.1:1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        "job/main.py: error: argument --ws-url: URL 'http://127.0.0.1:1' "
        "must be ws://host or wss://host (see --help)"
    )
    assert "submitting" not in run.stdout + run.stderr
