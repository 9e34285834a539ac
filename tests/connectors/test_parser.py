"""The Binance frame parser: every frame becomes exactly one record, control message or dead
letter."""

import time

import orjson
import pytest

from connectors.binance.parser import Parser
from connectors.binance.records import (
    AggTrade,
    Control,
    ControlKind,
    DeadLetter,
    FailureReason,
    Trade,
)

TRADE = {
    "e": "trade",
    "E": 1723161601273,
    "s": "BTCUSDT",
    "t": 3735693016,
    "p": "61685.99000000",
    "q": "0.00100000",
    "T": 1723161601272,
    "m": True,
    "M": True,
}
AGG = {
    "e": "aggTrade",
    "E": 1617566591307,
    "s": "DOTUSDT",
    "a": 75013372,
    "p": "43.51000000",
    "q": "1.20000000",
    "f": 84411070,
    "l": 84411071,
    "T": 1617566591306,
    "m": False,
    "M": True,
}


def frame(obj) -> bytes:
    return orjson.dumps(obj)


def with_(base: dict, **changes) -> dict:
    out = dict(base)
    for key, value in changes.items():
        if value is ...:
            del out[key]
        else:
            out[key] = value
    return out


def test_raw_trade_keeps_exact_decimals():
    trade = Parser().parse(frame(TRADE))
    assert trade == Trade(
        "BTCUSDT", 3735693016, "61685.99000000", "0.00100000", 1723161601272, 1723161601273, True
    )


def test_combined_stream_wrapper_and_old_fields():
    old = dict(TRADE, b=20720542158, a=20720542592)  # the 2023 format still carried order ids
    trade = Parser().parse(frame({"stream": "btcusdt@trade", "data": old}))
    assert isinstance(trade, Trade) and trade.trade_id == 3735693016


def test_agg_trade():
    agg = Parser().parse(frame({"stream": "dotusdt@aggTrade", "data": AGG}))
    assert agg == AggTrade(
        "DOTUSDT",
        75013372,
        "43.51000000",
        "1.20000000",
        84411070,
        84411071,
        1617566591306,
        1617566591307,
        False,
    )


@pytest.mark.parametrize(
    "message,kind",
    [
        ({"result": None, "id": 1}, ControlKind.SUBSCRIPTION_RESULT),
        ({"result": ["btcusdt@trade"], "id": 3}, ControlKind.SUBSCRIPTION_RESULT),
        ({"error": {"code": 2, "msg": "Invalid request"}, "id": 2}, ControlKind.ERROR_REPLY),
        ({"e": "serverShutdown", "E": 1723161601273}, ControlKind.SERVER_SHUTDOWN),
        (
            {"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": 1}},
            ControlKind.SERVER_SHUTDOWN,
        ),
    ],
)
def test_control_messages(message, kind):
    control = Parser().parse(frame(message))
    assert isinstance(control, Control) and control.kind is kind
    assert control.wants_reconnect == (kind is ControlKind.SERVER_SHUTDOWN)


# One malformed frame per reason the parser knows, several for the subtle ones.
MALFORMED = [
    (b"\x81\x02binary", True, FailureReason.BINARY_FRAME),
    (b'{"e":"trade","s":"\xff\xfe"}', False, FailureReason.INVALID_UTF8),
    (b'{"e":"trade",', False, FailureReason.INVALID_JSON),
    (b"", False, FailureReason.INVALID_JSON),
    (b"NaN", False, FailureReason.INVALID_JSON),
    (b"[1,2,3]", False, FailureReason.NOT_AN_OBJECT),
    (b'"trade"', False, FailureReason.NOT_AN_OBJECT),
    (frame({"stream": "btcusdt@trade", "data": [TRADE]}), False, FailureReason.NOT_AN_OBJECT),
    (frame(with_(TRADE, e=...)), False, FailureReason.MISSING_FIELD),
    (frame(with_(TRADE, p=...)), False, FailureReason.MISSING_FIELD),
    (frame(with_(TRADE, t=...)), False, FailureReason.MISSING_FIELD),
    (frame(with_(TRADE, p=61685.99)), False, FailureReason.WRONG_TYPE),
    (frame(with_(TRADE, t="3735693016")), False, FailureReason.WRONG_TYPE),
    (frame(with_(TRADE, t=True)), False, FailureReason.WRONG_TYPE),
    (frame(with_(TRADE, m="true")), False, FailureReason.WRONG_TYPE),
    (frame(with_(TRADE, T=1.5)), False, FailureReason.WRONG_TYPE),
    (frame(with_(TRADE, p="abc")), False, FailureReason.IMPOSSIBLE_VALUE),
    (frame(with_(TRADE, p="-1.00")), False, FailureReason.IMPOSSIBLE_VALUE),
    (frame(with_(TRADE, q="Infinity")), False, FailureReason.IMPOSSIBLE_VALUE),
    (frame(with_(TRADE, q="NaN")), False, FailureReason.IMPOSSIBLE_VALUE),
    (frame(with_(TRADE, t=-5)), False, FailureReason.IMPOSSIBLE_VALUE),
    # what fuzzing found accepted before prices had to be plain positive decimals
    (frame(with_(TRADE, p="-0")), False, FailureReason.IMPOSSIBLE_VALUE),
    (frame(with_(TRADE, p="0")), False, FailureReason.IMPOSSIBLE_VALUE),
    (frame(with_(TRADE, q="0.00000000")), False, FailureReason.IMPOSSIBLE_VALUE),
    (frame(with_(TRADE, p="1e400")), False, FailureReason.IMPOSSIBLE_VALUE),
    (frame(with_(TRADE, p="1E-8")), False, FailureReason.IMPOSSIBLE_VALUE),
    (frame(with_(TRADE, p="+1.00")), False, FailureReason.IMPOSSIBLE_VALUE),
    (frame(with_(TRADE, p=" 1.00")), False, FailureReason.IMPOSSIBLE_VALUE),
    (frame(with_(TRADE, p="1_000.00")), False, FailureReason.IMPOSSIBLE_VALUE),
    (frame(with_(TRADE, p="\uff11.00")), False, FailureReason.IMPOSSIBLE_VALUE),  # a full-width 1
    (frame(with_(TRADE, p=".5")), False, FailureReason.IMPOSSIBLE_VALUE),
    (frame(with_(TRADE, p="5.")), False, FailureReason.IMPOSSIBLE_VALUE),
    (frame(with_(TRADE, p="12345678901.00")), False, FailureReason.IMPOSSIBLE_VALUE),  # 11 digits
    (frame(with_(TRADE, q="1.000000001")), False, FailureReason.IMPOSSIBLE_VALUE),  # 9 decimals
    (frame(with_(TRADE, T=0, E=0)), False, FailureReason.IMPOSSIBLE_VALUE),
    (
        frame(with_(TRADE, T=1723161601272000, E=1723161601273000)),
        False,
        FailureReason.IMPOSSIBLE_VALUE,
    ),  # µs
    (frame(with_(TRADE, T=1723161605000)), False, FailureReason.IMPOSSIBLE_VALUE),  # 3.7 s after E
    (frame(with_(TRADE, e="depthUpdate")), False, FailureReason.UNEXPECTED_EVENT),
    (frame(with_(TRADE, e=7)), False, FailureReason.UNEXPECTED_EVENT),
    (frame(AGG), False, FailureReason.UNEXPECTED_EVENT),  # a trade-only parser
]


@pytest.mark.parametrize("payload,binary,reason", MALFORMED)
def test_each_malformed_frame_is_one_failure_with_its_reason(payload, binary, reason):
    failure = Parser(kinds=("trade",)).parse(payload, binary)
    assert isinstance(failure, DeadLetter)
    assert failure.reason is reason
    assert failure.raw == payload
    assert failure.error


def test_oversized_keeps_evidence_and_size():
    failure = Parser().oversized(b'{"e":"trade"', size=5_000_000, limit=1_048_576)
    assert failure.reason is FailureReason.OVERSIZED_FRAME
    assert failure.raw == b'{"e":"trade"'
    assert "5000000" in failure.error and "1048576" in failure.error


@pytest.mark.parametrize(
    "payload,reason",
    [
        (frame(with_(TRADE, f=1)), None),  # an unknown field is tolerated
        (
            frame(with_(AGG, f=84411072)),
            FailureReason.IMPOSSIBLE_VALUE,
        ),  # first trade id after the last
        (frame(with_(AGG, p="0.00000000")), FailureReason.IMPOSSIBLE_VALUE),
    ],
)
def test_unknown_fields_pass_and_agg_trade_fields_are_checked(payload, reason):
    parsed = Parser().parse(payload)
    if reason is None:
        assert isinstance(parsed, Trade)
    else:
        assert isinstance(parsed, DeadLetter) and parsed.reason is reason, parsed


def test_the_largest_and_smallest_amounts_pass():
    trade = Parser().parse(frame(with_(TRADE, p="9999999999.99999999", q="0.00000001")))
    assert isinstance(trade, Trade) and (trade.price, trade.quantity) == (
        "9999999999.99999999",
        "0.00000001",
    )


def test_a_trade_time_a_day_ahead_of_the_clock_is_refused():
    tomorrow = time.time_ns() // 1_000_000 + 2 * 86_400_000
    failure = Parser().parse(frame(with_(TRADE, T=tomorrow, E=tomorrow)))
    assert isinstance(failure, DeadLetter) and failure.reason is FailureReason.IMPOSSIBLE_VALUE


@pytest.mark.parametrize(
    "message",
    [
        with_(TRADE, s="x"),  # not subscribed
        with_(TRADE, s="ETHUSDT"),  # another symbol than subscribed
        {
            "stream": "ethusdt@trade",
            "data": with_(TRADE, s="BTCUSDT"),
        },  # a stream carrying another symbol
    ],
)
def test_a_symbol_the_connection_did_not_subscribe_is_a_dead_letter(message):
    failure = Parser(kinds=("trade",), symbols=["btcusdt"]).parse(frame(message))
    assert isinstance(failure, DeadLetter) and failure.reason is FailureReason.UNEXPECTED_SYMBOL, (
        failure
    )
    assert Parser(kinds=("trade",), symbols=["btcusdt"]).parse(
        frame({"stream": "btcusdt@trade", "data": TRADE})
    ) == Parser().parse(frame(TRADE))
