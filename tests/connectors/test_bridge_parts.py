"""The bridge's parts alone: sequencing, the bounded buffer and its barriers, the gates, backoff,
the log limiter."""

import logging
import threading
import time

import pytest

from connectors.websocket.backoff import Backoff
from connectors.websocket.buffer import Barrier, BoundedBuffer
from connectors.websocket.errors import BufferOverflow
from connectors.websocket.gate import AttemptGate, WeightGate
from connectors.websocket.ratelimited_log import RateLimitedLog
from connectors.websocket.sequencing import SequenceTracker, Verdict


def test_sequence_gap_reorder_duplicate():
    seq = SequenceTracker()
    verdicts = [seq.accept("BTCUSDT", n)[0] for n in (10, 11, 14, 12, 12, 15, 9, 13)]
    assert verdicts == [
        Verdict.NEXT,
        Verdict.NEXT,
        Verdict.GAP,
        Verdict.LATE,
        Verdict.DUPLICATE,
        Verdict.NEXT,
        Verdict.DUPLICATE,
        Verdict.LATE,
    ]
    assert (seq.gaps, seq.missing, seq.reordered, seq.duplicates) == (
        1,
        2,
        2,
        2,
    )  # 12 and 13 came late
    assert seq.accept("ETHUSDT", 5) == (Verdict.NEXT, 0)  # keys are independent
    assert seq.accept("BTCUSDT", 20) == (Verdict.GAP, 4)


def test_sequence_restore_drops_what_was_delivered_before():
    seq = SequenceTracker()
    seq.restore("BTCUSDT", 100)
    assert [seq.accept("BTCUSDT", n)[0] for n in (99, 100, 101)] == [
        Verdict.DUPLICATE,
        Verdict.DUPLICATE,
        Verdict.NEXT,
    ]


def test_buffer_drop_policies_count_what_they_drop():
    newest = BoundedBuffer(3, "drop_newest")
    assert newest.put_many([1, 2, 3, 4, 5]) == 2
    assert newest.drain(10) == [1, 2, 3] and newest.dropped == 2
    oldest = BoundedBuffer(3, "drop_oldest")
    oldest.put_many([1, 2])
    assert oldest.put_many([3, 4, 5]) == 2
    assert oldest.drain(10) == [3, 4, 5] and oldest.dropped == 2
    with pytest.raises(BufferOverflow):
        BoundedBuffer(1, "fail").put_many([1, 2])


def test_buffer_block_waits_for_the_consumer_and_loses_nothing():
    buffer = BoundedBuffer(10, "block")
    producer = threading.Thread(
        target=lambda: [buffer.put_many(list(range(i, i + 7))) for i in range(0, 700, 7)]
    )
    producer.start()
    got = []
    while producer.is_alive() or len(buffer):
        got += buffer.drain(4)
        assert len(buffer) <= 10
    producer.join()
    assert got == list(range(700)) and buffer.dropped == 0 and buffer.high_water == 10


def test_buffer_close_releases_a_blocked_producer():
    buffer = BoundedBuffer(1)
    buffer.put_many([1])
    producer = threading.Thread(target=buffer.put_many, args=([2],))
    producer.start()
    time.sleep(0.1)
    assert producer.is_alive()
    buffer.close()
    producer.join(2)
    assert not producer.is_alive()


def test_gate_paces_attempts_and_honours_retry_after(tmp_path):
    gate = AttemptGate("ws://127.0.0.1:1/ws/x", str(tmp_path), limit=3, window=60)
    assert [gate.reserve() for _ in range(3)] == [0, 0, 0]
    assert 59 < gate.reserve() <= 60  # the 4th attempt waits for the window to free a slot
    other = AttemptGate("ws://127.0.0.1:2/ws/x", str(tmp_path))
    other.hold_off(5)
    # A fresh gate for the same host (a restarted worker process) sees the hold-off.
    assert 4 < AttemptGate("ws://127.0.0.1:2/ws/y", str(tmp_path)).reserve() <= 5


def test_a_barrier_holds_back_what_follows_until_closed_and_drains_its_own_first():
    buffer = BoundedBuffer(5)
    buffer.put_many([1, 2])
    barrier = Barrier()
    buffer.put_barrier(barrier)
    buffer.put_many([10, 11])  # live records after a gap: held
    assert buffer.drain(10) == [1, 2] and buffer.drain(10) == []
    buffer.add_to_barrier(barrier, [3, 4])  # fetched records: out before the held ones
    assert buffer.drain(1) == [3] and buffer.drain(10) == [4]
    buffer.add_to_barrier(barrier, [5])
    buffer.close_barrier(barrier)
    assert len(buffer) == 3
    assert buffer.drain(10) == [5, 10, 11] and len(buffer) == 0


def test_held_records_count_against_the_capacity_and_drop_oldest_spares_barriers():
    buffer = BoundedBuffer(3, "drop_oldest")
    barrier = Barrier()
    buffer.put_many([1])
    buffer.put_barrier(barrier)
    assert buffer.put_many([2, 3, 4]) == 2  # 1 and 2 go, the barrier stays
    buffer.close_barrier(barrier)
    assert buffer.drain(10) == [3, 4]


def test_weight_gate_keeps_a_minute_budget_and_retry_after_across_processes(tmp_path):
    gate = WeightGate("https://127.0.0.1:1", budget=60, state_dir=str(tmp_path))
    if time.time() % 60 > 55:  # the budget is per calendar minute: start in a fresh one
        time.sleep(61 - time.time() % 60)
    assert [gate.reserve(25), gate.reserve(25)] == [0, 0]
    assert 0 < gate.reserve(25) <= 60  # over the budget: wait for the next minute
    other = WeightGate("https://127.0.0.1:2", budget=6000, state_dir=str(tmp_path))
    other.observe(5990)  # the server says this IP spent that much (other programs too)
    assert other.reserve(25) > 0
    WeightGate("https://127.0.0.1:3", budget=6000, state_dir=str(tmp_path)).hold_off(7)
    assert (
        6 < WeightGate("https://127.0.0.1:3", 6000, str(tmp_path)).reserve(1) <= 7
    )  # another process


def test_backoff_doubles_up_to_its_cap_within_its_jitter_and_resets():
    backoff = Backoff(initial=0.5, maximum=4.0, jitter=0.2)
    delays = [backoff.next_delay() for _ in range(6)]
    for delay, base in zip(delays, [0.5, 1.0, 2.0, 4.0, 4.0, 4.0], strict=True):
        assert base * 0.8 <= delay <= base * 1.2
    assert backoff.attempts == 6
    backoff.reset()
    assert backoff.attempts == 0 and 0.4 <= backoff.next_delay() <= 0.6


def test_log_limiter_counts_what_it_suppresses(caplog):
    limiter = RateLimitedLog(logging.getLogger("flood"), burst=3, interval=0.2)
    with caplog.at_level(logging.WARNING, "flood"):
        for i in range(50):
            limiter.warning("bad frame", "bad frame %d", i)
        time.sleep(0.25)
        limiter.flush()
    messages = [r.getMessage() for r in caplog.records]
    assert messages[:3] == ["bad frame 0", "bad frame 1", "bad frame 2"]
    assert messages[3].startswith("bad frame: 47 similar messages suppressed")
    assert len(messages) == 4 and limiter.suppressed_total == 47
