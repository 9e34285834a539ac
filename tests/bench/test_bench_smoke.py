"""``bench/run.py --smoke`` runs every stage to the end and writes every result key (no timed
assertions: the figures depend on the machine). Takes about four minutes: it starts Flink six
times, two of them as standalone clusters. Its figures pass the same validity checks as any plan's
(bench/validity.py: inputs sized to outlast the windows and checked to have lasted, windows filled,
warm-ups ended), else the run exits with 2 and the test fails."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.scale]

REPO = Path(__file__).resolve().parents[2]

KEYS = [
    "load_server_msgs_per_s",
    *(
        f"{client}_{metric}"
        for client in ("bridge", "seed_style", "websockets", "picows")
        for metric in ("msgs_per_s", "cpu_s_per_million")
    ),
    "bridge_vs_seed_style",
    "bridge_backfill_msgs_per_s",
    "bridge_backfill_vs_bridge",
    "flink_trades_per_s",
    "flink_filesource_trades_per_s",
    "flink_vs_filesource",
    "flink_python_operators",
    "flink_scaleout_1tm_trades_per_s",
    "flink_scaleout_2tm_trades_per_s",
    "flink_scaleout_2tm_ratio",
    *(
        f"{name}_{q}_{rate}"
        for name in ("latency_ms", "source_latency_ms")
        for q in ("p50", "p95", "p99")
        for rate in ("1k", "10k")
    ),
    "idle_cpu_pct",
    *(f"lines_{n}_{key}" for n in (1, 2) for key in ("cpu_s_per_million", "latency_ms_p99")),
    "lines_2_cpu_ratio",
    "wholemarket_p99_ms_5k",
    "wholemarket_p99_ms_20k",
    "wholemarket_peak_rss_mb",
    "wholemarket_5k_checkpoint_mb",
    "wholemarket_5k_reset_rest_weight",
    "wholemarket_hold_max_s",
    "wholemarket_hold_max_s_2lines",
    "history_archive_trades_per_s",
    "history_rest_trades_per_s",
    "history_archive_weight",
    "history_rest_weight",
    "history_flink_trades_per_s",
    "stalled_peak_rss_mb",
    "flink_input_trades",
    "flink_input_sent_max",
    "flink_filesource_input_lines",
    "flink_filesource_sink_lines_max",
    "flink_scaleout_input_trades",
    "flink_scaleout_input_sent_max",
    "load_server_headroom",
]
# Every one written, and as a valid run has them.
VALIDITY = {
    "client_input_used_up": False,
    "flink_input_used_up": False,
    "flink_filesource_input_used_up": False,
    "flink_window_filled": True,
    "flink_warmup_ended": True,
    "flink_scaleout_input_used_up": False,
    "flink_scaleout_window_filled": True,
    "flink_scaleout_warmup_ended": True,
    "latency_load_delivered": True,
}


def test_smoke_run_writes_every_key(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--smoke", "--output", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads((tmp_path / "results.json").read_text())
    missing = [k for k in KEYS if results.get(k) is None]
    assert not missing, f"missing or empty: {missing}"
    assert all(isinstance(v, bool) for k, v in results.items() if k.startswith("target_"))
    assert {k: results.get(k) for k in VALIDITY} == VALIDITY
    assert results["flink_input_sent_max"] < results["flink_input_trades"]
    text = (tmp_path / "results.md").read_text()
    assert "## Targets" in text and "Idle cost" in text
