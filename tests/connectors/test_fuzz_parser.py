"""Property-based fuzzing of the Binance frame parser
(``Parser(kinds=...).parse(payload, binary)``).

Inputs are arbitrary bytes and real trade frames from data/captures, mutated at three levels:
fields (deleted, retyped, given odd values), envelopes (raw and combined-stream, broken wrappers,
control-like keys) and bytes (flips, cuts, insertions). The properties hold for any parser that
keeps its contract, however strict its validation becomes: a failure's reason is checked for being
a ``FailureReason``, never against a fixed list.
"""

from __future__ import annotations

import json

import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from connectors.binance.parser import Parser
from connectors.binance.records import (
    AggTrade,
    Control,
    ControlKind,
    DeadLetter,
    FailureReason,
    Trade,
)
from connectors.simulator.captures import DEMO_CAPTURES, load_events

EVENTS = load_events(DEMO_CAPTURES, kinds=("trade",))
TRADE_FIELDS = ("e", "E", "s", "t", "p", "q", "T", "m", "M")
AGG_FIELDS = ("e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M")
INT_FIELDS = ("t", "a", "f", "l", "T", "E")
KINDS = st.sampled_from([("trade",), ("aggTrade",), ("trade", "aggTrade")])
real_events = st.sampled_from(EVENTS)
RECORD_TYPES = (Trade, AggTrade)


# -- building blocks -------------------------------------------------------------------------------


def as_agg_trade(data: dict) -> dict:
    """A real trade recast as the aggTrade of that single trade, in Binance's key order."""
    t = data["t"]
    return {
        "e": "aggTrade",
        "E": data["E"],
        "s": data["s"],
        "a": t,
        "p": data["p"],
        "q": data["q"],
        "f": t,
        "l": t,
        "T": data["T"],
        "m": data["m"],
        "M": data.get("M", True),
    }


def dumps(obj, ascii_only: bool = False) -> bytes:
    """JSON the way a sender might write it; the stdlib allows what orjson refuses (NaN, 2**64)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii_only).encode(
        "utf-8", "surrogatepass"
    )


def combined(stream: str, data: bytes) -> bytes:
    return b'{"stream":"' + stream.encode() + b'","data":' + data + b"}"


# Strings a sender could put where Binance puts decimals: plain, exotic but Decimal-parsable
# (exponents, signs, underscores, spaces, non-ASCII digits), and not numbers at all.
plain_decimals = st.builds(
    lambda whole, frac: f"{whole}.{frac}" if frac else str(whole),
    st.integers(0, 10**7),
    st.text("0123456789", max_size=8),
)


def _respell(text: str, how: str) -> str:
    """The number in another spelling ``Decimal`` reads, or ("tiny") a plain decimal below 1e-6."""
    whole, _, frac = text.partition(".")
    if how == "exponent":
        return f"{whole}{frac}e-{len(frac)}"
    if how == "sign":
        return "+" + text
    if how == "spaces":
        return f" {text}\t"
    if how == "underscore" and len(whole) > 1:
        return f"{whole[0]}_{whole[1:]}.{frac}" if frac else f"{whole[0]}_{whole[1:]}"
    if how == "bare point":
        return f".{frac}" if whole == "0" and frac else text + ("" if frac else ".")
    if how == "digits":  # ARABIC-INDIC digits
        return text.translate({ord(d): 0x0660 + int(d) for d in "0123456789"})
    if how == "tiny":  # below 1e-6: Decimal's str switches to an exponent
        return "0.000000" + (frac or whole).lstrip("0").rjust(2, "0")
    return text


respelled_decimals = st.builds(
    _respell,
    plain_decimals,
    st.sampled_from(["exponent", "sign", "spaces", "underscore", "bare point", "digits", "tiny"]),
)
numeric_strings = st.one_of(
    plain_decimals,
    respelled_decimals,
    st.from_regex(r"\A[ +\-]?[0-9_]{0,6}(\.[0-9_]{0,9})?([eE][+\-]?[0-9]{1,4})?[ ]?\Z"),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(
        [
            "NaN",
            "sNaN",
            "-nan",
            "Infinity",
            "-Infinity",
            "inf",
            "-0",
            "-0.0",
            "0",
            "0E-8",
            "1e3",
            "1E+999999999999999999",
            "1e-999999999999999999",
            "1_000",
            " 1.5",
            "1.5\n",
            "+1",
            ".5",
            "5.",
            "\u0661\u0662",
            "\uff11",
            "",
            " ",
            "0x10",
            "1,5",
            "1.2.3",
        ]
    ),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**65), 2**65),
    st.floats(),
    st.text(max_size=12),
    numeric_strings,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
field_names = st.sampled_from(
    (*AGG_FIELDS, "t", "stream", "data", "id", "result", "error", "b", "")
) | st.text(max_size=3)
event_names = st.sampled_from(
    ["trade", "aggTrade", "serverShutdown", "depthUpdate", "TRADE", "trade ", ""]
)


def retyped(value):
    """The same value as other JSON types."""
    options = [None, str(value), [value], {"v": value}]
    if type(value) is bool:
        options += [int(value), "true" if value else "false"]
    elif type(value) is int:
        options += [float(value), value + 0.5, -value - 1, value != 0]
    elif type(value) is str:
        try:
            options.append(float(value))
        except ValueError:
            options.append(len(value))
    return st.sampled_from(options)


@st.composite
def real_objects(draw) -> tuple[dict, str]:
    """A real trade's data object (or its aggTrade twin) and its stream name."""
    event = draw(real_events)
    if draw(st.booleans()):
        return dict(event.data), event.stream
    return as_agg_trade(event.data), event.symbol.lower() + "@aggTrade"


@st.composite
def mutated_objects(draw, obj: dict) -> dict:
    obj = dict(obj)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "set", "retype", "number", "event", "swap"]))
        key = draw(st.sampled_from(sorted(obj))) if obj and op != "set" else draw(field_names)
        if op == "delete":
            obj.pop(key, None)
        elif op == "set":
            obj[key] = draw(json_values)
        elif op == "retype":
            obj[key] = draw(retyped(obj.get(key)))
        elif op == "number":
            obj[draw(st.sampled_from(["p", "q"]))] = draw(numeric_strings)
        elif op == "event":
            obj["e"] = draw(event_names)
        elif op == "swap" and len(obj) > 1:
            other = draw(st.sampled_from(sorted(obj)))
            obj[key], obj[other] = obj[other], obj[key]
    return obj


@st.composite
def enveloped(draw, obj, stream: str) -> bytes:
    """``obj`` serialised raw or inside a combined-stream envelope, possibly a broken one."""
    data = dumps(obj, ascii_only=draw(st.booleans()))
    shape = draw(st.sampled_from(["raw", "combined", "combined", "odd envelope"]))
    if shape == "raw":
        return data
    if shape == "combined":
        return combined(stream, data)
    envelope = draw(
        st.sampled_from(
            [
                {"stream": stream, "data": draw(json_values)},  # data that is not the object
                {"data": obj},  # no stream: not an envelope
                {"stream": stream, "data": obj, "id": draw(json_values), "result": None},
                {"id": draw(json_values), "result": obj},
                {"id": draw(json_values), "error": obj},
                {"id": draw(json_values)},
                [obj],
            ]
        )
    )
    return dumps(envelope)


@st.composite
def byte_mutated(draw, payload: bytes) -> bytes:
    buf = bytearray(payload)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "delete", "insert", "truncate", "duplicate"]))
        i = draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and buf:
            buf[i] = (
                draw(st.sampled_from(b'{}[]":,\\0-9eE.+-\x00\x80\xc3\xff '))
                if draw(st.booleans())
                else draw(st.integers(0, 255))
            )
        elif op == "delete":
            del buf[i : i + draw(st.integers(1, 8))]
        elif op == "insert":
            buf[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "truncate":
            del buf[i:]
        elif op == "duplicate":
            buf[i:i] = buf[i : i + draw(st.integers(1, 16))]
    return bytes(buf)


@st.composite
def real_frames(draw) -> bytes:
    obj, stream = draw(real_objects())
    return draw(enveloped(obj, stream))


@st.composite
def field_mutated_frames(draw) -> bytes:
    obj, stream = draw(real_objects())
    return draw(enveloped(draw(mutated_objects(obj)), stream))


@st.composite
def byte_mutated_frames(draw) -> bytes:
    frame = draw(st.one_of(real_frames(), field_mutated_frames()))
    return draw(byte_mutated(frame))


any_json = st.builds(dumps, json_values, st.booleans())
payloads = st.one_of(
    st.binary(max_size=300),
    any_json,
    real_frames(),
    field_mutated_frames(),
    byte_mutated_frames(),
)


def input_object(payload: bytes):
    """What the sender meant as the event object (an oracle built on orjson, not on the parser)."""
    message = orjson.loads(payload)
    if type(message) is dict and "stream" in message and "data" in message:
        return message["data"]
    return message


# -- properties ------------------------------------------------------------------------------------


def check_classified(result, payload: bytes, binary: bool, kinds: tuple) -> None:
    """Exactly one of: a record of a requested kind, a Control, a DeadLetter keeping the input."""
    assert type(result) in (Trade, AggTrade, Control, DeadLetter), repr(result)
    if binary:
        assert type(result) is DeadLetter, "a binary frame must never become a record"
    if type(result) is DeadLetter:
        assert isinstance(result.reason, FailureReason)
        assert type(result.raw) is bytes and result.raw == payload
        assert isinstance(result.error, str) and result.error
        assert type(result.received_at) is int
    elif type(result) is Control:
        assert isinstance(result.kind, ControlKind)
        assert type(result.payload) is dict
    else:
        assert ("trade" if type(result) is Trade else "aggTrade") in kinds
        data = input_object(payload)
        assert type(data) is dict
        assert data["e"] == ("trade" if type(result) is Trade else "aggTrade")
        assert (
            result.symbol == data["s"] and result.seq == data["t" if type(result) is Trade else "a"]
        )
        assert (result.trade_time, result.event_time, result.buyer_is_maker) == (
            data["T"],
            data["E"],
            data["m"],
        )
        if type(result) is AggTrade:
            assert (result.first_trade_id, result.last_trade_id) == (data["f"], data["l"])


@given(payload=payloads, binary=st.booleans(), kinds=KINDS)
def test_parser_never_raises_and_classifies_every_frame(payload, binary, kinds):
    result = Parser(kinds=kinds).parse(payload, binary)
    check_classified(result, payload, binary, kinds)


@st.composite
def number_mutated_frames(draw) -> bytes:
    """A real frame whose price and/or quantity is any string that might pass for a number."""
    obj, stream = draw(real_objects())
    for field in draw(st.sampled_from([("p",), ("q",), ("p", "q")])):
        obj[field] = draw(numeric_strings)
    return draw(enveloped(obj, stream))


# Found by this property against the parser of commit 80d023c: an exponent is accepted, and
# str(Decimal("1e3")) is "1E+3" (so are "+1", " 1.5", "1_000", ".5" and non-ASCII digits, each
# given back in another spelling).
@example(
    payload=b'{"e":"trade","E":1723161601438,"s":"BTCUSDT","t":3735693016,"p":"1e3",'
    b'"q":"0.00017000","T":1723161601437,"m":true,"M":true}',
    kinds=("trade",),
)
@given(payload=st.one_of(payloads, number_mutated_frames(), number_mutated_frames()), kinds=KINDS)
def test_every_record_keeps_the_exact_price_and_quantity_strings(payload, kinds):
    """A frame the parser accepts must give back the decimal strings it carried, unchanged."""
    result = Parser(kinds=kinds).parse(payload, False)
    if type(result) in RECORD_TYPES:
        data = input_object(payload)
        assert (str(result.price), str(result.quantity)) == (data["p"], data["q"]), payload


# What Binance writes: int64 fixed point with 8 decimals, so at most 11 digits before the point.
def _positive(whole: int, frac: str) -> str:
    if whole == 0 and not frac.strip("0"):
        whole = 1  # zero is no price
    return f"{whole}.{frac}" if frac else str(whole)


def _eight(n: int) -> str:
    return f"{n // 10**8}.{n % 10**8:08d}"


positive_plain_decimals = st.one_of(
    st.builds(_positive, st.integers(0, 10**10 - 1), st.text("0123456789", max_size=8)),
    st.builds(_eight, st.integers(1, 10**18 - 1)),  # Binance's own spelling: always 8 decimals
    st.builds(_eight, st.integers(1, 999)),  # the smallest prices: 0.00000001 .. 0.00000999
)


@st.composite
def valid_frames(draw) -> tuple[bytes, dict]:
    """A real frame with a fresh id and positive plain decimal price and quantity."""
    obj, stream = draw(real_objects())
    obj["p"], obj["q"] = draw(positive_plain_decimals), draw(positive_plain_decimals)
    obj["t" if obj["e"] == "trade" else "a"] = draw(st.integers(0, 2**63 - 1))
    data = orjson.dumps(obj)
    return (combined(stream, data) if draw(st.booleans()) else data), obj


# Found by this property against the parser of commit 80d023c: a plain price below 1e-6, as
# Binance writes for the cheapest assets, comes back as "4.7E-7" (str of a Decimal).
@example(
    frame=(
        b'{"e":"trade","E":1723161601438,"s":"BTCUSDT","t":3735693016,"p":"0.00000047",'
        b'"q":"0.00017000","T":1723161601437,"m":true,"M":true}',
        {"e": "trade", "p": "0.00000047", "q": "0.00017000"},
    )
)
@given(frame=valid_frames())
def test_valid_frames_become_records_with_their_exact_strings(frame):
    payload, obj = frame
    kinds = (obj["e"],)
    result = Parser(kinds=kinds).parse(payload, False)
    assert type(result) is (Trade if obj["e"] == "trade" else AggTrade), result
    check_classified(result, payload, False, kinds)
    assert (str(result.price), str(result.quantity)) == (obj["p"], obj["q"])
    assert (
        Parser(kinds=kinds).parse(payload, True).reason in FailureReason
    )  # binary: never a record


def _wrong_type(field: str):
    if field in INT_FIELDS:
        return st.one_of(
            st.none(),
            st.booleans(),
            st.floats(),
            st.text(max_size=5),
            st.lists(st.integers(), max_size=2),
        )
    if field == "m":
        return st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=5))
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.lists(st.text(max_size=2), max_size=2),
    )


@st.composite
def invalid_frames(draw) -> bytes:
    """A real frame with one required field made certainly wrong."""
    obj, stream = draw(real_objects())
    field = draw(st.sampled_from([f for f in obj if f != "M"]))
    how = draw(st.sampled_from(["missing", "type", "value"]))
    if how == "missing":
        del obj[field]
    elif how == "type" or field in ("e", "s", "m"):
        obj[field] = draw(_wrong_type(field))
    elif field in ("p", "q"):
        obj[field] = draw(
            st.one_of(
                st.builds(lambda d: "-" + d, positive_plain_decimals),
                st.text("abcxyz!@# ", min_size=0, max_size=6),
                st.sampled_from(["NaN", "Infinity", "-Infinity", "sNaN"]),
            )
        )
    else:
        obj[field] = draw(st.integers(-(2**63), -1))
    data = dumps(obj)
    return combined(stream, data) if draw(st.booleans()) else data


@given(payload=invalid_frames(), binary=st.booleans())
def test_frames_with_a_missing_or_wrong_field_are_failures_keeping_the_frame(payload, binary):
    kinds = ("trade", "aggTrade")
    result = Parser(kinds=kinds).parse(payload, binary)
    assert type(result) is DeadLetter, result
    check_classified(result, payload, binary, kinds)
