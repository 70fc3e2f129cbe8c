"""Restart policies in the OTP spirit, and the bookkeeping that applies them over time.

Fabric has no counterpart (it never restarts chaincode). A :class:`RestartPolicy` says when a
child that ended is restarted (permanent / transient / temporary), how fast (exponential
backoff with jitter, reset after a healthy period) and how often before giving up (at most N
restarts in T seconds). A :class:`RestartTracker` applies one policy to one child; its clock
and randomness are injected, so tests drive it without sleeping.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


class Restart(enum.StrEnum):
    """When a supervisor restarts a child that ended (OTP's restart types)."""

    PERMANENT = "permanent"  # always (except when stopped on request)
    TRANSIENT = "transient"  # only after an abnormal end: crash, signal, non-zero exit
    TEMPORARY = "temporary"  # never (for chaincode: the next request launches it, as Fabric)


class DuringRestart(enum.StrEnum):
    """What a request for a chaincode that is waiting to be restarted gets."""

    WAIT = "wait"  # wait for READY, up to the startup timeout
    FAIL = "fail"  # fail at once, naming the cause


@dataclass(frozen=True)
class RestartPolicy:
    """How a supervisor treats one child. The defaults suit chaincode."""

    restart: Restart = Restart.TRANSIENT
    max_restarts: int = 5  # restart intensity: at most this many restarts ...
    within: float = 60.0  # ... in this many seconds, else give up and escalate
    backoff_initial: float = 0.1  # delay before the first restart, seconds
    backoff_max: float = 10.0
    backoff_factor: float = 2.0
    jitter: float = 0.2  # each delay is scaled by a random factor in [1 - j, 1 + j]
    reset_after: float = 30.0  # up this long: the next restart starts from backoff_initial
    shutdown_timeout: float = 5.0  # stopping an instance: polite, then killed after this
    during_restart: DuringRestart = DuringRestart.WAIT

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "restart", Restart(self.restart))
            object.__setattr__(self, "during_restart", DuringRestart(self.during_restart))
        except ValueError as exc:
            raise ValueError(f"restart policy: {exc}") from None
        if self.max_restarts < 0:
            raise ValueError(f"restart policy: max_restarts must be >= 0, got {self.max_restarts}")
        # Written as "not (ok)" so that NaN, which fails every comparison, is refused too.
        for name in ("within", "backoff_max", "reset_after", "shutdown_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"restart policy: {name} must be positive")
        if not 0 <= self.backoff_initial <= self.backoff_max:
            raise ValueError("restart policy: backoff_initial must be in [0, backoff_max]")
        if not self.backoff_factor >= 1:
            raise ValueError("restart policy: backoff_factor must be >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("restart policy: jitter must be in [0, 1)")


@dataclass(frozen=True)
class Decision:
    """What to do about a child that ended."""

    restart: bool
    delay: float = 0.0  # seconds before restarting
    give_up: bool = False  # intensity exceeded: mark failed and escalate
    reason: str = ""


class RestartTracker:
    """The policy applied over time to one child: counts restarts in the intensity window and
    grows the backoff. Pure bookkeeping: the clock and the jitter's randomness are injected,
    so tests drive it without sleeping."""

    def __init__(
        self,
        policy: RestartPolicy,
        *,
        clock: Clock = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._rng = rng
        self._restarts: list[float] = []  # when each restart was decided
        self._attempt = 0  # restarts since the last healthy period: the backoff exponent
        self._up_since: float | None = None
        self._total = 0

    @property
    def restarts(self) -> int:
        """Restarts decided so far (all time)."""
        return self._total

    def started(self) -> None:
        """The child is up and healthy (for chaincode: READY)."""
        self._up_since = self._clock()

    def reset(self) -> None:
        """Forget the history (an explicit relaunch after giving up)."""
        self._restarts.clear()
        self._attempt = 0
        self._up_since = None

    def ended(self, abnormal: bool) -> Decision:
        """The child ended (``abnormal``: crash, signal, non-zero exit, failed relaunch)."""
        policy, now = self.policy, self._clock()
        up_since, self._up_since = self._up_since, None
        if policy.restart is Restart.TEMPORARY:
            return Decision(False, reason="restart policy is temporary")
        if policy.restart is Restart.TRANSIENT and not abnormal:
            return Decision(False, reason="ended normally and the restart policy is transient")
        if up_since is not None and now - up_since >= policy.reset_after:
            self._attempt = 0
        self._restarts = [t for t in self._restarts if now - t < policy.within]
        if len(self._restarts) >= policy.max_restarts:
            return Decision(
                False,
                give_up=True,
                reason=f"more than {policy.max_restarts} restarts in {policy.within:g} s",
            )
        delay = min(
            policy.backoff_max, policy.backoff_initial * policy.backoff_factor**self._attempt
        )
        if 0 < delay < policy.backoff_max:
            self._attempt += 1  # stops at the cap, so the power never overflows
        if policy.jitter:
            delay *= 1 + policy.jitter * (2 * self._rng() - 1)
        self._restarts.append(now)
        self._total += 1
        return Decision(True, delay=delay, reason=f"restart {len(self._restarts)} in the window")
