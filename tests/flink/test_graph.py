"""The job graph as it would run (``python -m job.graph``): one Python operator, the bridge, with
or without files, with shards; everything else is Flink's Java runtime. PyFlink's key_by,
get_side_output and DataStream.print each add a Python operator of their own: this is the test
that notices one coming back."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers.flinkjob import REPO

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "options",
    [
        ["--out", "/nonexistent"],
        [],
        ["--shards", "2", "--parallelism", "2", "--out", "/nonexistent"],
    ],
)
def test_the_bridge_is_the_one_python_operator(options):
    done = subprocess.run(
        [sys.executable, "-m", "job.graph", "--symbols", "btcusdt,ethusdt", *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    python = [line for line in done.stdout.splitlines() if line.startswith("python")]
    assert len(python) == 1 and "bridge" in python[0], done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith("1 Python operator(s) of ")
