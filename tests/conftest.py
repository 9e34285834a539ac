"""Shared fixtures: the exchange simulator and the real Binance captures shipped in data/captures;
and the hypothesis profiles of the fuzz tests (tests/connectors/test_fuzz_*.py):

- ``quick`` (the default): 100 cases per property, the whole fuzz set in seconds;
- ``fuzz``: 10,000 cases per property: ``pytest --hypothesis-profile=fuzz -k fuzz``.

Socket round trips vary with the machine's load, so neither profile has a deadline.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import Phase, settings

from connectors.simulator import CAPTURES_DIR, DEMO_CAPTURES, ExchangeSimulator, Market

# The MiniClusters the tests start in this process: without it PyFlink starts its loopback worker
# pool here, on every interface (job/main.py does the same for its runs; README, Security).
os.environ.setdefault("_python_worker_execution_mode", "process")

# quick skips the explain phase: on a failure it reruns the example hundreds of times (seconds).
settings.register_profile(
    "quick", max_examples=100, deadline=None, phases=[p for p in Phase if p is not Phase.explain]
)
settings.register_profile("fuzz", max_examples=10_000, deadline=None)
if (
    settings.get_current_profile_name() == "default"
):  # pytest's --hypothesis-profile loads after this
    settings.load_profile("quick")


@pytest.fixture
def simulator():
    """Factory: ``simulator(market, **options)`` starts an ``ExchangeSimulator``; every one
    started is stopped when the test ends, passed or failed."""
    started: list[ExchangeSimulator] = []

    def start(market: Market, **options) -> ExchangeSimulator:
        sim = ExchangeSimulator(market, **options)
        started.append(sim)
        return sim.start()

    yield start
    for sim in reversed(started):
        sim.stop()


@pytest.fixture(scope="session")
def capture_dir() -> Path:
    """The trades-only extracts of real captures in data/captures."""
    return CAPTURES_DIR


@pytest.fixture(scope="session")
def capture_paths() -> list[Path]:
    """Every capture extract, sorted by name."""
    return sorted(CAPTURES_DIR.glob("*.gz"))


@pytest.fixture(scope="session")
def demo_captures() -> list[Path]:
    """The market of the simulator's and the job's demo: BTCUSDT and ETHUSDT, 2024-08-09."""
    return list(DEMO_CAPTURES)
