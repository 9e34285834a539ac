"""JSON-lines outputs.

``DIR/<name>/<yyyy-MM-dd--HH>/<name>-<uuid>-<n>.jsonl``: a FileSink rolling a part file on every
checkpoint and committing it when the checkpoint completes (exactly-once with the restart
strategy). Files still being written are hidden (``.<name>-...inprogress...``): readers take the
files that do not start with a dot. Buckets are hours of processing time, UTC.
"""
from __future__ import annotations

import os

from pyflink.common import Encoder
from pyflink.common.typeinfo import Types
from pyflink.datastream.connectors.file_system import (BucketAssigner, FileSink, OutputFileConfig,
                                                        RollingPolicy)


def jsonl_sink(base_dir: str, name: str) -> FileSink:
    path = os.path.join(os.path.abspath(base_dir), name)
    return (FileSink.for_row_format(path, Encoder.simple_string_encoder("UTF-8"))
            .with_bucket_assigner(BucketAssigner.date_time_bucket_assigner("yyyy-MM-dd--HH", "UTC"))
            .with_rolling_policy(RollingPolicy.on_checkpoint_rolling_policy())
            .with_output_file_config(OutputFileConfig(name, ".jsonl"))
            .build())


def write_jsonl(stream, to_json, base_dir: str, name: str, parallelism: int | None = None):
    """Map rows to JSON lines with ``to_json`` and sink them under ``base_dir/name``."""
    lines = stream.map(to_json, output_type=Types.STRING()).name(f"{name} to json")
    if parallelism:
        lines = lines.set_parallelism(parallelism)
    sink = lines.sink_to(jsonl_sink(base_dir, name)).name(f"{name} files").uid(f"sink-{name}")
    if parallelism:
        sink = sink.set_parallelism(parallelism)
    return sink


def print_jsonl(stream, to_json):
    """One JSON line per record on the TaskManager's stdout (the console for an embedded run)."""
    return (stream.map(to_json, output_type=Types.STRING()).name("to json").set_parallelism(1)
            .print().name("stdout").set_parallelism(1))


def read_jsonl(base_dir: str, name: str) -> list[dict]:
    """Every committed line under ``base_dir/name`` (tests, tools)."""
    import orjson
    out = []
    root = os.path.join(base_dir, name)
    for dirpath, _, files in os.walk(root):
        for f in sorted(files):
            if f.startswith("."):
                continue
            with open(os.path.join(dirpath, f), "rb") as fh:
                out.extend(orjson.loads(line) for line in fh if line.strip())
    return out
