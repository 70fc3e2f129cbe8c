"""Deadlines: one thread that fires callbacks when timeouts expire.

Fabric starts a ``time.After`` per Execute and per launch; a thread per timer would cost far more
than a transaction here. Entries live in one heap ordered by deadline, so the memory and the
time per wake-up depend on the entries pending, not on how many distinct durations were ever
used. Cancelled entries are dropped lazily: when they reach the top, or in a sweep once most
entries are cancelled ones (nearly every transaction cancels its deadline, and a 10 s timeout at
thousands of transactions per second would otherwise keep tens of thousands of them for the
garbage collector to scan).

The thread must not die: every timeout in the peer depends on it. A callback that raises is
logged, a wait is bounded whatever the deadline, and delays that are not finite numbers are
refused where they are scheduled. The clock is injectable; with ``start=False`` no thread runs
and :meth:`Scheduler.run_due` fires what is due (see :class:`actors.testing.FakeClock`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


SWEEP_AT_LEAST = 4096
"""Cancelled entries waiting before a sweep is considered (it runs when they are the most)."""

MAX_WAIT = 60.0
"""The longest single wait of the thread: a far deadline is waited for in steps, so that no
value can overflow the platform's timed wait."""

Clock = Callable[[], float]


class Deadline:
    """A scheduled callback; ``cancel()`` is cheap and safe from any thread."""

    __slots__ = ("callback", "cancelled", "scheduler", "when")

    def __init__(self, when: float, callback: Callable[[], None], scheduler: Scheduler) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False
        self.scheduler = scheduler

    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        # Drop the callback now: it may hold a transaction's whole context.
        self.callback = _nothing
        self.scheduler._cancelled += 1  # a hint for sweeping; a lost update does no harm


def _nothing() -> None:
    pass


class Scheduler:
    """Runs callbacks on its own thread after a delay. Callbacks must be quick (tell, set)."""

    def __init__(
        self, name: str = "ccactors-deadlines", *, clock: Clock = time.monotonic, start: bool = True
    ) -> None:
        self._clock = clock
        # (when, sequence, entry): the sequence keeps equal deadlines in scheduling order.
        self._heap: list[tuple[float, int, Deadline]] = []
        self._sequence = itertools.count()
        self._cancelled = 0  # of the entries in the heap, roughly how many are cancelled
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Deadline:
        """Run ``callback`` after ``delay`` seconds (a finite number; ValueError otherwise)."""
        if not math.isfinite(delay):
            raise ValueError(f"delay must be a finite number of seconds, got {delay!r}")
        entry = Deadline(self._clock() + delay, callback, self)
        with self._cond:
            if self._stopped:
                raise RuntimeError("scheduler stopped")
            heap = self._heap
            if self._cancelled >= SWEEP_AT_LEAST and 2 * self._cancelled > len(heap):
                self._sweep()
            heapq.heappush(heap, (entry.when, next(self._sequence), entry))
            if heap[0][2] is entry:  # a new soonest deadline: the thread must wait less
                self._cond.notify()
        return entry

    def queued(self) -> int:
        """Entries held, cancelled or not (bounded by the sweep)."""
        return len(self._heap)

    def pending(self) -> int:
        """Entries that will still fire (a scan: for tests and diagnostics)."""
        with self._cond:
            return sum(1 for _, _, entry in self._heap if not entry.cancelled)

    def _sweep(self) -> None:
        """Drop every cancelled entry (lock held)."""
        self._heap = [item for item in self._heap if not item[2].cancelled]
        heapq.heapify(self._heap)
        self._cancelled = 0

    def stop(self, run_pending: bool = False) -> None:
        """Stop the thread. With ``run_pending``, first run every callback still scheduled,
        now, so that whatever waits on them (a caller's timeout) ends instead of hanging."""
        with self._cond:
            self._stopped = True
            pending = [entry for _, _, entry in sorted(self._heap) if not entry.cancelled]
            self._heap = []
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if run_pending:
            for entry in pending:
                _fire(entry)

    def run_due(self) -> int:
        """Fire, on the calling thread, every callback whose deadline has passed; how many."""
        with self._cond:
            due, _ = self._take_due()
        for entry in due:
            _fire(entry)
        return len(due)

    def _take_due(self) -> tuple[list[Deadline], float | None]:
        """Pop the due entries (lock held); also the next deadline, if any."""
        heap = self._heap
        now = self._clock()
        due = []
        while heap and (heap[0][2].cancelled or heap[0][0] <= now):
            entry = heapq.heappop(heap)[2]
            if entry.cancelled:
                self._cancelled -= 1
            else:
                due.append(entry)
        return due, (heap[0][0] - now if heap else None)

    def _run(self) -> None:
        while True:
            try:
                with self._cond:
                    if self._stopped:
                        return
                    due, wait = self._take_due()
                    if not due:
                        self._cond.wait(MAX_WAIT if wait is None else min(wait, MAX_WAIT))
                        continue
                for entry in due:
                    _fire(entry)
            except Exception:  # whatever it was, every other timeout still needs this thread
                log.exception("deadline thread: unexpected error")
                time.sleep(0.01)


def _fire(entry: Deadline) -> None:
    try:
        entry.callback()
    except BaseException:  # a failing callback must not stop every other timeout
        log.exception("deadline callback failed")
