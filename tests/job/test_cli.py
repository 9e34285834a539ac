"""job/main.py's command line, without starting Flink."""
from __future__ import annotations

import subprocess
import sys

from helpers.flinkjob import MAIN, REPO


def test_help_lists_every_option():
    out = subprocess.run([sys.executable, str(MAIN), "--help"], capture_output=True, text=True, cwd=REPO,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    for option in ("--symbols", "--stream", "--ws-url", "--out", "--duration", "--demo", "--parallelism",
                   "--checkpoint-interval", "--buffer-size", "--connect-timeout", "--silence-timeout",
                   "--max-reconnect-attempts", "--backoff-initial", "--backoff-max", "--python-mode",
                   "--bundle-time", "--out-of-orderness", "--idleness", "--shards"):
        assert option in out.stdout, option


def test_bad_arguments_are_refused():
    for argv in (["--stream", "depth"], ["--duration", "0"], ["--symbols", ","]):
        out = subprocess.run([sys.executable, str(MAIN), *argv], capture_output=True, text=True, cwd=REPO,
                             timeout=120)
        assert out.returncode == 2, (argv, out.stderr)
