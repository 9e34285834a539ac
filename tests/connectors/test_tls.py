"""TLS: certificates are always verified. An exchange whose certificate no trusted authority signed
is refused with a connect error naming the TLS failure; given that authority (``ca_file``), the
same exchange is read, WebSocket and REST backfill alike."""

from __future__ import annotations

import ssl
import time

import pytest
import trustme

from connectors.binance.records import Trade
from connectors.binance.rest import RestConfig
from connectors.feed import BinanceFeed
from connectors.simulator import Market
from connectors.websocket.config import BridgeConfig
from connectors.websocket.errors import ConnectFailed


@pytest.fixture(scope="module")
def authority():
    return trustme.CA()


@pytest.fixture
def tls_simulator(simulator, authority):
    """A factory: a simulator serving wss:// and https:// with a certificate of ``authority``."""

    def start(market):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        return simulator(market, ssl_context=context)

    return start


def drain(feed, until, timeout=20.0):
    items, deadline = [], time.monotonic() + timeout
    while not until(items):
        assert time.monotonic() < deadline, f"timed out; stats {feed.stats}"
        items += feed.drain()
        time.sleep(0.01)
    return items


def test_an_untrusted_certificate_is_refused_with_the_tls_failure_named(tls_simulator, tmp_path):
    sim = tls_simulator(Market.generated(["btcusdt"], rate=100))
    assert sim.ws_url.startswith("wss://")
    with (
        BinanceFeed(["btcusdt"], "trade", sim.ws_url, BridgeConfig(gate_dir=str(tmp_path))) as feed,
        pytest.raises(ConnectFailed, match=r"TLS error: .*CERTIFICATE_VERIFY_FAILED"),
    ):
        drain(feed, lambda items: False)
    assert sim.connections == []


def test_the_authority_given_the_same_exchange_is_read_and_backfilled(
    tls_simulator, authority, tmp_path
):
    sim = tls_simulator(
        Market.generated(["btcusdt"], rate=0, count=1500, pause_without_subscribers=False)
    )
    sim.wait_until_idle()
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    config = BridgeConfig(gate_dir=str(tmp_path), ca_file=str(ca_file))
    feed = BinanceFeed(
        ["btcusdt"], "trade", sim.ws_url, config, rest=RestConfig(rest_url=sim.http_url)
    )
    with feed.resume_after({"BTCUSDT": 500}):
        items = drain(feed, lambda items: sum(isinstance(i, Trade) for i in items) >= 1000)
    assert [t.trade_id for t in items] == list(
        range(501, 1501)
    )  # over https, from the REST history
    assert feed.stats["backfilled"] == 1000 and sim.rest_requests[0][0].startswith(
        "/api/v3/historicalTrades"
    )
