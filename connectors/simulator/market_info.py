"""What the exchange says about its symbols over REST: ``GET /api/v3/exchangeInfo`` and
``GET /api/v3/ticker/24hr``, shaped as Binance's answers (fields a client reads; no order book,
so no bid and ask in the ticker); and USD-M's ``GET /fapi/v1/exchangeInfo``.

- exchangeInfo: every listed symbol with its status; ``symbol=`` or ``symbols=["A","B"]`` for a
  few, ``symbolStatus=TRADING|HALT|BREAK`` to filter (not with ``symbol(s)``, as on Binance);
  ``showPermissionSets=false`` leaves ``permissionSets`` out.
- USD-M's exchangeInfo: no parameters; every listed symbol as a ``PERPETUAL`` contract with its
  status (the market's own: ``HALT`` and ``BREAK`` where Binance would say ``SETTLING`` and the
  like), and, as Binance lists them beside the perpetuals, a quarterly contract of BTCUSDT and of
  ETHUSDT when the market lists those (``BTCUSDT_261225``) and a perpetual named in Chinese
  characters (``币安人生USDT``, one of five in October 2026); no stream serves these here.
- ticker/24hr: per symbol ``firstId``, ``lastId``, ``count`` and the day's prices as decimal
  strings, over everything published (``history.Totals``); an object for ``symbol=``, a list
  otherwise. Its weight grows with the symbols asked for (``ticker_weight``).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from connectors.simulator.history import Totals
from connectors.simulator.market import Market
from connectors.simulator.rest_params import BadRequest, symbol_param, symbols_param
from connectors.simulator.symbols import FILTERABLE_STATUSES, TRADING, split_symbol

# Weight of a ticker/24hr request by how many symbols it names: (at most this many, weight).
TICKER_WEIGHTS = ((20, 2), (100, 40))
TICKER_WEIGHT_ALL = 80  # no symbol named, or more than 100
_DAY_MS = 86_400_000
_PRICE = Decimal("0.00000001")
_PERCENT = Decimal("0.001")

# The fields that are the same for every simulated symbol, in Binance's order after
# symbol, status, baseAsset, baseAssetPrecision and quoteAsset.
_SYMBOL_FIELDS: dict[str, Any] = {
    "quotePrecision": 8,
    "quoteAssetPrecision": 8,
    "baseCommissionPrecision": 8,
    "quoteCommissionPrecision": 8,
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
    "icebergAllowed": True,
    "ocoAllowed": True,
    "otoAllowed": True,
    "quoteOrderQtyMarketAllowed": True,
    "allowTrailingStop": True,
    "cancelReplaceAllowed": True,
    "isSpotTradingAllowed": True,
    "isMarginTradingAllowed": True,
    "filters": [],
    "permissions": [],
    "permissionSets": [["SPOT", "MARGIN"]],
    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
    "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
}
# USD-M's contracts with quarterly ones beside their perpetual (Binance lists more).
_QUARTERLY = ("BTCUSDT", "ETHUSDT")
_CHINESE_NAMED = "币安人生USDT"
_PERPETUAL_DELIVERY_MS = 4_133_404_800_000  # 2100-12-25: what Binance gives a perpetual
_FUTURES_ORDER_LIMITS = (
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
)
# Binance's limits besides the request weight (which is the simulator's own setting).
_FIXED_RATE_LIMITS = (
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
)


def exchange_info(market: Market, params: dict[str, str], weight_limit: int) -> dict[str, Any]:
    wanted = _named_symbols(market, params)
    status = params.get("symbolStatus")
    if status is not None:
        if wanted is not None:
            raise BadRequest(-1128, "Combination of optional parameters invalid.")
        if status not in FILTERABLE_STATUSES:
            raise BadRequest(-1122, "Invalid symbolStatus.")
    show_permission_sets = params.get("showPermissionSets", "true") != "false"
    symbols = [
        _symbol_info(symbol, listed, show_permission_sets)
        for symbol in (market.symbols if wanted is None else wanted)
        if (listed := market.status(symbol)) is not None and status in (None, listed)
    ]
    return {
        "timezone": "UTC",
        "serverTime": time.time_ns() // 1_000_000,
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": weight_limit,
            },
            *_FIXED_RATE_LIMITS,
        ],
        "exchangeFilters": [],
        "symbols": symbols,
    }


def futures_exchange_info(market: Market, weight_limit: int) -> dict[str, Any]:
    contracts = [(symbol, "PERPETUAL", market.status(symbol)) for symbol in market.symbols]
    delivery = _quarter_end(datetime.datetime.now(datetime.UTC))
    contracts += [
        (f"{symbol}_{delivery:%y%m%d}", "CURRENT_QUARTER", TRADING)
        for symbol in _QUARTERLY
        if market.status(symbol) is not None
    ]
    contracts.append((_CHINESE_NAMED, "PERPETUAL", TRADING))
    return {
        "timezone": "UTC",
        "serverTime": time.time_ns() // 1_000_000,
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": weight_limit,
            },
            *_FUTURES_ORDER_LIMITS,
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [
            _contract(symbol, contract_type, status, delivery)
            for symbol, contract_type, status in contracts
        ],
    }


def ticker_24hr(market: Market, params: dict[str, str]) -> dict[str, Any] | list[dict[str, Any]]:
    wanted = _named_symbols(market, params)
    tickers = [
        _ticker(symbol, _totals(market, symbol))
        for symbol in (market.symbols if wanted is None else wanted)
    ]
    return tickers[0] if "symbol" in params else tickers


def ticker_weight(params: dict[str, str]) -> int:
    """2 for one symbol; for ``symbols=``, 2 up to 20, 40 up to 100; 80 for more or for all."""
    if "symbol" in params:
        return TICKER_WEIGHTS[0][1]
    try:
        named = symbols_param(params)
    except BadRequest:
        return TICKER_WEIGHT_ALL
    if named is None:
        return TICKER_WEIGHT_ALL
    tiers = (weight for most, weight in TICKER_WEIGHTS if len(named) <= most)
    return next(tiers, TICKER_WEIGHT_ALL)


def _named_symbols(market: Market, params: dict[str, str]) -> list[str] | None:
    """The symbols ``symbol`` or ``symbols`` names, each listed (else 400); None: all."""
    if "symbol" in params:
        if "symbols" in params:
            raise BadRequest(-1128, "Combination of optional parameters invalid.")
        return _known(market, [symbol_param(params)])
    wanted = symbols_param(params)
    return None if wanted is None else _known(market, wanted)


def _known(market: Market, symbols: Iterable[str]) -> list[str]:
    symbols = list(dict.fromkeys(symbols))
    if any(market.status(symbol) is None for symbol in symbols):
        raise BadRequest(-1121, "Invalid symbol.")
    return symbols


def _symbol_info(symbol: str, status: str, show_permission_sets: bool) -> dict[str, Any]:
    base, quote = split_symbol(symbol)
    info: dict[str, Any] = {
        "symbol": symbol,
        "status": status,
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        **_SYMBOL_FIELDS,
    }
    if not show_permission_sets:
        del info["permissionSets"]
    return info


def _totals(market: Market, symbol: str) -> Totals:
    published = market.published(symbol, "trade") or market.published(symbol, "aggTrade")
    return Totals() if published is None else published.totals


def _ticker(symbol: str, totals: Totals) -> dict[str, Any]:
    close_time = time.time_ns() // 1_000_000
    change = totals.last - totals.open
    percent = (change * 100 / totals.open).quantize(_PERCENT) if totals.open else Decimal(0)
    average = (totals.quote_volume / totals.volume).quantize(_PRICE) if totals.volume else 0
    return {
        "symbol": symbol,
        "priceChange": _eight(change),
        "priceChangePercent": f"{percent:f}",
        "weightedAvgPrice": _eight(average),
        "prevClosePrice": _eight(totals.open),  # the market opened at the previous close
        "lastPrice": _eight(totals.last),
        "lastQty": _eight(totals.last_qty),
        "openPrice": _eight(totals.open),
        "highPrice": _eight(totals.high),
        "lowPrice": _eight(totals.low),
        "volume": _eight(totals.volume),
        "quoteVolume": _eight(totals.quote_volume),
        "openTime": close_time - _DAY_MS,
        "closeTime": close_time,
        "firstId": totals.first_id,
        "lastId": totals.last_id,
        "count": totals.count,
    }


def _eight(value: Decimal | int) -> str:
    """Binance prints prices and quantities with 8 decimals."""
    return f"{Decimal(value).quantize(_PRICE):f}"


def _contract(
    symbol: str, contract_type: str, status: str | None, delivery: datetime.datetime
) -> dict[str, Any]:
    base, quote = split_symbol(symbol.partition("_")[0])
    perpetual = contract_type == "PERPETUAL"
    return {
        "symbol": symbol,
        "pair": symbol.partition("_")[0],
        "contractType": contract_type,
        "deliveryDate": _PERPETUAL_DELIVERY_MS if perpetual else int(delivery.timestamp() * 1000),
        "onboardDate": 1_569_398_400_000,
        "status": status,
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": quote,
        "pricePrecision": 2,
        "quantityPrecision": 3,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "filters": [],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }


def _quarter_end(now: datetime.datetime) -> datetime.datetime:
    """The delivery of the current quarterly contract: the last Friday of this quarter's last
    month, 08:00 UTC (or of the next quarter once that has passed)."""
    year, month = now.year, (now.month - 1) // 3 * 3 + 3
    while True:
        last_day = datetime.datetime(year + month // 12, month % 12 + 1, 1, 8, tzinfo=datetime.UTC)
        last_day -= datetime.timedelta(days=1)
        friday = last_day - datetime.timedelta(days=(last_day.weekday() - 4) % 7)
        if friday > now:
            return friday
        year, month = (year + 1, 3) if month == 12 else (year, month + 3)
