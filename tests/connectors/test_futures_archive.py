"""USD-M futures history further back than REST's 48 hours: the archive's aggTrades day files
(``data/futures/um/daily/aggTrades/``, a header row, times in ms) read as ``AggTrade`` records, and
a usdm feed that starts three days back reading the complete days from the simulator's archive,
the rest from ``/fapi/v1/aggTrades``, then the live stream, every aggregate once, in order.

The simulated symbols traded for three and a half days before the simulator started (a USD-M
aggregate every 20 s), then live at 50 a second (as ``test_archive.py``'s spot market).
"""

from __future__ import annotations

import datetime

import pytest

from connectors.binance.archive import (
    Archive,
    ArchiveConfig,
    archive_days,
    day_start_ms,
    read_day,
)
from connectors.binance.markets import SPOT, USDM
from connectors.binance.parser import Parser
from connectors.binance.records import AggTrade, DeadLetter
from connectors.binance.rest import RestConfig
from connectors.feed import BinanceFeed
from connectors.simulator import GeneratedFeed, Market
from connectors.simulator.archive import AGG_HEADER, day_csv, day_zip
from connectors.simulator.venues import SPOT as SPOT_VENUE
from connectors.simulator.venues import USDM as USDM_VENUE
from connectors.websocket.bridge import BridgeConfig
from helpers.draining import drain_until

DAY = datetime.timedelta(days=1)
HOUR_MS = 3_600_000
FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "poll_interval": 0.05}


def usdm_past_market(symbols=("BTCUSDT",), live_count: int | None = None) -> Market:
    feeds = [
        GeneratedFeed(
            s,
            rate=50.0,
            count=live_count,
            seed=i,
            kind="aggTrade",
            venue="usdm",
            past_seconds=3.5 * 86_400,
            past_rate=0.05,
        )
        for i, s in enumerate(symbols)
    ]
    return Market(feeds, pause_without_subscribers=False, history_limit=None, venue="usdm")


def today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def published(sim, symbol: str):
    return sim.market.published(symbol, "aggTrade")


def published_on(sim, symbol: str, day: datetime.date) -> list[dict]:
    start = day_start_ms(day)
    return [e for e in published(sim, symbol).events if start <= e["T"] < start + 86_400_000]


def fields(record: AggTrade) -> tuple:
    return (
        record.agg_id,
        record.price,
        record.quantity,
        record.first_trade_id,
        record.last_trade_id,
        record.trade_time,
        record.buyer_is_maker,
    )


def event_fields(e: dict) -> tuple:
    return (e["a"], e["p"], e["q"], e["f"], e["l"], e["T"], e["m"])


@pytest.mark.parametrize("venue", [USDM_VENUE, SPOT_VENUE], ids=["usdm", "spot"])
def test_agg_trades_day_files_with_a_header_or_in_microseconds_read_as_agg_trades(tmp_path, venue):
    """USD-M's files: a header row, ``true``/``false``, ms, no isBestMatch column; spot's: no
    header, ``True``/``False``, microseconds (from 2025), an isBestMatch column."""
    day = datetime.date(2026, 12, 1)
    start = day_start_ms(day)
    events = [
        {"a": 40 + i, "p": "91234.50", "q": "0.012", "f": 100 + 3 * i, "l": 101 + 3 * i}
        | {"T": start + i * 999, "m": i % 2 == 1}
        for i in range(3)
    ]
    csv = day_csv(events, day, "aggTrade", venue)
    first_row = csv.decode().splitlines()[1 if venue.archive_header else 0].split(",")
    if venue is USDM_VENUE:
        assert csv.decode().startswith(AGG_HEADER)
        assert first_row == ["40", "91234.50", "0.012", "100", "101", str(start), "false"]
    else:
        assert first_row[5] == str(start * 1000 + 40) and first_row[6:] == ["False", "True"]
    path = tmp_path / "day.zip"
    path.write_bytes(day_zip("BTCUSDT", day, csv, "aggTrades"))

    got = list(read_day(path, "BTCUSDT", Parser(kinds=("aggTrade",)), "aggTrade"))

    assert all(type(r) is AggTrade and r.event_time == r.trade_time for r in got)
    assert [fields(r) for r in got] == [event_fields(e) for e in events]


def test_a_bad_agg_trades_row_is_a_dead_letter_and_the_rest_is_read(tmp_path):
    day = datetime.date(2026, 12, 1)
    start = day_start_ms(day)
    rows = AGG_HEADER + "".join(
        (
            f"7,1.00,2.000,9,8,{start},true\n",  # first trade id after the last
            f"8,1.00,2.000,10,x,{start},true\n",  # not an id
            f"9,1.00,2.000,10,10,{start}\n",  # a column short
            f"10,1.00,2.000,11,12,{start},false\n",
        )
    )
    path = tmp_path / "day.zip"
    path.write_bytes(day_zip("BTCUSDT", day, rows.encode(), "aggTrades"))
    got = list(read_day(path, "BTCUSDT", Parser(kinds=("aggTrade",)), "aggTrade"))
    assert [r.reason for r in got[:3] if type(r) is DeadLetter] == [
        "impossible_value",
        "wrong_type",
        "missing_field",
    ]
    assert [fields(r) for r in got[3:] if type(r) is AggTrade] == [
        (10, "1.00", "2.000", 11, 12, start, False)
    ]


def test_days_rest_cannot_serve_come_from_the_archive_whatever_is_wanted_of_them():
    now = day_start_ms(datetime.date(2026, 12, 4)) + 10 * HOUR_MS  # 10:00 UTC
    d = datetime.date(2026, 12, 1)
    late = day_start_ms(d) + 23 * HOUR_MS + 1  # half an hour of that day: spot's REST
    assert archive_days(late, now_ms=now) == [d + DAY, d + 2 * DAY]
    window = USDM.history_window_ms  # USD-M's REST: the last 48 hours only
    assert archive_days(late, now_ms=now, rest_window_ms=window) == [d, d + DAY, d + 2 * DAY]
    # until half an hour into a day further back than REST serves: that day from the archive
    until = day_start_ms(d + DAY) + 1_800_000
    assert archive_days(day_start_ms(d), until, now, window) == [d, d + DAY]
    assert archive_days(day_start_ms(d), until, now) == [d]
    # within REST's window, REST's as on spot
    yesterday = day_start_ms(d + 2 * DAY) + 23 * HOUR_MS + 1
    assert archive_days(yesterday, now_ms=now, rest_window_ms=window) == []
    assert SPOT.history_window_ms is None


def test_a_usdm_day_is_downloaded_from_the_futures_folder_and_read_as_published(
    simulator, tmp_path
):
    sim = simulator(usdm_past_market())
    day = today() - 2 * DAY
    files = Archive(
        ArchiveConfig(archive_url=sim.http_url, archive_cache=str(tmp_path)),
        path=USDM.archive_paths["aggTrade"],
    )
    try:
        path = files.day_file("BTCUSDT", day)
    finally:
        files.close()
    name = f"BTCUSDT-aggTrades-{day}.zip"
    assert path == tmp_path / f"data/futures/um/daily/aggTrades/BTCUSDT/{name}"
    got = list(read_day(path, "BTCUSDT", Parser(kinds=("aggTrade",)), "aggTrade"))
    want = published_on(sim, "BTCUSDT", day)
    assert len(want) > 4000
    assert [fields(r) for r in got] == [event_fields(e) for e in want]


@pytest.fixture
def feeds(tmp_path):
    opened = []

    def open_feed(sim, since_ms, until_ms=None, symbols=("btcusdt",)):
        feed = BinanceFeed(
            list(symbols),
            "aggTrade",
            sim.ws_url + "/market",
            BridgeConfig(gate_dir=str(tmp_path), **FAST),
            rest=RestConfig(rest_url=sim.http_url, rest_weight_budget=USDM.default_weight_budget),
            since_ms=since_ms,
            market="usdm",
            archive=ArchiveConfig(archive_url=sim.http_url, archive_cache=str(tmp_path / "cache")),
            until_ms=until_ms,
        )
        opened.append(feed)
        return feed.start()

    yield open_feed
    for feed in opened:
        feed.close()


@pytest.mark.slow
def test_usdm_three_days_back_archive_days_then_rest_then_live_every_aggregate_once_in_order(
    simulator, feeds
):
    symbols = ("BTCUSDT", "ETHUSDT")
    sim = simulator(usdm_past_market(symbols, live_count=300))
    # half an hour before the end of the day three days back: beyond REST's 48 hours, so from
    # the archive although less than an hour of it is wanted
    since = day_start_ms(today() - 3 * DAY) + 23 * HOUR_MS + 1_800_000
    feed = feeds(sim, since, symbols=[s.lower() for s in symbols])

    def done(items) -> bool:
        if not sim.market.finished:
            return False
        delivered = {(i.symbol, i.agg_id) for i in items if type(i) is AggTrade}
        return all((s, published(sim, s).ids[-1]) in delivered for s in symbols)

    items = drain_until(feed, done)
    items += feed.drain()
    assert not [i for i in items if type(i) is not AggTrade]  # no dead letter
    for symbol in symbols:
        want = [e["a"] for e in published(sim, symbol).events if e["T"] >= since]
        assert [i.agg_id for i in items if i.symbol == symbol] == want  # each once, in order
    stats = feed.stats
    archived = sum(
        1
        for s in symbols
        for e in published(sim, s).events
        if since <= e["T"] < day_start_ms(today())
    )
    assert stats["archive_trades"] == archived
    assert stats["archive_days_needed"] == stats["archive_days_fetched"] == 6
    assert stats["rest_requests"] >= 2  # today's part, one page per symbol at least
    assert sim.connections  # and then live
    assert stats["missing_ids"] < 200  # only what traded live while the replay ran


def test_a_corrupt_and_a_missing_usdm_day_are_refused_and_come_from_rest(simulator, feeds):
    sim = simulator(usdm_past_market(live_count=0))
    since = day_start_ms(today() - 3 * DAY)
    until = day_start_ms(today())
    sim.faults.corrupt_archive_day("BTCUSDT", today() - 2 * DAY)
    sim.faults.hide_archive_day("BTCUSDT", today() - DAY)
    sim.faults.cut_archive_downloads(after_bytes=40_000)
    feed = feeds(sim, since, until)
    items = drain_until(feed, lambda items: feed.finished)
    want = [e["a"] for e in published(sim, "BTCUSDT").events if since <= e["T"] < until]
    assert [i.agg_id for i in items] == want  # no gap, no duplicate, no dead letter
    stats = feed.stats
    assert stats["archive_fallbacks"] == 2 and stats["archive_missing"] == 1
    assert stats["archive_corrupt"] == 2 and stats["archive_resumed"] == 1
    assert stats["archive_days_fetched"] == 1
    assert sim.connections == []
    served = {p.rsplit("/", 1)[0] for p, _, _ in sim.archive_requests}
    assert served == {"/data/futures/um/daily/aggTrades/BTCUSDT"}


def test_a_spot_agg_trade_feed_reads_spot_agg_trades_day_files_alike(simulator, tmp_path):
    """What falls out of the same code: spot ``@aggTrade`` history from
    ``data/spot/daily/aggTrades/`` (no header, microsecond times), bounded by ``until_ms``."""
    feed_of = GeneratedFeed(
        "BTCUSDT", rate=50.0, count=0, kind="aggTrade", past_seconds=3.5 * 86_400, past_rate=0.05
    )
    sim = simulator(Market([feed_of], pause_without_subscribers=False, history_limit=None))
    since, until = day_start_ms(today() - 3 * DAY), day_start_ms(today())
    feed = BinanceFeed(
        ["btcusdt"],
        "aggTrade",
        sim.ws_url,
        BridgeConfig(gate_dir=str(tmp_path), **FAST),
        rest=RestConfig(rest_url=sim.http_url),
        since_ms=since,
        archive=ArchiveConfig(archive_url=sim.http_url, archive_cache=str(tmp_path / "cache")),
        until_ms=until,
    ).start()
    try:
        items = drain_until(feed, lambda items: feed.finished)
        stats = feed.stats
    finally:
        feed.close()
    want = [e["a"] for e in published(sim, "BTCUSDT").events if since <= e["T"] < until]
    assert [i.agg_id for i in items if type(i) is AggTrade] == want and len(items) == len(want)
    assert stats["archive_days_fetched"] == 3 and stats["archive_trades"] == len(want)
    assert {p.rsplit("/", 1)[0] for p, _, _ in sim.archive_requests} == {
        "/data/spot/daily/aggTrades/BTCUSDT"
    }
