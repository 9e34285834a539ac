"""An embedded run's console (job/console.py) read from a Flink log as the embedded cluster writes
it: each restart said in one line with its cause, and counted by reason in a metric the run's
gateway serves."""

from __future__ import annotations

import io
import re

from bench.cluster import get_text
from job.console import ConsoleReporter
from job.metrics_gateway import MetricsGateway

TASK = "Calc[9] -> StreamingFileWriter -> end: Writer (1/1)#0 (9d48_0_0)"
LOG = f"""\
2026-12-04 10:31:39,876 WARN  org.apache.flink.runtime.taskmanager.Task [] - {TASK} switched from \
RUNNING to FAILED with failure cause:
java.io.IOException: No space left on device
\tat java.base/sun.nio.ch.FileDispatcherImpl.write0(Native Method)
2026-12-04 10:31:39,933 INFO  org.apache.flink.runtime.executiongraph.ExecutionGraph [] - Job \
binance trade btcusdt (d0be) switched from state RUNNING to RESTARTING.
2026-12-04 10:32:10,100 WARN  org.apache.flink.runtime.taskmanager.Task [] - {TASK} switched from \
RUNNING to FAILED with failure cause:
org.apache.flink.util.FlinkRuntimeException: Error while processing timer
\tat org.apache.flink.streaming.api.operators.python.embedded.X.onProcessingTime(X.java:1)
Caused by: pemja.core.PythonException: <class 'connectors.websocket.errors.FeedError'>: gave up
2026-12-04 10:32:10,200 INFO  org.apache.flink.runtime.executiongraph.ExecutionGraph [] - Job \
binance trade btcusdt (d0be) switched from state RUNNING to RESTARTING.
"""


def test_restarts_are_said_with_their_cause_and_counted_by_reason(tmp_path):
    (tmp_path / "flink.log").write_text(LOG)
    printed = io.StringIO()
    reporter = ConsoleReporter(str(tmp_path), out=printed).start()
    reporter.stop()
    assert re.findall(r"job restarting .*", printed.getvalue()) == [
        "job restarting (attempt 1) after: IOException: No space left on device",
        "job restarting (attempt 2) after: FeedError: gave up",
    ]
    with MetricsGateway(port=0) as gateway:
        gateway.add_collector(reporter.metrics)
        scraped = get_text(gateway.scrape_url)
    assert 'binance_job_restarts_total{reason="disk_full"} 1.0' in scraped
    assert 'binance_job_restarts_total{reason="FeedError"} 1.0' in scraped
