"""Run the simulator standalone until Ctrl-C.

    python -m connectors.simulator --port 9443 --capture PATH [--capture PATH] --speed 1
    python -m connectors.simulator --generate btcusdt --rate 100

Without ``--capture`` or ``--generate`` it replays the demo captures (data/captures).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading

from connectors.simulator.captures import DEMO_CAPTURES
from connectors.simulator.market import Feed, GeneratedFeed, Market, replay_feeds
from connectors.simulator.server import ExchangeSimulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=(
            "binance-flink-sim"
            if os.path.basename(sys.argv[0]) == "binance-flink-sim"
            else "python -m connectors.simulator"
        ),
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9443, help="0 picks a free port")
    parser.add_argument(
        "--capture",
        action="append",
        default=[],
        metavar="PATH",
        help="capture to replay (repeatable)",
    )
    parser.add_argument(
        "--kinds", default="trade", help="stream kinds to replay, comma-separated (trade,aggTrade)"
    )
    parser.add_argument("--symbols", help="symbols to replay, comma-separated (default: all)")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="1 = recorded pace, N = N times faster, 0 = flat out",
    )
    parser.add_argument(
        "--loop", action="store_true", help="replay again and again, ids and times continuing"
    )
    parser.add_argument(
        "--generate",
        action="append",
        default=[],
        metavar="SYMBOL",
        help="random-walk trades (repeatable)",
    )
    parser.add_argument(
        "--rate", type=float, default=100.0, help="generated trades per second and symbol"
    )
    parser.add_argument("--live", action="store_true", help="markets run without subscribers too")
    parser.add_argument("--ping-interval", type=float, default=20.0)
    parser.add_argument("--pong-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if not args.capture and not args.generate:
        args.capture = list(DEMO_CAPTURES)
    return args


def build_market(args: argparse.Namespace) -> Market:
    feeds: list[Feed] = []
    if args.capture:
        symbols = args.symbols.split(",") if args.symbols else None
        feeds += replay_feeds(
            args.capture, kinds=args.kinds.split(","), symbols=symbols, loop=args.loop
        )
    feeds += [GeneratedFeed(symbol, rate=args.rate) for symbol in args.generate]
    return Market(feeds, speed=args.speed, pause_without_subscribers=not args.live)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        market = build_market(args)
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ExchangeSimulator(
        market,
        args.host,
        args.port,
        ping_interval=args.ping_interval,
        pong_timeout=args.pong_timeout,
    ) as sim:
        print(f"streams: {', '.join(market.streams)}")
        print(f"combined: {sim.ws_url}/stream?streams={'/'.join(market.streams)}")
        print(f"raw:      {sim.ws_url}/ws/{market.streams[0]}")
        for symbol in market.symbols:
            print(f"REST:     {sim.http_url}/api/v3/historicalTrades?symbol={symbol}")
        print("Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
