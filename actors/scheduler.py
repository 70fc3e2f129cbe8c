"""Deadlines: one thread that fires callbacks when timeouts expire.

Fabric starts a ``time.After`` per Execute and per launch; a thread per timer would cost far more
than a transaction here. Nearly every deadline shares one of a few durations (the execute
timeout, the startup timeout), so entries are kept in one FIFO per duration: appending is O(1),
the soonest deadline is always at the head of some FIFO, and cancelled entries are dropped
lazily: when they reach the head, or in a sweep once most entries are cancelled ones (nearly
every transaction cancels its deadline, and a 10 s timeout at thousands of transactions per
second would otherwise keep tens of thousands of them for the garbage collector to scan).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)


SWEEP_AT_LEAST = 4096
"""Cancelled entries waiting before a sweep is considered (it runs when they are the most)."""


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

    def __init__(self, name: str = "ccactors-deadlines") -> None:
        self._queues: dict[float, deque[Deadline]] = {}
        self._entries = 0  # in the FIFOs, cancelled or not
        self._cancelled = 0  # of those, roughly how many are cancelled
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Deadline:
        entry = Deadline(time.monotonic() + delay, callback, self)
        with self._cond:
            if self._stopped:
                raise RuntimeError("scheduler stopped")
            if self._cancelled >= SWEEP_AT_LEAST and 2 * self._cancelled > self._entries:
                self._sweep()
            self._entries += 1
            queue = self._queues.get(delay)
            if queue is None:
                queue = self._queues[delay] = deque()
            # Same-delay entries expire in order, so only a new head can be the next deadline.
            if not queue:
                self._cond.notify()
            queue.append(entry)
        return entry

    def _sweep(self) -> None:
        """Drop every cancelled entry (lock held). Order within each FIFO is kept."""
        for delay, queue in self._queues.items():
            self._queues[delay] = deque(e for e in queue if not e.cancelled)
        self._entries = sum(len(queue) for queue in self._queues.values())
        self._cancelled = 0

    def stop(self, run_pending: bool = False) -> None:
        """Stop the thread. With ``run_pending``, first run every callback still scheduled,
        now, so that whatever waits on them (a caller's timeout) ends instead of hanging."""
        with self._cond:
            self._stopped = True
            pending = [e for q in self._queues.values() for e in q if not e.cancelled]
            self._queues.clear()
            self._cond.notify()
        self._thread.join(timeout=5)
        if run_pending:
            for entry in pending:
                try:
                    entry.callback()
                except Exception:
                    log.exception("deadline callback failed")

    def _run(self) -> None:
        while True:
            due: list[Deadline] = []
            with self._cond:
                if self._stopped:
                    return
                now = time.monotonic()
                soonest = None
                for queue in self._queues.values():
                    while queue and (queue[0].cancelled or queue[0].when <= now):
                        entry = queue.popleft()
                        self._entries -= 1
                        if entry.cancelled:
                            self._cancelled -= 1
                        else:
                            due.append(entry)
                    if queue and (soonest is None or queue[0].when < soonest):
                        soonest = queue[0].when
                if not due:
                    self._cond.wait(None if soonest is None else soonest - now)
                    continue
            for entry in due:
                try:
                    entry.callback()
                except Exception:  # a failing callback must not stop every other timeout
                    log.exception("deadline callback failed")
