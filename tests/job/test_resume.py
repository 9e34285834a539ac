"""Where a run starts (job/resume.py): one checkpoint folder per job, named after its outputs; the
newest complete checkpoint resumed and older runs' folders removed; one run of a job at a time."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from connectors.binance.streams import home_shard
from job.main import parse_args
from job.resume import (
    AlreadyRunning,
    checkpoint_path,
    hold,
    job_key,
    keep_homes,
    remove_dead_part_files,
    start_point,
)


def checkpoint(job_dir: Path, run: str, n: int, at: float) -> Path:
    chk = job_dir / run / f"chk-{n}"
    chk.mkdir(parents=True)
    (chk / "_metadata").write_bytes(b"x")
    os.utime(chk / "_metadata", (at, at))
    return chk


def test_the_job_is_its_outputs_and_stream_kind(tmp_path):
    out = str(tmp_path / "market")
    key = job_key(out, "trade", ["btcusdt"])
    assert key.startswith("market-trade-")
    assert job_key(out, "trade", ["ethusdt", "solusdt"]) == key  # other symbols: same outputs
    assert job_key(out + "/", "trade", None) == key
    assert job_key(out, "aggTrade", ["btcusdt"]) != key  # other ids
    assert job_key(str(tmp_path / "other"), "trade", ["btcusdt"]) != key
    printed = job_key(None, "trade", ["ethusdt", "btcusdt"])
    assert (
        printed
        == job_key(None, "trade", ["btcusdt", "ethusdt"])
        != job_key(None, "trade", ["btcusdt"])
    )


def test_the_newest_complete_checkpoint_is_resumed_and_older_runs_removed(tmp_path):
    now = time.time()
    old = checkpoint(tmp_path, "run-a", 7, now - 100)
    checkpoint(tmp_path, "run-b", 3, now - 20)
    newest = checkpoint(tmp_path, "run-b", 4, now - 10)
    (tmp_path / "run-c" / "chk-1").mkdir(parents=True)  # died before completing one
    start = start_point(tmp_path, fresh=False, chosen=None)
    assert (start.checkpoint, start.claim) == (newest, True)
    assert "resuming from" in start.message and str(newest) in start.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-b"]
    assert [p.name for p in (tmp_path / "run-b").iterdir()] == ["chk-4"]
    assert not old.exists()


def test_fresh_removes_every_earlier_run_and_a_chosen_checkpoint_removes_nothing(tmp_path):
    chk = checkpoint(tmp_path, "run-a", 2, time.time())
    chosen = start_point(tmp_path, fresh=False, chosen=chk)
    assert (chosen.checkpoint, chosen.claim) == (chk, False) and chk.exists()
    start = start_point(tmp_path, fresh=True, chosen=None)
    assert start.checkpoint is None and list(tmp_path.iterdir()) == []
    assert start.message == "--fresh: starting fresh; the checkpoints of 1 earlier run removed"
    assert start_point(tmp_path, fresh=False, chosen=None).message == (
        f"no checkpoint of this job in {tmp_path}: starting fresh"
    )


def test_a_second_run_of_the_same_job_is_refused_while_the_first_lives(tmp_path):
    first = hold(tmp_path / "job")
    with pytest.raises(AlreadyRunning, match="another run of this job"):
        hold(tmp_path / "job")
    first.close()
    hold(tmp_path / "job").close()


def test_from_checkpoint_takes_the_folder_its_metadata_or_a_file_uri(tmp_path):
    chk = checkpoint(tmp_path, "run", 1, time.time())
    for given in (str(chk), str(chk / "_metadata"), chk.as_uri()):
        assert checkpoint_path(given) == chk
    assert parse_args(["--from-checkpoint", str(chk)]).from_checkpoint == chk
    for refused in (["--fresh"], ["--demo"]):
        with pytest.raises(SystemExit):
            parse_args(["--from-checkpoint", str(chk), *refused])
    with pytest.raises(ValueError, match="no checkpoint or savepoint"):
        checkpoint_path(str(tmp_path))


def test_a_rerun_keeps_each_symbol_on_its_shard_and_puts_new_ones_home(tmp_path):
    """Positions are kept per shard: a rerun keeps every symbol where the previous run had it
    (round-robin over a changed list would shift them), puts one new to the job on its
    ``home_shard`` (where a listing joined the running job), and names what moved only when the
    shard count changed."""
    fits = lambda group: len(group) <= 3  # noqa: E731
    first = [["btcusdt", "solusdt"], ["ethusdt", "xrpusdt"]]
    assert keep_homes(tmp_path, first, fits) == (first, [])  # first run
    # adausdt listed in front: round-robin would move every other symbol
    shifted = [["adausdt", "ethusdt"], ["btcusdt", "solusdt", "xrpusdt"]]
    plan, moved = keep_homes(tmp_path, shifted, fits)
    home = home_shard("adausdt", 2)
    assert moved == [] and plan[1 - home] == first[1 - home]
    assert plan[home] == [*first[home], "adausdt"]
    # xrpusdt delisted: it leaves, nothing else moves
    plan, moved = keep_homes(tmp_path, [[s for s in g if s != "xrpusdt"] for g in plan], fits)
    assert moved == [] and all("xrpusdt" not in group for group in plan)
    # three shards now: as planned, and what moved is named
    three = [["btcusdt", "adausdt"], ["ethusdt"], ["solusdt"]]
    moved_to_three = ["adausdt", "solusdt"] if home == 1 else ["solusdt"]
    assert keep_homes(tmp_path, three, fits) == (three, moved_to_three)
    # a new symbol whose home shard is full: as planned
    keep_homes(tmp_path, [["a1usdt", "a2usdt", "a3usdt"], ["b1usdt"]], fits)
    new = next(s for s in (f"n{n}usdt" for n in range(100)) if home_shard(s, 2) == 0)
    given = [["a1usdt", "a3usdt", new], ["a2usdt", "b1usdt"]]
    assert keep_homes(tmp_path, given, fits) == (given, ["a2usdt"])


def test_part_files_a_killed_run_left_in_progress_go_once_the_rerun_has_checkpointed(tmp_path):
    started = time.time()
    out = tmp_path / "out" / "trades" / "hour=2024-08-09--00"
    out.mkdir(parents=True)
    names = (".part-a-0-3.inprogress.x", ".part-b-0-0.inprogress.y", "part-a-0-2")
    dead, live, committed = (out / n for n in names)
    for path in (dead, live, committed):
        path.write_text("{}\n")
    os.utime(dead, (started - 5, started - 5))
    os.utime(committed, (started - 5, started - 5))
    job_dir = tmp_path / "job"
    checkpoint(job_dir, "run", 1, started + 1)

    def checkpoints_come_and_go() -> None:  # as Flink does, retaining 2
        for n in (2, 3):
            time.sleep(1.5)
            checkpoint(job_dir, "run", n, started + n)
            shutil.rmtree(job_dir / "run" / f"chk-{n - 1}")

    flink = threading.Thread(target=checkpoints_come_and_go)
    flink.start()
    removed = remove_dead_part_files(tmp_path / "out", job_dir, started, threading.Event())
    flink.join()
    assert removed == [dead]
    assert not dead.exists() and live.exists() and committed.exists()
    stop = threading.Event()
    stop.set()  # the run ended first: nothing removed
    assert remove_dead_part_files(tmp_path / "out", tmp_path / "none", started, stop) == []
