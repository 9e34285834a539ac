"""Observability: the alert rules pass promtool's checks and unit tests, and a real Prometheus
(Debian's package) scraping a running job with the project's scrape config sees its records and
the gap an injected drop made."""

from __future__ import annotations

import shutil
import subprocess
import urllib.parse
import urllib.request

import orjson
import pytest
import yaml

from bench.cluster import free_port, wait_until
from connectors.simulator import Market
from helpers.flinkjob import REPO, finish_job, job_command, start_job

PROMETHEUS_CONF = REPO / "conf" / "prometheus"
SOURCE = "flink_taskmanager_job_task_operator_binance_source_"


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is needed (Debian package prometheus; .ci/run installs it)"
    return path


def test_rules_and_scrape_config_pass_promtool():
    promtool = tool("promtool")
    for args in (
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ):
        run = subprocess.run(
            [promtool, *args],
            cwd=PROMETHEUS_CONF,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
    rules = yaml.safe_load((PROMETHEUS_CONF / "alerts.yml").read_text())["groups"][0]["rules"]
    tested = yaml.safe_load((PROMETHEUS_CONF / "alerts_test.yml").read_text())["tests"]
    fired = {t["alertname"] for test in tested for t in test["alert_rule_test"] if t["exp_alerts"]}
    assert fired == {rule["alert"] for rule in rules}  # every rule has a test in which it fires


@pytest.fixture
def prometheus(tmp_path):
    """A factory: Prometheus with the project's scrape config and rules, its targets narrowed to
    the given metrics port; stopped when the test ends."""
    started = []

    def start(metrics_port: int) -> str:
        config = yaml.safe_load((PROMETHEUS_CONF / "prometheus.yml").read_text())
        config["rule_files"] = [str(PROMETHEUS_CONF / name) for name in config["rule_files"]]
        config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_port}"]}]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        with open(tmp_path / "prometheus.log", "wb") as log:  # Prometheus holds its own copy
            started.append(
                subprocess.Popen(
                    [
                        tool("prometheus"),
                        f"--config.file={tmp_path / 'prometheus.yml'}",
                        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            )
        return f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)


def query(api: str, expr: str) -> float | None:
    url = f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            result = orjson.loads(response.read())["data"]["result"]
    except OSError:
        return None
    return float(result[0]["value"][1]) if result else None


@pytest.mark.slow
def test_prometheus_scrapes_the_job_and_sees_records_and_an_injected_gap(
    simulator, demo_captures, prometheus, tmp_path
):
    sim = simulator(Market.replay(demo_captures, speed=5, pause_without_subscribers=False))
    metrics_port = free_port()
    api = prometheus(metrics_port)
    stdout = tmp_path / "stdout.txt"
    proc = start_job(
        job_command(
            sim,
            tmp_path / "out",
            tmp_path,
            "--metrics-port",
            str(metrics_port),
            duration=40,
        ),
        tmp_path / "log",
        stdout,
    )
    try:
        wait_until(
            lambda: (query(api, f"max({SOURCE}numRecordsIn)") or 0) > 0,
            "trades counted in Prometheus",
            timeout=240,
        )
        sim.faults.drop_after(0, reset=True)  # the market trades on: a gap, filled from REST
        wait_until(
            lambda: (query(api, f"max({SOURCE}feed_gaps)") or 0) >= 1,
            "the gap counted in Prometheus",
            timeout=240,
        )
        wait_until(
            lambda: (query(api, f"max({SOURCE}feed_backfilled)") or 0) > 0,
            "the backfill counted",
            timeout=240,
        )
        with urllib.request.urlopen(f"{api}/api/v1/rules", timeout=5) as response:
            groups = orjson.loads(response.read())["data"]["groups"]
        assert len(groups[0]["rules"]) == 6 and all(r["health"] == "ok" for r in groups[0]["rules"])
    finally:
        finish_job(proc, stdout)
    assert (
        f"metrics for Prometheus at http://127.0.0.1:{metrics_port}/metrics" in stdout.read_text()
    )
