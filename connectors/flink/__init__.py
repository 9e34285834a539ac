"""PyFlink wiring: the Java-free source, event time, one-minute bars, JSON-lines sinks.

- ``source.trade_stream(env, symbols, ...) -> (trades, dead_letters)``
- ``watermarks.with_trade_time(trades, out_of_orderness_ms, idleness_ms)``
- ``bars.minute_bars(trades_with_time) -> (bar JSON lines, late_trades)``
- ``sinks.write_lines(lines, dir, name)`` / ``sinks.print_lines(lines)``
- ``config.load_config(path) -> pyflink Configuration``
"""
