"""Live Binance trades -> Flink: trades, one-minute bars and dead letters as JSON lines.

    python job/main.py --symbols btcusdt,ethusdt --out /tmp/binance-out
    python job/main.py --demo --duration 60          # no network: embedded exchange simulator
    flink run -py job/main.py --symbols btcusdt      # against a standalone cluster

Run ``python job/main.py --help`` for every option.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import glob
import importlib
import importlib.util
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

if TYPE_CHECKING:  # imported where used: PyFlink starts a JVM, the simulator needs no Flink
    from _typeshed import DataclassInstance
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    from connectors.simulator import ExchangeSimulator
    from job.console import ConsoleReporter
    from job.metrics_gateway import MetricsGateway

SettingsT = TypeVar("SettingsT", bound="DataclassInstance")

DEFAULT_CONFIG = "conf/config.yaml"  # connectors.shipped finds it, in a clone or installed
EMBEDDED_JVM_ARGS = "-Xms1g"  # see flink_config
DEFAULT_LOG_ROOT = "/tmp/binance-flink/log"  # embedded runs log to a folder of their own in here
DEFAULT_METRICS_PORT = 9249
PRINTED_BARS_UP_TO = 10  # symbols; more print one market summary a minute instead of every bar
DEMO_MARKET_SYMBOLS, DEMO_MARKET_RATE = 1500, 2000  # --demo --symbols all: symbols, trades/s
DEMO_USDM_RATE = 20  # --demo --market usdm: aggregate trades a second per symbol

log = logging.getLogger("job")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, where the user looks: what is wrong and with which option."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
        return value

    return parse


def _at_least_zero(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {text}")
        return value

    return parse


def _ws_urls(text: str) -> list[str]:
    from connectors.settings import check_url

    urls = [url.strip() for url in text.split(",") if url.strip()]
    try:
        for url in urls or [text]:
            check_url(url, ("ws", "wss"), "URL")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return urls


def _since(text: str) -> int:
    """ISO 8601 (UTC unless it says otherwise) or ms since the epoch -> ms since the epoch."""
    if text.isdigit():
        ms = int(text)
    else:
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither ISO 8601 (2024-08-09T00:00:00Z) nor ms since the epoch"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        ms = int(moment.timestamp() * 1000)
    if ms > time.time() * 1000:
        raise argparse.ArgumentTypeError(f"{text} is in the future")
    return ms


def _config_path(text: str) -> str:
    from connectors.flink.config import config_dir

    try:
        config_dir(text)  # the check load_config makes, made while parsing
    except FileNotFoundError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return os.path.abspath(text)


def _checkpoint(text: str) -> Any:
    from job.resume import checkpoint_path

    try:
        return checkpoint_path(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_settings(
    group: argparse._ArgumentGroup, settings_class: type, skip: Iterable[str] = ()
) -> None:
    """One option per field of a settings dataclass, its help and bounds taken from the field."""
    for f in dataclasses.fields(settings_class):
        if f.name in skip:
            continue
        meta = f.metadata
        kind = type(f.default) if f.default is not None else str
        help_text = meta["help"] + ("" if f.default is None else f" (default: {f.default})")
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=kind,
            default=None,
            metavar=meta["metavar"],
            choices=meta["choices"],
            help=help_text,
        )


def _settings(
    parser: _Parser,
    settings_class: type[SettingsT],
    args: argparse.Namespace,
    defaults: dict[str, object] | None = None,
    **fixed: object,
) -> SettingsT:
    """The settings dataclass from the options given (``defaults``, else the class's own, for the
    rest); a refused value ends the command with the option's name."""
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(settings_class)
        if getattr(args, f.name, None) is not None
    }
    try:
        return settings_class(**{**(defaults or {}), **given, **fixed})
    except ValueError as exc:
        name = str(exc).split(" ", 1)[0]
        parser.error(f"--{name.replace('_', '-')}: {str(exc).split(' ', 1)[1]}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from connectors.binance.archive import ArchiveConfig
    from connectors.binance.listings import DEFAULT_REFRESH_S
    from connectors.binance.markets import MARKETS, SPOT, USDM
    from connectors.binance.rest import RestConfig
    from connectors.binance.streams import (
        DEFAULT_STREAMS_PER_CONNECTION,
        STREAM_KINDS,
        normalize_symbols,
    )
    from connectors.flink.source import DrainConfig
    from connectors.websocket.config import BridgeConfig

    command = os.path.basename(sys.argv[0])  # binance-flink, when installed as a command
    p = _Parser(
        prog=command if command == "binance-flink" else "job/main.py",
        description=__doc__.split("\n\n")[0],
    )
    g = p.add_argument_group("what to read")
    g.add_argument(
        "--market",
        choices=tuple(MARKETS),
        default=SPOT.name,
        help=f"spot, or usdm: USD-M futures ({USDM.ws_url}, {USDM.rest_url}; @aggTrade only;"
        f" --silence-timeout {USDM.silence_timeout_s:g}, its server pinging every"
        f' {USDM.ping_interval_s / 60:g} minutes; its lines carry "market":"usdm")'
        " (default: %(default)s)",
    )
    g.add_argument(
        "--symbols",
        help="comma-separated symbols, or `all`: every symbol of the market that trades (usdm:"
        " its perpetuals), read from exchangeInfo at start (default: btcusdt; with --demo:"
        " btcusdt,ethusdt)",
    )
    g.add_argument(
        "--quote",
        metavar="ASSETS",
        help="with --symbols all: only symbols quoted in these, e.g. USDT,FDUSD",
    )
    g.add_argument(
        "--exclude", metavar="SYMBOLS", help="with --symbols all: leave these out, e.g. btcusdt"
    )
    g.add_argument(
        "--listing-refresh",
        type=_at_least_zero,
        default=DEFAULT_REFRESH_S,
        metavar="S",
        help="with --symbols all: read exchangeInfo this often while running; a symbol listed"
        " meanwhile joins without a restart, complete from its first trade (0: never;"
        " default: %(default)g, 20 of the IP's 6,000 request weight a minute)",
    )
    g.add_argument(
        "--stream",
        choices=STREAM_KINDS,
        help=f"Binance stream kind (default: {SPOT.default_stream}; usdm: {USDM.default_stream})",
    )
    g.add_argument(
        "--ws-url",
        type=_ws_urls,
        metavar="URL[,URL...]",
        help="Binance WebSocket endpoint, or several for --redundancy (default: the market's,"
        f" {SPOT.ws_url} or {USDM.ws_url}; with --redundancy 2 or more on spot: it and"
        f" {SPOT.ws_mirrors[0]}, which serves the same streams)",
    )
    g.add_argument(
        "--redundancy",
        type=_at_least(1),
        default=1,
        metavar="LINES",
        help="connections per shard reading the same streams, spread over --ws-url's endpoints;"
        " the first copy of each trade wins, so losing a connection loses nothing and needs no"
        " REST call while another is open (default: 1)",
    )
    g.add_argument(
        "--shards",
        type=_at_least(1),
        default=1,
        help="WebSocket connections, at least: symbols are split round-robin into this many, or"
        " more where --streams-per-connection needs it, spread over --parallelism subtasks"
        " (default: 1)",
    )
    g.add_argument(
        "--streams-per-connection",
        type=_at_least(1),
        default=DEFAULT_STREAMS_PER_CONNECTION,
        metavar="N",
        help="most streams one connection carries (Binance allows 1024; default: %(default)s,"
        " which keeps the URL far from the ~8,000 bytes Binance refuses)",
    )
    g.add_argument(
        "--since",
        type=_since,
        metavar="TIME",
        help="on a start without checkpointed state, begin at this time (ISO 8601, UTC unless it "
        "says otherwise, or ms since the epoch): the trades since come from Binance's archive "
        "(complete days) and the REST history (the rest), then the live stream follows",
    )
    g.add_argument(
        "--until",
        type=_since,
        metavar="TIME",
        help="with --since: a bounded backfill job that ends before the first trade at this time, "
        "every file committed; no live part",
    )
    g.add_argument(
        "--demo",
        action="store_true",
        help="start the embedded exchange simulator replaying the recorded trades in "
        "data/captures and read from it, WebSocket and REST (no network needed); overrides "
        "--ws-url and --rest-url; with --symbols all, a generated market of 1,500 symbols;"
        " with --market usdm, generated USD-M aggregate trades",
    )
    g.add_argument(
        "--demo-speed",
        type=_positive(float),
        default=20.0,
        help="replay speed of --demo relative to the capture's real time (default: 20)",
    )

    g = p.add_argument_group("gap filling (Binance's REST history)")
    g.add_argument(
        "--no-backfill",
        action="store_true",
        help="do not fetch what the stream skipped: gaps are only logged and counted",
    )
    _add_settings(g, RestConfig)
    _add_settings(
        g,
        BridgeConfig,
        skip=[f.name for f in dataclasses.fields(BridgeConfig) if f.name != "backfill_timeout"],
    )

    g = p.add_argument_group("history from Binance's archive (--since a day or more back)")
    g.add_argument(
        "--no-archive",
        action="store_true",
        help="fetch all of --since's history from REST, none from the archive's day files",
    )
    _add_settings(g, ArchiveConfig)

    g = p.add_argument_group("what to write")
    g.add_argument(
        "--out",
        metavar="DIR",
        help="write DIR/trades, DIR/bars and DIR/dead-letters as JSON lines, committed on "
        "checkpoints; without it bars are printed to stdout",
    )
    g.add_argument(
        "--duration",
        type=_positive(float),
        metavar="SECONDS",
        help="read for this long, then finish: everything received is written, every window "
        "closed, every file committed; default: run until cancelled",
    )

    g = p.add_argument_group("Flink")
    g.add_argument(
        "--config",
        type=_config_path,
        help="Flink config.yaml applied to the job and the embedded cluster (default: "
        "conf/config.yaml when run with python; none under `flink run`, where the "
        "cluster's own configuration applies)",
    )
    g.add_argument(
        "--parallelism", type=_at_least(1), help="default parallelism (config: parallelism.default)"
    )
    g.add_argument(
        "--checkpoint-interval",
        metavar="DURATION",
        help="e.g. 10s, 500ms (config: execution.checkpointing.interval)",
    )
    g.add_argument(
        "--checkpoint-dir", help="URI, e.g. file:///tmp/ckpt (config: execution.checkpointing.dir)"
    )
    g.add_argument(
        "--rest-port",
        type=_at_least(0),
        help="web UI / REST port of the embedded cluster (0: any free)",
    )
    g.add_argument(
        "--python-mode",
        choices=("process", "thread"),
        help="python.execution-mode (process mode opens gRPC servers on every interface: README,"
        " Security)",
    )
    g.add_argument("--bundle-size", type=_at_least(1), help="python.fn-execution.bundle.size")
    g.add_argument(
        "--bundle-time", type=_at_least(1), metavar="MS", help="python.fn-execution.bundle.time"
    )
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other Flink option, repeatable",
    )

    g = p.add_argument_group("a rerun (README, Operating it)")
    start = g.add_mutually_exclusive_group()
    start.add_argument(
        "--fresh",
        action="store_true",
        help="start over: the checkpoints of this job's earlier runs are removed, not resumed"
        " (default: resume from the last completed one; always fresh with --demo)",
    )
    start.add_argument(
        "--from-checkpoint",
        type=_checkpoint,
        metavar="PATH",
        help="resume from this checkpoint or savepoint (its chk-N or savepoint-... folder)"
        " instead of the last one of this job's previous run",
    )

    g = p.add_argument_group("metrics for Prometheus (python job/main.py; README, Security)")
    g.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="where the embedded run serves its metrics (default: 127.0.0.1, this machine only;"
        " 0.0.0.0 exposes them to every network the machine is on)",
    )
    g.add_argument(
        "--metrics-port",
        type=_at_least(0),
        default=DEFAULT_METRICS_PORT,
        help="the first of the ports tried for it (0: any free; default: %(default)s)",
    )

    g = p.add_argument_group("event time")
    g.add_argument(
        "--out-of-orderness",
        type=_at_least(0),
        default=2000,
        metavar="MS",
        help="the watermark trails the newest trade time by this much: a trade further behind "
        "is late (default: 2000)",
    )

    g = p.add_argument_group("bridge (WebSocket connection and the operator draining it)")
    _add_settings(g, DrainConfig)
    _add_settings(g, BridgeConfig, skip=("backfill_timeout",))
    # bench/ swaps in an instrumented feed ("module:callable") to measure latency
    g.add_argument("--feed-factory", default="connectors.feed:BinanceFeed", help=argparse.SUPPRESS)

    args = p.parse_args(argv)
    apply_market(args, p.error)
    if args.symbols is None:
        args.symbols = "btcusdt,ethusdt" if args.demo else "btcusdt"
    args.symbol_list = args.shard_plan = args.listings = None  # --symbols all: after exchangeInfo
    if args.symbols.strip().lower() != "all":
        if args.quote or args.exclude:
            p.error(f"--{'quote' if args.quote else 'exclude'} goes with --symbols all")
        try:
            args.symbol_list = normalize_symbols(args.symbols.split(","))
        except ValueError as exc:
            p.error(f"--symbols: {exc}")
        plan_shards(args, p.error)
    if args.demo and args.from_checkpoint:
        p.error("--from-checkpoint: --demo starts its exchange anew, there is nothing to resume")
    if args.since is not None and args.no_backfill:
        p.error("--since needs the REST history: leave out --no-backfill")
    if args.until is not None and (args.since is None or args.until <= args.since):
        p.error("--until ends what --since starts: give --since, before --until")
    if args.until is not None and args.duration is not None:
        p.error("--until bounds the job by itself: leave out --duration")
    for item in args.set:
        if "=" not in item:
            p.error(f"--set expects KEY=VALUE, not {item!r}")
    facts = args.market_facts
    args.bridge = _settings(p, BridgeConfig, args, {"silence_timeout": facts.silence_timeout_s})
    # A record the redundant lines' arbitration parks was the newest when it came; released
    # within the watermark's bound, it cannot be late.
    if args.bridge.line_lag_limit * 1000 >= args.out_of_orderness:
        p.error(
            f"--line-lag-limit {args.bridge.line_lag_limit:g} must stay under --out-of-orderness"
            f" ({args.out_of_orderness} ms): a trade held that long would be late"
        )
    args.drain = _settings(p, DrainConfig, args)
    args.rest = (
        None
        if args.no_backfill
        else _settings(
            p,
            RestConfig,
            args,
            {"rest_url": facts.rest_url, "rest_weight_budget": facts.default_weight_budget},
        )
    )
    args.archive = _settings(p, ArchiveConfig, args) if args.archive_kind is not None else None
    return args


def apply_market(args: argparse.Namespace, refuse: Callable[[str], Any]) -> None:
    """``--market``'s facts (``args.market_facts``), its defaults for the options left out, and
    its refusals of the others."""
    from connectors.binance.markets import MARKETS

    facts = args.market_facts = MARKETS[args.market]
    args.stream = args.stream or facts.default_stream
    args.ws_url = args.ws_url or facts.ws_urls(args.redundancy)
    if len(args.ws_url) > args.redundancy:
        refuse(
            f"--ws-url names {len(args.ws_url)} endpoints for {args.redundancy} line"
            f"{'s' if args.redundancy > 1 else ''} a shard: give --redundancy {len(args.ws_url)}"
        )
    checks: list[tuple[str, Callable[[], None]]] = [
        ("--stream", functools.partial(facts.check_stream, args.stream)),
        *(("--ws-url", functools.partial(facts.check_ws_url, url)) for url in args.ws_url),
    ]
    # the stream kind whose history the archive's day files give (markets.py), None: not read
    archived = not args.no_archive and args.stream in facts.archive_paths
    args.archive_kind = args.stream if archived else None
    if args.since is not None:
        now_ms = round(time.time() * 1000)
        checks.append(
            (
                "--since",
                functools.partial(facts.check_since, args.since, now_ms, args.archive_kind),
            )
        )
    for option, check in checks:
        try:
            check()
        except ValueError as exc:
            hint = ", and --no-archive reads none of it from the archive" if args.no_archive else ""
            refuse(f"{option}: {exc}{hint} (--market {args.market})")


def plan_shards(args: argparse.Namespace, refuse: Callable[[str], Any]) -> None:
    """The connections as the job will open them (``args.shard_plan``), checked before Flink
    starts rather than after submitting."""
    from connectors.binance.streams import plan_connections

    try:
        args.shard_plan = plan_connections(
            args.symbol_list, args.shards, args.streams_per_connection
        )
        for group in args.shard_plan:
            check_connection(args, group)
    except ValueError as exc:
        refuse(f"--streams-per-connection: {exc}")


def check_connection(args: argparse.Namespace, symbols: Sequence[str]) -> None:
    """ValueError unless ``symbols`` fit one connection to every endpoint (Binance's streams per
    connection and URL length)."""
    from connectors.binance.streams import stream_url

    for endpoint in args.ws_url:
        stream_url(endpoint, symbols, args.stream)


def fits_a_connection(args: argparse.Namespace) -> Callable[[Sequence[str]], bool]:
    """``check_connection`` as a yes or no."""

    def fits(symbols: Sequence[str]) -> bool:
        try:
            check_connection(args, symbols)
        except ValueError:
            return False
        return True

    return fits


def whole_market(args: argparse.Namespace, rest_url: str | None = None) -> None:
    """``--symbols all``: the symbols that trade now (on ``rest_url``, else the REST options'),
    and their connections; a failure ends the command with one line."""
    from connectors.binance.exchange_info import TRADING, ExchangeInfoUnavailable
    from connectors.binance.listings import Listings
    from connectors.binance.rest import RestConfig

    facts = args.market_facts
    listings = Listings(
        rest=dataclasses.replace(
            args.rest or RestConfig(facts.rest_url, facts.default_weight_budget),
            **({"rest_url": rest_url} if rest_url else {}),
        ),
        market=args.market,
        quotes=tuple(args.quote.replace(" ", "").split(",")) if args.quote else (),
        exclude=tuple(args.exclude.replace(" ", "").split(",")) if args.exclude else (),
        listed=frozenset(),
        planned_at_ms=int(time.time() * 1000),
        refresh_s=args.listing_refresh,
        gate_dir=args.bridge.gate_dir,
        ca_file=args.bridge.ca_file,
    )
    try:
        listed = listings.read()
    except ExchangeInfoUnavailable as exc:
        raise SystemExit(f"job/main.py: error: --symbols all: {exc}") from None
    args.symbol_list = [symbol for symbol, status in listed.items() if status == TRADING]
    if not args.symbol_list:
        raise SystemExit(f"job/main.py: error: --symbols all: no {args.market} symbol trades")
    if args.listing_refresh > 0:
        args.listings = dataclasses.replace(listings, listed=frozenset(listed))

    def refuse(message: str) -> NoReturn:
        print(f"job/main.py: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    plan_shards(args, refuse)
    largest = max(map(len, args.shard_plan))
    log.info(
        "--symbols all: %d %s symbols trade, over %d connections of at most %d streams",
        len(args.symbol_list),
        args.market,
        len(args.shard_plan),
        largest,
    )


def feed_factory(
    args: argparse.Namespace, ws_urls: list[str], rest_url: str | None
) -> functools.partial[Any]:
    """What builds each shard's feed: picklable, it travels to the TaskManagers."""
    module, _, name = args.feed_factory.partition(":")
    feed_class = getattr(importlib.import_module(module), name)
    rest = (
        None
        if args.rest is None
        else dataclasses.replace(args.rest, **({"rest_url": rest_url} if rest_url else {}))
    )
    archive = (  # --demo: the simulator's archive too
        dataclasses.replace(args.archive, archive_url=rest_url)
        if rest_url and args.archive is not None
        else args.archive
    )
    return functools.partial(
        feed_class,
        stream=args.stream,
        base_url=ws_urls,
        redundancy=args.redundancy,
        config=args.bridge,
        rest=rest,
        since_ms=args.since,
        market=args.market,
        archive=archive if args.since is not None else None,
        until_ms=args.until,
    )


def flink_config(args: argparse.Namespace, local: bool) -> Configuration:
    from connectors.flink.config import config_dir, load_config
    from connectors.shipped import shipped

    path: str | None = args.config
    if local:
        path = path or str(shipped(DEFAULT_CONFIG))
        # The embedded JVM's environment, read once when load_config starts it. It takes the
        # config's env.java.opts.all, as the cluster's JVMs do, and a heap floor: left to itself
        # G1 keeps this JVM's heap near 256 MB, where at 10,000 trades/s back-to-back concurrent
        # marking cycles stall trades for up to 170 ms (with 1 GB: p99 under 40 ms, bench/); a
        # JVM_ARGS of the user's wins. Thread mode embeds an interpreter in the JVM that does not
        # see this venv: it takes this environment's site-packages from PYTHONPATH (process mode
        # does not mind). The embedded cluster loads no plugins, only what is on its classpath, to
        # which pyflink's launcher adds $HADOOP_CLASSPATH: that is how the Prometheus reporter
        # gets in.
        os.environ["FLINK_CONF_DIR"] = config_dir(path)
        os.environ.setdefault("JVM_ARGS", EMBEDDED_JVM_ARGS)
        # Left unset, PyFlink starts its loopback worker pool in this process for a local run: an
        # unauthenticated gRPC service on every interface that starts Python workers on request
        # (BeamFnLoopbackWorkerPoolServicer). Thread mode never uses it; with this, process mode
        # starts its workers as processes of the JVM instead.
        os.environ.setdefault("_python_worker_execution_mode", "process")
        import site

        import pyflink

        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        os.environ["PYTHONPATH"] = os.pathsep.join(paths + site.getsitepackages())
        reporters = glob.glob(
            os.path.join(
                os.path.dirname(pyflink.__file__), "plugins", "metrics-prometheus", "*.jar"
            )
        )
        classpath = [p for p in os.environ.get("HADOOP_CLASSPATH", "").split(os.pathsep) if p]
        os.environ["HADOOP_CLASSPATH"] = os.pathsep.join(classpath + reporters)
    conf = load_config(path)
    overrides = {
        "parallelism.default": args.parallelism,
        "execution.checkpointing.interval": args.checkpoint_interval,
        "execution.checkpointing.dir": args.checkpoint_dir,
        "rest.port": args.rest_port,
        "python.execution-mode": args.python_mode,
        "python.fn-execution.bundle.size": args.bundle_size,
        "python.fn-execution.bundle.time": args.bundle_time,
    }
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key.strip()] = value.strip()
    for key, value in overrides.items():
        if value is not None:
            conf.set_string(key, str(value))
    if local and not conf.contains_key("python.executable"):
        conf.set_string("python.executable", sys.executable)  # the workers use this venv
    return conf


def choose_start(
    args: argparse.Namespace, conf: Configuration, local: bool, held: contextlib.ExitStack
) -> None:
    """Where the run starts, said on the console in one line and set in ``conf``: an embedded
    run checkpoints into a folder of its job's own and resumes from the last completed checkpoint
    of its previous run (job/resume.py). What must last as long as the run (the lock on that
    folder, the removal of what a killed run left in progress) goes into ``held``."""
    from job import resume

    if not local:  # `flink run`: its -s picks the checkpoint, the cluster's folder holds them
        if args.from_checkpoint is not None:
            raise SystemExit(
                f"job/main.py: error: --from-checkpoint: under flink run, give it to flink run:"
                f" flink run -s {args.from_checkpoint} -py job/main.py ..."
            )
        return
    if conf.contains_key("execution.state-recovery.path"):
        return  # --set execution.state-recovery.path=...: as given
    where = conf.get_string("execution.checkpointing.dir", "")
    root = resume.local_dir(where) if where else None
    if root is None:  # not searched: a rerun starts fresh unless told where to resume from
        if args.from_checkpoint is not None:
            conf.set_string("execution.state-recovery.path", args.from_checkpoint.as_uri())
        log.info(
            "checkpoints not in a local folder (%s): %s",
            where or "none",
            f"resuming from {args.from_checkpoint}" if args.from_checkpoint else "starting fresh",
        )
        return
    every_symbol = args.symbols.strip().lower() == "all"  # the list changes with listings
    scope = f"quote={args.quote} exclude={args.exclude}"
    symbols = None if every_symbol else args.symbol_list
    job_dir = root / resume.job_key(args.out, args.stream, symbols, scope)
    try:
        held.callback(resume.hold(job_dir).close)
    except resume.AlreadyRunning as exc:
        raise SystemExit(f"job/main.py: error: {exc}: stop it first") from None
    started = time.time()
    start = resume.start_point(
        job_dir,
        fresh=args.fresh or args.demo,
        chosen=args.from_checkpoint,
        fresh_why="--demo (its exchange starts anew)" if args.demo else "",
    )
    conf.set_string("execution.checkpointing.dir", job_dir.as_uri())
    if start.checkpoint is not None:
        conf.set_string("execution.state-recovery.path", start.checkpoint.as_uri())
        # CLAIM: the run owns what it resumed from and deletes it once its own replace it
        claim = "CLAIM" if start.claim else "NO_CLAIM"
        conf.set_string("execution.state-recovery.claim-mode", claim)
    log.info("%s", start.message)
    args.shard_plan, moved = resume.keep_homes(job_dir, args.shard_plan, fits_a_connection(args))
    if start.checkpoint is not None and moved:
        log.warning(
            "%d symbols are on another connection than in the run checkpointed (e.g. %s): their"
            " positions are kept per connection, so they start as new ones do (live, or at"
            " --since): what they traded while the job was down is not fetched (the same"
            " --shards and --streams-per-connection as before keep each symbol on its own)",
            len(moved),
            ", ".join(moved[:3]),
        )
    if start.checkpoint is not None and args.out:
        held.enter_context(_removing_dead_part_files(Path(args.out), job_dir, started))


@contextlib.contextmanager
def _removing_dead_part_files(out: Path, job_dir: Path, started: float) -> Iterator[None]:
    """While the run lives, a thread that removes the part files a killed run left in progress
    (job/resume.py, remove_dead_part_files), and says how many."""
    from job.resume import remove_dead_part_files

    stop = threading.Event()

    def remove() -> None:
        if dead := remove_dead_part_files(out, job_dir, started, stop):
            log.info(
                "removed %d part file%s the killed run left in progress (what it wrote after its"
                " last checkpoint, written again from the history)",
                len(dead),
                "s" * (len(dead) > 1),
            )

    thread = threading.Thread(target=remove, name="dead-part-files", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5.0)


def start_metrics_gateway(
    args: argparse.Namespace, conf: Configuration, say: Callable[[str], None]
) -> MetricsGateway | None:
    """For an embedded run whose config pushes metrics (conf/config.yaml does): the gateway they
    are pushed to, in this process, and the reporters pointed at it. None when nothing pushes."""
    from job.metrics_gateway import MetricsGateway, is_loopback

    push_reporters = [
        key.removesuffix(".factory.class")
        for key, value in conf.to_dict().items()
        if key.startswith("metrics.reporter.")
        and key.endswith(".factory.class")
        and value.endswith("PrometheusPushGatewayReporterFactory")
    ]
    if not push_reporters:
        return None
    gateway = MetricsGateway(args.metrics_host, args.metrics_port).start()
    for reporter in push_reporters:
        conf.set_string(f"{reporter}.hostUrl", gateway.url)
    say(f"metrics for Prometheus at http://{args.metrics_host}:{gateway.port}/metrics")
    if not is_loopback(args.metrics_host):
        log.warning(
            "--metrics-host %s: the job's metrics can be read, and false ones pushed, by anyone"
            " who reaches this machine on port %d",
            args.metrics_host,
            gateway.port,
        )
    return gateway


def build(
    env: StreamExecutionEnvironment,
    args: argparse.Namespace,
    ws_urls: list[str],
    rest_url: str | None = None,
    trades_source: Callable[..., Any] | None = None,
) -> None:
    """The job graph: the bridge, the one Python operator, then Flink SQL. ``env.execute`` runs it.

    ``trades_source``: what makes the trade and dead-letter tables, called as
    ``connectors.flink.source.binance_trades`` (the default) is; bench/ passes a FileSource twin.
    """
    from pyflink.table import StreamTableEnvironment

    from connectors.flink.bars import late_trades, market_summary, minute_bars
    from connectors.flink.outputs import (
        add_file_output,
        bar_lines,
        dead_letter_lines,
        print_lines,
        trade_lines,
    )
    from connectors.flink.source import binance_trades
    from connectors.flink.watermarks import TradeWatermarks

    t_env = StreamTableEnvironment.create(env)
    config = t_env.get_config()
    config.set("table.local-time-zone", "UTC")  # the hour folders, whatever the machine's zone
    # Flink SQL carries far more than one Python interpreter feeds it: parallelism 1 from the
    # exchange by symbol on. What chains to the bridge (the table conversion, the watermark
    # assigner, the late-trade filter, the windows' local phase) keeps the bridge's parallelism:
    # each bridge subtask has a watermark of its own, held for its own shards, and the windows
    # after the exchange go by the oldest (tests/flink/test_gap_free.py, two subtasks).
    config.set("table.exec.resource.default-parallelism", "1")
    trades, dead_letters = (trades_source or binance_trades)(
        t_env,
        args.symbol_list,
        feed_factory(args, ws_urls, rest_url),
        TradeWatermarks(args.out_of_orderness),
        shards=args.shard_plan,
        duration_s=args.duration,
        parallelism=args.parallelism,
        drain=args.drain,
        listings=args.listings,
    )
    market = args.market_facts.output_name
    bars = bar_lines(t_env, minute_bars(t_env, trades), market)
    if not args.out:
        many = len(args.symbol_list) > PRINTED_BARS_UP_TO
        print_lines(t_env, market_summary(t_env, trades) if many else bars)
        return
    # One statement set, planned as a whole: the three outputs share the watermark assigners (not
    # a copy each), so the late-trade filter sees the very watermarks the bars' windows do.
    config.set("table.optimizer.reuse-optimize-block-with-digest-enabled", "true")
    roll = env.get_checkpoint_config().get_checkpoint_interval() or 10_000
    statements = t_env.create_statement_set()
    add_file_output(
        t_env,
        statements,
        trade_lines(t_env, trades, args.stream, market),
        args.out,
        "trades",
        f"{roll} ms",
    )
    add_file_output(t_env, statements, bars, args.out, "bars", f"{roll} ms")
    add_file_output(
        t_env,
        statements,
        dead_letter_lines(t_env, dead_letters, late_trades(t_env, trades), args.stream, market),
        args.out,
        "dead-letters",
        f"{roll} ms",
    )
    statements.attach_as_datastream()


def start_demo(args: argparse.Namespace) -> ExchangeSimulator:
    """The embedded exchange simulator replaying the sample capture (BTCUSDT and ETHUSDT trades,
    2024-08-09 00:00-00:04 UTC) in a loop, ids and times moving on with each pass; with
    ``--symbols all``, a generated market of 1,500 symbols instead. With ``--market usdm``, USD-M
    futures: generated aggregate trades (of every symbol asked for, or of the 1,500)."""
    from connectors.simulator import DEMO_CAPTURES, ExchangeSimulator, Market, whole_market

    if args.market == "usdm":
        market = (
            whole_market(DEMO_MARKET_SYMBOLS, rate=DEMO_MARKET_RATE, kind="aggTrade", venue="usdm")
            if args.symbol_list is None
            else Market.generated(
                [s.upper() for s in args.symbol_list],
                rate=DEMO_USDM_RATE,
                kind="aggTrade",
                venue="usdm",
            )
        )
        sim = ExchangeSimulator(market, endpoints=args.redundancy).start()
        log.info(
            "demo: exchange simulator generating USD-M aggregate trades of %d symbols on %s",
            len(market.symbols),
            sim.ws_url,
        )
        return sim
    if args.stream != "trade":
        raise SystemExit("--demo replays @trade events only: use --stream trade")
    if args.symbol_list is None:
        sim = ExchangeSimulator(
            whole_market(DEMO_MARKET_SYMBOLS, rate=DEMO_MARKET_RATE), endpoints=args.redundancy
        ).start()
        log.info(
            "demo: exchange simulator generating %d symbols at %d trades/s on %s",
            DEMO_MARKET_SYMBOLS,
            DEMO_MARKET_RATE,
            sim.ws_url,
        )
        return sim
    market = Market.replay(
        DEMO_CAPTURES,
        symbols=[s.upper() for s in args.symbol_list],
        loop=True,
        speed=args.demo_speed,
    )
    sim = ExchangeSimulator(market, endpoints=args.redundancy).start()
    log.info(
        "demo: exchange simulator replaying %s at %gx on %s",
        ", ".join(p.name for p in DEMO_CAPTURES),
        args.demo_speed,
        sim.ws_url,
    )
    return sim


def main(argv: Sequence[str] | None = None, trades_source: Callable[..., Any] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if importlib.util.find_spec("connectors") is None:  # the Python workers need it installed too
        raise SystemExit(
            "the project is not installed in this Python: run `bash scripts/setup` "
            "(or `pip install -e .`) and use that environment's python"
        )
    args = parse_args(argv)
    sim = start_demo(args) if args.demo else None
    if args.symbol_list is None:
        try:
            whole_market(args, sim.http_url if sim else None)
        except BaseException:
            if sim is not None:
                sim.stop()
            raise
    local = "PYFLINK_GATEWAY_PORT" not in os.environ  # set when `flink run -py` drives this script
    if args.until is not None and not local:
        raise SystemExit(
            "job/main.py: error: --until runs embedded (python job/main.py); under flink run, "
            "stop the job with `flink stop --drain` once its log says the history was replayed"
        )
    reporter = None
    if local:
        # The embedded cluster logs to $FLINK_LOG_DIR; by default a folder of this run's own, so a
        # run never writes over another's log.
        run = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        log_dir = os.environ.setdefault("FLINK_LOG_DIR", os.path.join(DEFAULT_LOG_ROOT, run))
        os.makedirs(log_dir, exist_ok=True)
        log.info("Flink log of this run (embedded cluster, Python operators): %s", log_dir)
        from job.console import ConsoleReporter

        reporter = ConsoleReporter(log_dir).start()

    from pyflink.datastream import StreamExecutionEnvironment

    conf = flink_config(args, local)
    held = contextlib.ExitStack()
    try:
        choose_start(args, conf, local, held)
    except SystemExit:  # another run of the same job holds its folder
        if sim is not None:
            sim.stop()
        raise
    gateway = start_metrics_gateway(args, conf, reporter.say) if reporter is not None else None
    if gateway is not None and reporter is not None:
        gateway.add_collector(reporter.metrics)  # the restarts by reason
    if local and conf.get_string("python.execution-mode", "thread") == "process":
        log.warning(
            "python.execution-mode process: the Python workers reach the JVM through gRPC servers"
            " that listen on every interface (Beam offers no bind address); thread mode (the"
            " default) opens none"
        )
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    route = args.market_facts.ws_route
    ws_urls, rest_url = (
        ([url + route for url in sim.ws_urls], sim.http_url) if sim else (args.ws_url, None)
    )
    try:
        build(env, args, ws_urls, rest_url, trades_source)
        symbols = args.symbol_list
        market = "" if args.market == "spot" else f"{args.market} "
        name = f"binance {market}{args.stream} " + (
            ",".join(symbols) if len(symbols) <= 3 else f"{len(symbols)} symbols"
        )
        shards = len(args.shard_plan)
        connections = shards * args.redundancy
        log.info(
            "submitting %r reading %s over %d connection%s%s%s",
            name,
            " and ".join(ws_urls),
            connections,
            "s" if connections > 1 else "",
            f" ({shards} shards x {args.redundancy} lines)" if args.redundancy > 1 else "",
            f" for {args.duration:g}s" if args.duration else "",
        )
        if args.until is not None:
            run_until(env, name, len(args.shard_plan), reporter, conf)
        else:
            env.execute(name)
        log.info("job finished")
    except KeyboardInterrupt:  # Ctrl-C: the embedded cluster goes down with this process
        log.info("interrupted: stopping")
        return 130
    except Exception as exc:  # the job failed for good: say why where the user looks
        log.error(
            "job failed: %s%s",
            _root_cause(exc),
            f" (the whole Flink log: {os.environ['FLINK_LOG_DIR']})" if local else "",
        )
        return 1
    finally:
        if sim is not None:
            sim.stop()
        if gateway is not None:
            gateway.stop()
        if reporter is not None:
            reporter.stop()
        held.close()
    return 0


def run_until(
    env: StreamExecutionEnvironment,
    name: str,
    shards: int,
    reporter: ConsoleReporter | None,
    conf: Configuration,
) -> None:
    """``--until``: the job runs until every shard has replayed its history, then stops with its
    last trades written, every window closed (the watermark advanced to the end of time) and the
    files committed: Flink's stop with a draining savepoint. The shards say so in the log that
    the console follows (an embedded run)."""
    assert reporter is not None  # main refuses --until without one
    client = env.execute_async(name)
    result = client.get_job_execution_result()
    while len(reporter.histories_done) < shards:
        if result.done():
            result.result()  # the job ended (failed) before: raise its error
            return
        time.sleep(0.5)
    folder = conf.get_string("execution.checkpointing.dir", "") or "file:///tmp/binance-flink"
    log.info("history replayed up to --until: stopping the job (draining)")
    # PyFlink 2.3's JobClient.stop_with_savepoint calls a Java signature Flink 2 no longer has
    # (it lacks the format argument): the Java client directly.
    from pyflink.common.completable_future import CompletableFuture
    from pyflink.java_gateway import get_gateway

    formats = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType
    stopped = client._j_job_client.stopWithSavepoint(
        True, folder.rstrip("/") + "/until-savepoints", formats.DEFAULT
    )
    CompletableFuture(stopped, str).result()
    result.result()


def _root_cause(exc: BaseException) -> str:
    """The innermost cause, Java's included (env.execute raises through py4j)."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        while java.getCause() is not None:
            java = java.getCause()
        return str(java.toString())
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}"


if __name__ == "__main__":
    sys.exit(main())
