"""Test hooks: what tests and the fault tool use to break or steer the peer on purpose.

Fabric counterpart: none (Go tests reach into packages directly); the idea is ``trio.testing``:
one module holds every hook, so production modules carry none and nothing outside tests and
developer tooling imports this.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.scheduler import Scheduler


@dataclass(frozen=True)
class Poison:
    """Fault injection: no actor handles this message, so telling it to one makes the actor
    raise inside ``on_receive`` and die the way a bug would kill it."""

    reason: str = "injected fault"


class FakeClock:
    """A monotonic clock that moves only when told to (as trio's ``MockClock``). Call it for
    the time; :meth:`scheduler` gives a Scheduler on it without a thread, whose due callbacks
    :meth:`advance` fires on the calling thread, so a test steps through timeouts, backoffs
    and restart windows without sleeping."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._schedulers: list[Scheduler] = []

    def __call__(self) -> float:
        return self.now

    def scheduler(self) -> Scheduler:
        scheduler = Scheduler(clock=self, start=False)
        self._schedulers.append(scheduler)
        return scheduler

    def pending(self) -> int:
        """Callbacks scheduled on this clock that have yet to fire."""
        return sum(scheduler.pending() for scheduler in self._schedulers)

    def advance(self, seconds: float) -> int:
        """Move the time on by ``seconds`` and fire what has become due; how many fired."""
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        self.now += seconds
        return sum(scheduler.run_due() for scheduler in self._schedulers)
