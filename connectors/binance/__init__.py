"""Binance spot market streams: URLs, records and frame parsing. No I/O here."""
