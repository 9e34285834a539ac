"""Helpers shared by tests/flink and tests/job: run job/main.py, read its outputs, compute the
expected trades and bars from the captures (or from what the simulator published) independently
of connectors.flink."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Context, Decimal
from pathlib import Path

from connectors.flink.outputs import committed_rows

REPO = Path(__file__).resolve().parents[2]
MAIN = REPO / "job" / "main.py"
CAPTURES = ("btcusdt_20240809.gz", "ethusdt_20240809.gz")
SYMBOLS = ("BTCUSDT", "ETHUSDT")
JOB_TIMEOUT = 600  # a hang guard only: a healthy run takes well under a minute


def job_command(
    sim,
    out: Path,
    tmp: Path,
    *extra: str,
    duration: float = 12,
    market: str = "spot",
    symbols: str = "btcusdt,ethusdt",
    lines: int = 1,
) -> list[str]:
    """``python job/main.py`` reading the simulator ``sim`` (WebSocket and REST), bounded; with
    ``market`` usdm, as USD-M futures (whose streams are under ``/market``); with ``lines`` 2,
    from two of its endpoints (``--redundancy``). Its web UI on any free port: another Flink on
    the machine (another test run) may hold 8081."""
    route = "/market" if market == "usdm" else ""
    return [
        sys.executable,
        str(MAIN),
        "--market",
        market,
        "--ws-url",
        ",".join(url + route for url in sim.ws_urls[:lines]),
        "--redundancy",
        str(lines),
        "--rest-url",
        sim.http_url,
        "--archive-url",  # a test never reads Binance's own archive
        sim.http_url,
        "--symbols",
        symbols,
        "--duration",
        str(duration),
        "--out",
        str(out),
        "--checkpoint-interval",
        "1s",
        "--checkpoint-dir",
        (tmp / "checkpoints").as_uri(),
        "--rest-port",
        "0",
        *extra,
    ]


def cluster_job(sim, out: Path, duration: float) -> list[str]:
    """``-py job/main.py ...`` for ``flink run`` on a standalone cluster, reading ``sim``,
    bounded (the cluster's conf/ gives it the rest)."""
    return [
        "-py",
        str(MAIN),
        "--ws-url",
        sim.ws_url,
        "--rest-url",
        sim.http_url,
        "--symbols",
        "btcusdt,ethusdt",
        "--duration",
        str(duration),
        "--out",
        str(out),
        "--checkpoint-interval",
        "1s",
    ]


def job_env(log_dir: Path) -> dict:
    return dict(os.environ, FLINK_LOG_DIR=str(log_dir))


def start_job(cmd, log_dir: Path, stdout_path: Path, group: bool = False) -> subprocess.Popen:
    """``group``: in a process group of its own (the JVM with it), to be killed as a whole."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(stdout_path, "wb") as out:  # the job holds its own copy
        return subprocess.Popen(
            cmd,
            env=job_env(log_dir),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=group,
        )


def finish_job(proc: subprocess.Popen, stdout_path: Path) -> str:
    try:
        rc = proc.wait(timeout=JOB_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.wait()
        raise AssertionError(
            f"job still running after {JOB_TIMEOUT}s:\n{tail(stdout_path)}"
        ) from exc
    text = stdout_path.read_text(errors="replace")
    assert rc == 0, f"job exited with {rc}:\n{tail(stdout_path)}"
    return text


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL to ``proc``'s whole process group (started with ``group=True``: the client and its
    JVM at once), and back once every process of it is gone."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_until_group_gone(proc.pid)


def wait_until_group_gone(pgid: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            os.killpg(pgid, signal.SIGKILL)
            raise AssertionError("processes of the job were left running after it stopped")
        time.sleep(0.5)


def completed_checkpoints(checkpoint_dir: Path) -> list[Path]:
    """The complete checkpoints of every job and run under ``checkpoint_dir``."""
    return [p.parent for p in checkpoint_dir.glob("*/*/chk-*/_metadata")]


def tail(path: Path, n: int = 6000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no output)"


def flink_log(log_dir: Path) -> str:
    return "".join(
        Path(p).read_text(errors="replace") for p in sorted(glob.glob(str(log_dir / "*.log")))
    )


def read_output(out: Path, name: str) -> list[dict]:
    """The committed rows of one output."""
    return [row for _, row in committed_rows(out, name)]


def in_progress_files(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if p.is_file()]


# -- expectations from the captures, computed here with Decimal (not with connectors.flink) --------

_CTX = Context(prec=80, rounding=ROUND_HALF_EVEN)


def capture_trades(capture_dir: Path) -> list[dict]:
    from connectors.simulator import load_events

    events = load_events([capture_dir / c for c in CAPTURES], kinds=("trade",), symbols=SYMBOLS)
    return [e.data for e in events]


# Per stream kind: the event's id field, and the fields of the first and last trade id it holds.
_IDS = {"trade": ("t", "t", "t"), "aggTrade": ("a", "f", "l")}
# Per stream kind: the name of the id column of a trades line.
WRITTEN_ID = {"trade": "trade_id", "aggTrade": "agg_id"}


def expected_bars(trades: list[dict], kind: str = "trade") -> dict[tuple[str, int], dict]:
    """Bars of ``@trade`` (or, with ``kind``, ``@aggTrade``) events."""
    seq, first, last = _IDS[kind]
    groups = defaultdict(list)
    for t in trades:
        groups[(t["s"], t["T"] // 60_000 * 60_000)].append(t)
    bars = {}
    for (symbol, start), ts in groups.items():
        ts.sort(key=lambda t: t[seq])
        prices = [Decimal(t["p"]) for t in ts]
        volume = sum((Decimal(t["q"]) for t in ts), Decimal(0))
        quote = sum((_CTX.multiply(Decimal(t["p"]), Decimal(t["q"])) for t in ts), Decimal(0))
        bars[(symbol, start)] = {
            "symbol": symbol,
            "window_start": start,
            "window_end": start + 60_000,
            "open": Decimal(ts[0]["p"]),
            "high": max(prices),
            "low": min(prices),
            "close": Decimal(ts[-1]["p"]),
            "volume": volume,
            "quote_volume": quote,
            "vwap": _CTX.divide(quote, volume).quantize(Decimal("1e-8"), context=_CTX),
            "trade_count": sum(t[last] - t[first] + 1 for t in ts),
            "first_trade_id": ts[0][first],
            "last_trade_id": ts[-1][last],
        }
    return bars


DECIMAL_FIELDS = ("open", "high", "low", "close", "volume", "quote_volume", "vwap")


def normalized_bars(rows: list[dict]) -> dict[tuple[str, int], dict]:
    out = {}
    for r in rows:
        key = (r["symbol"], r["window_start"])
        assert key not in out, f"bar emitted twice: {key}"
        out[key] = {k: Decimal(v) if k in DECIMAL_FIELDS else v for k, v in r.items()}
    return out


def assert_trades_exact(written: list[dict], sent: dict[str, list[int]], capture: list[dict]):
    """Every trade the simulator sent, once, with the capture's exact strings."""
    by_id = {(t["s"], t["t"]): t for t in capture}
    got = defaultdict(list)
    for w in written:
        got[w["symbol"]].append(w["trade_id"])
        src = by_id[(w["symbol"], w["trade_id"])]
        assert (
            w["price"],
            w["quantity"],
            w["trade_time"],
            w["event_time"],
            w["buyer_is_maker"],
        ) == (src["p"], src["q"], src["T"], src["E"], src["m"]), w
    for symbol in SYMBOLS:
        assert len(got[symbol]) == len(set(got[symbol])), f"{symbol}: duplicates written"
        assert sorted(got[symbol]) == sorted(sent[symbol]), (
            f"{symbol}: written ids differ from sent ids"
        )


def published(sim, symbol: str, kind: str = "trade") -> list[dict]:
    """The ``@trade`` (or ``kind``) events the simulator's market published for ``symbol``, in id
    order."""
    return list(sim.market.published(symbol, kind).events)


def assert_every_published_trade_once(
    written: list[dict], sim, first_ids: dict | None = None, symbols=SYMBOLS, kind: str = "trade"
) -> list[dict]:
    """Per symbol, the written trades are every trade the market published from the first one
    written (or ``first_ids``) up to the last one written, once each, with the published strings.
    Returns those published trades (to compute the expected bars from). A symbol of ``symbols``
    with nothing written is passed over: a whole market has symbols that never trade in a run.
    ``kind`` aggTrade: the same of aggregate trades, by aggregate id."""
    seq, first, last = _IDS[kind]
    written_id = WRITTEN_ID[kind]
    by_symbol = defaultdict(list)
    for w in written:
        by_symbol[w["symbol"]].append(w)
    assert set(by_symbol) <= set(symbols), set(by_symbol) - set(symbols)
    expected = []
    for symbol in symbols:
        rows = by_symbol[symbol]
        if not rows and symbols is not SYMBOLS:
            continue
        ids = [w[written_id] for w in rows]
        assert len(ids) == len(set(ids)), (
            f"{symbol}: {len(ids) - len(set(ids))} trades written twice"
        )
        start, newest = first_ids[symbol] if first_ids else min(ids), max(ids)
        events = [e for e in published(sim, symbol, kind) if start <= e[seq] <= newest]
        missing = sorted({e[seq] for e in events} - set(ids))
        assert not missing, (
            f"{symbol}: {len(missing)} published trades not written, e.g. {missing[:10]}"
        )
        assert sorted(ids) == [e[seq] for e in events], (
            f"{symbol}: written ids differ from published ids"
        )
        source = {e[seq]: e for e in events}
        for w in rows:
            e = source[w[written_id]]
            assert (
                w["price"],
                w["quantity"],
                w["trade_time"],
                w["buyer_is_maker"],
                w.get("first_trade_id", e[first]),
                w.get("last_trade_id", e[last]),
            ) == (e["p"], e["q"], e["T"], e["m"], e[first], e[last])
        expected += events
    return expected


def assert_usdm_outputs(out: Path, sim, first_ids: dict) -> list[dict]:
    """A USD-M run's outputs: every trades and bars line says ``"market":"usdm"``, every aggregate
    trade published from ``first_ids`` on written once, the bars exact. Returns the trades."""
    written = read_output(out, "trades")
    assert {line.pop("market") for line in written} == {"usdm"}
    trades = assert_every_published_trade_once(written, sim, first_ids, kind="aggTrade")
    bars = read_output(out, "bars")
    assert {bar.pop("market") for bar in bars} == {"usdm"}
    assert normalized_bars(bars) == expected_bars(trades, kind="aggTrade")
    return trades
