"""Every trade and aggTrade in the real captures parses, and keeps Binance's exact strings."""

from connectors.binance.parser import Parser
from connectors.binance.records import AggTrade, Trade
from connectors.simulator.captures import load_events


def test_real_captures_parse_exactly(capture_paths):
    parser = Parser()
    events = load_events(capture_paths, kinds=("trade", "aggTrade"))
    assert (
        len(events) == 9_757 + 10_147 + 6_106 + 8_409 + 3_144 + 1_227 + 506 + 177
    )  # the README's counts
    for event in events:
        record = parser.parse(event.raw)
        assert isinstance(record, Trade if event.kind == "trade" else AggTrade), (record, event.raw)
        assert str(record.price) == event.data["p"] and str(record.quantity) == event.data["q"]
        assert record.seq == event.data["t" if event.kind == "trade" else "a"]
