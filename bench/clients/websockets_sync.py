"""The ``websockets`` library's sync client with default settings, ``orjson.loads`` per message."""

from __future__ import annotations

import orjson
from websockets.sync.client import connect

from bench.clients.meter import Meter, arguments, report


def main() -> None:
    args = arguments(__doc__)
    meter = Meter(args.count, args.seconds)
    # Defaults, except closing: after the window, unread frames keep the close handshake from
    # finishing, and waiting out the default 10 s would only slow the run down.
    with connect(f"{args.url}/ws/{args.symbol}@trade", close_timeout=0.5) as ws:
        for message in ws:
            orjson.loads(message)
            if meter.add():
                break
    report(meter.result("websockets"))


if __name__ == "__main__":
    main()
