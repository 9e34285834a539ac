"""Binance's WebSocket requests for a connection's streams, and what their answers mean.

    {"method": "SUBSCRIBE", "params": ["btcusdt@trade", ...], "id": 7}
        -> {"result": null, "id": 7}
    {"method": "LIST_SUBSCRIPTIONS", "id": 8}
        -> {"result": ["btcusdt@trade", ...], "id": 8}
    a refused request
        -> {"error": {"code": 2, "msg": "..."}, "id": 7}

Every message a client sends counts against the connection's limit (spot: 5 a second, pings and
pongs too; over it Binance closes with 1008): the bridge paces them (``request_interval``).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

SUBSCRIBE, LIST = "SUBSCRIBE", "LIST_SUBSCRIPTIONS"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    streams: tuple[str, ...]  # what a SUBSCRIBE asks for; () for LIST_SUBSCRIPTIONS


@dataclass(frozen=True, slots=True)
class Answer:
    request: Request
    streams: tuple[str, ...] | None  # LIST_SUBSCRIPTIONS: what the connection carries
    error: str | None  # the exchange's refusal, code and message


class Requests:
    """Request ids handed out and what each asked, so that an answer can be told."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[int, Request] = {}

    def subscribe(self, streams: Iterable[str]) -> bytes:
        return self._message(Request(SUBSCRIBE, tuple(streams)))

    def list_subscriptions(self) -> bytes:
        return self._message(Request(LIST, ()))

    def answer(self, payload: dict[str, Any]) -> Answer | None:
        """What ``payload`` (a ``{"result"|"error":..,"id":N}`` frame) answers; None for an id
        this client did not send (or already had answered)."""
        request = self._pending.pop(payload.get("id"), None)  # type: ignore[arg-type]
        if request is None:
            return None
        if "error" in payload:
            error = payload["error"]
            text = (
                f"code {error.get('code')}: {error.get('msg')}"
                if isinstance(error, dict)
                else repr(error)
            )
            return Answer(request, None, text)
        result = payload.get("result")
        if request.method == LIST:
            if not isinstance(result, list):
                return Answer(request, None, f"LIST_SUBSCRIPTIONS answered {result!r}")
            return Answer(request, tuple(str(s) for s in result), None)
        return Answer(request, None, None)

    def _message(self, request: Request) -> bytes:
        number = next(self._ids)
        self._pending[number] = request
        body: dict[str, Any] = {"method": request.method, "id": number}
        if request.method == SUBSCRIBE:
            body["params"] = list(request.streams)
        return orjson.dumps(body)


def missing(expected: Collection[str], carried: Iterable[str]) -> list[str]:
    """The streams of ``expected`` a connection does not carry (Binance lists them lower case)."""
    have = {s.lower() for s in carried}
    return [s for s in expected if s not in have]
