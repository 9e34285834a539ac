"""The job's outputs, written in Java: JSON lines of trades, one-minute bars and dead letters.

``DIR/<name>/hour=<yyyy-MM-dd--HH>/part-<uuid>-<subtask>-<n>``, by Flink's filesystem connector in
its ``json`` format (decimals are STRING columns: the exact strings). The hour is UTC, of the trade
time for trades, of the window start for bars, of the arrival for dead letters. A part file rolls
after ``roll_interval`` and is committed by the checkpoint that follows (exactly once with the
restart strategy); files still being written start with a dot: read only the others.

Given a ``market`` name (``markets.BinanceMarket.output_name``: ``usdm``), every line ends with
``"market":"<name>"``; spot's lines have no such field, as before there were markets, so that
what reads them needs no change.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from pyflink.table import StatementSet, StreamTableEnvironment, Table

from .bars import BAR_FIELDS
from .rows import DEAD_LETTER_FIELDS

# The fields of a trades line by stream kind, in their order on the line.
TRADE_LINE_FIELDS = {
    "trade": [
        "symbol",
        "trade_id",
        "price",
        "quantity",
        "trade_time",
        "event_time",
        "buyer_is_maker",
    ],
    "aggTrade": [
        "symbol",
        "agg_id",
        "price",
        "quantity",
        "first_trade_id",
        "last_trade_id",
        "trade_time",
        "event_time",
        "buyer_is_maker",
    ],
}
_HOUR = "DATE_FORMAT(TO_TIMESTAMP_LTZ({ms}, 3), 'yyyy-MM-dd--HH')"
_RECEIVED_AT = (
    "TIMESTAMPDIFF(SECOND, TO_TIMESTAMP_LTZ(0, 3), CURRENT_ROW_TIMESTAMP()) * CAST(1000 AS BIGINT)"
    " + EXTRACT(MILLISECOND FROM CURRENT_ROW_TIMESTAMP())"
)


def trade_lines(
    t_env: StreamTableEnvironment, trades: Table, kind: str = "trade", market: str | None = None
) -> Table:
    """The trades output: TRADE_LINE_FIELDS[kind] (aggTrade: the id columns under their own
    names), then ``market`` when given."""
    return t_env.sql_query(
        f"SELECT {_trade_select(kind)}{_market(market)}, {_HOUR.format(ms='trade_time')} AS `hour`"
        f" FROM {trades}"
    )


def bar_lines(t_env: StreamTableEnvironment, bars: Table, market: str | None = None) -> Table:
    return t_env.sql_query(
        f"SELECT {_quoted(BAR_FIELDS)}{_market(market)},"
        f" {_HOUR.format(ms='window_start')} AS `hour` FROM {bars}"
    )


def dead_letter_lines(
    t_env: StreamTableEnvironment,
    bridge_dead_letters: Table,
    late_trades: Table,
    kind: str = "trade",
    market: str | None = None,
) -> Table:
    """The bridge's dead letters and the late trades (``late_trade``, raw = the trade's line)."""
    late_lines = t_env.sql_query(
        f"SELECT {_trade_select(kind)}{_market(market)} FROM {late_trades}"
    )
    late = (
        f"SELECT 'late_trade' AS reason, {json_line(late_lines)} AS `raw`, "
        "'utf-8' AS raw_encoding, 'trade time ' || CAST(trade_time AS STRING) || ' is behind the "
        "watermark: its 1-minute bar was already emitted' AS error, "
        f"{_RECEIVED_AT} AS received_at FROM {late_lines}"
    )
    return t_env.sql_query(
        f"SELECT *{_market(market)}, {_HOUR.format(ms='received_at')} AS `hour` FROM ("
        f"SELECT {_quoted(DEAD_LETTER_FIELDS)} FROM {bridge_dead_letters} UNION ALL {late})"
    )


def add_file_output(
    t_env: StreamTableEnvironment,
    statements: StatementSet,
    lines: Table,
    out_dir: str,
    name: str,
    roll_interval: str,
) -> None:
    """Adds to ``statements`` the insert of ``lines`` (a ``*_lines`` table) into
    ``out_dir/name``."""
    table = name.replace("-", "_") + "_files"
    columns = ", ".join(
        f"`{c}` {t.copy(True).asSerializableString()}" for c, t in _column_types(lines).items()
    )
    path = "file://" + os.path.join(os.path.abspath(out_dir), name)
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE {table} ({columns}) PARTITIONED BY (`hour`) WITH "
        f"('connector'='filesystem', 'path'='{path}', 'format'='json', "
        f"'sink.rolling-policy.rollover-interval'='{roll_interval}', "
        "'sink.rolling-policy.check-interval'='1 s')"
    )
    statements.add_insert(table, lines)


def print_lines(t_env: StreamTableEnvironment, lines: Table) -> None:
    """One JSON object per line on the TaskManager's stdout (the console of an embedded run)."""
    from pyflink.table import DataTypes
    from pyflink.table.types import _to_java_data_type

    text = t_env.sql_query(f"SELECT {json_line(lines, without=('hour',))} FROM {lines}")
    # Java's print of plain strings: the SQL print connector would add +I[...] to every line, and
    # PyFlink's DataStream.print() a Python operator of its own
    j_lines = t_env._j_tenv.toDataStream(text._j_table, _to_java_data_type(DataTypes.STRING()))
    j_lines.print().name("stdout").setParallelism(1)


def json_line(table: Table, without: Collection[str] = ()) -> str:
    """SQL for a JSON object of ``table``'s columns (none of them null) but ``without``, keys in the
    table's order as the json format writes them (Flink's JSON_OBJECT sorts its keys)."""

    def value(c: str, root: str) -> str:
        if root in ("CHAR", "VARCHAR"):
            return f"JSON_STRING(`{c}`)"
        if root == "BOOLEAN":
            return f"CASE WHEN `{c}` THEN 'true' ELSE 'false' END"
        return f"CAST(`{c}` AS STRING)"

    columns = [
        (c, t.getTypeRoot().name()) for c, t in _column_types(table).items() if c not in without
    ]
    parts = [
        f"'{',' if i else '{'}\"{c}\":' || {value(c, root)}" for i, (c, root) in enumerate(columns)
    ]
    return " || ".join(parts) + " || '}'"


def _column_types(table: Table) -> dict[str, Any]:
    """Column name -> its type (a Java ``LogicalType``, through py4j), as the planner resolved
    it."""
    return {
        c.getName(): c.getDataType().getLogicalType()
        for c in table._j_table.getResolvedSchema().getColumns()
    }


def committed_rows(
    out_dir: str | os.PathLike[str], name: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The rows of output ``name`` under ``out_dir``, each with where it came from (``file:line``),
    from committed files only: a file whose name starts with a dot is still being written and may
    yet be rolled back."""
    for path in sorted((Path(out_dir) / name).rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            for number, line in enumerate(path.read_bytes().splitlines(), 1):
                if line.strip():
                    yield f"{path}:{number}", orjson.loads(line)


def _trade_select(kind: str) -> str:
    renames = {"agg_id": "trade_id AS agg_id"} if kind == "aggTrade" else {}
    return ", ".join(renames.get(f, f) for f in TRADE_LINE_FIELDS[kind])


def _market(name: str | None) -> str:
    """The ``market`` column, to follow other columns; nothing without a name."""
    return "" if name is None else f", '{name}' AS `market`"


def _quoted(fields: Iterable[str]) -> str:
    return ", ".join(f"`{f}`" for f in fields)
