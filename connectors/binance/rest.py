"""Binance's REST API as this project asks it: a GET through the per-host weight gate that every
process on the machine shares, its answer decoded, its failure told apart (ask again later, or
never).

Every answer carries ``X-MBX-USED-WEIGHT-1M``, the weight this IP has used this minute; 429 (rate
limited) and 418 (IP banned) carry ``Retry-After`` seconds. Weights are read from the docs as
defaults, not constants: the header corrects what the budget believes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import requests

from connectors.binance.markets import SPOT, USDM, BinanceMarket
from connectors.settings import check_settings, check_url, setting
from connectors.websocket.gate import WeightGate, retry_after_seconds


@dataclass(frozen=True)
class RestConfig:
    rest_url: str = setting(
        SPOT.rest_url,
        f"Binance REST base URL that gaps are filled from; {USDM.rest_url} with --market usdm",
        metavar="URL",
    )
    rest_weight_budget: int = setting(
        SPOT.default_weight_budget,
        f"request weight per minute the backfill may spend, of the {SPOT.weight_limit:,} Binance"
        f" allows an IP ({USDM.default_weight_budget:,} of {USDM.weight_limit:,} with --market"
        " usdm); shared by every process on this machine",
        minimum=25,
    )
    rest_timeout: float = setting(
        10.0, "seconds one REST request may take", metavar="S", positive=True
    )

    def __post_init__(self) -> None:
        check_settings(self)
        check_url(self.rest_url, ("http", "https"), "rest_url")


class RestUnavailable(Exception):
    """A request got no usable answer this time. ``retry_after``: seconds it asked to wait;
    ``permanent``: asking again cannot help (a 4xx: the request itself is wrong)."""

    def __init__(self, cause: str, retry_after: float | None = None, permanent: bool = False):
        super().__init__(cause)
        self.retry_after, self.permanent = retry_after, permanent


class BinanceRest:
    """GETs of one market's REST API (its ``endpoint`` names), counted in ``counts``."""

    def __init__(
        self,
        config: RestConfig,
        market: BinanceMarket = SPOT,
        gate_dir: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        self._market = market
        self._base = config.rest_url.rstrip("/")
        self._timeout = config.rest_timeout
        self._gate = WeightGate(config.rest_url, config.rest_weight_budget, gate_dir)
        self._session = requests.Session()  # keeps connections to the host open between pages
        # per request: a session's verify would lose to $REQUESTS_CA_BUNDLE, a request's does not
        self._verify = ca_file or True
        self.counts = dict.fromkeys(
            ("rest_requests", "rest_weight_used", "rest_errors", "rest_rate_limited"), 0
        )

    def get(self, endpoint: str, params: dict[str, str | int], weight: int | None = None) -> Any:
        """The decoded JSON answer of ``endpoint`` (at its documented weight unless given);
        raises RestUnavailable."""
        weight = weight if weight is not None else self._market.weights[endpoint]
        wait = self._gate.reserve(weight)
        if wait > 0:
            raise RestUnavailable(
                f"the request weight budget of {self._base} is spent for {wait:.0f}s more",
                retry_after=wait,
            )
        url = self._base + self._market.endpoint(endpoint)
        self.counts["rest_requests"] += 1
        self.counts["rest_weight_used"] += weight
        try:
            response = self._session.get(
                url, params=params, timeout=self._timeout, verify=self._verify
            )
        except requests.RequestException as exc:
            self.counts["rest_errors"] += 1
            raise RestUnavailable(f"GET {url}: {type(exc).__name__}: {exc}") from exc
        used = response.headers.get("X-MBX-USED-WEIGHT-1M")
        if used is not None and used.isdigit():
            self._gate.observe(int(used))
        status = response.status_code
        if status == 200:
            try:
                return orjson.loads(response.content)
            except orjson.JSONDecodeError as exc:
                self.counts["rest_errors"] += 1
                raise RestUnavailable(f"GET {url}: answer is not JSON: {exc}") from exc
        detail = f"GET {url} {params}: HTTP {status} {response.text[:200]}"
        if status in (418, 429):
            self.counts["rest_rate_limited"] += 1
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if retry_after is not None:
                self._gate.hold_off(retry_after)
            raise RestUnavailable(
                detail, retry_after=retry_after if retry_after is not None else 60.0
            )
        self.counts["rest_errors"] += 1
        # 5xx: Binance's outcome is unknown, ask again; 4xx: the request itself is wrong.
        raise RestUnavailable(detail, permanent=status < 500)

    def close(self) -> None:
        self._session.close()
