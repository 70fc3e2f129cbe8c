"""Deadlines: one thread that fires callbacks when timeouts expire.

Fabric starts a ``time.After`` per Execute and per launch; a thread per timer would cost far more
than a transaction here. Entries live in one heap ordered by deadline, so the memory and the
time per wake-up depend on the entries pending, not on how many distinct durations were ever
used. The heap holds only ``(when, sequence)`` pairs, which the garbage collector stops
tracking, and the live deadlines are indexed by sequence: a cancelled deadline leaves that
index at once, so nothing of it outlives its transaction (nearly every transaction cancels its
deadline, and at thousands of transactions per second a 10 s timeout would otherwise keep tens
of thousands of objects for the collector's full scans). Its pair is dropped lazily: when it
reaches the top, or in a sweep once most pairs are cancelled ones.

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

    __slots__ = ("callback", "cancelled", "scheduler", "sequence", "when")

    def __init__(
        self, when: float, sequence: int, callback: Callable[[], None], scheduler: Scheduler
    ) -> None:
        self.when = when
        self.sequence = sequence
        self.callback = callback
        self.cancelled = False
        self.scheduler = scheduler

    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        # Drop the callback now: it may hold a transaction's whole context.
        self.callback = _nothing
        scheduler = self.scheduler
        scheduler._live.pop(self.sequence, None)  # atomic: no lock needed
        scheduler._cancelled += 1  # a hint for sweeping; a lost update does no harm


def _nothing() -> None:
    pass


class Scheduler:
    """Runs callbacks on its own thread after a delay. Callbacks must be quick (tell, set)."""

    def __init__(
        self, name: str = "ccactors-deadlines", *, clock: Clock = time.monotonic, start: bool = True
    ) -> None:
        self._clock = clock
        # (when, sequence): the sequence keeps equal deadlines in scheduling order and finds
        # the entry in _live, unless it was cancelled.
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, Deadline] = {}
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
        when = self._clock() + delay
        with self._cond:
            if self._stopped:
                raise RuntimeError("scheduler stopped")
            heap = self._heap
            if self._cancelled >= SWEEP_AT_LEAST and 2 * self._cancelled > len(heap):
                self._sweep()
            sequence = next(self._sequence)
            entry = self._live[sequence] = Deadline(when, sequence, callback, self)
            heapq.heappush(heap, (when, sequence))
            if heap[0][1] == sequence:  # a new soonest deadline: the thread must wait less
                self._cond.notify()
        return entry

    def queued(self) -> int:
        """Entries held, cancelled or not (bounded by the sweep)."""
        return len(self._heap)

    def pending(self) -> int:
        """Entries that will still fire (a scan: for tests and diagnostics)."""
        with self._cond:
            return len(self._live)

    def _sweep(self) -> None:
        """Drop every cancelled entry (lock held)."""
        live = self._live
        self._heap = [item for item in self._heap if item[1] in live]
        heapq.heapify(self._heap)
        self._cancelled = 0

    def stop(self, run_pending: bool = False) -> None:
        """Stop the thread. With ``run_pending``, first run every callback still scheduled,
        now, so that whatever waits on them (a caller's timeout) ends instead of hanging."""
        with self._cond:
            self._stopped = True
            live = self._live
            pending = [live[seq] for _, seq in sorted(self._heap) if seq in live]
            self._heap = []
            live.clear()
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
        heap, live = self._heap, self._live
        now = self._clock()
        due = []
        while heap and (heap[0][1] not in live or heap[0][0] <= now):
            entry = live.pop(heapq.heappop(heap)[1], None)
            if entry is None or entry.cancelled:
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
