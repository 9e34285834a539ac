"""The seed that drives the bridge operator: one row per shard and second, keyed by shard in Java.

A Python ``KeyedProcessFunction`` needs a keyed input (for its state and timers), and PyFlink's
``key_by`` adds a Python operator of its own (``_stream_key_by_map_operator``) that every seed
row would cross. So the seed is made and keyed without Python: Flink SQL (``datagen`` crossed
with the shard numbers) -> ``toDataStream`` -> Java ``keyBy`` with PyFlink's own
``KeyByKeySelector``, on rows laid out ``Row(key, value)`` as that selector expects.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pyflink.common.typeinfo import Types
from pyflink.datastream.data_stream import DataStream, KeyedStream
from pyflink.java_gateway import get_gateway

if TYPE_CHECKING:
    from pyflink.table import StreamTableEnvironment

SEED_TYPE = Types.ROW_NAMED(["shard", "tick", "last"], [Types.INT(), Types.LONG(), Types.BOOLEAN()])


def keyed_seed(
    t_env: StreamTableEnvironment,
    n_shards: int,
    duration_s: float | None = None,
    name: str = "seed",
) -> KeyedStream:
    """``Row(shard, tick, last)`` once a second per shard, keyed by shard; bounded (ticks 1..N, the
    row of tick N marked ``last``) when ``duration_s`` is given."""
    if duration_s is None:  # unbounded; the value is unused, and datagen rejects min == max
        kind = "'fields.tick.kind'='random','fields.tick.min'='0','fields.tick.max'='1'"
        last = "FALSE"
    else:
        end = max(1, math.ceil(duration_s))
        kind = f"'fields.tick.kind'='sequence','fields.tick.start'='1','fields.tick.end'='{end}'"
        last = f"tick >= {end}"
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} (tick BIGINT) WITH ("
        f"'connector'='datagen','rows-per-second'='1','scan.parallelism'='1',{kind})"
    )
    # a row-dependent array plans as a stateless correlate (a constant one became a join)
    shards = ",".join(f"CAST(tick * 0 + {i} AS INT)" for i in range(n_shards))
    table = t_env.sql_query(
        f"SELECT shard, ROW(shard, tick, {last}) AS v FROM {name} "
        f"CROSS JOIN UNNEST(ARRAY[{shards}]) AS s(shard)"
    )
    j_stream = t_env._j_tenv.toDataStream(table._j_table)
    # The Python operator reads its input type as a RowTypeInfo; toDataStream's ExternalTypeInfo
    # holds the same Row records, and nothing has read the type yet, so it can still be replaced.
    j_stream.getTransformation().setOutputType(
        Types.ROW([Types.INT(), SEED_TYPE]).get_java_type_info()
    )
    j_stream.getTransformation().setName(f"{name} per shard")
    selector = get_gateway().jvm.org.apache.flink.streaming.api.functions.python.KeyByKeySelector()
    j_keyed = j_stream.keyBy(selector, Types.ROW([Types.INT()]).get_java_type_info())
    return KeyedStream(j_keyed, SEED_TYPE, DataStream(j_stream))
