"""The loopback gateway Flink's JVMs push their metrics to (job/metrics_gateway.py), over real
HTTP: what Prometheus reads back is every JVM's samples under one family each, as Flink's HTTP
reporter would have served them; a JVM gone quiet drops out; it listens on loopback."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers.listeners import listening
from job.metrics_gateway import MetricsGateway


def push(url: str, path: str, body: str, method: str = "PUT") -> int:
    request = urllib.request.Request(
        url + path,
        data=body.encode(),
        method=method,
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def scrape(gateway: MetricsGateway) -> dict[str, list[tuple[dict, float]]]:
    with urllib.request.urlopen(gateway.scrape_url, timeout=5) as response:
        text = response.read().decode()
    return {
        f.name: [(s.labels, s.value) for s in f.samples]
        for f in text_string_to_metric_families(text)
    }


def taskmanager(tm_id: str, records: float) -> str:
    """What Flink's push-gateway reporter sends (simpleclient's text format 0.0.4)."""
    return (
        "# HELP flink_taskmanager_job_task_operator_numRecordsIn numRecordsIn (scope: x)\n"
        "# TYPE flink_taskmanager_job_task_operator_numRecordsIn gauge\n"
        f'flink_taskmanager_job_task_operator_numRecordsIn{{tm_id="{tm_id}",subtask_index="0"}}'
        f" {records}\n"
        "# HELP flink_taskmanager_Status_JVM_CPU_Load CPU_Load (scope: taskmanager_Status_JVM)\n"
        "# TYPE flink_taskmanager_Status_JVM_CPU_Load gauge\n"
        f'flink_taskmanager_Status_JVM_CPU_Load{{tm_id="{tm_id}",host="localhost"}} 0.5\n'
    )


JOBMANAGER = (
    "# HELP flink_jobmanager_numRegisteredTaskManagers numRegisteredTaskManagers (scope: jm)\n"
    "# TYPE flink_jobmanager_numRegisteredTaskManagers gauge\n"
    'flink_jobmanager_numRegisteredTaskManagers{host="localhost"} 2.0\n'
)
RECORDS = "flink_taskmanager_job_task_operator_numRecordsIn"


@pytest.fixture
def gateway():
    with MetricsGateway(port=0, expire_after=1.0) as g:
        yield g


def test_every_jvms_push_is_served_under_one_family_per_name(gateway):
    assert push(gateway.url, "/metrics/job/binance-flinkA", JOBMANAGER) == 202
    assert push(gateway.url, "/metrics/job/binance-flinkB", taskmanager("tm1", 10)) == 202
    assert push(gateway.url, "/metrics/job/binance-flinkC", taskmanager("tm2", 20)) == 202
    assert push(gateway.url, "/metrics/job/binance-flinkB", taskmanager("tm1", 11)) == 202

    families = scrape(gateway)
    assert families["flink_jobmanager_numRegisteredTaskManagers"] == [({"host": "localhost"}, 2.0)]
    assert sorted(families[RECORDS], key=lambda s: s[0]["tm_id"]) == [
        ({"tm_id": "tm1", "subtask_index": "0"}, 11.0),  # the latest push replaced the first
        ({"tm_id": "tm2", "subtask_index": "0"}, 20.0),
    ]


def test_a_jvm_that_says_goodbye_or_goes_quiet_drops_out(gateway):
    push(gateway.url, "/metrics/job/binance-flinkA", JOBMANAGER)
    push(gateway.url, "/metrics/job/binance-flinkB", taskmanager("tm1", 10))
    push(gateway.url, "/metrics/job/binance-flinkC", taskmanager("tm2", 20))
    assert push(gateway.url, "/metrics/job/binance-flinkC", "", method="DELETE") == 202
    assert [labels["tm_id"] for labels, _ in scrape(gateway)[RECORDS]] == ["tm1"]

    time.sleep(0.6)
    push(gateway.url, "/metrics/job/binance-flinkB", taskmanager("tm1", 12))
    time.sleep(0.6)  # the JobManager's push is now older than expire_after, the TaskManager's not
    families = scrape(gateway)
    assert "flink_jobmanager_numRegisteredTaskManagers" not in families
    assert families[RECORDS] == [({"tm_id": "tm1", "subtask_index": "0"}, 12.0)]


def test_a_bad_push_is_refused_and_keeps_what_was_there(gateway):
    push(gateway.url, "/metrics/job/binance-flinkB", taskmanager("tm1", 10))
    assert push(gateway.url, "/metrics/job/binance-flinkB", "not { prometheus text") == 400
    assert push(gateway.url, "/somewhere/else", JOBMANAGER) == 404
    assert scrape(gateway)[RECORDS] == [({"tm_id": "tm1", "subtask_index": "0"}, 10.0)]


def test_it_listens_on_loopback_and_takes_the_next_port_when_the_first_is_taken():
    with MetricsGateway(port=0) as first:
        ours = {(a, p) for a, p, _ in listening([os.getpid()]) if p == first.port}
        assert ours == {("127.0.0.1", first.port)}
        with MetricsGateway(port=first.port, ports=5) as second:
            assert second.port != first.port
            assert second.url == f"http://127.0.0.1:{second.port}"
        with pytest.raises(OSError, match="no free port"):
            MetricsGateway(port=first.port, ports=1).start()
