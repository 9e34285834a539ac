"""The bridge's settings: each with its default, its help text and its check (connectors.settings),
so that the job's command line and a library user share one definition."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.settings import check_settings, setting
from connectors.websocket.buffer import Overflow


@dataclass(frozen=True)
class BridgeConfig:
    buffer_size: int = setting(
        100_000, "records held between the connection and the consumer", minimum=1
    )
    overflow: str = setting(
        Overflow.BLOCK.value,
        "what a full buffer does: block (the reader waits, nothing is "
        "dropped), drop_oldest, drop_newest (counted), fail (the feed fails)",
        choices=tuple(o.value for o in Overflow),
    )
    connect_timeout: float = setting(
        10.0, "seconds for TCP, TLS and the WebSocket handshake", metavar="S", positive=True
    )
    # Binance pings every 20 s, so a healthy connection is never silent this long.
    silence_timeout: float = setting(
        45.0, "a connection without any frame this long is lost", metavar="S", positive=True
    )
    max_reconnect_attempts: int = setting(
        10,
        "consecutive failed reconnects before the feed fails (a Flink job then restarts)",
        minimum=1,
    )
    backoff_initial: float = setting(
        0.5, "first delay between reconnects", metavar="S", positive=True
    )
    backoff_max: float = setting(
        30.0, "longest delay between reconnects", metavar="S", positive=True
    )
    backoff_jitter: float = setting(0.2, "random spread of each delay, as a fraction", minimum=0)
    max_frame_bytes: int = setting(
        1_048_576, "larger frames are skipped and dead-lettered as oversized_frame", minimum=256
    )
    # Binance ends a connection at 24 h (86,400 s); hand over to a fresh one ahead of that.
    max_connection_age: float = setting(
        85_000.0, "hand over to a new connection after this long", metavar="S", positive=True
    )
    handover_timeout: float = setting(
        10.0,
        "longest overlap of the old and the new connection of a handover",
        metavar="S",
        positive=True,
    )
    backfill_timeout: float = setting(
        120.0,
        "a backfill that has not finished after this long reports what "
        "it could not fetch as gap_unfilled and live delivery resumes",
        metavar="S",
        positive=True,
    )
    poll_interval: float = setting(
        0.2,
        "how often the threads look up from a socket (stop, silence, age)",
        metavar="S",
        positive=True,
    )
    ca_file: str | None = setting(
        None,
        "certificates (PEM) of the authorities to trust for TLS (wss://, "
        "https://) instead of the system's; verification is always on",
        metavar="FILE",
    )
    # Two lines to different hosts differ by milliseconds; a line that trails by more is treated
    # as one that missed the ids, and the history is asked for them.
    line_lag_limit: float = setting(
        1.0,
        "with redundant lines: how long a record that jumps ahead on one line waits for another "
        "line to deliver the ids it skipped, before they count as a gap",
        metavar="S",
        positive=True,
    )
    gate_dir: str | None = setting(
        None,
        "where the per-host attempt gate keeps its state (default: the system's temporary folder)",
        metavar="DIR",
    )

    def __post_init__(self) -> None:
        check_settings(self)  # refused at construction, not at first use
