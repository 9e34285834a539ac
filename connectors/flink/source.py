"""The Java-free source: Binance trades as a Flink table, with event time.

PyFlink 2.3 cannot express a source in Python, so the WebSocket bridge (``BinanceFeed``) runs inside
the one Python operator of the job, a ``KeyedProcessFunction`` fed by a seed made in Java
(``seed.py``):

    seed (SQL datagen, 1 row/s per shard, keyed in Java)
      -> _BridgeFunction [Python]: starts the shard's feed on the first row (or first timer after
         a restore), drains it on a processing-time timer re-armed every ``drain_interval`` ms,
         never blocks -> trades (tuples) + dead letters (a side output, tuples)
      -> tables: ``trades`` with ``rowtime`` and its watermark, ``dead_letters``   [Java]

A shard is a group of symbols served by one connection (one combined stream). Default: a single
shard holding every symbol (Binance allows 1024 streams per connection and only 300 connection
attempts per 5 minutes per IP); ``shards=N`` splits the symbols round-robin into N shards so N
subtasks can share the parsing work.

Per-symbol last trade id lives in keyed state (``MapState`` under the shard key) and is
checkpointed with the rest of the job: after a restart the feed resumes after it, dropping what
was delivered before and fetching from Binance's REST history what came since, so the committed
output holds every trade once. A ``FeedError`` from ``drain()`` propagates: the job fails and
Flink's restart strategy retries from the last checkpoint (or, for a failure no retry can fix,
the job fails for good: ``failure.py``).

With ``duration_s`` the seed is bounded (1..N at 1 row/s); the row carrying N tells the operator
to close the feed and emit everything it already received. The seed then ends, end of input
flushes the event-time windows and the final checkpoint commits the file sinks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.data_stream import DataStream
from pyflink.datastream.state import MapStateDescriptor

from connectors.binance.listings import Listings, SymbolWatch
from connectors.binance.records import AggTrade, DeadLetter, Trade
from connectors.binance.streams import (
    DEFAULT_STREAMS_PER_CONNECTION,
    first_few,
    home_shard,
    normalize_symbols,
    plan_connections,
)
from connectors.feed import BinanceFeed
from connectors.settings import check_settings, setting
from connectors.websocket.errors import FeedError
from connectors.websocket.ratelimited_log import RateLimitedLog

from .failure import fail_for_good
from .metrics import SourceMetrics
from .rows import (
    DEAD_LETTER_FIELDS,
    DEAD_LETTER_TYPE,
    NO_CAP,
    TRADE_FIELDS,
    TRADE_TYPE,
    DeadLetterTuple,
    TradeTuple,
    dead_letter_tuple,
    trade_tuple,
)
from .seed import keyed_seed
from .watermarks import TradeWatermarks

if TYPE_CHECKING:
    from pyflink.common import Row
    from pyflink.table import StreamTableEnvironment, Table

log = logging.getLogger(__name__)

DEAD_LETTERS = OutputTag("dead-letters", DEAD_LETTER_TYPE)

# What a shard's feed drains: BinanceFeed, or a subclass (the job's --feed-factory).
Feed = BinanceFeed
FeedFactory = Callable[[list[str]], Feed]  # a shard's symbols -> its feed, not yet started
# What the operator emits: a trade, or a dead letter into its side output.
Emitted = TradeTuple | tuple[OutputTag, DeadLetterTuple]


@dataclass(frozen=True)
class DrainConfig:
    drain_interval: int = setting(
        10, "ms between two drains of the feed while trades flow", metavar="MS", minimum=1
    )
    idle_drain_interval: int = setting(
        200,
        "while the feed is quiet the drain backs off, doubling up to this many ms",
        metavar="MS",
        minimum=1,
    )
    max_batch: int = setting(2000, "records taken per drain", minimum=1)
    flush_interval: int = setting(
        0,
        "ms at most before the trades the bridge emitted reach Flink's SQL (the "
        "network buffer timeout of its output); 0: each trade as it is emitted",
        metavar="MS",
        minimum=0,
    )

    def __post_init__(self) -> None:
        check_settings(self)


class TradeTables(NamedTuple):
    trades: Table  # rows.TRADE_FIELDS and ``rowtime`` (event time, with its watermark)
    dead_letters: Table  # rows.DEAD_LETTER_FIELDS


def plan_shards(
    symbols: Sequence[str],
    shards: int | Sequence[Sequence[str]] | None,
    streams_per_connection: int = DEFAULT_STREAMS_PER_CONNECTION,
) -> list[list[str]]:
    """Symbols grouped into shards, one WebSocket connection each: None -> as few as
    ``streams_per_connection`` allows; int N -> at least N, round-robin; lists -> as given."""
    if shards is None or isinstance(shards, int):
        return plan_connections(symbols, 1 if shards is None else shards, streams_per_connection)
    return [normalize_symbols(g) for g in shards]


def binance_trades(
    t_env: StreamTableEnvironment,
    symbols: Sequence[str],
    feed_factory: FeedFactory,
    watermarks: TradeWatermarks = TradeWatermarks(),
    name: str = "binance",
    *,
    shards: int | Sequence[Sequence[str]] | None = None,
    streams_per_connection: int = DEFAULT_STREAMS_PER_CONNECTION,
    duration_s: float | None = None,
    parallelism: int | None = None,
    drain: DrainConfig = DrainConfig(),
    listings: Listings | None = None,
) -> TradeTables:
    """The trades of ``symbols`` with event time by ``watermarks``, and the dead letters, as tables
    (the Table API's ``env.from_source(source, watermark_strategy, name)``).

    ``feed_factory(symbols)`` builds a shard's feed, e.g. ``functools.partial(BinanceFeed,
    stream="trade", rest=RestConfig())``; it travels to the TaskManagers pickled.

    With ``listings`` (``--symbols all``), symbols the exchange lists while the job runs join it
    (``connectors/binance/listings.py``), each on the shard ``home_shard`` names, where it
    stays: its position is in that shard's state, restored with it.
    """
    groups = plan_shards(symbols, shards, streams_per_connection)
    seed = keyed_seed(t_env, len(groups), duration_s, name=f"{name}_seed")
    bridge = (
        seed.process(_BridgeFunction(groups, feed_factory, drain, listings), output_type=TRADE_TYPE)
        .name(f"{name} bridge")
        .uid(f"{name}-bridge")
    )
    bridge = in_own_task(bridge, drain.flush_interval)
    if parallelism:
        bridge = bridge.set_parallelism(min(parallelism, len(groups)))
    # the side output taken in Java: PyFlink's get_side_output would add a Python operator
    dead = DataStream(bridge._j_data_stream.getSideOutput(DEAD_LETTERS.get_java_output_tag()))
    return trade_tables(t_env, bridge, dead, watermarks)


def in_own_task(python_operator: DataStream, flush_interval: int) -> DataStream:
    """The Python operator in a task of its own: it parses and emits while Flink's SQL runs on
    another core (about twice the throughput of one chain, bench/), its output handed over through
    a network buffer flushed every ``flush_interval`` ms. With 0 each record is handed over as it
    is emitted: measured as fast as 10 ms at full load, it spares every trade up to 10 ms and an
    idle job a flusher thread waking 100 times a second (bench/results.md)."""
    python_operator._j_data_stream.setBufferTimeout(flush_interval)
    return python_operator.disable_chaining()


def trade_tables(
    t_env: StreamTableEnvironment,
    trades: DataStream,
    dead_letters: DataStream,
    watermarks: TradeWatermarks,
) -> TradeTables:
    """Tables of a stream of TRADE_TYPE tuples (with event time by ``watermarks``) and of one of
    DEAD_LETTER_TYPE tuples."""
    watermarks.configure(t_env)
    time_column = f"f{TRADE_FIELDS.index('trade_time')}"  # tuple fields are f0, f1, ...
    watermark_column = f"f{TRADE_FIELDS.index('watermark_time')}"
    table = t_env.from_data_stream(trades, watermarks.schema(time_column, watermark_column)).alias(
        *TRADE_FIELDS, "rowtime"
    )
    return TradeTables(table, t_env.from_data_stream(dead_letters).alias(*DEAD_LETTER_FIELDS))


class _BridgeFunction(KeyedProcessFunction):
    def __init__(
        self,
        groups: list[list[str]],
        feed_factory: FeedFactory,
        drain: DrainConfig,
        listings: Listings | None,
    ) -> None:
        self.groups = groups
        self.feed_factory = feed_factory
        self.listings = listings
        self.interval = drain.drain_interval
        self.idle_interval = max(self.interval, drain.idle_drain_interval)
        self.max_batch = drain.max_batch

    def open(self, runtime_context: RuntimeContext) -> None:
        self.runtime_context = runtime_context
        self.feeds: dict[int, Feed] = {}  # shard -> feed (this subtask's shards only)
        self.newest_trade_time = 0  # the newest trade time this subtask has emitted
        # shard -> the newest trade time when it began to hold the watermark (see _watermark_cap)
        self.held_since: dict[int, int] = {}
        self.stopped: set[int] = set()  # shards whose bounded run ended
        self.next_timer: dict[int, int] = {}  # shard -> the one processing-time timer we keep armed
        # shard -> ms until the next drain (backs off while the feed is quiet)
        self.delay: dict[int, int] = {}
        self.last_state = runtime_context.get_map_state(
            MapStateDescriptor("last_trade_id", Types.STRING(), Types.LONG())
        )
        self.subtask: int | str
        try:
            self.subtask = runtime_context.get_index_of_this_subtask()
        except Exception:  # thread mode (PEMJA) in 2.3: the Java context lacks this accessor
            self.subtask = "?"
        self.metrics = SourceMetrics(runtime_context.get_metrics_group(), self.feeds)
        self.failure_log = RateLimitedLog(log)
        self.planned = {symbol for group in self.groups for symbol in group}
        # shard -> symbol -> the time (ms) it is complete from: listings for that shard's feed
        self.joining: dict[int, dict[str, int]] = {}
        self.watch = SymbolWatch.of(self.listings, self.planned).start() if self.listings else None

    def close(self) -> None:
        if self.watch is not None:
            self.watch.close()
        for shard, feed in list(self.feeds.items()):
            try:
                feed.close()
            except Exception:  # closing must not mask the error that brought us here
                log.exception("closing feed of shard %s", shard)
        self.feeds.clear()

    # -- elements: the seed ticks --------------------------------------------------------------
    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator[Emitted]:
        shard = ctx.get_current_key()
        if shard in self.stopped:
            return
        if value.last:  # the bounded run's last tick: stop the feed, emit all it received
            yield from self._finish(shard)
            return
        self._ensure_feed(shard)
        self._arm(shard, ctx)

    # -- the drain timer ------------------------------------------------------------------------
    def on_timer(
        self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext
    ) -> Iterator[Emitted]:
        shard = ctx.get_current_key()
        if shard in self.stopped:
            return
        if self.next_timer.get(shard, 0) > timestamp:
            return  # a stale chain (e.g. timers restored from a checkpoint): one chain is enough
        self.next_timer.pop(shard, None)
        feed = self._ensure_feed(shard)
        try:
            batch = feed.drain(self.max_batch)
        except FeedError as e:
            self.metrics.feed_errors.inc()
            self.metrics.publish(force=True)
            if e.permanent:
                log.error(
                    "shard %s (%s): feed failed for good, failing the job without restarts: %s",
                    shard,
                    feed.name,
                    e,
                )
                fail_for_good(self.runtime_context, str(e))
            else:
                log.error(
                    "shard %s (%s): feed failed, failing the job so Flink restarts it: %s",
                    shard,
                    feed.name,
                    e,
                )
            raise
        yield from self._emit(shard, batch, self._watermark_cap())
        self.metrics.publish()
        if self.watch is not None:
            self._join_listed(shard, feed)
        if feed.finished:  # a bounded history (--until) is all out: the job is stopped from outside
            log.info("shard %s: history replayed up to --until (%s)", shard, feed.name)
            yield from self._finish(shard)
            return
        # A full batch means more is waiting: come back at once. A quiet feed is drained less and
        # less often, up to idle_interval: each timer is a JVM-Python round trip, and at a steady
        # 10 ms they cost an idle job a third of a core (bench/).
        if len(batch) >= self.max_batch:
            delay = 0
        elif batch:
            delay = self.interval
        else:
            delay = min(self.idle_interval, 2 * self.delay.get(shard, self.interval))
        self.delay[shard] = max(delay, self.interval)
        self._arm(shard, ctx, delay)

    # -- helpers ----------------------------------------------------------------------------------
    def _watermark_cap(self) -> int:
        """How far the trades emitted now may move the watermark. All shards of this subtask feed
        one watermark: while one of them is disconnected or backfilling, the trades it will
        deliver later are older than what the others deliver meanwhile, and would be late for
        windows those close. So the watermark stays where it stood when that began, until the
        shard has delivered them (its barrier drained)."""
        self.held_since = {
            shard: self.held_since.get(shard, self.newest_trade_time)
            for shard, feed in self.feeds.items()
            if feed.holding
        }
        self.metrics.watermark_held(bool(self.held_since))
        return min(self.held_since.values(), default=NO_CAP)

    def _join_listed(self, shard: int, feed: Feed) -> None:
        """Symbols listed since the job started join their home shard's feed, from this shard's
        timer (the watch serves the subtask: other shards' listings wait for their timers)."""
        assert self.watch is not None
        for symbol, since in self.watch.take().items():
            self.joining.setdefault(home_shard(symbol, len(self.groups)), {})[symbol] = since
        joining = self.joining.pop(shard, None)
        if not joining:
            return
        try:
            feed.add_symbols(list(joining), min(joining.values()))
        except ValueError as exc:
            log.error(
                "shard %s: %d listed symbols cannot join (%s): %s; a rerun of the job plans"
                " connections for them",
                shard,
                len(joining),
                first_few(sorted(joining)),
                exc,
            )

    def _ensure_feed(self, shard: int) -> Feed:
        feed = self.feeds.get(shard)
        if feed is None:
            last_ids = dict(self.last_state.items())
            # symbols that joined this shard before a restart: their positions are here
            joined = (
                sorted(s.lower() for s in last_ids if s.lower() not in self.planned)
                if self.listings
                else []
            )
            symbols = [*self.groups[shard], *joined]
            feed = self.feed_factory(symbols)
            self.feeds[shard] = feed
            log.info(
                "subtask %s shard %s: starting feed %s at %s, last ids %s",
                self.subtask,
                shard,
                feed.name,
                feed.where,
                last_ids if len(last_ids) <= 3 else f"of {len(last_ids)} symbols",
            )
            # The feed drops what was delivered before a restart and fetches what came since.
            feed.resume_after(last_ids).start()
            self.metrics.register_feed_stats(feed)
        return feed

    def _arm(
        self,
        shard: int,
        ctx: KeyedProcessFunction.Context | KeyedProcessFunction.OnTimerContext,
        delay: int | None = None,
    ) -> None:
        if shard in self.next_timer:
            return
        at = ctx.timer_service().current_processing_time() + (
            self.interval if delay is None else delay
        )
        ctx.timer_service().register_processing_time_timer(at)
        self.next_timer[shard] = at

    def _finish(self, shard: int) -> Iterator[Emitted]:
        feed = self.feeds.get(shard)
        self.stopped.add(shard)
        if feed is None:
            return
        feed.close()
        while True:
            try:
                batch = feed.drain(self.max_batch)
            except FeedError as e:  # the feed failed after its last records: they are all out
                log.info("shard %s: feed ended with %s after close", shard, e)
                break
            if not batch:
                break
            yield from self._emit(shard, batch)
        log.info("shard %s: bounded run finished, feed stats %s", shard, dict(feed.stats))
        self.metrics.publish(force=True)  # the final counts, while the feed still counts in them
        self.feeds.pop(shard, None)

    def _emit(
        self, shard: int, batch: list[Trade | AggTrade | DeadLetter], watermark_cap: int = NO_CAP
    ) -> Iterator[Emitted]:
        """Trades out (their watermark time at most ``watermark_cap``), dead letters to their side
        output, each symbol's highest id into state (the feed delivers a symbol's ids in order but
        for a rare live reordering)."""
        last_ids: dict[str, int] = {}
        m, dead, newest = self.metrics, 0, self.newest_trade_time
        for rec in batch:
            if type(rec) is DeadLetter:
                dead += 1
                self.failure_log.warning(
                    "dead letter",
                    "shard %s: dead letter %s: %s; raw %.200r",
                    shard,
                    rec.reason,
                    rec.error,
                    rec.raw,
                )
                yield DEAD_LETTERS, dead_letter_tuple(rec)
            else:
                if rec.seq > last_ids.get(rec.symbol, -1):
                    last_ids[rec.symbol] = rec.seq
                m.last_event_time = t = rec.trade_time
                if t > newest:
                    newest = t
                yield trade_tuple(rec, watermark_cap)
        self.newest_trade_time = newest
        if dead:
            m.records_in_errors.inc(dead)
        if len(batch) > dead:
            m.records_in.inc(len(batch) - dead)
            m.last_record_at = time.time()
        for symbol, seq in last_ids.items():
            if seq > (self.last_state.get(symbol) or -1):
                self.last_state.put(symbol, seq)
