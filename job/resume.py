"""Where a run of the job starts: from the last completed checkpoint of the previous run of the
same job, or afresh.

The same job is the same outputs: the output folder (``--out``, absolute) and the stream kind, or,
printing to stdout, the stream kind and the symbols. A checkpoint is a promise about what the
outputs hold (the committed files, the pending ones it commits on restore, the feed positions after
which nothing is written yet): resumed against other outputs it would leave a gap in them, and a
fresh start against the same outputs writes again what they hold. So the key is what is written,
not how (the shards, the bridge options, the Flink settings may change between runs), and the
stream kind because trade ids and aggregate ids are different positions.

Layout: ``<checkpoint dir>/<job key>/<Flink job id>/chk-<n>/_metadata``, where Flink makes the
last two levels for each run. A checkpoint is complete once its ``_metadata`` is written; the
newest complete one is resumed (Flink 2.3 writes ``_metadata`` on a local file system through its
recoverable writer: a temporary file, renamed when complete), in CLAIM mode so that Flink deletes
it once the new run's own checkpoints replace it, and the folders of older runs are removed:
storage stays at about two runs' retained checkpoints whatever the number of reruns.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlparse

from connectors.binance.streams import home_shard

METADATA = "_metadata"
_CHECKPOINT = re.compile(r"chk-(\d+)$")


@dataclasses.dataclass(frozen=True)
class StartPoint:
    checkpoint: Path | None  # restored from, or None: a fresh start
    claim: bool  # whether the run owns the restored checkpoint (deletes it once replaced)
    message: str  # one line for the console: what was chosen and why


def job_key(out: str | None, stream: str, symbols: Sequence[str] | None, scope: str = "") -> str:
    """The name of this job's checkpoint folder: readable, and unique to its outputs."""
    if out:
        what, name = f"out {os.path.abspath(out)} {stream}", Path(os.path.abspath(out)).name
    else:
        listed = ",".join(sorted(symbols)) if symbols is not None else f"all {scope}"
        what, name = f"stdout {stream} {listed}", "stdout"
    digest = hashlib.sha256(what.encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)[:40]}-{stream}-{digest}"


def local_dir(uri: str) -> Path | None:
    """The folder of a ``file:`` URI or a plain path; None for other file systems."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


def checkpoint_path(text: str) -> Path:
    """A checkpoint or savepoint folder (or its ``_metadata``), for ``--from-checkpoint``."""
    path = local_dir(text) or Path(text)
    if path.name == METADATA:
        path = path.parent
    if not (path / METADATA).is_file():
        raise ValueError(f"{text} is no checkpoint or savepoint: it has no {METADATA}")
    return path.resolve()


def completed_checkpoints(job_dir: Path, since: float = 0.0) -> list[Path]:
    """The complete checkpoints of every run in ``job_dir`` (taken after ``since``), oldest
    first. A running job deletes the ones it replaces meanwhile: those are left out."""
    found = []
    for metadata in job_dir.glob(f"*/chk-*/{METADATA}"):
        number = _CHECKPOINT.match(metadata.parent.name)
        taken = _mtime(metadata)
        if number is not None and taken is not None and taken > since:
            found.append((taken, int(number.group(1)), metadata.parent))
    return [path for *_, path in sorted(found)]


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def start_point(
    job_dir: Path, *, fresh: bool, chosen: Path | None, fresh_why: str = ""
) -> StartPoint:
    """What this run resumes from, and the folders of earlier runs that are no longer needed
    removed: all of them on a fresh start, those older than the resumed one otherwise (nothing
    when the checkpoint was ``chosen``: it may be the one the user wants to keep). The caller
    ``hold``s ``job_dir``."""
    if chosen is not None:
        return StartPoint(chosen, False, f"resuming from {chosen} (--from-checkpoint)")
    latest = None if fresh else next(reversed(completed_checkpoints(job_dir)), None)
    if latest is None:
        removed = _remove_runs(job_dir, keep=None)
        why = fresh_why or ("--fresh" if fresh else f"no checkpoint of this job in {job_dir}")
        extra = f"; the checkpoints of {removed} earlier run{'s' * (removed > 1)} removed"
        return StartPoint(None, False, f"{why}: starting fresh{extra if removed else ''}")
    _remove_runs(job_dir, keep=latest)
    taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime((latest / METADATA).stat().st_mtime))
    return StartPoint(
        latest,
        True,
        f"resuming from {latest} (taken {taken}), the last completed checkpoint of this job's"
        " previous run (--fresh starts over)",
    )


def _remove_runs(job_dir: Path, keep: Path | None) -> int:
    """Removes the run folders but the one holding ``keep`` (a checkpoint), and the checkpoints
    older than ``keep`` beside it; returns how many run folders went."""
    removed = 0
    for run in job_dir.iterdir():
        if run.is_dir() and (keep is None or run != keep.parent):
            shutil.rmtree(run, ignore_errors=True)
            removed += 1
    if keep is not None:
        for older in keep.parent.glob("chk-*"):
            if older != keep:
                shutil.rmtree(older, ignore_errors=True)
    return removed


def keep_homes(
    job_dir: Path,
    plan: Sequence[Sequence[str]],
    fits: Callable[[Sequence[str]], bool],
) -> tuple[list[list[str]], list[str]]:
    """The shards of this run, and the symbols on another shard than in the previous run (whose
    plan is recorded in ``job_dir``, then replaced by this run's). Feed positions are kept per
    shard, so a symbol's shard is its home: with as many shards as before, each symbol stays on
    its shard, and one new to the job goes to ``home_shard`` (where a listing joined the running
    job too, its position with it). With another shard count, or a shard that would not ``fit``
    on one connection, ``plan`` as given, and whatever it moved is named."""
    record = job_dir / "shards.json"
    try:
        previous = [list(group) for group in json.loads(record.read_text())]
    except (FileNotFoundError, ValueError):
        previous = []
    wanted = [symbol for group in plan for symbol in group]
    kept = _kept(previous, wanted) if len(previous) == len(plan) else None
    if kept is None or not all(map(fits, kept)):
        kept = [list(group) for group in plan]
    record.write_text(json.dumps(kept))
    before = {s: i for i, group in enumerate(previous) for s in group}
    moved = sorted(s for i, group in enumerate(kept) for s in group if before.get(s, i) != i)
    return kept, moved


def _kept(previous: list[list[str]], wanted: list[str]) -> list[list[str]]:
    present = set(wanted)
    groups = [[s for s in group if s in present] for group in previous]
    placed = {s for group in groups for s in group}
    for symbol in wanted:
        if symbol not in placed:
            groups[home_shard(symbol, len(groups))].append(symbol)
    return groups


def remove_dead_part_files(
    out: Path, job_dir: Path, started: float, stop: threading.Event, checkpoints: int = 3
) -> list[Path]:
    """The in-progress part files a killed run left in ``out``, removed once this run (started
    at ``started``) has completed ``checkpoints`` checkpoints; returns them (none if ``stop`` is
    set first).

    A run killed outright leaves a hidden in-progress file in each output it was writing: what it
    wrote after its last checkpoint, which no checkpoint names, so nothing commits or reads it
    (the rerun writes those trades again from the history). The one file its checkpoint does name
    the rerun resumes, rolls at once (its age is past the roll interval) and commits with its next
    checkpoint. So once this run has checkpointed a few times, an in-progress file it has not
    touched since it started is dead: it can only be one of those, and no checkpoint of this run,
    which a restart or the next rerun would resume from, names it."""
    seen: set[Path] = set()  # Flink deletes all but the last few: count them as they come
    while not stop.wait(1.0):
        seen.update(completed_checkpoints(job_dir, since=started))
        if len(seen) >= checkpoints:
            # the live run renames its own in-progress files as it commits them: _mtime None
            dead = [
                p for p in out.rglob(".part-*.inprogress.*") if (_mtime(p) or started) < started
            ]
            for path in dead:
                path.unlink(missing_ok=True)
            return dead
    return []


class AlreadyRunning(Exception):
    pass


def hold(job_dir: Path) -> IO[str]:
    """``job_dir``, made if need be, locked for as long as the process lives (the kernel lets go
    however the process ends): a second run of the same job would write the same outputs."""
    job_dir.mkdir(parents=True, exist_ok=True)
    lock = open(job_dir / "lock", "a+")  # noqa: SIM115 - held open until the process ends
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise AlreadyRunning(f"another run of this job holds {job_dir / 'lock'}") from None
    return lock
