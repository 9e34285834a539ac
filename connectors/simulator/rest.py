"""``GET /api/v3/historicalTrades`` answered from a market's trade history, as Binance does."""
from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qs

import orjson

from connectors.simulator.market import Market

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000  # spot clamps larger limits instead of refusing them
_QUOTE_STEP = Decimal("0.00000001")


class _BadRequest(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.body = orjson.dumps({"code": code, "msg": msg})


def historical_trades(market: Market, query: str) -> tuple[int, bytes]:
    """HTTP status and JSON body for the query string of a historicalTrades request."""
    params = {name: values[-1] for name, values in parse_qs(query).items()}
    try:
        symbol = params.get("symbol")
        if not symbol:
            raise _BadRequest(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        if symbol not in market.symbols:
            raise _BadRequest(-1121, "Invalid symbol.")
        limit = _integer(params, "limit", DEFAULT_LIMIT, minimum=1)
        from_id = _integer(params, "fromId", None, minimum=0)
    except _BadRequest as error:
        return 400, error.body
    payloads = market.history(symbol).since(from_id, min(limit, MAX_LIMIT))
    return 200, orjson.dumps([_rest_trade(orjson.loads(payload)) for payload in payloads])


def _rest_trade(event: dict) -> dict:
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


def _integer(params: dict[str, str], name: str, default: int | None, *, minimum: int) -> int | None:
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _BadRequest(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        ) from None
    if value < minimum:
        raise _BadRequest(-1130, f"Data sent for parameter '{name}' is not valid.")
    return value
