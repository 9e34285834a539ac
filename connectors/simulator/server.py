"""A Binance-compatible exchange on loopback, run in a background thread.

Routes, as on ``stream.binance.com`` (over TLS, ``wss://`` and ``https://``, given an
``ssl_context``); for a market of the ``usdm`` venue, as on ``fstream.binance.com``: the same
under ``/market``, connections on its other roots taking no stream, and its REST under
``/fapi/v1`` (``venues.py``):

- ``/ws/<stream>[/<stream>...]``: raw events; ``/ws``: nothing until a SUBSCRIBE;
- ``/stream?streams=a/b/c``: events wrapped ``{"stream": ..., "data": ...}``;
- live ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` on any of them;
- Binance's limits on each connection (URL length, streams, incoming messages a second), each
  answered as Binance answers it (``limits.py``);
- ``GET /api/v3/historicalTrades``, ``/api/v3/aggTrades``, ``/api/v3/exchangeInfo`` and
  ``/api/v3/ticker/24hr`` over plain HTTP, from what the market published, with Binance's
  request weight limit (``rest.py``);
- ``GET /data/spot/daily/trades/...`` (and ``aggTrades``; for usdm
  ``/data/futures/um/daily/aggTrades/...``): the public archive's day files of what it published
  (``archive.py``), as ``data.binance.vision`` serves them;
- a log of every HTTP status answered and every close the server sent (``exchange_log.py``).

With ``endpoints=N`` the simulator serves the same market on N ports, as Binance serves the same
streams from ``stream.binance.com`` and ``data-stream.binance.vision``: each endpoint has its own
connections, faults and log (``ExchangeSimulator.endpoints``); the first also serves the REST API
everyone's history comes from.

The server pings every ``ping_interval`` seconds (payload: the send time in ns) and closes
with 1008 when a ping is not answered by a matching pong within ``pong_timeout``. Pings
are its own, not the library's keepalive, so that ``faults.go_silent()`` can stop them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import functools
import http
import inspect
import itertools
import logging
import ssl
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypedDict, cast
from urllib.parse import parse_qs

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event, State

from connectors.simulator.archive import ArchiveFiles
from connectors.simulator.commands import (
    InvalidRequest,
    error_reply,
    parse_command,
    result_reply,
    valid_stream_name,
)
from connectors.simulator.exchange_log import HTTP, ExchangeLog
from connectors.simulator.faults import Faults
from connectors.simulator.limits import (
    MAX_STREAMS,
    MAX_URL_BYTES,
    TOO_MANY_REQUESTS,
    ConnectionLimits,
    IncomingRate,
)
from connectors.simulator.market import Market
from connectors.simulator.rest import RestApi
from connectors.simulator.session import (
    MARKET,
    ConnectionRecord,
    Frame,
    Session,
    reset_transport,
)

logger = logging.getLogger(__name__)


class _VenueDefault(enum.Enum):
    VENUE = "the venue's"


VENUE = _VenueDefault.VENUE  # an ExchangeSimulator setting left to the market's venue
# A speed-0 market waits while any connection has more than this many frames queued.
QUEUE_HIGH = 1024
_THREAD_CALL_TIMEOUT = 10.0
# Messages the rate limit counts: each text or binary message (its first frame), ping and pong.
_COUNTED = frozenset((Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG))
_DATA = frozenset((Opcode.CONT, Opcode.TEXT, Opcode.BINARY))
# Requests websockets refuses itself, before ``process_request`` sees them: the exception it notes,
# by class name (older releases have no such classes, and answer nothing), and the status it sends.
_REFUSED_BY_WEBSOCKETS = {
    "RequestLineTooLong": 414,
    "HeaderLineTooLong": 431,
    "TooManyHeaders": 431,
}


class Exchange:
    """The simulator's state and behaviour; lives on, and is only touched from, its loop."""

    def __init__(
        self,
        market: Market,
        host: str,
        port: int,
        *,
        ping_interval: float | None,
        pong_timeout: float | None,
        close_timeout: float,
        rest_weight_limit: int,
        limits: ConnectionLimits,
        ssl_context: ssl.SSLContext | None,
        keep_frames: bool,
        call: Callable[..., Any],
    ) -> None:
        self.market = market
        self.limits = limits
        self.host, self.port = host, port
        self.ping_interval, self.pong_timeout = ping_interval, pong_timeout
        self.close_timeout = close_timeout
        self.ssl_context = ssl_context
        self.keep_frames = keep_frames
        self.speaking = asyncio.Event()
        self.speaking.set()
        self.room = asyncio.Event()
        self.rest = RestApi(market, rest_weight_limit)
        self.archive = ArchiveFiles(market)
        self.faults = Faults(self, call)
        self.records: list[ConnectionRecord] = []
        self.log = ExchangeLog()
        # endpoints serving the same market: what this one publishes, they publish too
        self.mirrors: list[Exchange] = []
        self.latency = 0.0  # faults.delay_market
        self._late: deque[tuple[float, str, bytes]] = deque()  # (due, stream, payload) delayed
        self._late_task: asyncio.Task[None] | None = None
        self._late_added = asyncio.Event()
        self._sessions: dict[int, Session] = {}
        self._subscribers: dict[str, set[Session]] = defaultdict(set)
        self._servers: list[Server] = []
        self._listening: Server | None = None
        self._ids = itertools.count(1)
        self._market_task: asyncio.Task[None] | None = None

    async def start(self, run_market: bool = True) -> None:
        await self.listen()
        if not run_market:
            return  # a mirror: the first endpoint's market publishes here too
        self._market_task = asyncio.get_running_loop().create_task(self.market.run(self))
        self._market_task.add_done_callback(_log_failure)

    async def stop(self) -> None:
        for task in (self._market_task, self._late_task):
            if task is not None:
                task.cancel()
        self.rest.close()
        for server in self._servers:
            server.close()
        try:
            async with asyncio.timeout(self.close_timeout + 1.0):
                await asyncio.gather(*(server.wait_closed() for server in self._servers))
        except TimeoutError:
            # A client that stopped reading cannot take a close frame: cut it off.
            for session in list(self._sessions.values()):
                session.ws.transport.abort()
            await asyncio.gather(*(server.wait_closed() for server in self._servers))

    async def listen(self) -> None:
        if self._listening is not None:
            return
        server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            process_response=self._process_response,
            # a factory, as documented ("a wrapper or a subclass"); typed as a class only
            create_connection=functools.partial(_Connection, self),  # type: ignore[arg-type]
            compression=None,
            ping_interval=None,
            ping_timeout=None,
            close_timeout=self.close_timeout,
            ssl=self.ssl_context,
        )
        # Port 0 picks a free port the first time; later listens reuse it.
        self.port = server.sockets[0].getsockname()[1]
        self._servers.append(server)
        self._listening = server

    def stop_listening(self) -> None:
        if self._listening is not None:
            # Closes the listening socket only; accepted connections carry on.
            self._listening.server.close()
            self._listening = None

    def open_sessions(self) -> list[Session]:
        return [session for session in self._sessions.values() if session.ws.state is State.OPEN]

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    # Market sink.

    def publish(self, stream: str, payload: bytes) -> None:
        for mirror in self.mirrors:
            mirror.publish(stream, payload)
        if self.latency or self._late:  # what is delayed stays in order with what follows
            self._late.append((time.monotonic() + self.latency, stream, payload))
            self._late_added.set()
            if self._late_task is None:
                self._late_task = asyncio.get_running_loop().create_task(self._publish_late())
                self._late_task.add_done_callback(_log_failure)
            return
        self._publish_now(stream, payload)

    async def _publish_late(self) -> None:
        late = self._late
        while True:
            if not late:
                self._late_added.clear()
                await self._late_added.wait()
                continue
            wait = late[0][0] - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            _, stream, payload = late.popleft()
            self._publish_now(stream, payload)

    def _publish_now(self, stream: str, payload: bytes) -> None:
        sessions = self._subscribers.get(stream)
        if not sessions:
            return
        raw = wrapped = None
        for session in sessions:
            if session.combined:
                if wrapped is None:
                    wrapped = Frame(
                        b'{"stream":"%s","data":%s}' % (stream.encode(), payload), MARKET, stream
                    )
                session.push(wrapped)
            else:
                if raw is None:
                    raw = Frame(payload, MARKET, stream)
                session.push(raw)

    async def writable(self) -> None:
        for exchange in (self, *self.mirrors):
            while any(len(session.queue) > QUEUE_HIGH for session in exchange._sessions.values()):
                exchange.room.clear()
                await exchange.room.wait()

    # Subscriptions.

    def answer(self, session: Session, message: str | bytes) -> bytes:
        try:
            command = parse_command(message)
        except InvalidRequest as error:
            return error.reply
        if command.method == "SUBSCRIBE":
            current = set(session.record.streams)
            total = len(current) + len({name for name in command.params if name not in current})
            if self._too_many_streams(total):
                return error_reply(2, self._too_many_streams_msg(total), command.id)
            self.subscribe(session, command.params)
        elif command.method == "UNSUBSCRIBE":
            self.unsubscribe(session, command.params)
        else:
            return result_reply(command, list(session.record.streams))
        return result_reply(command)

    def subscribe(self, session: Session, streams: Iterable[str]) -> None:
        """A session on a path that does not serve the streams (``delivers`` false) lists them
        and gets none, as on Binance."""
        current = set(session.record.streams)  # a set: SUBSCRIBE may name a thousand
        for stream in streams:
            if stream not in current:
                current.add(stream)
                session.record.streams.append(stream)
                if session.delivers:
                    self._subscribers[stream].add(session)
                    self.market.subscribe(stream)

    def unsubscribe(self, session: Session, streams: Iterable[str]) -> None:
        for stream in streams:
            if stream in session.record.streams:
                session.record.streams.remove(stream)
                if session.delivers:
                    self._subscribers[stream].discard(session)
                    self.market.unsubscribe(stream)

    def forget(self, session: Session) -> None:
        """Drop a closing session from the fan-out; its record keeps its last streams."""
        for stream in session.record.streams if session.delivers else ():
            self._subscribers[stream].discard(session)
            self.market.unsubscribe(stream)
        self._sessions.pop(session.record.id, None)
        self.room.set()

    # Connections.

    def _too_many_streams(self, count: int) -> bool:
        return self.limits.max_streams is not None and count > self.limits.max_streams

    def _too_many_streams_msg(self, count: int) -> str:
        return (
            f"Invalid request: {count} streams, more than the {self.limits.max_streams} "
            "a connection may have"
        )

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        max_url = self.limits.max_url_bytes
        if max_url is not None and len(request.path.encode()) > max_url:
            return self._http(connection, 414, b'{"code":-1,"msg":"URI Too Long"}')
        path, _, query = request.path.partition("?")
        if self.rest.routes(path):
            status, body, headers = await self.rest.answer(path, query)
            return self._http(connection, status, body, headers)
        if self.archive.routes(path):
            status, body, headers = self.archive.answer(path, request.headers.get("Range"))
            return Response(
                status,
                http.HTTPStatus(status).phrase,
                Headers([("Connection", "close"), *headers.items()]),
                body,
            )
        rooted = self.market.venue.route(path)
        path, delivers = rooted if rooted is not None else ("", False)
        if path == "/ws" or path.startswith("/ws/"):
            route = _Route(False, [name for name in path[4:].split("/") if name], delivers)
        elif path == "/stream":
            names = parse_qs(query).get("streams", [""])[-1]
            route = _Route(True, [name for name in names.split("/") if name], delivers)
        else:
            return self._http(connection, 404, b'{"code":-1,"msg":"Not found."}')
        invalid = [name for name in route.streams if not valid_stream_name(name)]
        if invalid:
            body = orjson.dumps(
                {"code": 2, "msg": f"Invalid request: invalid stream name {invalid[0]!r}"}
            )
            return self._http(connection, 400, body)
        streams = len(set(route.streams))
        if self._too_many_streams(streams):
            body = orjson.dumps({"code": 2, "msg": self._too_many_streams_msg(streams)})
            return self._http(connection, 400, body)
        rejection = self.faults.take_rejection()
        if rejection is not None:
            status, retry_after = rejection
            headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            body = orjson.dumps({"code": -1003, "msg": http.HTTPStatus(status).phrase})
            return self._http(connection, status, body, headers)
        _ours(connection).route = route
        return None

    def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> None:
        # Every answer to a request websockets parsed passes here, just before it is sent: a
        # client that has read it finds it in the log.
        self.log.answered(request.path, response.status_code)

    def _http(
        self,
        connection: ServerConnection,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> Response:
        response = connection.respond(status, body.decode())
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json;charset=UTF-8"
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    async def _handle(self, connection: ServerConnection) -> None:
        ws = _ours(connection)
        assert ws.request is not None  # the handler runs once the handshake has read it
        combined, streams, delivers = ws.route
        record = ConnectionRecord(next(self._ids), ws.request.path, combined, [], time.time())
        session = Session(ws, record, self)
        session.delivers = delivers
        self.records.append(record)
        self._sessions[record.id] = session
        ws.session = session
        self.subscribe(session, streams)
        self.faults.on_open(session)
        if ws.flooded:  # too many messages before the handler ran
            session.close_soon(*TOO_MANY_REQUESTS)
        await session.serve()


class _Route(NamedTuple):
    """What a handshake's path asked for."""

    combined: bool  # /stream?streams=, each event wrapped; else /ws/...
    streams: list[str]
    delivers: bool  # the path serves these streams (USD-M: under /market only)


class _Connection(ServerConnection):
    """Carries the route chosen during the handshake; can be reset right on accept; counts the
    client's messages against the rate limit as they arrive, before any is handled."""

    def __init__(self, exchange: Exchange, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exchange = exchange
        self.route = _Route(False, [], True)
        self.session: Session | None = None  # set by the handler
        self.flooded = False  # the client went over the rate limit: closing with 1008
        self._incoming = IncomingRate(exchange.limits.max_incoming_per_second)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.exchange.faults.take_reset():
            reset_transport(self.transport)  # the transport, as the TCP (or TLS) one it is

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        await super().handshake(*args, **kwargs)
        refusal = type(self.protocol.handshake_exc).__name__
        if self.request is None and refusal in _REFUSED_BY_WEBSOCKETS:
            self.exchange.log.answered("", _REFUSED_BY_WEBSOCKETS[refusal])

    def process_event(self, event: Event) -> None:
        if (
            isinstance(event, WireFrame)
            and event.opcode in _COUNTED
            and not self.flooded
            and not self._answers_our_ping(event)
            and not self._incoming.admit(time.monotonic())
        ):
            self.flooded = True
            if self.session is not None:
                self.session.close_soon(*TOO_MANY_REQUESTS)
        # The message over the limit, and any after it, go unanswered.
        if self.flooded and isinstance(event, WireFrame) and event.opcode in _DATA:
            return
        super().process_event(event)

    def _answers_our_ping(self, frame: WireFrame) -> bool:
        """A pong to one of the server's own pings is not counted. On Binance they come every 20 s
        and cannot matter; tests ping ten times a second, which would make them matter."""
        return frame.opcode is Opcode.PONG and bytes(frame.data) in self.pending_pings


def _ours(connection: ServerConnection) -> _Connection:
    """What ``serve`` hands the handlers: a connection ``create_connection`` made, so ours."""
    return cast(_Connection, connection)


class _ExchangeOptions(TypedDict):
    """``Exchange``'s settings, as ``ExchangeSimulator`` keeps them until its loop starts."""

    ping_interval: float | None
    pong_timeout: float | None
    close_timeout: float
    rest_weight_limit: int
    limits: ConnectionLimits
    ssl_context: ssl.SSLContext | None
    keep_frames: bool


class ExchangeSimulator:
    """The exchange in a background thread with its own event loop.

    ``start()`` returns once it listens; ``stop()`` closes every connection (1001), stops
    the loop and joins the thread. Also a context manager. Everything public may be used
    from any thread except the loop's own. Each connection's record keeps every frame sent
    (``sent``) and counts them by kind (``sent_counts``); ``keep_frames=False`` keeps the counts
    only, for runs long enough that the frames would fill the memory (the soak).

    ``max_url_bytes``, ``max_streams`` and ``max_incoming_per_second`` are Binance's limits on a
    connection, Binance's values by default, ``None`` for none (``limits.py``).

    The market's venue (``venues.py``: spot, or usdm for USD-M futures) decides the routes and
    what is left at ``VENUE`` (the default): pings, pong timeout, the request weight a minute and
    the incoming messages a second.
    """

    def __init__(
        self,
        market: Market,
        host: str = "127.0.0.1",
        port: int = 0,
        ping_interval: float | _VenueDefault | None = VENUE,
        pong_timeout: float | _VenueDefault | None = VENUE,
        close_timeout: float = 2.0,
        rest_weight_limit: int | _VenueDefault = VENUE,
        ssl_context: ssl.SSLContext | None = None,
        keep_frames: bool = True,
        max_url_bytes: int | None = MAX_URL_BYTES,
        max_streams: int | None = MAX_STREAMS,
        max_incoming_per_second: int | _VenueDefault | None = VENUE,
        endpoints: int = 1,
    ) -> None:
        if endpoints < 1:
            raise ValueError("a simulator serves at least one endpoint")
        venue = market.venue
        self.market = market
        self._endpoints = endpoints
        self.host = host
        self._port = port
        self._scheme = "s" if ssl_context is not None else ""
        self._options: _ExchangeOptions = {
            "ping_interval": venue.ping_interval if ping_interval is VENUE else ping_interval,
            "pong_timeout": venue.pong_timeout if pong_timeout is VENUE else pong_timeout,
            "close_timeout": close_timeout,
            "rest_weight_limit": (
                venue.weight_limit if rest_weight_limit is VENUE else rest_weight_limit
            ),
            "limits": ConnectionLimits(
                max_url_bytes,
                max_streams,
                (
                    venue.limits.max_incoming_per_second
                    if max_incoming_per_second is VENUE
                    else max_incoming_per_second
                ),
            ),
            "ssl_context": ssl_context,
            "keep_frames": keep_frames,
        }
        self._exchanges: list[Exchange] = []  # the first runs the market; the others mirror it
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._stop_requested = False
        self._lock = threading.Lock()

    def start(self) -> ExchangeSimulator:
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("a simulator starts only once")
            started: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._thread = threading.Thread(
                target=self._run, args=(started,), name="exchange-simulator", daemon=True
            )
            self._thread.start()
        started.result()
        return self

    def stop(self) -> None:
        with self._lock:
            if self._thread is None or self._stop_requested:
                return
            self._stop_requested = True
        if self._thread.is_alive():
            loop, stopped = self._loop, self._stopped
            if loop is None or stopped is None:  # another thread is in start() still
                raise RuntimeError("the simulator is still starting")
            loop.call_soon_threadsafe(stopped.set)
            self._thread.join()

    def __enter__(self) -> ExchangeSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoints(self) -> list[Endpoint]:
        """Each endpoint serving the market; the simulator's own ``port``, ``ws_url``,
        ``faults``, ``connections`` and ``log`` are the first one's."""
        self._running()
        return [Endpoint(self, exchange) for exchange in self._exchanges]

    @property
    def ws_urls(self) -> list[str]:
        return [endpoint.ws_url for endpoint in self.endpoints]

    @property
    def port(self) -> int:
        return self._running().port

    @property
    def ws_url(self) -> str:
        return self.endpoints[0].ws_url

    @property
    def http_url(self) -> str:
        return f"http{self._scheme}://{self.host}:{self.port}"

    @property
    def faults(self) -> Faults:
        return self._running().faults

    @property
    def connections(self) -> list[ConnectionRecord]:
        """Every WebSocket connection so far, oldest first; records fill in live. One is
        listed when its handler starts, a moment after the client got its ``101``."""
        return list(self._running().records)

    @property
    def log(self) -> ExchangeLog:
        """Every HTTP status answered and every close the server sent (``exchange_log.py``)."""
        return self._running().log

    @property
    def http_requests(self) -> list[tuple[str, int]]:
        """``(path, status)`` of every request answered without an upgrade."""
        return [
            (entry.path, entry.code)
            for entry in self.log.entries
            if entry.kind == HTTP and entry.code != 101
        ]

    @property
    def rest_requests(self) -> list[tuple[str, int, float]]:
        """``(path?query, status, time.time())`` of every REST request answered, oldest first."""
        return list(self._running().rest.answered)

    @property
    def archive_requests(self) -> list[tuple[str, int, int]]:
        """``(path, status, body bytes)`` of every archive file request answered, oldest first."""
        return list(self._running().archive.served)

    def sent_trade_ids(self, symbol: str) -> list[int]:
        """Ids of the ``<symbol>@trade`` events written to any connection, connection by
        connection in opening order, each in send order."""
        stream = f"{symbol.lower()}@trade"
        ids: list[int] = []
        for record in self.connections:
            for frame in list(record.sent):
                if frame.kind == MARKET and frame.stream == stream:
                    event = orjson.loads(frame.data)
                    ids.append(event["data"]["t"] if record.combined else event["t"])
        return ids

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01
    ) -> None:
        """Poll ``predicate`` from the calling thread; TimeoutError if it stays false."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(interval)

    def wait_until_idle(self, timeout: float = 30.0) -> None:
        """Wait until the market has emitted everything and every queued frame is written."""
        self._running()

        def idle() -> bool:
            return self.market.finished and not any(
                session.queue for exchange in self._exchanges for session in exchange.sessions()
            )

        self.wait_for(lambda: self._call(idle), timeout)

    def _running(self) -> Exchange:
        if not self._exchanges:
            raise RuntimeError("the simulator is not running")
        return self._exchanges[0]

    def _run(self, started: concurrent.futures.Future[None]) -> None:
        asyncio.run(self._main(started))

    async def _main(self, started: concurrent.futures.Future[None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        exchanges: list[Exchange] = []
        try:
            for n in range(self._endpoints):
                port = self._port if n == 0 else 0
                exchanges.append(
                    Exchange(self.market, self.host, port, call=self._call, **self._options)
                )
            first = exchanges[0]
            first.mirrors = exchanges[1:]
            for mirror in first.mirrors:
                await mirror.start(run_market=False)
            await first.start()
        except BaseException as error:
            for exchange in exchanges:
                await exchange.stop()
            started.set_exception(error)
            return
        self._exchanges = exchanges
        started.set_result(None)
        await self._stopped.wait()
        for exchange in exchanges:
            await exchange.stop()

    def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function(*args)`` (awaited if it is a coroutine) on the loop; its result."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("fault commands are for other threads than the simulator's")

        async def run() -> Any:
            result = function(*args)
            return await result if inspect.isawaitable(result) else result

        self._running()
        assert self._loop is not None  # set before the exchange is
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(_THREAD_CALL_TIMEOUT)


class Endpoint:
    """One endpoint of a simulator: its URLs, faults, connections and log."""

    def __init__(self, simulator: ExchangeSimulator, exchange: Exchange) -> None:
        self._simulator, self._exchange = simulator, exchange

    @property
    def port(self) -> int:
        return self._exchange.port

    @property
    def ws_url(self) -> str:
        return f"ws{self._simulator._scheme}://{self._simulator.host}:{self.port}"

    @property
    def faults(self) -> Faults:
        return self._exchange.faults

    @property
    def connections(self) -> list[ConnectionRecord]:
        return list(self._exchange.records)

    @property
    def log(self) -> ExchangeLog:
        return self._exchange.log


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the market stopped", exc_info=task.exception())
