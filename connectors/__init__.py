"""Binance trades into Apache Flink, from pure Python.

Layers, each usable and testable alone:

- ``connectors.binance``: Binance's protocol (stream URLs, frame parsing into typed records).
- ``connectors.websocket``: a generic WebSocket bridge (connection thread, bounded buffer,
  reconnects, silence detection, handover) that knows nothing of Binance.
- ``connectors.feed``: the two joined, a Binance trade feed ready to drain.
- ``connectors.flink``: the PyFlink wiring (source operator, watermarks, bars, sinks).
- ``connectors.simulator``: a loopback Binance-compatible exchange for tests, benchmarks and the
  demo.
"""
