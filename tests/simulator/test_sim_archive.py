"""The simulator's public archive, read as a user reads data.binance.vision: plain GETs,
``sha256sum -c`` on the ``.CHECKSUM`` and ``zipfile``: complete days only, Binance's CSV layout,
ranges for resumed downloads, and its faults."""

from __future__ import annotations

import datetime
import http.client
import io
import subprocess
import urllib.error
import urllib.request
import zipfile

import pytest

from connectors.binance.archive import day_start_ms
from connectors.simulator import GeneratedFeed, Market
from connectors.simulator.__main__ import build_market, parse_args

DAY = datetime.timedelta(days=1)


def past_market() -> Market:
    feed = GeneratedFeed("BTCUSDT", rate=1, count=0, past_seconds=2.5 * 86_400, past_rate=0.02)
    return Market([feed], pause_without_subscribers=False, history_limit=None)


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def day_url(sim, day: datetime.date, suffix: str = "") -> str:
    return f"{sim.http_url}/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-{day}.zip{suffix}"


def test_a_complete_day_is_a_zip_that_sha256sum_checks_with_binance_rows(simulator, tmp_path):
    sim = simulator(past_market())
    day = datetime.datetime.now(datetime.UTC).date() - DAY
    status, headers, data = get(day_url(sim, day))
    assert status == 200 and headers["Content-Type"] == "application/zip"
    _, _, checksum = get(day_url(sim, day, ".CHECKSUM"))
    (tmp_path / f"BTCUSDT-trades-{day}.zip").write_bytes(data)
    (tmp_path / "c.CHECKSUM").write_bytes(checksum)
    check = subprocess.run(
        ["sha256sum", "-c", "c.CHECKSUM"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0 and check.stdout.strip().endswith(": OK"), check
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.namelist() == [f"BTCUSDT-trades-{day}.csv"]
        rows = z.read(z.namelist()[0]).decode().splitlines()
    start = day_start_ms(day)
    want = [
        e for e in sim.market.published("BTCUSDT").events if start <= e["T"] < start + 86_400_000
    ]
    assert len(rows) == len(want) > 1000  # no header
    first = rows[0].split(",")
    e = want[0]
    assert first[:3] == [str(e["t"]), e["p"], e["q"]]
    assert first[4] == str(e["T"] * 1000 + e["t"] % 1000)  # microseconds, as from 2025
    assert first[5] in ("True", "False") and first[6] == "True"


def test_only_complete_days_are_published_and_a_range_resumes(simulator):
    sim = simulator(past_market())
    today = datetime.datetime.now(datetime.UTC).date()
    assert get(day_url(sim, today))[0] == 404  # not over yet
    assert get(day_url(sim, today - 30 * DAY))[0] == 404  # no trades that day
    _, _, whole = get(day_url(sim, today - DAY))
    status, headers, tail = get(day_url(sim, today - DAY), {"Range": "bytes=1000-"})
    assert status == 206 and tail == whole[1000:]
    assert headers["Content-Range"] == f"bytes 1000-{len(whole) - 1}/{len(whole)}"
    assert get(day_url(sim, today - DAY), {"Range": f"bytes={len(whole)}-"})[0] == 416


def test_faults_hide_a_day_corrupt_one_and_cut_a_download(simulator):
    sim = simulator(past_market())
    yesterday = datetime.datetime.now(datetime.UTC).date() - DAY
    _, _, whole = get(day_url(sim, yesterday))
    sim.faults.corrupt_archive_day("BTCUSDT", yesterday)
    _, _, corrupt = get(day_url(sim, yesterday))
    assert len(corrupt) == len(whole) and corrupt != whole
    sim.faults.cut_archive_downloads(after_bytes=100)
    with pytest.raises(http.client.IncompleteRead):
        get(day_url(sim, yesterday))
    sim.faults.hide_archive_day("BTCUSDT", yesterday)
    assert get(day_url(sim, yesterday))[0] == get(day_url(sim, yesterday, ".CHECKSUM"))[0] == 404


def test_the_command_line_makes_past_days_to_serve(simulator):
    args = parse_args(["--generate", "btcusdt", "--past-days", "2", "--past-rate", "0.01"])
    sim = simulator(build_market(args))
    published = sim.market.published("BTCUSDT")
    assert published.times[0] < day_start_ms(datetime.datetime.now(datetime.UTC).date() - DAY)
    yesterday = datetime.datetime.now(datetime.UTC).date() - DAY
    assert get(day_url(sim, yesterday))[0] == 200


def usdm_day_url(sim, day: datetime.date, suffix: str = "") -> str:
    folder = "data/futures/um/daily/aggTrades/BTCUSDT"
    return f"{sim.http_url}/{folder}/BTCUSDT-aggTrades-{day}.zip{suffix}"


def test_usdm_serves_agg_trades_day_files_in_the_futures_folder_with_a_header(simulator, tmp_path):
    args = parse_args(
        ["--venue", "usdm", "--generate", "btcusdt", "--past-days", "2.5", "--past-rate", "0.02"]
    )
    sim = simulator(build_market(args))
    yesterday = datetime.datetime.now(datetime.UTC).date() - DAY
    status, headers, data = get(usdm_day_url(sim, yesterday))
    assert status == 200 and headers["Content-Type"] == "application/zip"
    _, _, checksum = get(usdm_day_url(sim, yesterday, ".CHECKSUM"))
    (tmp_path / f"BTCUSDT-aggTrades-{yesterday}.zip").write_bytes(data)
    (tmp_path / "c.CHECKSUM").write_bytes(checksum)
    check = subprocess.run(
        ["sha256sum", "-c", "c.CHECKSUM"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.namelist() == [f"BTCUSDT-aggTrades-{yesterday}.csv"]
        rows = z.read(z.namelist()[0]).decode().splitlines()
    start = day_start_ms(yesterday)
    want = [
        e
        for e in sim.market.published("BTCUSDT", "aggTrade").events
        if start <= e["T"] < start + 86_400_000
    ]
    assert rows[0] == (
        "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
    )
    assert len(rows) - 1 == len(want) > 1000
    e = want[0]
    assert rows[1].split(",") == [
        str(e["a"]),
        e["p"],
        e["q"],
        str(e["f"]),
        str(e["l"]),
        str(e["T"]),  # ms: futures files were never moved to microseconds
        "true" if e["m"] else "false",
    ]
    # spot's folders are not the futures venue's
    assert get(day_url(sim, yesterday))[0] == 404
    spot_agg = f"{sim.http_url}/data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-{yesterday}.zip"
    assert get(spot_agg)[0] == 404


def test_usdm_day_files_have_the_same_faults(simulator):
    args = parse_args(
        ["--venue", "usdm", "--generate", "btcusdt", "--past-days", "2.5", "--past-rate", "0.02"]
    )
    sim = simulator(build_market(args))
    today = datetime.datetime.now(datetime.UTC).date()
    assert get(usdm_day_url(sim, today))[0] == 404  # not over yet
    _, _, whole = get(usdm_day_url(sim, today - DAY))
    status, _, tail = get(usdm_day_url(sim, today - DAY), {"Range": "bytes=1000-"})
    assert status == 206 and tail == whole[1000:]
    sim.faults.corrupt_archive_day("BTCUSDT", today - DAY)
    _, _, corrupt = get(usdm_day_url(sim, today - DAY))
    assert len(corrupt) == len(whole) and corrupt != whole
    sim.faults.cut_archive_downloads(after_bytes=100)
    with pytest.raises(http.client.IncompleteRead):
        get(usdm_day_url(sim, today - DAY))
    sim.faults.hide_archive_day("BTCUSDT", today - 2 * DAY)
    assert get(usdm_day_url(sim, today - 2 * DAY))[0] == 404
    assert get(usdm_day_url(sim, today - 2 * DAY, ".CHECKSUM"))[0] == 404
