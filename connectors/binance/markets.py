"""Binance's markets as data: where each serves its trade streams and history, and its limits.

Two markets, read from Binance's documentation (2026) and checked against what others measured:

spot (binance-spot-api-docs: web-socket-streams.md, rest-api.md)
    streams ``wss://stream.binance.com:9443``: ``/ws/<stream>``, ``/stream?streams=a/b``;
    ``@trade`` and ``@aggTrade``; 5 incoming messages a second, 1024 streams a connection; the
    server pings every 20 s. REST ``https://api.binance.com/api/v3``: ``historicalTrades``
    (weight 25), ``aggTrades`` (4), ``exchangeInfo`` (20); 6,000 weight a minute per IP.

usdm, USD-M futures (developers.binance.com/docs/derivatives/usds-margined-futures: "Websocket
Market Streams", "Important WebSocket Change Notice", "Aggregate Trade Streams",
"Compressed/Aggregate Trades List", "Exchange Information")
    streams ``wss://fstream.binance.com/market``, the path for trades since the split of
    2026-03-06 (the root was retired on 2026-04-23; ``/public`` serves depth and book tickers,
    and a stream asked for on a path that does not serve it never delivers): ``/market/ws/<s>``,
    ``/market/stream?streams=a/b``; only ``@aggTrade`` (see ``stream_kinds``); 10 incoming
    messages a second, 1024 streams a connection; the server pings every 3 minutes. REST
    ``https://fapi.binance.com/fapi/v1``: ``aggTrades`` (weight 20, 1,000 a page; asked by time,
    only the last 48 hours: older asks get ``-4166 Search window is restricted to recent 2 days
    only``), ``exchangeInfo`` (weight 1, no filter parameters); 2,400 weight a minute per IP.
    Its aggTrade events carry ``nq`` and ``st`` besides spot's fields and no ``M``. The 48 hours,
    ``-4166``, the weight of exchangeInfo and the events' fields were measured by another client
    (polyoxide-binance, docs/specs/binance/OBSERVED.md, 2026-10-07); the aggTrades page itself
    still says "not older than one year".

USD-M offers no ``@trade`` here: Binance documents none for USD-M (an undocumented one answered
before the split, its events with an ``X`` field, ``MARKET``, that spot's lack; whether it answers
under ``/market`` now is unconfirmed), and its only history of single trades,
``/fapi/v1/historicalTrades``, needs an API key and returns market trades only, so the gaps of a
stream that carried others could not be filled, nor told from lost trades.

Both markets' history is also published as day files on data.binance.vision (``archive.py``):
spot's ``data/spot/daily/{trades|aggTrades}/``, USD-M's ``data/futures/um/daily/aggTrades/``
(binance-public-data README; the columns and time units are ``archive.py``'s). For USD-M it is the
only history further back than REST's 48 hours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

_HOUR_MS = 3_600_000


@dataclass(frozen=True)
class BinanceMarket:
    name: str  # as --market takes it
    title: str  # as a console line names it
    ws_url: str  # base URL of the trade streams: /ws/<stream> and /stream?streams= are under it
    ws_route: str  # the path every base URL of this market ends with ("": any)
    # other hosts serving the same streams: the default endpoints of redundant lines after ws_url
    ws_mirrors: tuple[str, ...]
    rest_url: str
    rest_path: str  # prefix of every REST endpoint below
    stream_kinds: tuple[str, ...]  # the trade streams it serves; the first is the default
    history_endpoints: Mapping[str, str]  # stream kind -> the REST endpoint of its history
    weights: Mapping[str, int]  # REST endpoint -> its request weight
    weight_limit: int  # request weight a minute per IP
    max_incoming_per_second: int  # messages a client may send on one connection
    max_streams_per_connection: int
    ping_interval_s: float  # how often the server pings a connection
    exchange_info_params: Mapping[str, str]  # what narrows exchangeInfo's answer
    contract_types: tuple[str, ...] | None  # of exchangeInfo's symbols, the ones read; None: all
    history_window_ms: int | None  # how far back the history serves asks by time; None: any
    # stream kind -> where the archive (data.binance.vision) keeps a symbol's day file of it:
    # formatted with symbol= and day= (a date); kinds not named here have no archive
    archive_paths: Mapping[str, str]
    # A line of this market's outputs names it, unless None: spot's lines predate markets and
    # keep the form their readers know.
    output_name: str | None

    def ws_urls(self, lines: int) -> list[str]:
        """The default endpoints of ``lines`` lines: the market's host, then its mirrors."""
        return [self.ws_url, *self.ws_mirrors][: max(lines, 1)]

    @property
    def default_stream(self) -> str:
        return self.stream_kinds[0]

    @property
    def default_weight_budget(self) -> int:
        """What gap filling may spend: half the IP's limit, the other half left to anything else
        on the machine."""
        return self.weight_limit // 2

    @property
    def silence_timeout_s(self) -> float:
        """A connection without any frame this long is lost: two pings missed, plus slack."""
        return 2 * self.ping_interval_s + 5

    def endpoint(self, name: str) -> str:
        return f"{self.rest_path}/{name}"

    def check_ws_url(self, url: str) -> None:
        """ValueError when ``url`` cannot serve this market's trade streams."""
        path = urlsplit(url).path.rstrip("/")
        if self.ws_route and not path.endswith(self.ws_route):
            raise ValueError(
                f"{self.name} serves trade streams under {self.ws_route} (e.g. {self.ws_url}):"
                f" streams asked for at {url} would never arrive"
            )

    def check_stream(self, kind: str) -> None:
        if kind not in self.stream_kinds:
            raise ValueError(
                f"{self.name} offers {' and '.join('@' + k for k in self.stream_kinds)} only,"
                f" not @{kind}"
            )

    def check_since(self, since_ms: int, now_ms: int, archive_kind: str | None = None) -> None:
        """ValueError when the history cannot reach back to ``since_ms``: the archive's day files
        of ``archive_kind`` (None: not read) reach back any time; else the REST history's window
        (with an hour to spare: the job starts reading it a while after it was told)."""
        if archive_kind is not None and archive_kind in self.archive_paths:
            return
        window = self.history_window_ms
        if window is not None and since_ms < now_ms - window + _HOUR_MS:
            hours = window // _HOUR_MS
            raise ValueError(
                f"the REST history of {self.title} ({self.endpoint('aggTrades')}) serves only the"
                f" last {hours} hours: give a time within the last {hours - 1}"
            )


SPOT = BinanceMarket(
    name="spot",
    title="spot",
    ws_url="wss://stream.binance.com:9443",
    ws_route="",
    ws_mirrors=("wss://data-stream.binance.vision",),  # market data only
    rest_url="https://api.binance.com",
    rest_path="/api/v3",
    stream_kinds=("trade", "aggTrade"),
    history_endpoints={"trade": "historicalTrades", "aggTrade": "aggTrades"},
    weights={"historicalTrades": 25, "aggTrades": 4, "exchangeInfo": 20},
    weight_limit=6000,
    max_incoming_per_second=5,
    max_streams_per_connection=1024,
    ping_interval_s=20.0,
    exchange_info_params={"showPermissionSets": "false"},
    contract_types=None,
    history_window_ms=None,
    archive_paths={
        "trade": "data/spot/daily/trades/{symbol}/{symbol}-trades-{day}.zip",
        "aggTrade": "data/spot/daily/aggTrades/{symbol}/{symbol}-aggTrades-{day}.zip",
    },
    output_name=None,
)
USDM = BinanceMarket(
    name="usdm",
    title="USD-M futures",
    ws_url="wss://fstream.binance.com/market",
    ws_route="/market",
    ws_mirrors=(),  # none documented: redundant lines are connections to the same host
    rest_url="https://fapi.binance.com",
    rest_path="/fapi/v1",
    stream_kinds=("aggTrade",),
    history_endpoints={"aggTrade": "aggTrades"},
    weights={"aggTrades": 20, "exchangeInfo": 1},
    weight_limit=2400,
    max_incoming_per_second=10,
    max_streams_per_connection=1024,
    ping_interval_s=180.0,
    exchange_info_params={},
    # Perpetuals, crypto and TradFi; quarterly contracts expire (their symbols carry the
    # delivery date after an underscore, BTCUSDT_261225).
    contract_types=("PERPETUAL", "TRADIFI_PERPETUAL"),
    history_window_ms=48 * _HOUR_MS,
    archive_paths={
        "aggTrade": "data/futures/um/daily/aggTrades/{symbol}/{symbol}-aggTrades-{day}.zip",
    },
    output_name="usdm",
)
MARKETS = {market.name: market for market in (SPOT, USDM)}
