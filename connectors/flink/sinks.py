"""JSON-lines outputs.

``DIR/<name>/<yyyy-MM-dd--HH>/<name>-<uuid>-<n>.jsonl``: a FileSink rolling a part file on every
checkpoint and committing it when the checkpoint completes (exactly-once with the restart
strategy). Files still being written are hidden (``.<name>-...inprogress...``): readers take the
files that do not start with a dot. Buckets are hours of processing time, UTC.
"""
from __future__ import annotations

import os

from pyflink.common import Encoder
from pyflink.datastream.connectors.file_system import (BucketAssigner, FileSink, OutputFileConfig,
                                                        RollingPolicy)


def jsonl_sink(base_dir: str, name: str) -> FileSink:
    path = os.path.join(os.path.abspath(base_dir), name)
    return (FileSink.for_row_format(path, Encoder.simple_string_encoder("UTF-8"))
            .with_bucket_assigner(BucketAssigner.date_time_bucket_assigner("yyyy-MM-dd--HH", "UTC"))
            .with_rolling_policy(RollingPolicy.on_checkpoint_rolling_policy())
            .with_output_file_config(OutputFileConfig(name, ".jsonl"))
            .build())


def write_lines(lines, base_dir: str, name: str):
    """Sinks a stream of JSON lines under ``base_dir/name``."""
    return lines.sink_to(jsonl_sink(base_dir, name)).name(f"{name} files").uid(f"sink-{name}")


def print_lines(lines):
    """One line per record on the TaskManager's stdout (the console for an embedded run)."""
    return lines.print().name("stdout").set_parallelism(1)
