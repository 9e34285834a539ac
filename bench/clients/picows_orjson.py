"""picows (frames parsed in C, asyncio) with ``orjson.loads`` per message: the ceiling of what a
Python consumer can take from this load."""

from __future__ import annotations

import asyncio

import orjson
from picows import WSListener, WSMsgType, ws_connect

from bench.clients.meter import Meter, arguments, report


class Listener(WSListener):
    def __init__(self, meter: Meter):
        self.meter = meter

    def on_ws_frame(self, transport, frame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            orjson.loads(frame.get_payload_as_memoryview())
            if self.meter.add():
                transport.disconnect()


async def run(args, meter: Meter) -> None:
    transport, _ = await ws_connect(lambda: Listener(meter), f"{args.url}/ws/{args.symbol}@trade")
    await transport.wait_disconnected()


def main() -> None:
    args = arguments(__doc__)
    meter = Meter(args.count, args.seconds)
    asyncio.run(run(args, meter))
    report(meter.result("picows"))


if __name__ == "__main__":
    main()
