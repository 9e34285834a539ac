"""The job's own pipeline with Flink's FileSource in place of the WebSocket bridge.

    python bench/filesource_job.py --file TRADES.jsonl [any job/main.py option]

``job.main.build`` assembles the graph exactly as for a live run (watermarks, bars, the trades,
bars and dead-letter sinks, the same config); only ``connectors.flink.source.trade_stream`` is
swapped, while the graph is built, for a FileSource of the same messages (one per line) parsed by
the same Parser in a Python operator. What this pipeline carries is the ceiling for the bridge:
the Python operator path with a source that costs nothing in Python.
"""
from __future__ import annotations

import argparse
import sys
from unittest import mock

from pyflink.common import WatermarkStrategy
from pyflink.datastream import ProcessFunction
from pyflink.datastream.connectors.file_system import FileSource, StreamFormat

from connectors.binance.parser import Parser
from connectors.binance.records import DeadLetter
from connectors.flink import source
from connectors.flink.rows import TRADE_TYPE, failure_line, trade_row


class ParseLines(ProcessFunction):
    def open(self, runtime_context):
        self.parser = Parser(kinds=("trade",))

    def process_element(self, line, ctx):
        record = self.parser.parse(line.encode())
        if isinstance(record, DeadLetter):
            yield source.DEAD_LETTERS, failure_line(record)
        else:
            yield trade_row(record)


def file_trade_stream(path: str):
    def trade_stream(env, *_, **__):
        files = FileSource.for_record_stream_format(StreamFormat.text_line_format(), path).build()
        lines = env.from_source(files, WatermarkStrategy.no_watermarks(), "trades file")
        # Chained to a FileSource, a Python operator here received its records one at a time
        # (about 600/s); in its own chain, as the bridge operator is behind its key_by, it takes
        # them in bundles.
        trades = lines.process(ParseLines(), output_type=TRADE_TYPE).name("parse trades").start_new_chain()
        return trades, trades.get_side_output(source.DEAD_LETTERS)
    return trade_stream


def main() -> int:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--file", required=True)
    args, job_args = own.parse_known_args()
    from job import main as job_main
    with mock.patch.object(source, "trade_stream", file_trade_stream(args.file)):
        return job_main.main(job_args)


if __name__ == "__main__":
    sys.exit(main())
