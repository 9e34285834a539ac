"""Query parameters of the REST endpoints, read as Binance reads them, and its 400 answers."""

from __future__ import annotations

from typing import overload

import orjson


class BadRequest(Exception):
    """A request Binance answers with 400; ``body`` is its ``{"code":...,"msg":...}``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.body = orjson.dumps({"code": code, "msg": msg})


def symbol_param(params: dict[str, str]) -> str:
    symbol = params.get("symbol")
    if not symbol:
        raise BadRequest(
            -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
        )
    if symbol != symbol.upper():
        raise BadRequest(-1121, "Invalid symbol.")  # REST symbols are upper case, unlike streams
    return symbol


def symbols_param(params: dict[str, str]) -> list[str] | None:
    """``symbols=["BTCUSDT","ETHUSDT"]`` (a JSON array, URL-encoded) -> the list; None if absent."""
    text = params.get("symbols")
    if text is None:
        return None
    try:
        symbols = orjson.loads(text)
    except orjson.JSONDecodeError:
        symbols = None
    if (
        not isinstance(symbols, list)
        or not symbols
        or not all(isinstance(symbol, str) and symbol for symbol in symbols)
    ):
        raise BadRequest(
            -1100,
            "Illegal characters found in parameter 'symbols'; legal range is "
            '\'^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$\'.',
        )
    if any(symbol != symbol.upper() for symbol in symbols):
        raise BadRequest(-1121, "Invalid symbol.")
    return symbols


@overload
def integer_param(params: dict[str, str], name: str, default: int, *, minimum: int) -> int: ...


@overload
def integer_param(
    params: dict[str, str], name: str, default: None, *, minimum: int
) -> int | None: ...


def integer_param(
    params: dict[str, str], name: str, default: int | None, *, minimum: int
) -> int | None:
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        ) from None
    if value < minimum:
        raise BadRequest(-1130, f"Data sent for parameter '{name}' is not valid.")
    return value
