"""PyFlink wiring: the Java-free source and, in Flink SQL, event time, one-minute bars and outputs.

- ``source.binance_trades(t_env, symbols, feed_factory, watermarks)
  -> TradeTables(trades, dead_letters)``
- ``bars.minute_bars(t_env, trades)`` / ``bars.late_trades(t_env, trades)``
- ``outputs.trade_lines / bar_lines / dead_letter_lines``, ``outputs.add_file_output`` /
  ``print_lines``
- ``config.load_config(path) -> pyflink Configuration``
"""
