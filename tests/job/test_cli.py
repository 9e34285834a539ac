"""job/main.py's command line: parsed in-process, and one run of the script as a user types it;
bad configuration ends the command at once with one line naming the option."""

from __future__ import annotations

import subprocess
import sys

import pytest

from connectors.binance.history import DEFAULT_REST_URL
from helpers.flinkjob import MAIN, REPO
from job.main import parse_args

# 1,500 symbols of Binance's longest name length (1000SATSFDUSD: 13 characters)
MARKET = ",".join(f"s{i:04d}xxxxusdt" for i in range(1500))


def test_help_lists_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit) as done:
        parse_args(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--symbols",
        "--stream",
        "--ws-url",
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
    assert (
        "(default: 100000)" in text and f"(default: {DEFAULT_REST_URL})" in text
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
        (["--symbols", MARKET, "--streams-per-connection", "1024"], "--streams-per-connection"),
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
