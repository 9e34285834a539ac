"""job/chart.py end to end: an output folder in the job's layout, `python -m job.chart` as a
subprocess, the page rendered by headless Chromium (apt package `chromium`)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
BUCKET = "hour=2024-08-09--00"
MINUTE0 = 1723161600000  # 2024-08-09 00:00 UTC
RISING, FALLING = (38, 166, 154), (239, 83, 80)  # job.chart's candle colours
DIRECTION = {f"rgb{RISING}": "rising", f"rgb{FALLING}": "falling"}  # as the DOM styles them
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=10000",
]

# Real one-minute bars of the sample capture (trailing zeros trimmed): minute, open, high, low,
# close, volume.
BTC = [
    (0, "61685.99", "61744.37", "61630.88", "61631.79", "33.90966"),
    (1, "61631.79", "61631.79", "61556.04", "61589.99", "79.69369"),
    (2, "61590.00", "61700.00", "61590.00", "61626.17", "40.44064"),
    (3, "61626.17", "61686.00", "61608.30", "61637.26", "37.08509"),
    (4, "61637.26", "61658.40", "61637.26", "61658.40", "7.06106"),
]
ETH = [
    (0, "2682.51", "2684.39", "2679.40", "2679.40", "213.3936"),
    (1, "2679.40", "2679.40", "2673.60", "2677.41", "841.985"),
    (2, "2677.41", "2682.40", "2677.41", "2678.58", "484.9002"),
    (3, "2678.58", "2680.81", "2676.79", "2677.71", "257.8392"),
]
ETH_IN_PROGRESS = (4, "2677.71", "2679.10", "2677.71", "2679.10", "66.0334")


def bar(symbol, minute, o, h, low, c, volume) -> dict:
    start = MINUTE0 + minute * 60_000
    quote = Decimal(c) * Decimal(volume)
    return {
        "symbol": symbol,
        "window_start": start,
        "window_end": start + 60_000,
        "open": o,
        "high": h,
        "low": low,
        "close": c,
        "volume": volume,
        "quote_volume": str(quote),
        "vwap": c,
        "trade_count": 100,
        "first_trade_id": 1000 * minute,
        "last_trade_id": 1000 * minute + 99,
    }


def dead_letter(reason, raw, error="") -> dict:
    return {
        "reason": reason,
        "raw": raw,
        "raw_encoding": "utf-8",
        "error": error,
        "received_at": MINUTE0 + 1,
    }


def write_jsonl(out: Path, name: str, file_name: str, rows: list[dict]) -> Path:
    path = out / name / BUCKET / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def run_chart(out: Path, page: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "job.chart", str(out), "--output", str(page)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Page(HTMLParser):
    """Candle colours per chart div (in x order) and the cell texts of each table."""

    def __init__(self, text: str):
        super().__init__()
        self.candles: dict[str, list[str]] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self._chart = self._table = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div" and (attrs.get("id") or "").startswith("bars-"):
            self._chart = attrs["id"]
            self.candles[self._chart] = []
        elif tag == "path" and attrs.get("class") == "box":  # one per drawn candle
            stroke = re.search(r"stroke: (rgb\([^)]*\))", attrs["style"]).group(1)
            self.candles[self._chart].append(DIRECTION.get(stroke, stroke))
        elif tag == "table":
            self._table = attrs["id"]
            self.tables[self._table] = []
        elif tag == "tr":
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """``chromium(*args)`` runs headless Chromium to the end and returns its stdout; whatever it
    left running is killed when the module's tests end, passed or failed."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium not found (apt-get install chromium)", pytrace=False)
    started: list[subprocess.Popen] = []

    def run(*args: str) -> str:
        profile = tmp_path_factory.mktemp("chromium-profile")
        proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )  # its own group: helpers die with it
        started.append(proc)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
        return out.decode()

    yield run
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """The page of an output folder with committed and in-progress files."""
    out = tmp_path_factory.mktemp("out")
    write_jsonl(
        out,
        "bars",
        "part-5b0c6f1e-2a4e-4c1e-9d3a-0f6c2b7e8a91-0-0",
        [bar("BTCUSDT", *b) for b in BTC[:3]] + [bar("ETHUSDT", *b) for b in ETH],
    )
    write_jsonl(
        out,
        "bars",
        "part-5b0c6f1e-2a4e-4c1e-9d3a-0f6c2b7e8a91-0-1",
        [bar("BTCUSDT", *b) for b in BTC[3:]],
    )
    # Still being written (Flink's in-progress name): not part of the run's results yet.
    write_jsonl(
        out,
        "bars",
        ".part-5b0c6f1e-2a4e-4c1e-9d3a-0f6c2b7e8a91-0-2.inprogress.77e1c3d0",
        [bar("ETHUSDT", *ETH_IN_PROGRESS)],
    )
    write_jsonl(
        out,
        "dead-letters",
        "part-0d4b1a5c-6e2f-4a8b-b3c9-1e7d5f2a9c04-0-0",
        [
            dead_letter("invalid_json", '{"e":"trade",', "unexpected end of data"),
            dead_letter("invalid_json", "{oops}", "unexpected character"),
            dead_letter(
                "late_trade", '{"symbol":"BTCUSDT","trade_id":3735693100}', "behind the watermark"
            ),
            dead_letter(
                "gap_unfilled", '{"symbol":"ETHUSDT","first_id":1520546000,"last_id":1520546009}'
            ),
            dead_letter(
                "gap_unfilled", {"symbol": "BTCUSDT", "first_id": 3735694900, "last_id": 3735694900}
            ),
        ],
    )
    write_jsonl(
        out,
        "dead-letters",
        ".part-0d4b1a5c-6e2f-4a8b-b3c9-1e7d5f2a9c04-0-1.inprogress.0a1b",
        [
            dead_letter(
                "gap_unfilled", '{"symbol":"BTCUSDT","first_id":3735695000,"last_id":3735695099}'
            ),
            dead_letter("not_an_object", "[]"),
        ],
    )
    path = out / "page.html"
    result = run_chart(out, path)
    assert result.returncode == 0, result.stderr
    return path


def test_chart_holds_the_committed_candles(page, chromium):
    dom = Page(chromium("--dump-dom", page.as_uri()))
    # In x order; ETHUSDT's fifth bar is only in the in-progress file.
    assert dom.candles == {
        "bars-BTCUSDT": ["falling", "falling", "rising", "rising", "rising"],
        "bars-ETHUSDT": ["falling", "falling", "rising", "falling"],
    }


def test_page_needs_no_network(page):
    assert not re.search(r"<script[^>]*\bsrc=", page.read_text()), "a script loads from elsewhere"


def test_screenshot_is_not_blank(page, chromium, tmp_path):
    shot = tmp_path / "page.png"
    chromium("--window-size=1200,1250", f"--screenshot={shot}", page.as_uri())
    image = Image.open(shot).convert("RGB")
    colours = {rgb: n for n, rgb in image.getcolors(maxcolors=image.width * image.height)}
    white = colours.get((255, 255, 255), 0)
    assert white < 0.95 * image.width * image.height, "the page is (almost) all white"
    # Candle bodies and volume bars paint thousands of pixels of each colour.
    assert colours.get(RISING, 0) > 2000 and colours.get(FALLING, 0) > 2000, (
        f"candle colours: rising {colours.get(RISING, 0)} px, falling {colours.get(FALLING, 0)} px"
    )


def test_health_tables_count_committed_dead_letters(page):
    tables = Page(page.read_text()).tables
    assert tables["dead-letters"] == [
        ["reason", "count"],
        ["gap_unfilled", "2"],
        ["invalid_json", "2"],
        ["late_trade", "1"],
    ]
    assert tables["unfilled-gaps"] == [
        ["symbol", "first id", "last id", "missing trades"],
        ["BTCUSDT", "3735694900", "3735694900", "1"],
        ["ETHUSDT", "1520546000", "1520546009", "10"],
    ]


def test_duplicate_bar_is_refused(tmp_path):
    first = write_jsonl(tmp_path, "bars", "part-a1-0-0", [bar("BTCUSDT", *b) for b in BTC[:2]])
    second = write_jsonl(tmp_path, "bars", "part-b2-0-0", [bar("BTCUSDT", *BTC[1])])
    page = tmp_path / "page.html"
    result = run_chart(tmp_path, page)
    assert result.returncode == 1
    assert (
        f"bar BTCUSDT 2024-08-09 00:01 UTC (window_start {MINUTE0 + 60_000}) appears twice: "
        f"{first}:2 and {second}:1" in result.stderr
    )
    assert not page.exists()
