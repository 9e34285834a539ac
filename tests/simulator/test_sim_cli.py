"""``python -m connectors.simulator`` as a user runs it."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket

from connectors.simulator import load_events

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def running_cli(*arguments: str) -> Iterator[list[str]]:
    """The simulator's CLI, its lines up to "Ctrl-C to stop"; stopped with SIGINT (which must end
    it with 0) when the block ends, killed if the block failed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors.simulator", "--port", "0", *arguments],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        while not (line := process.stdout.readline()).startswith("Ctrl-C"):
            assert line, f"the simulator ended early: {process.stderr.read()}"
            lines.append(line)
        yield lines
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=5)


def first_message(url: str) -> str:
    ws = websocket.create_connection(url, timeout=5)
    try:
        return ws.recv()
    finally:
        ws.close()


def test_the_cli_replays_the_demo_captures_by_default_until_interrupted(demo_captures):
    with running_cli("--speed", "0") as lines:
        url = next(line.split()[-1] for line in lines if line.startswith("combined:"))
        assert url.endswith("/stream?streams=btcusdt@trade/ethusdt@trade")
        first = load_events(demo_captures)[0]
        assert first_message(url).encode() == b'{"stream":"%s","data":%s}' % (
            first.stream.encode(),
            first.raw,
        )


def test_the_cli_runs_a_whole_market(http_get):
    with running_cli(
        "--market-symbols", "1500", "--rate", "2000", "--seed", "3", "--live"
    ) as lines:
        assert lines[0].startswith("streams: btcusdt@trade, ethusdt@trade, ")
        assert lines[0].endswith(" and 1495 more\n")
        url = next(line.split()[-1] for line in lines if line.startswith("symbols:"))
        status, _, info = http_get(url)
        assert status == 200 and len(info["symbols"]) == 1500
        assert {s["status"] for s in info["symbols"]} == {"TRADING"}
        combined = next(line.split()[-1] for line in lines if line.startswith("combined:"))
        assert first_message(combined).startswith('{"stream":"')


def test_the_cli_as_usdm_futures(http_get):
    with running_cli("--venue", "usdm", "--generate", "btcusdt", "--live") as lines:
        combined = next(line.split()[-1] for line in lines if line.startswith("combined:"))
        assert combined.endswith("/market/stream?streams=btcusdt@aggTrade")
        assert '"nq":' in first_message(combined)
        history = next(line.split()[-1] for line in lines if line.startswith("REST:"))
        assert "/fapi/v1/aggTrades?symbol=BTCUSDT" in history
        status, headers, _ = http_get(history)
        assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "20"


@pytest.mark.parametrize(
    "arguments, option",
    [
        (["--market-symbols", "10", "--generate", "btcusdt"], "--market-symbols"),
        (["--market-symbols", "0"], "--market-symbols"),
        (["--venue", "usdm"], "--venue"),
        (["--venue", "usdm", "--capture", "x.gz"], "--capture"),
    ],
)
def test_the_cli_refuses_a_market_it_cannot_make(arguments, option):
    result = subprocess.run(
        [sys.executable, "-m", "connectors.simulator", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and option in result.stderr
