"""Event time from the trade time ``T``, declared to Flink's SQL planner (no Python per record)."""

from __future__ import annotations

from dataclasses import dataclass

from pyflink.table import Schema, StreamTableEnvironment


@dataclass(frozen=True)
class TradeWatermarks:
    """Watermark = newest trade time seen - ``out_of_orderness_ms`` (held back while a shard of the
    bridge subtask is disconnected or backfilling: rows.py); a source subtask without trades
    for ``idleness_ms`` (None: never) stops holding the watermark back, so a shard with no trades
    does not stall the bars of the others."""

    out_of_orderness_ms: int = 2000
    idleness_ms: int | None = 10_000

    def schema(self, time_column: str, watermark_column: str) -> Schema:
        """``rowtime`` from ``time_column`` (ms since the epoch), with its watermark from
        ``watermark_column``: the trade time, unless the bridge holds it back (rows.py)."""
        return (
            Schema.new_builder()
            .column_by_expression("rowtime", f"TO_TIMESTAMP_LTZ({time_column}, 3)")
            .watermark(
                "rowtime",
                f"TO_TIMESTAMP_LTZ({watermark_column}, 3)"
                f" - INTERVAL '{self.out_of_orderness_ms / 1000:.3f}' SECOND",
            )
            .build()
        )

    def configure(self, t_env: StreamTableEnvironment) -> None:
        """Idleness is a setting of the table environment, not of the schema."""
        t_env.get_config().set(
            "table.exec.source.idle-timeout",
            f"{self.idleness_ms} ms" if self.idleness_ms else "0 ms",
        )
