"""The Java-free source: Binance trades as a PyFlink DataStream.

PyFlink 2.3 cannot express a source in Python, so the WebSocket bridge (``BinanceFeed``) runs inside
a ``KeyedProcessFunction`` fed by a seed stream:

    datagen seed (1 row/s, parallelism 1) -> one element per shard -> key_by(shard)
      -> _BridgeFunction: starts the shard's feed on the first element (or first timer after a
         restore), drains it on a processing-time timer re-armed every ``drain_interval_ms``,
         never blocks -> trades (main output) + dead letters (side output)

A shard is a group of symbols served by one connection (one combined stream). Default: a single
shard holding every symbol (Binance allows 1024 streams per connection and only 300 connection
attempts per 5 minutes per IP); ``shards=N`` splits the symbols round-robin into N shards so N
subtasks can share the parsing work.

Per-symbol last trade id lives in keyed state (``MapState`` under the shard key), is checkpointed,
and after a restart drops trades at or below it (duplicates). A ``FeedError`` from ``drain()``
propagates: the job fails and Flink's restart strategy retries from the last checkpoint.

With ``duration_s`` the seed is bounded (sequence 1..N at 1 row/s); the row carrying N tells the
operator to close the feed and emit everything it already received. The seed then ends, end of
input flushes the event-time windows and the final checkpoint commits the file sinks.
"""
from __future__ import annotations

import importlib
import logging
import math
import time
from typing import Callable, Sequence

from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor

from .metrics import SourceMetrics
from .rows import DEAD_LETTER_TYPE, TRADE_TYPE, dead_letter_row, encode_raw, trade_row

try:  # lands in parallel; keep this module importable without it
    from connectors.websocket.bridge import BridgeConfig
except ImportError:  # pragma: no cover
    BridgeConfig = None

from connectors.binance.streams import DEFAULT_BASE_URL

log = logging.getLogger(__name__)

DEAD_LETTERS = OutputTag("dead-letters", DEAD_LETTER_TYPE)
SEED_TYPE = Types.TUPLE([Types.INT(), Types.LONG(), Types.BOOLEAN()])  # shard, tick, last

DEFAULT_FEED = "connectors.feed:BinanceFeed"


def plan_shards(symbols: Sequence[str], shards: int | Sequence[Sequence[str]] | None) -> list[list[str]]:
    """Symbols grouped into shards: None -> one shard; int N -> round-robin; lists -> as given."""
    symbols = [s.strip().lower() for s in symbols if s.strip()]
    if not symbols:
        raise ValueError("at least one symbol is needed")
    if shards is None:
        return [symbols]
    if isinstance(shards, int):
        n = max(1, min(shards, len(symbols)))
        return [symbols[i::n] for i in range(n)]
    groups = [[s.strip().lower() for s in g] for g in shards]
    if any(not g for g in groups):
        raise ValueError("empty shard")
    return groups


def seed_stream(env, t_env, n_shards: int, duration_s: float | None = None, name: str = "seed"):
    """One element per shard and second: ``(shard, tick, last)``; bounded when ``duration_s``."""
    if duration_s is None:
        kind = "'fields.tick.kind' = 'random', 'fields.tick.min' = '0', 'fields.tick.max' = '0'"
    else:
        end = max(1, math.ceil(duration_s))
        kind = (f"'fields.tick.kind' = 'sequence', 'fields.tick.start' = '1', "
                f"'fields.tick.end' = '{end}'")
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} (tick BIGINT) WITH ("
        f"'connector' = 'datagen', 'rows-per-second' = '1', 'scan.parallelism' = '1', {kind})")
    ticks = t_env.to_data_stream(t_env.from_path(name))
    last_tick = None if duration_s is None else max(1, math.ceil(duration_s))

    def fan_out(row):
        tick = int(row[0])
        for shard in range(n_shards):
            yield shard, tick, last_tick is not None and tick >= last_tick

    return ticks.flat_map(fan_out, output_type=SEED_TYPE).name("seed per shard").set_parallelism(1)


def trade_stream(env, symbols: Sequence[str], stream: str = "trade", base_url: str = DEFAULT_BASE_URL,
                 config=None, shards: int | Sequence[Sequence[str]] | None = None, *,
                 t_env=None, duration_s: float | None = None, parallelism: int | None = None,
                 drain_interval_ms: int = 10, max_batch: int = 2000,
                 feed_factory: str | Callable | None = None, uid_prefix: str = "binance"):
    """``(trades, dead_letters)``: TRADE_TYPE rows and DEAD_LETTER_TYPE rows.

    ``config`` is a ``BridgeConfig`` (default ``BridgeConfig()``). ``t_env`` defaults to a new
    ``StreamTableEnvironment`` over ``env`` (the seed comes from the Table API ``datagen``).
    ``feed_factory`` builds the feed (``"module:callable"`` or a callable taking
    ``(symbols, stream, base_url, config)``); default ``connectors.feed:BinanceFeed``.
    """
    if stream not in ("trade", "aggTrade"):
        raise ValueError(f"stream must be 'trade' or 'aggTrade', not {stream!r}")
    groups = plan_shards(symbols, shards)
    if t_env is None:
        from pyflink.table import StreamTableEnvironment
        t_env = StreamTableEnvironment.create(env)
    if config is None and BridgeConfig is not None:
        config = BridgeConfig()
    seed = seed_stream(env, t_env, len(groups), duration_s)
    fn = _BridgeFunction(groups, stream, base_url, config, drain_interval_ms, max_batch,
                         feed_factory or DEFAULT_FEED)
    trades = (seed.key_by(lambda e: e[0], key_type=Types.INT())
              .process(fn, output_type=TRADE_TYPE)
              .name(f"binance {stream} bridge").uid(f"{uid_prefix}-bridge"))
    if parallelism:
        trades = trades.set_parallelism(min(parallelism, len(groups)))
    return trades, trades.get_side_output(DEAD_LETTERS)


class RateLimitedLog:
    """At most one line per ``interval_s``; the lines in between are counted, not lost silently."""

    def __init__(self, logger, interval_s: float = 10.0):
        self.logger, self.interval_s = logger, interval_s
        self.next_at = 0.0
        self.suppressed = 0

    def warning(self, msg: str, *args) -> None:
        now = time.monotonic()
        if now < self.next_at:
            self.suppressed += 1
            return
        if self.suppressed:
            msg += f" ({self.suppressed} similar messages suppressed)"
        self.suppressed = 0
        self.next_at = now + self.interval_s
        self.logger.warning(msg, *args)


def _resolve(factory):
    if callable(factory):
        return factory
    module, _, attr = factory.partition(":")
    return getattr(importlib.import_module(module), attr)


class _BridgeFunction(KeyedProcessFunction):
    def __init__(self, groups, stream, base_url, config, drain_interval_ms, max_batch, feed_factory):
        self.groups = groups
        self.stream = stream
        self.base_url = base_url
        self.config = config
        self.interval = max(1, int(drain_interval_ms))
        self.max_batch = max(1, int(max_batch))
        self.feed_factory = feed_factory

    def open(self, runtime_context: RuntimeContext):
        self.feeds = {}          # shard -> feed (this subtask's shards only)
        self.stopped = set()     # shards whose bounded run ended
        self.next_timer = {}     # shard -> the one processing-time timer we keep armed
        self.last_ids = {}       # shard -> {SYMBOL: last id}, mirror of the keyed MapState
        self.last_state = runtime_context.get_map_state(
            MapStateDescriptor("last_trade_id", Types.STRING(), Types.LONG()))
        try:
            self.subtask = runtime_context.get_index_of_this_subtask()
        except Exception:  # thread mode (PEMJA) in 2.3: the Java context lacks this accessor
            self.subtask = "?"
        self.metrics = SourceMetrics(runtime_context.get_metrics_group(), self.feeds)
        self.failure_log = RateLimitedLog(log)
        self.gap_log = RateLimitedLog(log)
        self._make_feed = _resolve(self.feed_factory)

    def close(self):
        for shard, feed in list(self.feeds.items()):
            try:
                feed.close()
            except Exception:  # closing must not mask the error that brought us here
                log.exception("closing feed of shard %s", shard)
        self.feeds.clear()

    # -- elements: the seed ticks --------------------------------------------------------------
    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        shard = ctx.get_current_key()
        if shard in self.stopped:
            return
        if value[2]:  # the bounded run's last tick: stop the feed, emit all it received
            yield from self._finish(shard)
            return
        self._ensure_feed(shard)
        self._arm(shard, ctx)

    # -- the drain timer ------------------------------------------------------------------------
    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        shard = ctx.get_current_key()
        if shard in self.stopped:
            return
        if self.next_timer.get(shard, 0) > timestamp:
            return  # a stale chain (e.g. timers restored from a checkpoint): one chain is enough
        self.next_timer.pop(shard, None)
        feed = self._ensure_feed(shard)
        n = self.max_batch
        try:
            batch = feed.drain(self.max_batch)
        except Exception as e:
            self.metrics.feed_errors.inc()
            log.error("shard %s %s: feed failed, failing the job so Flink restarts it: %s",
                      shard, self.groups[shard], e)
            raise
        yield from self._emit(shard, batch)
        # a full batch means more is waiting: come back at once, else in `interval` ms
        self._arm(shard, ctx, 0 if len(batch) >= n else self.interval)

    # -- helpers ----------------------------------------------------------------------------------
    def _ensure_feed(self, shard):
        feed = self.feeds.get(shard)
        if feed is None:
            symbols = self.groups[shard]
            if self.config is not None:
                feed = self._make_feed(symbols, self.stream, self.base_url, self.config)
            else:
                feed = self._make_feed(symbols, self.stream, self.base_url)
            self.feeds[shard] = feed
            self.last_ids[shard] = {k: v for k, v in self.last_state.items()}
            log.info("subtask %s shard %s: starting feed for %s (%s) at %s, last ids %s",
                     self.subtask, shard, symbols, self.stream, self.base_url, self.last_ids[shard])
            feed.start()
            self.metrics.register_feed_stats(feed)
        return feed

    def _arm(self, shard, ctx, delay=None):
        if shard in self.next_timer:
            return
        at = ctx.timer_service().current_processing_time() + (self.interval if delay is None else delay)
        ctx.timer_service().register_processing_time_timer(at)
        self.next_timer[shard] = at

    def _finish(self, shard):
        feed = self.feeds.get(shard)
        self.stopped.add(shard)
        if feed is None:
            return
        feed.close()
        while True:
            try:
                batch = feed.drain(self.max_batch)
            except Exception as e:  # the feed failed after its last records: they are all out
                log.info("shard %s: feed ended with %s after close", shard, e)
                break
            if not batch:
                break
            yield from self._emit(shard, batch)
        log.info("shard %s: bounded run finished, feed stats %s", shard, dict(feed.stats))
        self.feeds.pop(shard, None)

    def _emit(self, shard, batch):
        if not batch:
            return
        last_ids = self.last_ids[shard]
        changed = {}
        m = self.metrics
        for rec in batch:
            seq = getattr(rec, "seq", None)
            if seq is None:  # a ParseFailure
                m.records_in_errors.inc()
                reason = getattr(rec.reason, "value", rec.reason)
                raw, _ = encode_raw(rec.raw)
                self.failure_log.warning("shard %s: dead letter %s: %s; raw %.200s", shard, reason,
                                         rec.error, raw)
                yield DEAD_LETTERS, dead_letter_row(rec)
                continue
            m.records_in.inc()
            symbol = rec.symbol
            last = last_ids.get(symbol)
            if last is not None:
                if seq <= last:
                    m.duplicates.inc()
                    continue
                if seq != last + 1:
                    m.gaps.inc()
                    self.gap_log.warning("shard %s: %s id jumped from %s to %s (suspected gap of %s)",
                                         shard, symbol, last, seq, seq - last - 1)
            last_ids[symbol] = seq
            changed[symbol] = seq
            m.last_event_time = rec.trade_time
            yield trade_row(rec)
        m.last_record_at = time.time()
        for symbol, seq in changed.items():
            self.last_state.put(symbol, seq)
