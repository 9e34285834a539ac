"""What makes a measured rate a figure: its input lasted through its window, the window ran its
full length with the work still flowing at its end, and the warm-up before it ended with the work
flowing. A measurement that fails any of these is an invalid run: ``require`` raises
``InvalidRun`` naming the run and why, ``bench/run.py`` exits with 2 and writes no results.

The flags and the figures behind them go into the results (``*_input_used_up``,
``*_window_filled``, ``*_warmup_ended``, what the input held and how much of it was taken), so a
written result shows that its checks ran.
"""

from __future__ import annotations

from bench.loadserver import LoadServer
from bench.sink_tail import SinkTail

# The sink must have grown within this many seconds before the window's start and its end: pauses
# downstream of the bridge last up to ~170 ms (README), a stop of seconds is a job out of input or
# stalled, not a rate.
QUIET_LIMIT_S = 2.0
# A window counts as run in full if it lasted this share of the planned length (the harness polls
# every 0.1 s).
WINDOW_SHARE = 0.98
# What the server must deliver over the fastest client, at least, for no client figure to be its.
SERVER_HEADROOM = 2.0


class InvalidRun(RuntimeError):
    """A measurement that does not measure what it says: no figure may be reported for it."""


def sink_flags(tail: SinkTail, start: float, end: float, window: float) -> dict:
    """Whether the warm-up ended (the window opened, the sink growing then) and the window filled
    (it lasted ``window`` s, the sink still growing at its end), from the sink's line counts and
    the window's ``start`` and ``end`` (monotonic)."""
    quiet_start = _quiet(tail, start)
    quiet_end = _quiet(tail, end)
    return {
        "warmup_ended": end > start and quiet_start <= QUIET_LIMIT_S,
        "window_filled": end - start >= WINDOW_SHARE * window and quiet_end <= QUIET_LIMIT_S,
        "sink_quiet_at_start_s": round(quiet_start, 2),
        "sink_quiet_at_end_s": round(quiet_end, 2),
    }


def _quiet(tail: SinkTail, t: float) -> float:
    """Seconds since the sink last grew, as of monotonic ``t`` (infinite if it never had)."""
    last = None
    for when, _ in tail.counts:
        if when > t:
            break
        last = when
    return float("inf") if last is None else t - last


def flood_flags(server: LoadServer, since: float, end: float, expected: int) -> dict:
    """Whether the flood's connections opened since monotonic ``since`` lasted through a window
    ending at ``end``: ``expected`` connections (one per shard: a reconnect starts the flood over
    from its first trade), none of which the server ran out of, or saw end, before ``end``."""
    conns = server.connections(since, ended_within=10.0)
    ran_out = [c["ran_out_at"] for c in conns if "ran_out_at" in c]
    ended = [c["ended_at"] for c in conns if "ended_at" in c]
    return {
        "input_used_up": any(t < end for t in ran_out),
        "input_trades": conns[0]["count"] if conns else None,
        "input_sent": max((c.get("sent", 0) for c in conns), default=0),
        "input_ran_out_before_end_s": round(max(end - t for t in ran_out), 2) if ran_out else None,
        "input_connections": len(conns),
        "input_connections_expected": expected,
        "input_ended_early": any(t < end for t in ended),
    }


def problems(result: dict) -> list[str]:
    """What makes ``result`` (flags of ``sink_flags``, ``flood_flags``, or a client's
    ``input_used_up``) not a figure; empty if nothing does."""
    found = []
    if result.get("input_used_up"):
        if result.get("input_ran_out_before_end_s") is not None:
            found.append(
                f"its input ran out: the load server sent its last of "
                f"{result['input_trades']:,} trades {result['input_ran_out_before_end_s']:g} s "
                "before the window's end"
            )
        elif "input_lines" in result:
            found.append(
                f"its input ran out: all {result['input_lines']:,} lines of the file reached the "
                "sink before the window's end"
            )
        else:
            found.append(
                f"its input ran out: it read all {result.get('input_trades', 0):,} messages "
                "the load server had before its window's end"
            )
    if result.get("input_connections", 0) != result.get("input_connections_expected", 0):
        found.append(
            f"{result['input_connections']} connection(s) to the load server where "
            f"{result['input_connections_expected']} were expected (a reconnect starts the flood "
            "over from its first trade)"
        )
    if result.get("input_ended_early"):
        found.append("a connection to the load server ended before the window's end")
    if result.get("warmup_ended") is False:
        found.append(
            "the warm-up did not end: the window never opened, or the sink had not grown for "
            f"{result['sink_quiet_at_start_s']:g} s when it did (limit {QUIET_LIMIT_S:g} s)"
        )
    if result.get("window_filled") is False:
        found.append(
            f"the window did not fill: it lasted {result.get('window_s')} s, the sink last grew "
            f"{result['sink_quiet_at_end_s']:g} s before its end (limit {QUIET_LIMIT_S:g} s)"
        )
    if result.get("job_running") is False:
        found.append("the job was not running at the window's end")
    return found


def require(run: str, result: dict) -> None:
    """Raises ``InvalidRun`` if ``result`` is not a figure, naming ``run`` and every reason."""
    found = problems(result)
    if found:
        raise InvalidRun(f"{run}: " + "; ".join(found) + ". No rate is reported for it.")
