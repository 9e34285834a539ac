"""``python -m connectors.simulator`` as a user runs it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import websocket

from connectors.simulator import load_events

REPO = Path(__file__).resolve().parents[2]


def test_the_cli_replays_the_demo_captures_by_default_until_interrupted(demo_captures):
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors.simulator", "--port", "0", "--speed", "0"],
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
        url = next(line.split()[-1] for line in lines if line.startswith("combined:"))
        assert url.endswith("/stream?streams=btcusdt@trade/ethusdt@trade")
        ws = websocket.create_connection(url, timeout=5)
        try:
            first = load_events(demo_captures)[0]
            assert ws.recv().encode() == b'{"stream":"%s","data":%s}' % (
                first.stream.encode(),
                first.raw,
            )
        finally:
            ws.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=5)
