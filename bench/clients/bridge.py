"""This project's bridge: BinanceFeed reads, frames, parses into Trade records and buffers them;
the main thread drains like the Flink operator does (a full batch: again at once; else a short
pause)."""

from __future__ import annotations

import time

from bench.clients.meter import Meter, arguments, report
from connectors.binance.rest import RestConfig
from connectors.feed import BinanceFeed

MAX_BATCH = 10_000


def run(client: str, rest: RestConfig | None = None) -> None:
    args = arguments(__doc__)
    meter = Meter(args.count, args.seconds)
    feed = BinanceFeed([args.symbol], base_url=args.url, rest=rest).start()
    try:
        while not meter.done:
            items = feed.drain(MAX_BATCH)
            if items:
                meter.add(len(items))
            if len(items) < MAX_BATCH:
                time.sleep(0.001)
        stats = feed.stats
    finally:
        feed.close()
    report(
        meter.result(
            client,
            parse_failures=stats["parse_failures"],
            gaps=stats["gaps"],
            duplicates=stats["duplicates"],
            buffer_high_water=stats["buffer_high_water"],
        )
    )


def main() -> None:
    run("bridge")


if __name__ == "__main__":
    main()
