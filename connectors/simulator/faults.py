"""Faults a test can switch on while the simulator runs, from any thread.

Each command runs on the simulator's event loop and has taken effect when it returns.
What a client sees:

- ``refuse_connections()``: the listening socket is closed, so ``connect()`` fails with
  ECONNREFUSED until ``accept_connections()``. ``refuse_connections(times=N)``: the port
  stays open but each of the next N TCP connections is reset (RST) as soon as it is
  accepted, before any handshake byte; the client's handshake fails with ECONNRESET.
- ``reject_handshake(status, retry_after, times)``: the upgrade request is answered with
  that HTTP status (and a ``Retry-After`` header) instead of ``101``.
- ``drop_after(n, code, reason, reset, times)``: after n more market messages the server
  sends a close frame with ``code``/``reason``, or with ``reset`` ends the TCP connection
  with RST (frames still in flight may be lost, as with a real reset).
- ``go_silent()`` / ``resume()``: nothing at all, on every connection, new ones too: no
  market data, no replies, no pings; what is emitted meanwhile waits in each connection's
  queue and follows on ``resume()``, like bytes behind a stalled link.
- ``send_frames(frames, binary)``: frames (``str`` or ``bytes``, sent as they are, so a
  text frame may carry invalid UTF-8) queued to every open connection after what is
  already queued, i.e. between two market messages.
- ``server_shutdown(grace)``: ``{"e":"serverShutdown","E":<ms>}`` (combined connections:
  ``{"stream":"!serverShutdown","data":{...}}``), then a close frame 1001 ``grace`` seconds later.
- ``max_lifetime(seconds)``: connections older than that get a close frame 1001
  (``None`` lifts the limit).
- ``mute_open_connections()``: the connections open now get no more market data (pings and
  notices still go, and new connections get everything): a stream stalled upstream.
- ``fail_rest(status, times, retry_after)``: the next REST requests are answered with that
  status (a 5xx, or a 429/418 with ``Retry-After``).
- ``stall_rest(seconds, times)``: the next REST answers are held back that long (a client with a
  shorter timeout gives up).
- ``hide_history(symbol, ids)``: REST answers leave out these trade ids (aggregate ids for an
  ``@aggTrade`` market), as if Binance had skipped them.
- ``hide_archive_day(symbol, day)``: the archive answers 404 for that day's zip and checksum (a
  day not published); ``corrupt_archive_day(symbol, day)``: its zip no longer matches its
  ``.CHECKSUM``; ``cut_archive_downloads(after_bytes, times)``: the next zip downloads end after
  that many bytes, the connection closed short of the ``Content-Length`` it announced.

And the market's own events, which a whole-market client must follow:

- ``list_symbol(symbol, rate, ...)``: a new symbol starts trading (random-walk trades, ids from
  ``first_id``) and is listed ``TRADING`` in exchangeInfo; a client already subscribed to its
  stream gets its trades from the first; with ``status="BREAK"`` it is listed ahead of its
  trading (as Binance shows an announced listing), which ``resume_symbol`` opens.
- ``halt_symbol(symbol, status)``: its status becomes ``HALT`` or ``BREAK`` and its streams go
  quiet; ``resume_symbol(symbol)``: ``TRADING`` again, ids going on where they stopped.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from connectors.simulator.archive import ArchiveFiles
from connectors.simulator.market import GeneratedFeed, Market
from connectors.simulator.rest import RestApi
from connectors.simulator.session import INJECTED, NOTICE, DropPlan, Frame, Session
from connectors.simulator.symbols import HALT, TRADING


class FaultTarget(Protocol):
    """What the faults act on: the exchange (``server.Exchange``), known only by these members, so
    that this module does not import the server, which imports this one."""

    speaking: asyncio.Event  # cleared: nothing is sent on any connection
    latency: float  # seconds market data waits before it is sent (a slower line)
    rest: RestApi
    archive: ArchiveFiles
    market: Market

    async def listen(self) -> None: ...

    def stop_listening(self) -> None: ...

    def open_sessions(self) -> list[Session]: ...


class Faults:
    def __init__(self, exchange: FaultTarget, call: Callable[..., Any]) -> None:
        self._exchange = exchange
        self._call = call  # runs a function or coroutine function on the loop, returns its result
        self._resets_left = 0
        self._rejections_left = 0
        self._rejection: tuple[int, float | None] = (429, None)
        self._drops_left: int | None = 0
        self._drop: DropPlan | None = None
        self._lifetime: float | None = None
        self.refused = 0  # connections reset by ``refuse_connections(times=N)``

    # Commands, callable from any thread.

    def refuse_connections(self, times: int | None = None) -> None:
        if times is None:
            self._call(self._exchange.stop_listening)
        else:
            self._call(setattr, self, "_resets_left", times)

    def accept_connections(self) -> None:
        """Undo ``refuse_connections``, either form."""
        self._call(self._accept)

    def reject_handshake(
        self, status: int = 429, retry_after: float | None = 2, times: int = 1
    ) -> None:
        self._call(self._set_rejection, status, retry_after, times)

    def drop_after(
        self,
        n_messages: int,
        code: int = 1001,
        reason: str = "",
        reset: bool = False,
        times: int | None = 1,
    ) -> None:
        """Drop ``times`` connections (``None``: all), open ones first, then new ones."""
        self._call(self._arm_drop, DropPlan(n_messages, code, reason, reset), times)

    def go_silent(self) -> None:
        self._call(self._exchange.speaking.clear)

    def resume(self) -> None:
        self._call(self._exchange.speaking.set)

    def send_frames(self, frames: Iterable[str | bytes], binary: bool = False) -> None:
        batch = [
            Frame(
                frame.encode() if isinstance(frame, str) else bytes(frame), INJECTED, binary=binary
            )
            for frame in frames
        ]
        self._call(self._send_frames, batch)

    def server_shutdown(self, grace: float = 5.0) -> None:
        self._call(self._server_shutdown, grace)

    def max_lifetime(self, seconds: float | None) -> None:
        self._call(self._set_lifetime, seconds)

    def mute_open_connections(self) -> None:
        self._call(self._mute)

    def delay_market(self, seconds: float) -> None:
        """Market data reaches this endpoint's connections ``seconds`` after it happened, as on
        a line further away: another endpoint of the same market then leads it (0: no delay)."""
        self._call(setattr, self._exchange, "latency", seconds)

    def fail_rest(
        self, status: int = 503, times: int = 1, retry_after: float | None = None
    ) -> None:
        self._call(self._exchange.rest.failures.extend, [(status, retry_after)] * times)

    def stall_rest(self, seconds: float, times: int = 1) -> None:
        self._call(self._exchange.rest.stalls.extend, [seconds] * times)

    def hide_history(self, symbol: str, ids: Iterable[int]) -> None:
        self._call(self._exchange.rest.hidden[symbol.upper()].update, list(ids))

    def hide_archive_day(self, symbol: str, day: datetime.date) -> None:
        self._call(self._exchange.archive.hidden.add, (symbol.upper(), day))

    def corrupt_archive_day(self, symbol: str, day: datetime.date) -> None:
        self._call(self._exchange.archive.corrupt.add, (symbol.upper(), day))

    def cut_archive_downloads(self, after_bytes: int, times: int = 1) -> None:
        self._call(self._exchange.archive.cuts.extend, [after_bytes] * times)

    def list_symbol(
        self,
        symbol: str,
        rate: float = 10.0,
        *,
        start_price: str | None = None,
        tick: str = "0.01",
        first_id: int = 1,
        status: str = TRADING,
    ) -> None:
        """Lists ``symbol``: trading at once, or shown in ``status`` (BREAK: a listing announced,
        its trading not open yet) until ``resume_symbol``."""
        venue = self._exchange.market.venue
        feed = GeneratedFeed(
            symbol,
            rate=rate,
            start_price=start_price,
            tick=tick,
            first_id=first_id,
            kind=venue.stream_kinds[0],
            venue=venue.name,
        )
        self._call(self._exchange.market.list_feed, feed, status)

    def halt_symbol(self, symbol: str, status: str = HALT) -> None:
        self._call(self._exchange.market.halt, symbol, status)

    def resume_symbol(self, symbol: str) -> None:
        self._call(self._exchange.market.resume, symbol)

    # Loop side, used by the exchange.

    def take_reset(self) -> bool:
        if self._resets_left <= 0:
            return False
        self._resets_left -= 1
        self.refused += 1
        return True

    def take_rejection(self) -> tuple[int, float | None] | None:
        if self._rejections_left <= 0:
            return None
        self._rejections_left -= 1
        return self._rejection

    def on_open(self, session: Session) -> None:
        if self._drop is not None and self._drops_left != 0:
            self._give_drop(session, self._drop)
        session.limit_lifetime(self._lifetime)

    async def _accept(self) -> None:
        self._resets_left = 0
        await self._exchange.listen()

    def _set_rejection(self, status: int, retry_after: float | None, times: int) -> None:
        self._rejection = (status, retry_after)
        self._rejections_left = times

    def _arm_drop(self, plan: DropPlan, times: int | None) -> None:
        self._drop, self._drops_left = plan, times
        for session in self._exchange.open_sessions():
            if self._drops_left == 0:
                break
            self._give_drop(session, plan)

    def _give_drop(self, session: Session, plan: DropPlan) -> None:
        session.plan_drop(DropPlan(plan.remaining, plan.code, plan.reason, plan.reset))
        if self._drops_left is not None:
            self._drops_left -= 1

    def _send_frames(self, frames: list[Frame]) -> None:
        for session in self._exchange.open_sessions():
            for frame in frames:
                session.push(frame)

    def _server_shutdown(self, grace: float) -> None:
        event = b'{"e":"serverShutdown","E":%d}' % (time.time_ns() // 1_000_000)
        raw = Frame(event, NOTICE)
        wrapped = Frame(b'{"stream":"!serverShutdown","data":%s}' % event, NOTICE)
        for session in self._exchange.open_sessions():
            session.push(wrapped if session.combined else raw)
            session.close_later(grace, 1001, "server shutdown")

    def _mute(self) -> None:
        for session in self._exchange.open_sessions():
            session.muted = True

    def _set_lifetime(self, seconds: float | None) -> None:
        self._lifetime = seconds
        for session in self._exchange.open_sessions():
            session.limit_lifetime(seconds)
