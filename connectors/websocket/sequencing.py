"""Sequence continuity per key (trade ids per symbol): gaps, duplicates and reordering.

The tracker is the one judge of what has been delivered: live records and backfilled ones both pass
through ``accept``, so a record that arrives both ways passes once. Not thread-safe: the bridge
calls it under its lock.
"""

from __future__ import annotations

from enum import Enum

MAX_OPEN_GAPS = 1024  # per key; the oldest are forgotten (a late fill then counts as a duplicate)


class Verdict(Enum):
    NEXT = "next"  # seq == last + 1 (or the first seen)
    GAP = "gap"  # seq > last + 1: the ids between are missing
    LATE = "late"  # fills part of an earlier gap: reordered or backfilled, delivered
    DUPLICATE = "duplicate"  # seen before: dropped

    @property
    def deliver(self) -> bool:
        return self is not Verdict.DUPLICATE


class SequenceTracker:
    """Keys name the sequences (Binance: a symbol), seqs are their integer ids."""

    def __init__(self) -> None:
        # key -> last seq; public so a hot loop can take the common case inline
        self.last_seqs: dict[str, int] = {}
        # key -> list of [first, last] missing ranges, oldest first
        self._gaps: dict[str, list[list[int]]] = {}
        self.gaps = 0  # gaps seen
        self.missing = 0  # ids those gaps lacked when seen
        self.duplicates = 0
        self.reordered = 0  # gap ids that arrived later (live or backfilled)

    def restore(self, key: str, last_seq: int) -> None:
        """Resume after ``last_seq`` (from checkpointed state) with no memory of older gaps."""
        self.last_seqs[key] = last_seq

    def accept(self, key: str, seq: int) -> tuple[Verdict, int]:
        """Returns the verdict and, for a GAP, how many ids are missing before ``seq``."""
        last = self.last_seqs.get(key)
        if last is None or seq == last + 1:
            self.last_seqs[key] = seq
            return Verdict.NEXT, 0
        if seq > last:
            missing = seq - last - 1
            self.last_seqs[key] = seq
            gaps = self._gaps.setdefault(key, [])
            gaps.append([last + 1, seq - 1])
            if len(gaps) > MAX_OPEN_GAPS:
                del gaps[0]
            self.gaps += 1
            self.missing += missing
            return Verdict.GAP, missing
        if self._fill(key, seq):
            self.reordered += 1
            return Verdict.LATE, 0
        self.duplicates += 1
        return Verdict.DUPLICATE, 0

    def is_missing(self, key: str, seq: int) -> bool:
        """Whether ``seq`` lies in one of ``key``'s open gaps (``accept`` would deliver it)."""
        return any(first <= seq <= last for first, last in self._gaps.get(key, ()))

    def open_gaps(self, key: str, first: int, last: int) -> list[tuple[int, int]]:
        """The still missing ranges of ``key`` within ``first..last``, oldest first. A gap stays
        open after a backfill reported it unfillable: should its ids still come, they pass."""
        return [
            (max(a, first), min(b, last))
            for a, b in self._gaps.get(key, ())
            if a <= last and b >= first
        ]

    def _fill(self, key: str, seq: int) -> bool:
        gaps = self._gaps.get(key)
        if not gaps:
            return False
        for i, (first, last) in enumerate(gaps):
            if first <= seq <= last:
                pieces = [r for r in ([first, seq - 1], [seq + 1, last]) if r[0] <= r[1]]
                gaps[i : i + 1] = pieces
                return True
        return False
