"""Live subscription requests a client sends on an open connection, and Binance's replies.

``{"method": "SUBSCRIBE"|"UNSUBSCRIBE"|"LIST_SUBSCRIPTIONS", "params": [...], "id": N}``
is answered ``{"result": null|[...], "id": N}``; a malformed request gets
``{"error": {"code": 2|3, "msg": "..."}, "id": N|null}`` (3 for bad JSON, 2 otherwise), and so
does a ``SUBSCRIBE`` beyond the streams a connection may have (``limits.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeGuard

import orjson

METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS")
# Lowercase symbol, then the stream type (``aggTrade`` has a capital), or a ``!`` stream.
_STREAM_NAME = re.compile(r"(?:[a-z0-9]+|![A-Za-z]+)@[A-Za-z0-9_@]+")


@dataclass(frozen=True, slots=True)
class Command:
    method: str
    params: tuple[str, ...]
    id: int | str


class InvalidRequest(Exception):
    """A request Binance would refuse; ``reply`` is the error frame to send back."""

    def __init__(self, code: int, msg: str, request_id: int | str | None) -> None:
        super().__init__(msg)
        self.reply = error_reply(code, msg, request_id)


def parse_command(message: str | bytes) -> Command:
    try:
        request = orjson.loads(message)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(3, f"Invalid JSON: {error}", None) from None
    if not isinstance(request, dict):
        raise InvalidRequest(2, "Invalid request: expected an object", None)
    request_id = request.get("id")
    if not _valid_id(request_id):
        raise InvalidRequest(2, "Invalid request: request ID must be an unsigned integer", None)
    method = request.get("method")
    if method is None:
        raise InvalidRequest(2, "Invalid request: missing field `method`", request_id)
    if method not in METHODS:
        expected = ", ".join(f"`{name}`" for name in METHODS)
        raise InvalidRequest(
            2,
            f"Invalid request: unknown variant `{method}`, expected one of {expected}",
            request_id,
        )
    params = request.get("params", [])
    if method == "LIST_SUBSCRIPTIONS":
        return Command(method, (), request_id)
    if not isinstance(params, list) or not params:
        raise InvalidRequest(
            2, "Invalid request: params must be a non-empty list of streams", request_id
        )
    for name in params:
        if not isinstance(name, str) or not valid_stream_name(name):
            raise InvalidRequest(2, f"Invalid request: invalid stream name {name!r}", request_id)
    return Command(method, tuple(params), request_id)


def valid_stream_name(name: str) -> bool:
    return _STREAM_NAME.fullmatch(name) is not None


def result_reply(command: Command, result: list[str] | None = None) -> bytes:
    return orjson.dumps({"result": result, "id": command.id})


def error_reply(code: int, msg: str, request_id: int | str | None) -> bytes:
    return orjson.dumps({"error": {"code": code, "msg": msg}, "id": request_id})


def _valid_id(value: object) -> TypeGuard[int | str]:
    if isinstance(value, bool):
        return False
    return (isinstance(value, int) and value >= 0) or isinstance(value, str)
