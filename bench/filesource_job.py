"""The job's own pipeline with Flink's FileSource in place of the WebSocket bridge.

    python bench/filesource_job.py --file TRADES.jsonl [any job/main.py option]

``job.main`` assembles the graph exactly as for a live run (the tables with event time, bars,
late trades, the three outputs, the same config), given in place of ``connectors.flink.source.
binance_trades`` a FileSource of the same messages (one per line) parsed by the same Parser in the
one Python operator, which hands the same tuples to the same tables. What this pipeline carries
is the ceiling for the bridge: one Python operator, a source that costs nothing in Python.
"""

from __future__ import annotations

import argparse
import sys

from pyflink.common import WatermarkStrategy
from pyflink.datastream import ProcessFunction, StreamExecutionEnvironment
from pyflink.datastream.connectors.file_system import FileSource, StreamFormat
from pyflink.datastream.data_stream import DataStream

from connectors.binance.parser import Parser
from connectors.binance.records import DeadLetter
from connectors.flink import source
from connectors.flink.rows import TRADE_TYPE, dead_letter_tuple, trade_tuple


class ParseLines(ProcessFunction):
    def open(self, runtime_context):
        self.parser = Parser(kinds=("trade",))

    def process_element(self, line, ctx):
        record = self.parser.parse(line.encode())
        if type(record) is DeadLetter:
            yield source.DEAD_LETTERS, dead_letter_tuple(record)
        else:
            yield trade_tuple(record)


def file_trades(path: str):
    def binance_trades(t_env, symbols, feed_factory, watermarks, name="binance", **_):
        env = StreamExecutionEnvironment(t_env._j_tenv.execEnv())  # the job's own environment
        files = FileSource.for_record_stream_format(StreamFormat.text_line_format(), path).build()
        lines = env.from_source(files, WatermarkStrategy.no_watermarks(), "trades file")
        trades = source.in_own_task(
            lines.process(ParseLines(), output_type=TRADE_TYPE).name("parse trades"),
            source.DrainConfig().flush_interval,
        )
        dead = DataStream(
            trades._j_data_stream.getSideOutput(source.DEAD_LETTERS.get_java_output_tag())
        )
        return source.trade_tables(t_env, trades, dead, watermarks)

    return binance_trades


def main() -> int:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--file", required=True)
    args, job_args = own.parse_known_args()
    from job import main as job_main

    return job_main.main(job_args, trades_source=file_trades(args.file))


if __name__ == "__main__":
    sys.exit(main())
