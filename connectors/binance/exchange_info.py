"""Which symbols of a market trade: Binance's ``exchangeInfo``, for ``--symbols all``.

Requests and answers (2026; no API key needed)::

    GET /api/v3/exchangeInfo?showPermissionSets=false                              weight 20
    {"timezone":"UTC","serverTime":..,"rateLimits":[..],"exchangeFilters":[],
     "symbols":[{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT",..},..]}
    GET /fapi/v1/exchangeInfo                                                      weight 1
    {"timezone":"UTC","serverTime":..,"futuresType":"U_MARGINED","rateLimits":[..],"assets":[..],
     "symbols":[{"symbol":"BTCUSDT","pair":"BTCUSDT","contractType":"PERPETUAL",
                 "status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT",..},..]}

Spot: without a ``permissions`` filter the answer lists the SPOT, MARGIN and LEVERAGED symbols: the
spot market this project reads. Every status comes back (TRADING, BREAK, HALT, END_OF_DAY,
CANCEL_ONLY): the job trades the TRADING symbols and watches the others (``listings.py``). USD-M
takes no filter: every contract comes back, perpetual or quarterly (``BTCUSDT_261225``), TRADING,
SETTLING or PENDING_TRADING, a few with Chinese characters in their names (``币安人生USDT``); the
market's ``contract_types`` are kept, and names that are not ASCII letters and digits are left out
with a warning (a stream name here is one of those).
The request goes through ``rest.py``, as the REST history's do: every process on the machine shares
one weight budget.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from connectors.binance.markets import SPOT, BinanceMarket
from connectors.binance.rest import BinanceRest, RestConfig, RestUnavailable
from connectors.binance.streams import first_few

log = logging.getLogger(__name__)
TRADING = "TRADING"


class ExchangeInfoUnavailable(Exception):
    """exchangeInfo could not be read; the message says why."""


def listed_symbols(
    rest: RestConfig,
    quotes: Collection[str] = (),
    exclude: Collection[str] = (),
    gate_dir: str | None = None,
    ca_file: str | None = None,
    market: BinanceMarket = SPOT,
) -> dict[str, str]:
    """Every symbol ``market`` lists, whatever its status (lower case -> ``TRADING``, ``BREAK``,
    ...; in the exchange's order), only those quoted in ``quotes`` when given (e.g. ``["USDT",
    "FDUSD"]``), without those in ``exclude``. A listing shows here ahead of its trading
    (Binance: in ``BREAK`` until it opens)."""
    client = BinanceRest(rest, market, gate_dir, ca_file)
    try:
        answer = client.get("exchangeInfo", dict(market.exchange_info_params))
    except RestUnavailable as exc:
        raise ExchangeInfoUnavailable(str(exc)) from exc
    finally:
        client.close()
    try:
        wanted = {q.upper() for q in quotes}
        excluded = {s.upper() for s in exclude}
        listed = {
            entry["symbol"]: entry["status"]
            for entry in answer["symbols"]
            if (market.contract_types is None or entry["contractType"] in market.contract_types)
            and (not wanted or entry["quoteAsset"] in wanted)
            and entry["symbol"] not in excluded
        }
    except (KeyError, TypeError) as exc:
        raise ExchangeInfoUnavailable(
            f"{market.name} exchangeInfo: not its answer ({type(exc).__name__}: {exc}):"
            f" {str(answer)[:200]}"
        ) from exc
    unnamable = [s for s in listed if not (s.isascii() and s.isalnum())]
    if unnamable:
        log.warning(
            "--symbols all: %d %s symbol%s left out, not ASCII letters and digits: %s",
            len(unnamable),
            market.name,
            "s" if len(unnamable) > 1 else "",
            first_few(unnamable),
        )
    return {s.lower(): status for s, status in listed.items() if s not in unnamable}
