"""Live Binance trades -> Flink: trades, one-minute bars and dead letters as JSON lines.

    python job/main.py --symbols btcusdt,ethusdt --out /tmp/binance-out
    python job/main.py --demo --duration 60          # no network: embedded exchange simulator
    flink run -py job/main.py --symbols btcusdt      # against a standalone cluster

Run ``python job/main.py --help`` for every option.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(REPO, "conf", "config.yaml")
DEFAULT_WS_URL = "wss://stream.binance.com:9443"

log = logging.getLogger("job")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="job/main.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("what to read")
    g.add_argument("--symbols", help="comma-separated symbols (default: btcusdt; with --demo: "
                                     "btcusdt,ethusdt)")
    g.add_argument("--stream", choices=("trade", "aggTrade"), default="trade")
    g.add_argument("--ws-url", default=DEFAULT_WS_URL, help="Binance WebSocket base URL")
    g.add_argument("--shards", type=int, default=1,
                   help="connections: symbols are split round-robin into this many shards, one "
                        "WebSocket connection each (spread over --parallelism subtasks)")
    g.add_argument("--demo", action="store_true",
                   help="start the embedded exchange simulator replaying the sample capture and "
                        "read from it (no network needed); overrides --ws-url")
    g.add_argument("--demo-speed", type=float, default=20.0,
                   help="replay speed of --demo relative to the capture's real time")

    g = p.add_argument_group("what to write")
    g.add_argument("--out", metavar="DIR",
                   help="write DIR/trades, DIR/bars and DIR/dead-letters as JSON lines, committed "
                        "on checkpoints; without it bars are printed to stdout")
    g.add_argument("--duration", type=float, metavar="SECONDS",
                   help="read for this long, then finish: everything received is written, every "
                        "window closed, every file committed; default: run until cancelled")

    g = p.add_argument_group("Flink")
    g.add_argument("--config",
                   help="Flink config.yaml applied to the job and the embedded cluster (default: "
                        "conf/config.yaml when run with python; none under `flink run`, where the "
                        "cluster's own configuration applies)")
    g.add_argument("--parallelism", type=int, help="default parallelism (config: parallelism.default)")
    g.add_argument("--checkpoint-interval", metavar="DURATION",
                   help="e.g. 10s, 500ms (config: execution.checkpointing.interval)")
    g.add_argument("--checkpoint-dir", help="URI, e.g. file:///tmp/ckpt (config: execution.checkpointing.dir)")
    g.add_argument("--rest-port", type=int, help="web UI / REST port of the embedded cluster")
    g.add_argument("--python-mode", choices=("process", "thread"), help="python.execution-mode")
    g.add_argument("--bundle-size", type=int, help="python.fn-execution.bundle.size")
    g.add_argument("--bundle-time", type=int, metavar="MS", help="python.fn-execution.bundle.time")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other Flink option, repeatable")

    g = p.add_argument_group("event time")
    g.add_argument("--out-of-orderness", type=int, default=2000, metavar="MS",
                   help="bounded out-of-orderness of trade times")
    g.add_argument("--idleness", type=int, default=10000, metavar="MS",
                   help="a source subtask without trades this long stops holding back the watermark (0: never)")

    g = p.add_argument_group("bridge (WebSocket connection)")
    g.add_argument("--drain-interval", type=int, default=10, metavar="MS",
                   help="how often the operator drains the connection's buffer while trades flow")
    g.add_argument("--idle-drain-interval", type=int, default=100, metavar="MS",
                   help="while the feed is quiet the drain backs off, doubling up to this")
    g.add_argument("--max-batch", type=int, default=2000, help="records taken per drain")
    g.add_argument("--buffer-size", type=int, help="bounded buffer between socket and Flink (100000)")
    g.add_argument("--overflow", choices=("block", "drop_oldest", "drop_newest", "fail"),
                   help="what a full buffer does (block)")
    g.add_argument("--connect-timeout", type=float, metavar="S", help="(10)")
    g.add_argument("--silence-timeout", type=float, metavar="S",
                   help="reconnect after this long without a frame (45)")
    g.add_argument("--max-reconnect-attempts", type=int,
                   help="consecutive failed attempts before the job fails and Flink restarts it (10)")
    g.add_argument("--backoff-initial", type=float, metavar="S", help="(0.5)")
    g.add_argument("--backoff-max", type=float, metavar="S", help="(30)")
    g.add_argument("--backoff-jitter", type=float, help="(0.2)")
    g.add_argument("--max-connection-age", type=float, metavar="S",
                   help="reconnect proactively before Binance's 24 h limit (85000)")
    # bench/ swaps in an instrumented feed ("module:callable") to measure latency
    g.add_argument("--feed-factory", default="connectors.feed:BinanceFeed", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.symbols is None:
        args.symbols = "btcusdt,ethusdt" if args.demo else "btcusdt"
    args.symbol_list = [s.strip().lower() for s in args.symbols.split(",") if s.strip()]
    if not args.symbol_list:
        p.error("--symbols: at least one symbol")
    if args.duration is not None and args.duration <= 0:
        p.error("--duration must be positive")
    return args


def bridge_config(args):
    from connectors.websocket.bridge import BridgeConfig
    fields = {"buffer_size": args.buffer_size, "overflow": args.overflow,
              "connect_timeout": args.connect_timeout, "silence_timeout": args.silence_timeout,
              "max_reconnect_attempts": args.max_reconnect_attempts,
              "backoff_initial": args.backoff_initial, "backoff_max": args.backoff_max,
              "backoff_jitter": args.backoff_jitter, "max_connection_age": args.max_connection_age}
    return BridgeConfig(**{k: v for k, v in fields.items() if v is not None})


def flink_config(args, local: bool):
    from connectors.flink.config import load_config
    if local:
        # Thread mode embeds an interpreter in the JVM that does not see this venv; it takes this
        # environment's site-packages from PYTHONPATH, which the JVM reads once, when load_config
        # starts it: so before that, and whatever the mode (process mode does not mind).
        import site
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        os.environ["PYTHONPATH"] = os.pathsep.join(paths + site.getsitepackages())
    conf = load_config(args.config or (DEFAULT_CONFIG if local else None))
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
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    for key, value in overrides.items():
        if value is not None:
            conf.set_string(key, str(value))
    if local and not conf.contains_key("python.executable"):
        conf.set_string("python.executable", sys.executable)  # the workers use this venv
    return conf


def build(env, args, ws_url: str):
    """The job graph. Returns nothing; ``env.execute`` runs it."""
    from pyflink.common.typeinfo import Types
    from pyflink.table import StreamTableEnvironment

    from connectors.flink.bars import minute_bars
    from connectors.flink.rows import late_trade_line, trade_json
    from connectors.flink.sinks import print_lines, write_lines
    from connectors.flink.source import trade_stream
    from connectors.flink.watermarks import with_trade_time

    t_env = StreamTableEnvironment.create(env)
    trades, dead = trade_stream(
        env, args.symbol_list, args.stream, ws_url, bridge_config(args), shards=args.shards,
        t_env=t_env, duration_s=args.duration, parallelism=args.parallelism,
        drain_interval_ms=args.drain_interval, idle_drain_interval_ms=args.idle_drain_interval,
        max_batch=args.max_batch, feed_factory=args.feed_factory)
    timed = with_trade_time(trades, args.out_of_orderness, args.idleness or None)
    bars, late = minute_bars(timed)
    stream = args.stream
    if args.out:
        trade_lines = trades.map(lambda r: trade_json(r, stream), output_type=Types.STRING()).name("trades to json")
        write_lines(trade_lines, args.out, "trades")
        write_lines(bars, args.out, "bars")
        late_lines = late.map(late_trade_line, output_type=Types.STRING()).name("late trades")
        write_lines(dead.union(late_lines), args.out, "dead-letters")
    else:
        print_lines(bars)


def start_demo(args):
    """The embedded exchange simulator replaying the sample capture (BTCUSDT and ETHUSDT trades,
    2024-08-09 00:00-00:04 UTC) in a loop, ids and times moving on with each pass."""
    from connectors.simulator import SAMPLE_CAPTURE, ExchangeSimulator, Market
    if args.stream != "trade":
        raise SystemExit("--demo replays @trade events only: use --stream trade")
    market = Market.replay(SAMPLE_CAPTURE, symbols=[s.upper() for s in args.symbol_list], loop=True,
                           speed=args.demo_speed)
    sim = ExchangeSimulator(market).start()
    log.info("demo: exchange simulator replaying %s at %gx on %s", SAMPLE_CAPTURE.name,
             args.demo_speed, sim.ws_url)
    return sim, sim.ws_url


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    local = "PYFLINK_GATEWAY_PORT" not in os.environ  # set when `flink run -py` drives this script
    if local:  # the embedded cluster's log (default: inside site-packages/pyflink/log)
        os.makedirs(os.environ.setdefault("FLINK_LOG_DIR", "/tmp/binance-flink/log"), exist_ok=True)
        log.info("Flink log (embedded cluster, Python workers): %s", os.environ["FLINK_LOG_DIR"])
    if importlib.util.find_spec("connectors") is None:  # the Python workers need it installed too
        raise SystemExit("the project is not installed in this Python: run `bash scripts/setup` "
                         "(or `pip install -e .`) and use that environment's python")

    from pyflink.datastream import StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment(flink_config(args, local))
    sim = None
    ws_url = args.ws_url
    if args.demo:
        sim, ws_url = start_demo(args)
    try:
        build(env, args, ws_url)
        name = f"binance {args.stream} {','.join(args.symbol_list)}"
        log.info("submitting %r reading %s%s", name, ws_url,
                 f" for {args.duration:g}s" if args.duration else "")
        env.execute(name)
        log.info("job finished")
    except KeyboardInterrupt:  # Ctrl-C: the embedded cluster goes down with this process
        log.info("interrupted: stopping")
        return 130
    finally:
        if sim is not None:
            sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
