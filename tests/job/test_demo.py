"""`python job/main.py --demo`: no network, the embedded simulator, bars on stdout."""
from __future__ import annotations

import subprocess
import sys

import orjson

from flinkjob import MAIN, REPO, job_env

BAR_KEYS = ["symbol", "window_start", "window_end", "open", "high", "low", "close", "volume",
            "quote_volume", "vwap", "trade_count", "first_trade_id", "last_trade_id"]


def test_demo_prints_bars(tmp_path):
    cmd = [sys.executable, str(MAIN), "--demo", "--demo-speed", "60", "--duration", "10",
           "--checkpoint-dir", (tmp_path / "ckpt").as_uri()]
    run = subprocess.run(cmd, env=job_env(tmp_path / "log"), cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    bars = [orjson.loads(line) for line in run.stdout.splitlines() if line.startswith('{"symbol"')]
    assert {b["symbol"] for b in bars} == {"BTCUSDT", "ETHUSDT"}
    assert all(list(b) == BAR_KEYS for b in bars)
    # the sample's first complete minute, 2024-08-09 00:01 UTC, on its first replay pass
    first = [b for b in bars if b["window_start"] == 1723161660000]
    assert len(first) == 2 and all(b["trade_count"] > 0 for b in first)
