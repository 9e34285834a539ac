"""One client connection: its outgoing queue, writer, pings, planned drop, and its record.

A session knows the exchange it belongs to only as a ``SessionHost``: the few settings and calls it
uses. The exchange (``server.py``) satisfies it without naming it, so this module does not import
the server, which imports this one.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections import deque
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from connectors.simulator.exchange_log import ExchangeLog

MARKET = "market"  # a market event
REPLY = "reply"  # an answer to a client request
NOTICE = "notice"  # a serverShutdown event
INJECTED = "injected"  # a frame from ``faults.send_frames``

# Writers tell a speed-0 market there is room again below this many queued frames.
QUEUE_LOW = 256
# Most bytes of queued frames a writer hands the socket in one write.
_WRITE_BYTES = 1 << 16


async def send_frames(ws: ServerConnection, frames: list[Frame]) -> None:
    """Send each frame as a message of its own, all in one write to the socket. ``ws.send``
    writes each message by itself, a system call each: at 20,000 trades a second that was the
    simulator's largest cost. Inside websockets' ``send_context``, as ``send`` does: it checks
    that the connection is open (else ``ConnectionClosed``), then waits while the client reads
    slower than this writes."""
    protocol = ws.protocol
    async with ws.send_context():
        for frame in frames:
            if frame.binary:
                protocol.send_binary(frame.data)
            else:
                protocol.send_text(frame.data)
        # the frames just serialized; what is left (none) the context writes on its way out
        ws.transport.write(b"".join(protocol.data_to_send()))


def reset_transport(transport: asyncio.Transport) -> None:
    """Close with RST: a zero linger time makes the kernel reset instead of FIN."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class Frame(NamedTuple):
    """A data frame as it goes on the wire; market frames are shared by all sessions."""

    data: bytes
    kind: str
    stream: str | None = None
    binary: bool = False


@dataclass(eq=False)
class ConnectionRecord:
    """What one WebSocket connection was sent and how it ended (times: ``time.time()``)."""

    id: int
    path: str
    combined: bool
    streams: list[str]  # current subscriptions; the last ones once closed
    opened_at: float
    closed_at: float | None = None
    close_code: int | None = None  # the code of whichever side closed first; 1006 if none
    close_reason: str | None = None
    closed_by: str | None = None  # "server" or "client"
    reset: bool = False  # the server ended it with a TCP reset
    sent: list[Frame] = field(
        default_factory=list
    )  # unless the simulator keeps no frames (then empty)
    sent_counts: dict[str, int] = field(default_factory=dict)  # frame kind -> how many were sent
    received: list[str | bytes] = field(default_factory=list)
    pings: list[bytes] = field(default_factory=list)  # payloads of the pings sent
    pongs: list[bytes] = field(default_factory=list)  # payloads of the pings answered in time

    @property
    def pings_sent(self) -> int:
        return len(self.pings)

    @property
    def pongs_received(self) -> int:
        return len(self.pongs)


@dataclass
class DropPlan:
    remaining: int
    code: int
    reason: str
    reset: bool


class SessionHost(Protocol):
    """What a session uses of the exchange that accepted it (``server.Exchange``)."""

    ping_interval: float | None  # seconds between the server's pings; None: no pings
    pong_timeout: float | None  # a ping unanswered this long closes with 1008; None: never
    keep_frames: bool  # keep every frame sent in the record, not just the counts
    speaking: asyncio.Event  # cleared while the exchange is silent (``faults.go_silent``)
    room: asyncio.Event  # set when a writer's queue falls to QUEUE_LOW (speed-0 backpressure)
    log: ExchangeLog  # where the session notes how the server ended it

    def answer(self, session: Session, message: str | bytes) -> bytes:
        """The reply to a request the client sent (SUBSCRIBE, ...)."""
        ...

    def forget(self, session: Session) -> None:
        """The session is closing: no more market data for it."""
        ...


class Session:
    def __init__(
        self, ws: ServerConnection, record: ConnectionRecord, exchange: SessionHost
    ) -> None:
        self.ws = ws
        self.record = record
        self.exchange = exchange
        self.queue: deque[Frame] = deque()
        self.drop: DropPlan | None = None
        self.muted = (
            False  # market data no longer reaches this connection (faults.mute_open_connections)
        )
        self.delivers = True  # its path serves the streams it asks for (USD-M: /market only)
        self._ready = asyncio.Event()
        self._timers: list[asyncio.TimerHandle] = []
        self._lifetime: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def combined(self) -> bool:
        return self.record.combined

    @property
    def age(self) -> float:
        return time.time() - self.record.opened_at

    def push(self, frame: Frame) -> None:
        if self.muted and frame.kind == MARKET:
            return
        self.queue.append(frame)
        self._ready.set()

    def plan_drop(self, plan: DropPlan) -> None:
        self.drop = plan
        if plan.remaining <= 0:
            self.spawn(self._execute_drop())

    def close_later(self, delay: float, code: int, reason: str) -> None:
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(max(delay, 0.0), self.close_soon, code, reason))

    def limit_lifetime(self, seconds: float | None) -> None:
        """Close with 1001 once the connection is ``seconds`` old (``None``: no limit)."""
        if self._lifetime is not None:
            self._lifetime.cancel()
            self._lifetime = None
        if seconds is not None:
            loop = asyncio.get_running_loop()
            self._lifetime = loop.call_later(
                max(seconds - self.age, 0.0), self.close_soon, 1001, "connection lifetime exceeded"
            )

    def close_soon(self, code: int, reason: str) -> None:
        self.spawn(self.close(code, reason))

    async def close(self, code: int, reason: str) -> None:
        """Close from the server's side. Recorded at once: the TCP connection itself only
        ends when the client closes its side too (or after ``close_timeout``)."""
        if self.record.closed_by is None:
            self.record.close_code, self.record.close_reason, self.record.closed_by = (
                code,
                reason,
                "server",
            )
            # Logged before the frame goes out: a client that has read it finds it in the log.
            self.exchange.log.closed(self.record.id, self.record.path, code, reason)
        await self.ws.close(code, reason)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def serve(self) -> None:
        """Run the connection until it closes, then fill in the end of its record."""
        self.spawn(self._write())
        if self.exchange.ping_interval is not None:
            self.spawn(self._ping(self.exchange.ping_interval))
        try:
            async for message in self.ws:
                self.record.received.append(message)
                self.push(Frame(self.exchange.answer(self, message), REPLY))
        except ConnectionClosed:
            pass
        finally:
            for timer in self._timers:
                timer.cancel()
            self.limit_lifetime(None)
            for task in list(self._tasks):
                task.cancel()
            self.exchange.forget(self)
        await self.ws.wait_closed()
        self._record_end()

    def abort(self) -> None:
        """End the connection with a TCP reset (RST) instead of a close frame."""
        if self.record.closed_by is None:
            self.exchange.log.reset(self.record.id, self.record.path)
        self.record.reset, self.record.close_code, self.record.closed_by = True, 1006, "server"
        reset_transport(self.ws.transport)

    async def _write(self) -> None:
        """Send what is queued, in order, as it comes: all of it at once (up to ``_WRITE_BYTES``),
        each frame its own message, so that a busy connection costs one write to the socket per
        turn of the loop rather than one per frame. A planned drop comes right after its last
        market frame."""
        ws, queue, record, exchange = self.ws, self.queue, self.record, self.exchange
        speaking, counts = exchange.speaking, record.sent_counts
        try:
            while True:
                if not queue:
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                if not speaking.is_set():
                    await speaking.wait()
                plan = self.drop
                batch, market = self._take(None if plan is None else max(plan.remaining, 1))
                await send_frames(ws, batch)
                if exchange.keep_frames:
                    record.sent.extend(batch)
                for frame in batch:
                    counts[frame.kind] = counts.get(frame.kind, 0) + 1
                if len(queue) <= QUEUE_LOW:
                    exchange.room.set()
                # A drop planned while this batch was written counts from the next frame on.
                if plan is not None and plan is self.drop:
                    plan.remaining -= market
                    if plan.remaining <= 0:
                        await self._execute_drop()
                        return
        except ConnectionClosed:
            pass

    def _take(self, most_market: int | None) -> tuple[list[Frame], int]:
        """The next frames to send (at least one) and how many of them are market frames: no more
        than ``most_market`` of those."""
        queue, batch, size, market = self.queue, [], 0, 0
        while queue and size < _WRITE_BYTES:
            frame = queue.popleft()
            batch.append(frame)
            size += len(frame.data)
            if frame.kind == MARKET:
                market += 1
                if market == most_market:
                    break
        return batch, market

    async def _execute_drop(self) -> None:
        plan, self.drop = self.drop, None
        if plan is None:  # plan_drop's task came after the writer had already dropped it
            return
        if plan.reset:
            self.abort()
        else:
            await self.close(plan.code, plan.reason)

    async def _ping(self, interval: float) -> None:
        exchange = self.exchange
        while True:
            await asyncio.sleep(interval)
            await exchange.speaking.wait()
            payload = str(time.time_ns()).encode()
            try:
                pong = await self.ws.ping(payload)
            except ConnectionClosed:
                return
            self.record.pings.append(payload)
            if exchange.pong_timeout is not None:
                self.spawn(self._expect_pong(pong, payload, exchange.pong_timeout))

    async def _expect_pong(self, pong: Awaitable[float], payload: bytes, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(pong)
        except TimeoutError:
            await self.close(1008, "pong timeout")
        except ConnectionClosed:
            pass
        else:
            self.record.pongs.append(payload)

    def _record_end(self) -> None:
        record, protocol = self.record, self.ws.protocol
        record.closed_at = time.time()
        if record.closed_by is not None:
            return
        sent, received = protocol.close_sent, protocol.close_rcvd
        if sent is not None and (received is None or not protocol.close_rcvd_then_sent):
            # Closed by websockets itself (the simulator stopping, a protocol error).
            record.close_code, record.close_reason, record.closed_by = (
                sent.code,
                sent.reason,
                "server",
            )
            self.exchange.log.closed(record.id, record.path, sent.code, sent.reason)
        elif received is not None:
            record.close_code, record.close_reason, record.closed_by = (
                received.code,
                received.reason,
                "client",
            )
        else:
            record.close_code, record.closed_by = 1006, "client"
