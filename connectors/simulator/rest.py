"""Binance's REST market data, answered from what the market published, with its limits.

On spot:

- ``GET /api/v3/historicalTrades?symbol=&fromId=&limit=`` (weight 25): ``@trade`` history;
- ``GET /api/v3/aggTrades?symbol=&fromId=|startTime=&endTime=&limit=`` (weight 4): aggregate
  trades, from the ``@aggTrade`` history or made of the ``@trade`` one;
- ``GET /api/v3/exchangeInfo`` (weight 20) and ``GET /api/v3/ticker/24hr`` (weight 80 for all
  symbols, 2 for one): the symbols and their day (``market_info.py``).

On USD-M futures (a market of the ``usdm`` venue, ``venues.py``):

- ``GET /fapi/v1/aggTrades`` (weight 20), as spot's, and asked by time only for the last 48 hours
  (older: 400 ``-4166``);
- ``GET /fapi/v1/exchangeInfo`` (weight 1): every contract, no filter (``market_info.py``).

On both:

- request weight per calendar minute for the whole server (one IP, as Binance counts it): every
  answer carries ``X-MBX-USED-WEIGHT-1M``; over the limit, 429 with ``Retry-After`` (seconds to the
  next minute); asking again before that is a violation, and the third bans the "IP": 418 with
  ``Retry-After`` for ``ban_seconds``;
- faults on command (``Faults``): 5xx answers, stalls longer than a client's timeout, ids left
  out of the answers (holes in the history).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import defaultdict
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import orjson

from connectors.simulator.history import Event
from connectors.simulator.market import Market
from connectors.simulator.market_info import (
    exchange_info,
    futures_exchange_info,
    ticker_24hr,
    ticker_weight,
)
from connectors.simulator.rest_params import BadRequest, integer_param, symbol_param
from connectors.simulator.venues import SPOT

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000  # spot clamps larger limits instead of refusing them
MAX_WINDOW_MS = 3_600_000  # aggTrades: startTime and endTime less than an hour apart
VIOLATIONS_BEFORE_BAN = 3
_QUOTE_STEP = Decimal("0.00000001")


class RestApi:
    """Lives on the simulator's event loop; ``answer`` is its one entry."""

    def __init__(
        self, market: Market, weight_limit: int | None = None, ban_seconds: float = 120.0
    ) -> None:
        self.market = market
        self.venue = market.venue
        self.weight_limit = self.venue.weight_limit if weight_limit is None else weight_limit
        self.ban_seconds = ban_seconds
        self._used: dict[int, int] = defaultdict(int)  # minute -> weight used
        self._retry_at = 0.0  # a 429 told the client to come back then
        self._violations = 0
        self._banned_until = 0.0
        # faults
        self.failures: list[
            tuple[int, float | None]
        ] = []  # (status, Retry-After) of the next answers
        self.stalls: list[float] = []  # seconds the next answers are held back, one each
        self.hidden: dict[str, set[int]] = defaultdict(set)  # symbol -> ids left out
        self.answered: list[
            tuple[str, int, float]
        ] = []  # (path?query, status, time.time()) of each request
        self._closing = asyncio.Event()

    def close(self) -> None:
        self._closing.set()

    def routes(self, path: str) -> bool:
        return self.venue.endpoint(path) is not None

    async def answer(self, path: str, query: str) -> tuple[int, bytes, dict[str, str]]:
        if self.stalls:
            with contextlib.suppress(TimeoutError):  # a stall ends early when the simulator stops
                await asyncio.wait_for(self._closing.wait(), self.stalls.pop(0))
        status, body, headers = self._answer(path, query)
        self.answered.append((f"{path}?{query}", status, time.time()))
        return status, body, headers

    def _answer(self, path: str, query: str) -> tuple[int, bytes, dict[str, str]]:
        now = time.time()
        if now < self._banned_until:
            return _refusal(
                418,
                "IP banned until " + str(int(self._banned_until * 1000)),
                self._banned_until - now,
            )
        if now < self._retry_at:
            self._violations += 1
            if self._violations >= VIOLATIONS_BEFORE_BAN:
                self._banned_until = now + self.ban_seconds
                return _refusal(418, "Way too many requests; IP banned", self.ban_seconds)
            return _refusal(
                429, "Too many requests; current limit is exceeded", self._retry_at - now
            )
        params = {name: values[-1] for name, values in parse_qs(query).items()}
        endpoint = self.venue.endpoint(path)
        assert endpoint is not None  # routes() sent only these here
        weight = self.venue.weights[endpoint]
        if weight is None:
            weight = ticker_weight(params)
        minute = int(now // 60)
        used = self._used[minute] + weight
        if used > self.weight_limit:
            self._retry_at = (minute + 1) * 60
            return _refusal(
                429,
                f"Too much request weight used; current limit is {self.weight_limit} request "
                "weight per 1 MINUTE.",
                self._retry_at - now,
            )
        self._used[minute] = used
        headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
        if self.failures:
            status, retry_after = self.failures.pop(0)
            if retry_after is not None:
                return _refusal(status, "Too many requests (on command)", retry_after)
            return (
                status,
                b'{"code":-1001,"msg":"Internal error; unable to process your request."}',
                headers,
            )
        try:
            body = self._body(endpoint, params)
        except BadRequest as error:
            return 400, error.body, headers
        return 200, orjson.dumps(body), headers

    def _body(self, endpoint: str, params: dict[str, str]) -> Any:
        if endpoint == "historicalTrades":
            return self._trades(params)
        if endpoint == "aggTrades":
            return self._aggregates(params)
        if endpoint == "exchangeInfo":
            if self.venue is SPOT:
                return exchange_info(self.market, params, self.weight_limit)
            return futures_exchange_info(self.market, self.weight_limit)
        return ticker_24hr(self.market, params)

    def _trades(self, params: dict[str, str]) -> list[Event]:
        published = self.market.published(symbol_param(params), "trade")
        if published is None:
            raise BadRequest(-1121, "Invalid symbol.")
        limit = min(integer_param(params, "limit", DEFAULT_LIMIT, minimum=1), MAX_LIMIT)
        from_id = integer_param(params, "fromId", None, minimum=0)
        start = (
            max(0, len(published.ids) - limit)
            if from_id is None
            else published.index_of_id(from_id)
        )
        hidden = self.hidden[params["symbol"]]
        return [
            _rest_trade(event)
            for event in published.events[start : start + limit + len(hidden)]
            if event["t"] not in hidden
        ][:limit]

    def _aggregates(self, params: dict[str, str]) -> list[Event]:
        symbol = symbol_param(params)
        published = self.market.published(symbol, "aggTrade") or self.market.published(
            symbol, "trade"
        )
        if published is None:
            raise BadRequest(-1121, "Invalid symbol.")
        limit = min(integer_param(params, "limit", DEFAULT_LIMIT, minimum=1), MAX_LIMIT)
        from_id = integer_param(params, "fromId", None, minimum=0)
        start_time = integer_param(params, "startTime", None, minimum=0)
        end_time = integer_param(params, "endTime", None, minimum=0)
        if from_id is not None and (start_time is not None or end_time is not None):
            raise BadRequest(-1128, "Combination of optional parameters invalid.")
        if (
            start_time is not None
            and end_time is not None
            and end_time - start_time >= MAX_WINDOW_MS
        ):
            raise BadRequest(-1127, "More than 1 hours between startTime and endTime.")
        window = self.venue.history_window_ms
        asked = start_time if start_time is not None else end_time
        if window is not None and asked is not None and asked < time.time() * 1000 - window:
            raise BadRequest(-4166, "Search window is restricted to recent 2 days only.")
        if from_id is not None:
            start = published.index_of_agg_id(from_id)
        elif start_time is not None:
            start = published.index_of_time(start_time)
        elif end_time is not None:
            start = max(0, published.index_of_time(end_time + 1) - limit)
        else:
            start = max(0, len(published.ids) - limit)
        return published.aggregates(start, end_time, limit, self.hidden[symbol])


def _refusal(status: int, msg: str, retry_after: float) -> tuple[int, bytes, dict[str, str]]:
    return (
        status,
        orjson.dumps({"code": -1003, "msg": msg}),
        {"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


def _rest_trade(event: Event) -> Event:
    price, quantity = event["p"], event["q"]
    return {
        "id": event["t"],
        "price": price,
        "qty": quantity,
        # Binance prints the quote quantity with the quote asset's 8 decimals.
        "quoteQty": str((Decimal(price) * Decimal(quantity)).quantize(_QUOTE_STEP)),
        "time": event["T"],
        "isBuyerMaker": event["m"],
        "isBestMatch": event.get("M", True),
    }
