"""The deadline thread: order, cancellation, and survival of failing callbacks."""

from __future__ import annotations

import threading
import time

from actors.scheduler import Scheduler


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
    assert not scheduler._thread.is_alive()


def test_stop_can_run_what_is_still_pending() -> None:
    scheduler = Scheduler()
    fired: list[str] = []
    scheduler.call_later(60, lambda: fired.append("pending"))
    scheduler.call_later(60, lambda: fired.append("cancelled")).cancel()
    scheduler.stop(run_pending=True)
    assert fired == ["pending"]
