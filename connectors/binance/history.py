"""Binance's trade history over REST: what the bridge fetches to fill a gap (``History``).

Requests and their answers (spot REST API, 2026; no API key needed; USD-M futures serve
``aggTrades`` alike under ``/fapi/v1``, at the weights and within the window ``markets.py`` gives,
their entries with ``nq`` and without ``M``)::

    GET /api/v3/historicalTrades?symbol=BTCUSDT&fromId=N&limit=1000            weight 25
    [{"id":3735693016,"price":"61685.99000000","qty":"0.00017000","quoteQty":"10.48661830",
      "time":1723161601437,"isBuyerMaker":true,"isBestMatch":true}, ...]
        id trade id (the stream's t), price, qty, quoteQty price x qty, time trade time (T),
        isBuyerMaker (m), isBestMatch (M); ids from N on, ascending
    GET /api/v3/aggTrades?symbol=BTCUSDT&fromId=N&limit=1000                   weight 4
    GET /api/v3/aggTrades?symbol=BTCUSDT&startTime=MS&endTime=MS&limit=1       weight 4
    [{"a":665076760,"p":"58012.31000000","q":"0.00100000","f":758427321,"l":758427322,
      "T":1617566591306,"m":false,"M":true}, ...]
        as the stream's aggTrade; startTime/endTime (ms, inclusive, less than an hour apart)
        is how a time becomes an id: f of the first aggregate trade is the first trade id

Requests go through ``rest.py`` (the weight budget every process on the machine shares).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson

from connectors.binance.markets import SPOT, BinanceMarket
from connectors.binance.parser import Parser
from connectors.binance.records import AggTrade, DeadLetter, FailureReason, Trade
from connectors.binance.rest import BinanceRest, RestConfig, RestUnavailable
from connectors.websocket.backfill import HistoryUnavailable

log = logging.getLogger(__name__)

PAGE_SIZE = 1000  # the largest page every history endpoint serves
# spot's ticker/24hr by how many symbols it is asked for: up to 20, up to 100, any number (all, 80)
TICKER_WEIGHTS = ((20, 2), (100, 40))
TICKER_ALL_WEIGHT = 80
_HOUR_MS = 3_600_000


class BinanceHistory:
    """Pages of ``@trade`` (``historicalTrades``) or ``@aggTrade`` (``aggTrades``) history of one
    market (spot unless told)."""

    page_size = PAGE_SIZE
    record_types = (Trade, AggTrade)

    def __init__(
        self,
        kind: str,
        config: RestConfig = RestConfig(),
        gate_dir: str | None = None,
        ca_file: str | None = None,
        market: BinanceMarket = SPOT,
    ) -> None:
        market.check_stream(kind)
        self.kind = kind
        self._endpoint = market.history_endpoints[kind]
        self._rest = BinanceRest(config, market, gate_dir, ca_file)
        self._parser = Parser(kinds=(kind,))

    def fetch(self, key: str, first_seq: int) -> list[Trade | AggTrade | DeadLetter]:
        entries = self._get(
            self._endpoint, {"symbol": key, "fromId": first_seq, "limit": PAGE_SIZE}
        )
        return [self._record(key, entry) for entry in entries]

    def seq_at(self, key: str, time_ms: int) -> int | None:
        """The first id at or after ``time_ms``: the first aggregate trade of the first hour from
        there that has one (``f`` for ``@trade``, ``a`` for ``@aggTrade``); None if none yet."""
        start = time_ms
        while start <= time.time() * 1000:
            entries = self._get(
                "aggTrades",
                {"symbol": key, "startTime": start, "endTime": start + _HOUR_MS - 1, "limit": 1},
            )
            if entries:
                seq = (
                    entries[0].get("f" if self.kind == "trade" else "a")
                    if type(entries[0]) is dict
                    else None
                )
                if type(seq) is not int:
                    raise HistoryUnavailable(
                        f"aggTrades answered an entry without ids: {entries[0]!r}"
                    )
                return seq
            start += _HOUR_MS
        return None

    def newest_seqs(self, keys: Sequence[str]) -> dict[str, int] | None:
        """Each symbol's newest trade id (``lastId`` of ``GET /api/v3/ticker/24hr``, weight 2 for
        up to 20 symbols, 40 up to 100, 80 for the whole market): the cost of 1 to 4 pages of
        history for any number of symbols. None for ``@aggTrade``, whose ids the ticker lacks."""
        if self.kind != "trade":
            return None
        weight = next((w for most, w in TICKER_WEIGHTS if len(keys) <= most), TICKER_ALL_WEIGHT)
        params: dict[str, str | int] = (
            {} if weight == TICKER_ALL_WEIGHT else {"symbols": orjson.dumps(list(keys)).decode()}
        )
        entries = self._get("ticker/24hr", params, weight)
        newest: dict[str, int] = {}
        for entry in entries:
            if type(entry) is dict and type(entry.get("lastId")) is int:
                newest[str(entry.get("symbol"))] = entry["lastId"]
        return newest

    def unfilled(self, key: str, first: int, last: int, why: str) -> DeadLetter:
        raw = orjson.dumps({"symbol": key, "first_id": first, "last_id": last})
        return Parser.failure(
            FailureReason.GAP_UNFILLED, raw, f"{last - first + 1} ids lost: {why}"
        )

    @property
    def stats(self) -> dict[str, int]:
        return dict(self._rest.counts)

    def close(self) -> None:
        self._rest.close()

    def _get(
        self, endpoint: str, params: dict[str, str | int], weight: int | None = None
    ) -> list[Any]:
        """The answer's JSON array (its entries unchecked); raises HistoryUnavailable."""
        try:
            entries = self._rest.get(endpoint, params, weight)
        except RestUnavailable as exc:
            raise HistoryUnavailable(
                str(exc), retry_after=exc.retry_after, permanent=exc.permanent
            ) from exc
        if type(entries) is not list:
            self._rest.counts["rest_errors"] += 1
            raise HistoryUnavailable(f"{endpoint}: answer is not a list: {entries!r:.200}")
        return entries

    def _record(self, key: str, entry: object) -> Trade | AggTrade | DeadLetter:
        raw = orjson.dumps(entry)
        if type(entry) is not dict:
            return Parser.failure(FailureReason.NOT_AN_OBJECT, raw, "REST entry is not an object")
        if self.kind == "trade":
            data = {
                "e": "trade",
                "s": key,
                "t": entry.get("id"),
                "p": entry.get("price"),
                "q": entry.get("qty"),
                "T": entry.get("time"),
                "E": entry.get("time"),
                "m": entry.get("isBuyerMaker"),
            }
        else:
            data = dict(entry, e="aggTrade", s=key, E=entry.get("T"))
        return self._parser.rest_record(
            self.kind, {k: v for k, v in data.items() if v is not None}, raw
        )
