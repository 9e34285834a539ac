"""This project's bridge with gap filling on: the same as ``bridge``, with a REST history
configured (the load never skips an id, so no request is made: what is measured is the cost the
backfill machinery adds to the hot path, its thread waiting)."""

from __future__ import annotations

from bench.clients import bridge
from connectors.binance.rest import RestConfig


def main() -> None:
    bridge.run("bridge_backfill", rest=RestConfig(rest_url="http://127.0.0.1:9"))


if __name__ == "__main__":
    main()
