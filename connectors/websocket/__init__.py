"""A generic WebSocket-to-buffer bridge. Knows nothing about Binance: the exchange plugs in a
decoder."""
