"""A whole market: ``market_pairs`` trading at a total rate that Zipf's law spreads over them, as
Binance's activity is spread (BTCUSDT alone ~35 trades/s, a long tail trading now and then).

    market = whole_market(1500, rate=5000, seed=1, pause_without_subscribers=False)

Each symbol is a ``GeneratedFeed`` with Poisson arrivals, its own consecutive trade ids (from a
first id drawn up to 5e9: real ids are that large, beyond 32 bits) and a price step that suits
its price.
"""

from __future__ import annotations

import random
from typing import Unpack

from connectors.simulator.market import GeneratedFeed, Market, MarketOptions
from connectors.simulator.symbols import market_pairs
from connectors.simulator.venues import SPOT

# REST history kept per symbol by default: enough for a client to fill a reconnect's gap, little
# enough that 20,000 trades/s fit in memory (~270 bytes a trade, history.py).
WHOLE_MARKET_HISTORY_SECONDS = 60.0
# A whole market emits what fell due every 5 ms, in one go (``Market``'s ``tick``): at 20,000
# trades/s a combined-stream connection of 200 symbols then gets ~12 trades a write instead of one
# or two, and the writes to the sockets were the simulator's largest cost. Each trade's event and
# trade time are still the wall clock when it went out.
WHOLE_MARKET_TICK = 0.005
_FIRST_ID_BOUND = 5_000_000_000
_SEED_STRIDE = 1_000_003  # feeds' seeds of two market seeds never meet below a million symbols


def zipf_rates(count: int, total: float, exponent: float = 1.0) -> list[float]:
    """Trades per second of ranks 1..count: proportional to ``rank ** -exponent``, summing to
    ``total``."""
    weights = [rank**-exponent for rank in range(1, count + 1)]
    scale = total / sum(weights) if weights else 0.0
    return [weight * scale for weight in weights]


def whole_market_feeds(
    symbols: int,
    rate: float,
    *,
    zipf_exponent: float = 1.0,
    seed: int = 0,
    kind: str = "trade",
    venue: str = SPOT.name,
) -> list[GeneratedFeed]:
    """One feed per pair of ``market_pairs(symbols, seed)``, busiest first, of ``kind`` events
    in the form of ``venue``."""
    if rate <= 0:
        raise ValueError("a whole market's rate must be > 0")
    pairs = market_pairs(symbols, seed)
    first_ids = random.Random(seed)
    return [
        GeneratedFeed(
            pair.symbol,
            rate=pair_rate,
            start_price=pair.price,
            tick=pair.tick,
            first_id=first_ids.randrange(1, _FIRST_ID_BOUND),
            poisson=True,
            seed=seed * _SEED_STRIDE + rank,
            kind=kind,
            venue=venue,
        )
        for rank, (pair, pair_rate) in enumerate(
            zip(pairs, zipf_rates(symbols, rate, zipf_exponent), strict=True)
        )
    ]


def whole_market(
    symbols: int = 1500,
    rate: float = 5000.0,
    *,
    zipf_exponent: float = 1.0,
    seed: int = 0,
    kind: str = "trade",
    **options: Unpack[MarketOptions],
) -> Market:
    """A ``Market`` of ``whole_market_feeds``; ``options`` are ``Market``'s keyword arguments
    (``history_seconds`` defaults to ``WHOLE_MARKET_HISTORY_SECONDS`` here, ``tick`` to
    ``WHOLE_MARKET_TICK``)."""
    options.setdefault("history_seconds", WHOLE_MARKET_HISTORY_SECONDS)
    options.setdefault("tick", WHOLE_MARKET_TICK)
    feeds = whole_market_feeds(
        symbols,
        rate,
        zipf_exponent=zipf_exponent,
        seed=seed,
        kind=kind,
        venue=options.get("venue", SPOT.name),
    )
    return Market(feeds, **options)
