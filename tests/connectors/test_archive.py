"""Binance's public archive against the simulator's: day files downloaded into a cache, verified by
their checksum, resumed after an interruption, refused when corrupt or missing; read as the same
trades the simulator published; and a feed that starts three days back reading the complete days
from the archive, the rest of the gap from REST, then the live stream, every trade once.

The simulated symbol traded for three days before the simulator started (``past_seconds``), at a
trade every 20 s; then it trades live at 50 a second.
"""

from __future__ import annotations

import datetime
import zipfile

import pytest

from connectors.binance.archive import (
    Archive,
    ArchiveConfig,
    ArchiveUnavailable,
    archive_days,
    day_start_ms,
    read_day,
)
from connectors.binance.parser import Parser
from connectors.binance.records import DeadLetter, Trade
from connectors.binance.rest import RestConfig
from connectors.feed import BinanceFeed
from connectors.simulator import GeneratedFeed, Market
from connectors.simulator.archive import day_csv, day_zip
from connectors.websocket.bridge import BridgeConfig
from helpers.draining import drain_until

DAY = datetime.timedelta(days=1)
PAST_RATE = 0.05  # trades a second over the three simulated days: 4,320 a day
LIVE_RATE = 50.0
FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "poll_interval": 0.05}


def past_market(symbols=("BTCUSDT",), live_count: int | None = None) -> Market:
    feeds = [
        GeneratedFeed(
            s,
            rate=LIVE_RATE,
            count=live_count,
            seed=i,
            past_seconds=3.5 * 86_400,
            past_rate=PAST_RATE,
        )
        for i, s in enumerate(symbols)
    ]
    return Market(feeds, pause_without_subscribers=False, history_limit=None)


def today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def published_on(sim, symbol: str, day: datetime.date) -> list[dict]:
    start = day_start_ms(day)
    return [e for e in sim.market.published(symbol).events if start <= e["T"] < start + 86_400_000]


@pytest.fixture
def archive(tmp_path):
    opened = []

    def make(sim, cache=None) -> Archive:
        config = ArchiveConfig(archive_url=sim.http_url, archive_cache=str(cache or tmp_path))
        made = Archive(config)
        opened.append(made)
        return made

    yield make
    for made in opened:
        made.close()


def test_a_day_is_downloaded_verified_read_as_published_and_then_taken_from_the_cache(
    simulator, archive, tmp_path
):
    sim = simulator(past_market())
    day = today() - 2 * DAY
    files = archive(sim)
    path = files.day_file("BTCUSDT", day)
    assert path == tmp_path / f"data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-{day}.zip"
    got = list(read_day(path, "BTCUSDT", Parser(kinds=("trade",))))
    want = published_on(sim, "BTCUSDT", day)
    assert len(want) > 4000
    assert [(r.trade_id, r.price, r.quantity, r.trade_time, r.buyer_is_maker) for r in got] == [
        (e["t"], e["p"], e["q"], e["T"], e["m"]) for e in want
    ]
    assert all(type(r) is Trade and r.event_time == r.trade_time for r in got)
    served = len(sim.archive_requests)

    again = archive(sim).day_file("BTCUSDT", day)  # another run: the cache, no request

    assert again == path
    assert len(sim.archive_requests) == served


def test_an_interrupted_download_is_resumed_where_it_stopped(simulator, archive):
    sim = simulator(past_market())
    day = today() - 2 * DAY
    sim.faults.cut_archive_downloads(after_bytes=40_000, times=2)  # of about 90 KB
    files = archive(sim)

    path = files.day_file("BTCUSDT", day)

    assert files.counts["archive_resumed"] == 2
    served = [(p.rsplit("/", 1)[1], status) for p, status, _ in sim.archive_requests]
    name = f"BTCUSDT-trades-{day}.zip"
    assert served == [(name + ".CHECKSUM", 200), (name, 200), (name, 206), (name, 206)]
    assert files.counts["archive_bytes"] == path.stat().st_size  # nothing fetched twice
    assert len(list(read_day(path, "BTCUSDT", Parser(kinds=("trade",))))) > 4000


def test_a_download_a_killed_run_left_is_resumed_by_the_next(simulator, archive, tmp_path):
    sim = simulator(past_market())
    day = today() - 2 * DAY
    name = f"BTCUSDT-trades-{day}.zip"
    whole = archive(sim, tmp_path / "first").day_file("BTCUSDT", day).read_bytes()
    folder = tmp_path / "data/spot/daily/trades/BTCUSDT"
    folder.mkdir(parents=True)
    (folder / f"{name}.part").write_bytes(whole[:30_000])  # what the killed run had written
    before = len(sim.archive_requests)

    path = archive(sim).day_file("BTCUSDT", day)

    assert path.read_bytes() == whole and not (folder / f"{name}.part").exists()
    assert [(p.rsplit("/", 1)[1], s) for p, s, _ in sim.archive_requests[before:]] == [
        (name + ".CHECKSUM", 200),
        (name, 206),
    ]
    assert sim.archive_requests[-1][2] == len(whole) - 30_000  # the rest, nothing twice


def test_a_corrupt_day_is_refused_after_a_second_download(simulator, archive, tmp_path):
    sim = simulator(past_market())
    day = today() - 2 * DAY
    sim.faults.corrupt_archive_day("BTCUSDT", day)
    files = archive(sim)

    with pytest.raises(ArchiveUnavailable, match=r"does not match its \.CHECKSUM"):
        files.day_file("BTCUSDT", day)

    assert files.counts["archive_corrupt"] == 2
    assert not list(tmp_path.rglob("*.zip")) and not list(tmp_path.rglob("*.part"))


def test_a_day_not_published_is_a_clear_error(simulator, archive):
    sim = simulator(past_market())
    files = archive(sim)
    sim.faults.hide_archive_day("BTCUSDT", today() - DAY)
    for day in (today() - DAY, today()):  # hidden; not over yet
        with pytest.raises(ArchiveUnavailable, match=f"BTCUSDT-trades-{day}.zip is not published"):
            files.day_file("BTCUSDT", day)
    assert files.counts["archive_missing"] == 2


@pytest.mark.parametrize(
    ("day", "header"),
    [(datetime.date(2024, 8, 9), False), (datetime.date(2026, 12, 1), False), (None, True)],
)
def test_day_files_in_ms_in_microseconds_and_with_a_header_read_alike(tmp_path, day, header):
    """Spot files before 2025 hold ms, from 2025 on microseconds (the sub-millisecond part is
    dropped, as REST and the stream give ms); a header row, should one appear, is skipped."""
    day = day or datetime.date(2026, 12, 1)
    start = day_start_ms(day)
    events = [
        {"t": 7 + i, "p": "61685.99000000", "q": "0.00017000", "T": start + i * 999, "m": i % 2}
        for i in range(3)
    ]
    csv = day_csv([dict(e, m=bool(e["m"])) for e in events], day)
    if day >= datetime.date(2025, 1, 1):
        assert csv.split(b",")[4] == str(start * 1000 + 7).encode()  # 16 digits: µs
    if header:
        csv = b"id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n" + csv
    path = tmp_path / "day.zip"
    path.write_bytes(day_zip("BTCUSDT", day, csv))
    got = list(read_day(path, "BTCUSDT", Parser(kinds=("trade",))))
    assert [(r.trade_id, r.trade_time, r.buyer_is_maker) for r in got] == [
        (e["t"], e["T"], bool(e["m"])) for e in events
    ]


def test_a_bad_row_is_a_dead_letter_and_the_rest_is_read(tmp_path):
    day = datetime.date(2026, 12, 1)
    good = f"8,1.00000000,2.00000000,2.00000000,{day_start_ms(day) * 1000},False,True\n"
    path = tmp_path / "day.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.csv", "7,1.0e5,2.00000000,2,1733011200000000,True,True\n" + good)
    got = list(read_day(path, "BTCUSDT", Parser(kinds=("trade",))))
    assert type(got[0]) is DeadLetter and got[0].reason == "impossible_value"
    assert [r.trade_id for r in got[1:]] == [8]


def test_ids_out_of_order_end_the_reading_of_a_day_there(tmp_path):
    day = datetime.date(2026, 12, 1)
    time = day_start_ms(day) * 1000
    rows = "".join(f"{i},1.00000000,2.00000000,2.00000000,{time},True,True\n" for i in (5, 6, 8, 7))
    path = tmp_path / "day.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.csv", rows)
    got = []
    with pytest.raises(ArchiveUnavailable, match="id 7 after 8"):
        got.extend(read_day(path, "BTCUSDT", Parser(kinds=("trade",))))
    assert [r.trade_id for r in got] == [5, 6, 8]  # the replay takes it from REST from 9 on


def test_which_days_come_from_the_archive():
    now = day_start_ms(datetime.date(2026, 12, 4)) + 10 * 3_600_000  # 10:00 UTC
    d = datetime.date(2026, 12, 1)
    assert archive_days(day_start_ms(d), now_ms=now) == [d, d + DAY, d + 2 * DAY]
    late = day_start_ms(d) + 23 * 3_600_000 + 1  # less than an hour of that day wanted: REST
    assert archive_days(late, now_ms=now) == [d + DAY, d + 2 * DAY]
    assert archive_days(day_start_ms(d), day_start_ms(d + DAY) + 1800_000, now_ms=now) == [d]
    assert archive_days(now - 3_600_000, now_ms=now) == []


@pytest.fixture
def feeds(tmp_path):
    opened = []

    def open_feed(
        sim, since_ms, until_ms=None, symbols=("btcusdt",), resume_after=None, archive_url=None
    ):
        feed = BinanceFeed(
            list(symbols),
            "trade",
            sim.ws_url,
            BridgeConfig(gate_dir=str(tmp_path), **FAST),
            rest=RestConfig(rest_url=sim.http_url),
            since_ms=since_ms,
            archive=ArchiveConfig(
                archive_url=archive_url or sim.http_url, archive_cache=str(tmp_path / "cache")
            ),
            until_ms=until_ms,
        )
        opened.append(feed)
        return feed.resume_after(resume_after or {}).start()

    yield open_feed
    for feed in opened:
        feed.close()


@pytest.mark.slow
def test_three_days_back_archive_days_then_rest_then_live_every_trade_once_in_order(
    simulator, feeds
):
    sim = simulator(past_market(("BTCUSDT", "ETHUSDT"), live_count=300))
    since = day_start_ms(today() - 3 * DAY)
    feed = feeds(sim, since, symbols=("btcusdt", "ethusdt"))
    items = drain_until(
        feed,
        lambda items: (
            sim.market.finished
            and all(
                any(
                    i.trade_id == sim.market.published(s).ids[-1]
                    for i in items[-100:]
                    if i.symbol == s
                )
                for s in ("BTCUSDT", "ETHUSDT")
            )
        ),
    )
    want = {
        s: [e["t"] for e in sim.market.published(s).events if e["T"] >= since]
        for s in ("BTCUSDT", "ETHUSDT")
    }
    assert not [i for i in items if type(i) is not Trade]
    stats = feed.stats
    for symbol, ids in want.items():
        assert [i.trade_id for i in items if i.symbol == symbol] == ids  # each once, in order
    archived = sum(len(published_on(sim, s, today() - n * DAY)) for s in want for n in (1, 2, 3))
    assert stats["archive_trades"] == archived
    assert stats["archive_days_needed"] == stats["archive_days_fetched"] == 6
    rest = sum(len(published_on(sim, s, today())) for s in want) - 600  # today's, minus live
    assert stats["rest_requests"] >= rest // 1000 + 2  # today's pages, one per symbol at least
    assert sim.connections  # and then live
    assert stats["missing_ids"] < 200  # only what traded live while the replay ran
    # the two symbols' trades came merged by time: none far behind one delivered before it
    newest = 0
    for item in items:
        assert item.trade_time >= newest - 2000
        newest = max(newest, item.trade_time)


def test_a_missing_and_a_corrupt_day_come_from_rest_instead(simulator, feeds):
    sim = simulator(past_market(live_count=0))
    since = day_start_ms(today() - 3 * DAY)
    sim.faults.hide_archive_day("BTCUSDT", today() - 2 * DAY)
    sim.faults.corrupt_archive_day("BTCUSDT", today() - DAY)
    ids = [e["t"] for e in sim.market.published("BTCUSDT").events if e["T"] >= since]
    feed = feeds(sim, since)
    items = drain_until(
        feed, lambda items: any(i.trade_id == ids[-1] for i in items[-10:] if type(i) is Trade)
    )
    assert [i.trade_id for i in items] == ids  # no gap, no duplicate
    stats = feed.stats
    assert stats["archive_fallbacks"] == 2 and stats["archive_missing"] == 1
    assert stats["archive_corrupt"] == 2  # downloaded twice, refused
    # the REST pages for the missing and the corrupt day reach into the following day's ids
    assert (
        0 < stats["archive_trades"] <= len(published_on(sim, "BTCUSDT", today() - 3 * DAY)) + 1000
    )
    assert stats["gaps"] == 0  # all of it in the replay, before any connection


def test_until_replays_up_to_that_time_and_never_connects(simulator, feeds):
    sim = simulator(past_market(live_count=0))
    since = day_start_ms(today() - 3 * DAY)
    until = day_start_ms(today() - DAY) + 12 * 3_600_000  # noon yesterday
    feed = feeds(sim, since, until)
    items = drain_until(feed, lambda items: feed.finished)
    ids = [e["t"] for e in sim.market.published("BTCUSDT").events if since <= e["T"] < until]
    assert [i.trade_id for i in items] == ids
    assert feed.stats["archive_days_fetched"] == 3  # yesterday's too, cut at noon
    assert sim.connections == []


def test_a_restart_mid_replay_goes_on_from_its_checkpointed_id_skipping_the_days_before(
    simulator, feeds
):
    sim = simulator(past_market(live_count=0))
    since = day_start_ms(today() - 3 * DAY)
    middle = published_on(sim, "BTCUSDT", today() - 2 * DAY)[2000]["t"]  # delivered before
    until = day_start_ms(today())
    feed = feeds(sim, since, until, resume_after={"BTCUSDT": middle})
    items = drain_until(feed, lambda items: feed.finished)
    ids = [e["t"] for e in sim.market.published("BTCUSDT").events if e["T"] < until]
    assert [i.trade_id for i in items] == ids[ids.index(middle) + 1 :]
    stats = feed.stats
    assert stats["archive_days_fetched"] == stats["archive_days_needed"] == 2  # not the first
    assert stats["rest_weight_used"] == 25 + 4  # the id's time; until's id: nothing else


def test_an_archive_that_does_not_answer_is_given_up_for_rest_at_once(simulator, feeds, caplog):
    sim = simulator(past_market(live_count=0))
    since = day_start_ms(today() - 3 * DAY)
    until = day_start_ms(today())
    feed = feeds(sim, since, until, archive_url="http://127.0.0.1:9")  # nothing listens there
    items = drain_until(feed, lambda items: feed.finished)
    ids = [e["t"] for e in sim.market.published("BTCUSDT").events if since <= e["T"] < until]
    assert [i.trade_id for i in items] == ids
    assert feed.stats["archive_fallbacks"] == 3 and feed.stats["archive_days_fetched"] == 0
    assert len([r for r in caplog.records if "archive: unreachable" in r.getMessage()]) == 1


def test_the_first_connection_lost_at_once_after_the_replay_misorders_and_loses_nothing(
    simulator, feeds
):
    """Two days back through the archive, then the first connection reset before it delivers a
    trade, the next open within the catch-up's grace: two catch-ups from the replay's end. Every
    trade once, in order, no gap dead letter (issue 18; the same in the middle of a live run:
    test_backfill.py's reconnect lost at once)."""
    symbols = ("BTCUSDT", "ETHUSDT")
    sim = simulator(past_market(symbols, live_count=400))
    sim.faults.delay_market(0.3)  # the stream trails the history, as Binance's may
    sim.faults.drop_after(0, reset=True)  # the first connection (after the replay): at once
    since = day_start_ms(today() - 2 * DAY)
    feed = feeds(sim, since, symbols=[s.lower() for s in symbols])

    def done(items) -> bool:
        if not sim.market.finished:
            return False
        delivered = {(i.symbol, i.trade_id) for i in items if type(i) is Trade}
        return all((s, sim.market.published(s).ids[-1]) in delivered for s in symbols)

    items = drain_until(feed, done)
    items += feed.drain()
    assert not [i for i in items if type(i) is not Trade]  # no gap dead letters
    for symbol in symbols:
        want = [e["t"] for e in sim.market.published(symbol).events if e["T"] >= since]
        assert [i.trade_id for i in items if i.symbol == symbol] == want  # once, in order
    assert len(sim.connections) == 2
    assert feed.stats["archive_days_fetched"] == 4
