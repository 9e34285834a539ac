"""Shared fixtures: the exchange simulator and the real Binance captures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors.simulator import SAMPLE_CAPTURE, ExchangeSimulator, Market


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
    """The real captures: ``$BINANCE_CAPTURES`` or ``shared/data/binance`` beside the repo.
    Missing data is an error, not a reason to skip."""
    override = os.environ.get("BINANCE_CAPTURES")
    path = Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "data" / "binance"
    if not path.is_dir():
        pytest.fail(f"real Binance captures not found at {path} (set BINANCE_CAPTURES)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def capture_paths(capture_dir: Path) -> list[Path]:
    """Every capture file (not the README), sorted by name."""
    paths = [path for path in sorted(capture_dir.iterdir()) if path.name != "README.md"]
    if not paths:
        pytest.fail(f"no capture files in {capture_dir}", pytrace=False)
    return paths


@pytest.fixture(scope="session")
def sample_capture() -> Path:
    """The repo's small sample capture (data/sample)."""
    if not SAMPLE_CAPTURE.is_file():
        pytest.fail(f"sample capture missing: {SAMPLE_CAPTURE}", pytrace=False)
    return SAMPLE_CAPTURE
