"""Failures the user must see where they look, and what each does to the job: a handshake refusal
retrying cannot fix fails the job for good; an untrusted TLS certificate fails it into restarts,
with the TLS failure named on the console; given the certificate's authority, the job reads."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess

import pytest
import trustme

from connectors.simulator import Market
from helpers.flinkjob import (
    JOB_TIMEOUT,
    assert_every_published_trade_once,
    expected_bars,
    finish_job,
    job_command,
    normalized_bars,
    read_output,
    start_job,
    tail,
)

pytestmark = pytest.mark.slow


def test_a_404_handshake_fails_the_job_for_good_with_the_reason(simulator, demo_captures, tmp_path):
    sim = simulator(Market.replay(demo_captures, speed=0))
    sim.faults.reject_handshake(404, retry_after=None, times=1000)
    stdout = tmp_path / "stdout.txt"
    proc = start_job(
        job_command(sim, tmp_path / "out", tmp_path, duration=60), tmp_path / "log", stdout
    )
    assert proc.wait(timeout=JOB_TIMEOUT) == 1, tail(stdout)
    console = stdout.read_text()
    assert "feed failed for good" in console and "HTTP 404" in console
    assert "job restarting" not in console
    assert (
        "job failed: org.apache.flink.util.FlinkRuntimeException: cannot connect to" in console
    ), tail(stdout)
    assert len(sim.connections) == 0 and len([r for r in sim.http_requests if r[1] == 404]) == 1


@pytest.fixture
def tls_exchange(simulator, demo_captures, tmp_path):
    """A simulator serving wss:// and https:// with a certificate of a fresh authority, whose
    certificate is written to ``ca.pem``."""
    authority = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return simulator(Market.replay(demo_captures, speed=0), ssl_context=context)


def test_an_untrusted_certificate_fails_the_job_into_restarts_naming_tls(tls_exchange, tmp_path):
    stdout = tmp_path / "stdout.txt"
    cmd = job_command(
        tls_exchange,
        tmp_path / "out",
        tmp_path,
        "--set",
        "restart-strategy.exponential-delay.initial-backoff=200ms",
        duration=60,
    )
    with open(stdout, "wb") as out:  # the job holds its own copy
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, FLINK_LOG_DIR=str(tmp_path / "log")),
            start_new_session=True,
        )
    try:
        tls_exchange.wait_for(
            lambda: "job restarting (attempt 2)" in stdout.read_text(), timeout=300
        )
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    console = stdout.read_text()
    assert "TLS error" in console and "CERTIFICATE_VERIFY_FAILED" in console, tail(stdout)
    assert tls_exchange.connections == []


def test_given_the_authority_the_job_reads_the_tls_exchange(tls_exchange, tmp_path):
    out = tmp_path / "out"
    proc = start_job(
        job_command(tls_exchange, out, tmp_path, "--ca-file", str(tmp_path / "ca.pem")),
        tmp_path / "log",
        tmp_path / "stdout.txt",
    )
    finish_job(proc, tmp_path / "stdout.txt")
    trades = assert_every_published_trade_once(
        read_output(out, "trades"),
        tls_exchange,
        {s: tls_exchange.market.published(s).ids[0] for s in ("BTCUSDT", "ETHUSDT")},
    )
    assert len(trades) == 10_147 + 8_409
    assert normalized_bars(read_output(out, "bars")) == expected_bars(trades)
