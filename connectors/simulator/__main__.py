"""Run the simulator standalone until Ctrl-C.

    python -m connectors.simulator --port 9443 --capture PATH [--capture PATH] --speed 1
    python -m connectors.simulator --generate btcusdt --rate 100
    python -m connectors.simulator --market-symbols 1500 --rate 5000 --live
    python -m connectors.simulator --venue usdm --generate btcusdt --generate ethusdt

Without ``--capture``, ``--generate`` or ``--market-symbols`` it replays the demo captures
(data/captures). ``--venue usdm`` makes it USD-M futures (``venues.py``): generated aggregate trades
served under ``/market``, its REST under ``/fapi/v1``, its limits.
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
from connectors.simulator.limits import MAX_STREAMS, MAX_URL_BYTES
from connectors.simulator.market import Feed, GeneratedFeed, Market, MarketOptions, replay_feeds
from connectors.simulator.server import VENUE, ExchangeSimulator
from connectors.simulator.venues import SPOT, VENUES
from connectors.simulator.whole_market import WHOLE_MARKET_HISTORY_SECONDS, whole_market

_SHOWN = 5  # streams and symbols printed at start; a whole market has too many to list
_GENERATED_RATE = 100.0  # --rate's default with --generate, trades/s a symbol
_MARKET_RATE = 5000.0  # --rate's default with --market-symbols, trades/s in all


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=(
            "binance-flink-sim"
            if os.path.basename(sys.argv[0]) == "binance-flink-sim"
            else "python -m connectors.simulator"
        ),
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--venue",
        choices=tuple(VENUES),
        default=SPOT.name,
        help="spot, or usdm: USD-M futures, generated only (--generate, --market-symbols);"
        " its limits are the defaults of the options below (default: %(default)s)",
    )
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
        "--past-days",
        type=float,
        default=0.0,
        metavar="D",
        help="--generate: the symbols traded this many days before the simulator started, so "
        "that REST and the archive (/data/spot/daily/trades/..., usdm: "
        "/data/futures/um/daily/aggTrades/...) have history to serve",
    )
    parser.add_argument(
        "--past-rate",
        type=float,
        default=0.1,
        metavar="N",
        help="--past-days: trades a second in those days (default %(default)g)",
    )
    parser.add_argument(
        "--market-symbols",
        type=int,
        metavar="N",
        help="a generated whole market of N symbols (real busy pairs first, then made-up ones), "
        "activity spread by Zipf's law; not with --capture or --generate",
    )
    parser.add_argument(
        "--rate",
        type=float,
        help=f"generated trades per second: per symbol with --generate (default "
        f"{_GENERATED_RATE:g}), in all with --market-symbols (default {_MARKET_RATE:g})",
    )
    parser.add_argument(
        "--zipf-exponent",
        type=float,
        default=1.0,
        help="--market-symbols: the symbol of rank k trades in proportion to k**-exponent "
        "(default 1: the busiest gets about 13%% of 1,500 symbols' trades)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="--market-symbols: the same seed makes the same symbols, prices and ids",
    )
    parser.add_argument(
        "--history-seconds",
        type=float,
        default=WHOLE_MARKET_HISTORY_SECONDS,
        help="--market-symbols: how far back REST serves each symbol's trades (memory: ~270 "
        "bytes a trade, kept up to twice this long; default %(default)g)",
    )
    parser.add_argument("--live", action="store_true", help="markets run without subscribers too")
    parser.add_argument(
        "--ping-interval",
        type=float,
        help="seconds between the server's pings (default: 20; usdm: 180)",
    )
    parser.add_argument(
        "--pong-timeout",
        type=float,
        help="a ping unanswered this long closes the connection with 1008 (default: 60; usdm: 600)",
    )
    parser.add_argument(
        "--max-url-bytes",
        type=int,
        default=MAX_URL_BYTES,
        help="longer request targets get HTTP 414 (0: no limit of ours; default %(default)s)",
    )
    parser.add_argument(
        "--max-streams",
        type=int,
        default=MAX_STREAMS,
        help="streams a connection may have (0: no limit; default %(default)s)",
    )
    parser.add_argument(
        "--max-incoming-per-second",
        type=int,
        help="messages a client may send within a second before it is closed with 1008 "
        "(0: no limit; default: 5; usdm: 10)",
    )
    args = parser.parse_args(argv)
    if args.venue != SPOT.name and args.capture:
        parser.error("--capture replays spot captures: --venue usdm generates its trades")
    if args.market_symbols is not None:
        if args.capture or args.generate:
            parser.error("--market-symbols makes the whole market: no --capture or --generate")
        if args.market_symbols < 1:
            parser.error("--market-symbols must be at least 1")
    elif not args.capture and not args.generate:
        if args.venue != SPOT.name:
            parser.error("--venue usdm needs --generate or --market-symbols")
        args.capture = list(DEMO_CAPTURES)
    return args


def build_market(args: argparse.Namespace) -> Market:
    kind = VENUES[args.venue].stream_kinds[0]
    if args.market_symbols is not None:
        return whole_market(
            args.market_symbols,
            _MARKET_RATE if args.rate is None else args.rate,
            zipf_exponent=args.zipf_exponent,
            seed=args.seed,
            speed=args.speed,
            pause_without_subscribers=not args.live,
            history_seconds=args.history_seconds,
            kind=kind,
            venue=args.venue,
        )
    feeds: list[Feed] = []
    if args.capture:
        symbols = args.symbols.split(",") if args.symbols else None
        feeds += replay_feeds(
            args.capture, kinds=args.kinds.split(","), symbols=symbols, loop=args.loop
        )
    rate = _GENERATED_RATE if args.rate is None else args.rate
    past = {"past_seconds": args.past_days * 86_400, "past_rate": args.past_rate}
    feeds += [
        GeneratedFeed(symbol, rate=rate, kind=kind, venue=args.venue, **past)
        for symbol in args.generate
    ]
    options: MarketOptions = {
        "speed": args.speed,
        "pause_without_subscribers": not args.live,
        "venue": args.venue,
    }
    if args.past_days:  # past days are history the archive serves: none of it trimmed
        options["history_limit"] = None
    return Market(feeds, **options)


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
        keep_frames=False,  # nothing outside this process could read them: counts only
        ping_interval=VENUE if args.ping_interval is None else args.ping_interval,
        pong_timeout=VENUE if args.pong_timeout is None else args.pong_timeout,
        max_url_bytes=args.max_url_bytes or None,
        max_streams=args.max_streams or None,
        max_incoming_per_second=(
            VENUE if args.max_incoming_per_second is None else args.max_incoming_per_second or None
        ),
    ) as sim:
        venue = market.venue
        streams = market.streams[:_SHOWN]
        more = len(market.streams) - len(streams)
        root, rest = sim.ws_url + venue.stream_root, sim.http_url + venue.rest_root
        history = "historicalTrades" if "historicalTrades" in venue.weights else "aggTrades"
        print(f"streams: {', '.join(streams)}" + (f" and {more} more" if more else ""))
        print(f"combined: {root}/stream?streams={'/'.join(streams)}")
        print(f"raw:      {root}/ws/{streams[0]}")
        for symbol in market.symbols[:_SHOWN]:
            print(f"REST:     {rest}/{history}?symbol={symbol}")
        print(f"symbols:  {rest}/exchangeInfo")
        if args.past_days:
            for folder in venue.archive_roots.values():
                print(f"archive:  {sim.http_url}{folder}/<SYMBOL>/ (--archive-url)")
        if "ticker/24hr" in venue.weights:
            print(f"ticker:   {rest}/ticker/24hr")
        print("Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
