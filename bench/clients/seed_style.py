"""The seed's naive style: websocket-client's WebSocketApp with default settings (so its
pure-Python UTF-8 check runs) and ``json.loads`` in ``on_message``."""

from __future__ import annotations

import json

import websocket

from bench.clients.meter import Meter, arguments, report


def main() -> None:
    args = arguments(__doc__)
    meter = Meter(args.count, args.seconds)

    def on_message(ws, message):
        json.loads(message)
        if meter.add():
            ws.close()

    websocket.WebSocketApp(
        f"{args.url}/ws/{args.symbol}@trade", on_message=on_message
    ).run_forever()
    report(meter.result("seed_style"))


if __name__ == "__main__":
    main()
