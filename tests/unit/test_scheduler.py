"""The deadline thread: order, cancellation, survival of failing callbacks and absurd delays,
bounded memory, and the fake clock."""

from __future__ import annotations

import gc
import math
import threading
import time
import tracemalloc
import weakref

import pytest

from actors.scheduler import SWEEP_AT_LEAST, Scheduler
from actors.testing import FakeClock


def test_fires_in_deadline_order_across_delays() -> None:
    scheduler = Scheduler()
    fired: list[str] = []
    done = threading.Event()
    try:
        scheduler.call_later(0.30, lambda: (fired.append("c"), done.set()))
        scheduler.call_later(0.10, lambda: fired.append("a"))
        scheduler.call_later(0.20, lambda: fired.append("b"))
        scheduler.call_later(0.10, lambda: fired.append("a2"))
        assert done.wait(2)
        assert fired == ["a", "a2", "b", "c"]
    finally:
        scheduler.stop()


def test_cancelled_entries_do_not_fire() -> None:
    scheduler = Scheduler()
    fired: list[int] = []
    try:
        entries = [scheduler.call_later(0.05, lambda i=i: fired.append(i)) for i in range(10)]
        for entry in entries[::2]:
            entry.cancel()
        time.sleep(0.3)
        assert fired == [1, 3, 5, 7, 9]
    finally:
        scheduler.stop()


def test_a_failing_callback_does_not_stop_the_others() -> None:
    scheduler = Scheduler()
    done = threading.Event()
    try:
        scheduler.call_later(0.01, lambda: 1 / 0)
        scheduler.call_later(0.05, done.set)
        assert done.wait(2)
    finally:
        scheduler.stop()


def test_stop_ends_the_thread() -> None:
    scheduler = Scheduler()
    scheduler.call_later(60, lambda: None)
    scheduler.stop()
    assert scheduler._thread is not None and not scheduler._thread.is_alive()


def test_stop_can_run_what_is_still_pending() -> None:
    scheduler = Scheduler()
    fired: list[str] = []
    scheduler.call_later(60, lambda: fired.append("pending"))
    scheduler.call_later(60, lambda: fired.append("cancelled")).cancel()
    scheduler.stop(run_pending=True)
    assert fired == ["pending"]


def test_cancel_releases_the_callback_at_once() -> None:
    # A cancelled deadline stays queued until its time; what its callback holds must not.
    scheduler = Scheduler()
    try:

        class Context:
            pass

        ctx = Context()
        ref = weakref.ref(ctx)
        deadline = scheduler.call_later(60.0, lambda held=ctx: None)
        del ctx
        assert ref() is not None
        deadline.cancel()
        gc.collect()
        assert ref() is None
    finally:
        scheduler.stop()


def test_sweep_drops_cancelled_entries_and_keeps_the_live_ones_in_order() -> None:
    scheduler = Scheduler()
    fired: list[int] = []
    try:
        live = []
        for i in range(3 * SWEEP_AT_LEAST):
            deadline = scheduler.call_later(0.3, lambda i=i: fired.append(i))
            if i % 100 == 0:
                live.append(i)
            else:
                deadline.cancel()
        scheduler.call_later(0.3, lambda: fired.append(-1))  # the call that sweeps
        queued = scheduler.queued()
        assert queued <= SWEEP_AT_LEAST + len(live) + 1, queued  # not 3 x SWEEP_AT_LEAST + 1
        deadline_passed = time.monotonic() + 5
        while len(fired) < len(live) + 1 and time.monotonic() < deadline_passed:
            time.sleep(0.01)
        assert fired == [*live, -1]
    finally:
        scheduler.stop()


def test_a_far_deadline_does_not_kill_the_thread() -> None:
    # A wait of 1e10 s overflows the platform's timed wait: the thread must survive it, or no
    # timeout in the peer fires again.
    scheduler = Scheduler()
    done = threading.Event()
    try:
        scheduler.call_later(1e10, lambda: None)
        time.sleep(0.05)  # the thread is waiting for the far deadline now
        scheduler.call_later(0.05, done.set)
        assert done.wait(2)
        assert scheduler._thread is not None and scheduler._thread.is_alive()
    finally:
        scheduler.stop()


@pytest.mark.parametrize("delay", [math.inf, -math.inf, math.nan])
def test_a_delay_that_is_not_finite_is_refused(delay: float) -> None:
    scheduler = Scheduler()
    done = threading.Event()
    try:
        with pytest.raises(ValueError, match="finite"):
            scheduler.call_later(delay, lambda: None)
        scheduler.call_later(0.01, done.set)
        assert done.wait(2)
    finally:
        scheduler.stop()


def test_a_callback_raising_anything_does_not_stop_the_thread() -> None:
    scheduler = Scheduler()
    done = threading.Event()

    def exits() -> None:
        raise SystemExit(3)

    try:
        scheduler.call_later(0.01, exits)
        scheduler.call_later(0.05, done.set)
        assert done.wait(2)
    finally:
        scheduler.stop()


def test_distinct_delays_leave_nothing_behind() -> None:
    # Every distinct timeout used to keep a queue of its own for good (20,000: +12 MB).
    scheduler = Scheduler()
    fired = threading.Semaphore(0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(20_000):
            scheduler.call_later(i * 1e-6, fired.release)
        for _ in range(20_000):
            assert fired.acquire(timeout=5)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        scheduler.stop()
    assert kept < 512 * 1024, kept


def test_fake_clock_fires_what_is_due_in_order_and_nothing_early() -> None:
    clock = FakeClock()
    scheduler = clock.scheduler()
    fired: list[str] = []
    scheduler.call_later(2.0, lambda: fired.append("b"))
    scheduler.call_later(1.0, lambda: fired.append("a"))
    scheduler.call_later(1.0, lambda: fired.append("a2"))
    scheduler.call_later(3.0, lambda: fired.append("c")).cancel()
    assert clock.advance(0.999) == 0 and fired == []
    assert clock.advance(0.001) == 2 and fired == ["a", "a2"]
    assert clock.advance(5) == 1 and fired == ["a", "a2", "b"]
    with pytest.raises(ValueError):
        clock.advance(-1)
