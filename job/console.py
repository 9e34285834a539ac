"""What an embedded run shows on its console as it happens.

The embedded cluster writes everything, the Python operators' logging included, to one Flink log
file; a user watching the console would otherwise see only "submitting". This follows the run's log
folder and prints the events that matter, one line each: the feed's connections and losses (with
the cause), gaps and their backfill, failures of the feed, and the job's restarts with the cause
that brought each one. The run adds lines of its own (``say``): where its metrics are.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from prometheus_client.core import CounterMetricFamily, Metric

_TIME = re.compile(r"^\d{4}-\d\d-\d\d (\d\d:\d\d:\d\d)")
# Messages of the bridge and the operator (their logging lands in the Flink log as " - <message>").
_FEED_EVENTS = re.compile(
    r" - ((?:connected to|connection to .* lost after|reconnecting to"
    r"|waiting [\d.]+s before connecting"
    r"|connect to .* failed|handing over|.*: catching up after|.*: backfill done"
    r"|archive: .*|.*: history .*|shard .*: history .*"
    r"|.* ids \d+\.\.\d+ are lost"
    r"|.*: \w+ skipped ids|shard .*: feed failed|.*: backfill of .* cannot go on).*)$"
)
_HISTORY_DONE = re.compile(r" - shard (\S+): history replayed up to --until")
_CAUSE = re.compile(
    r"^Caused by: (?:pemja\.core\.PythonException: <class '(?:[\w.]+\.)?(\w+)'>: )?(.*)$"
)
# A task's failure: its exception on the line after this one, Caused by lines further down.
_FAILED_WITH = re.compile(r"switched from \w+ to FAILED with failure cause:$")
_EXCEPTION = re.compile(r"^(?:[\w$]+\.)*([\w$]+(?:Exception|Error)): (.*)$")
_RESTARTING = re.compile(r"Job .* switched from state \w+ to RESTARTING")
_ENDED = re.compile(r"Job .* switched from state \w+ to (FINISHED|FAILED|CANCELED)")


class ConsoleReporter:
    """Follows ``*.log`` in ``log_dir`` from a thread of its own and prints the events to
    ``out``."""

    def __init__(self, log_dir: str, out: TextIO = sys.stdout, poll_interval: float = 0.5):
        self._dir, self._out, self._poll = Path(log_dir), out, poll_interval
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, str] = {}
        self._cause = ""  # the innermost cause of the latest failure
        self._failure_follows = False  # the next line is a failed task's exception
        self._restarts = 0
        # shards that replayed their history up to --until (a set: a restarted job says it again)
        self.histories_done: set[str] = set()
        self._lock = threading.Lock()  # guards restarts_by_reason (read by the metrics thread)
        self._restarts_by_reason: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-reporter", daemon=True)

    def start(self) -> ConsoleReporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self._read()  # what the last moments wrote

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            self._read()

    def _read(self) -> None:
        for path in sorted(self._dir.glob("*.log")):
            try:
                with open(path, errors="replace") as f:
                    f.seek(self._offsets.get(path, 0))
                    text = self._partial.pop(path, "") + f.read()
                    self._offsets[path] = f.tell()
            except OSError:
                continue
            lines = text.split("\n")
            self._partial[path] = lines.pop()  # an unfinished last line waits for the next read
            for line in lines:
                self._line(line)

    def _line(self, line: str) -> None:
        stamp = _TIME.match(line)
        at = stamp.group(1) + " " if stamp else ""
        failure_follows, self._failure_follows = self._failure_follows, False
        if (event := _FEED_EVENTS.search(line)) is not None:
            self._print(at + event.group(1))
            if (done := _HISTORY_DONE.search(line)) is not None:
                self.histories_done.add(done.group(1))
        elif failure_follows and (exception := _EXCEPTION.match(line)) is not None:
            self._cause = ": ".join(exception.groups())
        elif _FAILED_WITH.search(line):
            self._failure_follows = True
        elif (cause := _CAUSE.match(line)) is not None:
            self._cause = ": ".join(filter(None, cause.groups()))
        elif _RESTARTING.search(line):
            self._restarts += 1
            with self._lock:
                self._restarts_by_reason[restart_reason(self._cause)] += 1
            self._print(
                f"{at}job restarting (attempt {self._restarts}) after: "
                f"{self._cause or 'see the log'}"
            )
        elif (ended := _ENDED.search(line)) is not None:
            self._print(
                f"{at}job {ended.group(1).lower()}"
                + (f": {self._cause}" if ended.group(1) == "FAILED" and self._cause else "")
            )

    def metrics(self) -> Iterator[Metric]:
        """``binance_job_restarts_total{reason}``: the job's restarts this run saw, by reason (the
        gateway serves it beside the pushed metrics)."""
        restarts = CounterMetricFamily(
            "binance_job_restarts",
            "restarts of the job by the reason of the failure that caused them",
            labels=["reason"],
        )
        with self._lock:
            for reason, count in sorted(self._restarts_by_reason.items()):
                restarts.add_metric([reason], count)
        yield restarts

    def say(self, text: str) -> None:
        """A line of the run's own (not from the log), stamped like the others."""
        self._print(time.strftime("%H:%M:%S ") + text)

    def _print(self, text: str) -> None:
        print(f"[flink] {text}", file=self._out, flush=True)


def restart_reason(cause: str) -> str:
    """A failure's cause as a metric label: few values, so an alert can match one. A full disk
    (the outputs', or the checkpoints') is ``disk_full``; otherwise the exception's class."""
    if "No space left on device" in cause:
        return "disk_full"
    return cause.split(":", 1)[0].rsplit(".", 1)[-1] if cause else "unknown"
