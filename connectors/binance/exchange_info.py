"""Which spot symbols trade: Binance's ``exchangeInfo``, for ``--symbols all``.

Request and answer (spot REST API, 2026; no API key needed)::

    GET /api/v3/exchangeInfo?symbolStatus=TRADING&showPermissionSets=false        weight 20
    {"timezone":"UTC","serverTime":..,"rateLimits":[..],"exchangeFilters":[],
     "symbols":[{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT",..},..]}

Without a ``permissions`` filter the answer lists the SPOT, MARGIN and LEVERAGED symbols: the spot
market this project reads. ``symbolStatus`` leaves out those in BREAK, HALT, END_OF_DAY or
CANCEL_ONLY. The request goes through the same per-host weight gate as the REST history, so that
every process on the machine shares one budget.
"""

from __future__ import annotations

from collections.abc import Collection

import orjson
import requests

from connectors.binance.history import RestConfig
from connectors.binance.streams import normalize_symbols
from connectors.websocket.gate import WeightGate

WEIGHT = 20


class ExchangeInfoUnavailable(Exception):
    """exchangeInfo could not be read; the message says why."""


def trading_symbols(
    rest: RestConfig,
    quotes: Collection[str] = (),
    exclude: Collection[str] = (),
    gate_dir: str | None = None,
    ca_file: str | None = None,
) -> list[str]:
    """The TRADING symbols (lower case, in the exchange's order), only those quoted in ``quotes``
    when given (e.g. ``["USDT", "FDUSD"]``), without those in ``exclude``."""
    gate = WeightGate(rest.rest_url, rest.rest_weight_budget, gate_dir)
    wait = gate.reserve(WEIGHT)
    if wait > 0:
        raise ExchangeInfoUnavailable(
            f"the request weight budget of {rest.rest_url} is spent for {wait:.0f}s more"
        )
    url = f"{rest.rest_url.rstrip('/')}/api/v3/exchangeInfo"
    try:
        response = requests.get(
            url,
            params={"symbolStatus": "TRADING", "showPermissionSets": "false"},
            timeout=rest.rest_timeout,
            verify=ca_file or True,
        )
    except requests.RequestException as exc:
        raise ExchangeInfoUnavailable(f"GET {url}: {type(exc).__name__}: {exc}") from exc
    used = response.headers.get("X-MBX-USED-WEIGHT-1M")
    if used is not None and used.isdigit():
        gate.observe(int(used))
    if response.status_code != 200:
        raise ExchangeInfoUnavailable(
            f"GET {url}: HTTP {response.status_code} {response.text[:200]}"
        )
    try:
        listed = orjson.loads(response.content)["symbols"]
        wanted = {q.upper() for q in quotes}
        excluded = {s.upper() for s in exclude}
        symbols = [
            entry["symbol"]
            for entry in listed
            if entry["status"] == "TRADING"
            and (not wanted or entry["quoteAsset"] in wanted)
            and entry["symbol"] not in excluded
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ExchangeInfoUnavailable(
            f"GET {url}: not an exchangeInfo answer ({type(exc).__name__}: {exc}):"
            f" {response.text[:200]}"
        ) from exc
    if not symbols:
        raise ExchangeInfoUnavailable(f"GET {url}: no TRADING symbol matches")
    return normalize_symbols(symbols)
