"""One ChaincodeSupervisor alone, message in, message out: its launcher is an Inbox, its
backoffs, restart windows and waits run on a fake clock the test advances."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

from actors import events
from actors.errors import ChaincodeFailed, ChaincodeRestarting, StartupTimeout
from actors.events import LifecycleEvent
from actors.launcher import ChaincodeDown, ChaincodeUp, Launch
from actors.policy import DuringRestart, Restart, RestartPolicy
from actors.runtimes import ExitStatus
from actors.supervisor import (
    SETTLE_SECONDS,
    Acquire,
    ChaincodeSupervisor,
    SupervisorDeps,
    SupervisorStates,
)
from actors.testing import FakeClock
from tests.helpers import Inbox, wait_for

WAIT = 5.0
STARTUP = 20.0


@dataclass
class Supervisor:
    ref: pykka.ActorRef[Any]
    launcher: Inbox
    clock: FakeClock
    states: SupervisorStates
    events: list[LifecycleEvent]
    escalated: list[tuple[str, str]]

    def acquire(self, explicit: bool = False) -> Future[Any]:
        reply: Future[Any] = Future()
        self.ref.tell(Acquire(reply, explicit=explicit))
        return reply

    def launches(self, count: int) -> list[Launch]:
        return self.launcher.wait(Launch, count)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def wait_event(self, kind: str, count: int = 1) -> None:
        wait_for(lambda: self.kinds().count(kind) >= count, what=f"{count} x {kind}")

    def up(self, generation: int) -> tuple[object, Inbox]:
        """The launcher says generation ``generation`` is READY."""
        instance, handler = object(), Inbox()
        self.ref.tell(ChaincodeUp(instance, handler))  # type: ignore[arg-type]
        wait_for(lambda: self.states.snapshot() == {}, what=f"generation {generation} up")
        return instance, handler


@pytest.fixture
def make() -> Iterator[Callable[..., Supervisor]]:
    refs: list[pykka.ActorRef[Any]] = []

    def make(policy: RestartPolicy) -> Supervisor:
        clock, launcher, states = FakeClock(), Inbox(), SupervisorStates()
        published: list[LifecycleEvent] = []
        escalated: list[tuple[str, str]] = []
        deps = SupervisorDeps(
            launcher=launcher,  # type: ignore[arg-type]
            scheduler=clock.scheduler(),
            publish=published.append,
            startup_timeout=STARTUP,
            states=states,
            escalate=lambda name, reason: escalated.append((name, reason)),
            clock=clock,
        )
        ref = ChaincodeSupervisor.start("kv", policy=lambda: policy, deps=deps)
        refs.append(ref)
        return Supervisor(ref, launcher, clock, states, published, escalated)

    yield make
    for ref in refs:
        ref.stop()


POLICY = RestartPolicy(Restart.TRANSIENT, max_restarts=2, within=60, backoff_initial=1, jitter=0)


def test_a_request_while_idle_goes_to_the_launcher(make: Callable[..., Supervisor]) -> None:
    sup = make(POLICY)
    reply = sup.acquire()
    (launch,) = sup.launches(1)
    assert launch.chaincode == "kv" and launch.reply is reply


def test_a_crash_restarts_after_the_backoff_and_not_before(
    make: Callable[..., Supervisor],
) -> None:
    sup = make(POLICY)
    instance, handler = sup.up(1)
    sup.ref.tell(ChaincodeDown(instance, handler, "exited with code 1", ExitStatus(code=1)))  # type: ignore[arg-type]
    sup.wait_event(events.RESTART_SCHEDULED)
    assert sup.states.snapshot() == {"kv": "restarting"}
    (scheduled,) = [e for e in sup.events if e.kind == events.RESTART_SCHEDULED]
    assert scheduled.delay == 1 and scheduled.detail == "exited with code 1"
    assert sup.clock.advance(0.999) == 0
    assert sup.launcher.of(Launch) == []
    assert sup.clock.advance(0.001) == 1
    (relaunch,) = sup.launches(1)
    assert relaunch.chaincode == "kv"


def test_a_normal_exit_of_a_transient_chaincode_is_not_restarted(
    make: Callable[..., Supervisor],
) -> None:
    sup = make(POLICY)
    instance, handler = sup.up(1)
    sup.ref.tell(ChaincodeDown(instance, handler, "exited with code 0", ExitStatus(code=0)))  # type: ignore[arg-type]
    sup.wait_event(events.NOT_RESTARTED)
    assert sup.states.snapshot() == {}
    sup.clock.advance(60)
    assert sup.launcher.of(Launch) == []


def test_requests_wait_for_the_restart_or_for_the_startup_timeout(
    make: Callable[..., Supervisor],
) -> None:
    sup = make(POLICY)
    instance, handler = sup.up(1)
    sup.ref.tell(ChaincodeDown(instance, handler, "killed", ExitStatus(signal=9)))  # type: ignore[arg-type]
    sup.wait_event(events.RESTART_SCHEDULED)
    patient = sup.acquire()
    late = sup.acquire()
    sup.clock.advance(1)  # the restart is due: one Launch, from the supervisor itself
    (relaunch,) = sup.launches(1)
    assert relaunch.reply is not patient and relaunch.reply is not late
    # Up again: the waiters go to the launcher (which answers them at once when ready).
    sup.up(2)
    launches = sup.launches(3)
    assert {launches[1].reply, launches[2].reply} == {patient, late}

    instance, handler = object(), Inbox()
    sup.ref.tell(ChaincodeUp(instance, handler))  # type: ignore[arg-type]
    sup.ref.tell(ChaincodeDown(instance, handler, "killed again", ExitStatus(signal=9)))  # type: ignore[arg-type]
    sup.wait_event(events.RESTART_SCHEDULED, 2)
    assert sup.clock.pending() == 1  # the restart
    waiting = sup.acquire()
    wait_for(lambda: sup.clock.pending() == 2, what="the request's wait to be armed")
    assert sup.clock.advance(STARTUP) == 2
    with pytest.raises(StartupTimeout, match="waiting for chaincode kv to restart"):
        waiting.result(WAIT)


def test_during_restart_fail_answers_at_once(make: Callable[..., Supervisor]) -> None:
    sup = make(
        RestartPolicy(backoff_initial=1, jitter=0, during_restart=DuringRestart.FAIL),
    )
    instance, handler = sup.up(1)
    sup.ref.tell(ChaincodeDown(instance, handler, "killed", ExitStatus(signal=9)))  # type: ignore[arg-type]
    sup.wait_event(events.RESTART_SCHEDULED)
    with pytest.raises(ChaincodeRestarting, match="restarting after: killed"):
        sup.acquire().result(WAIT)


def test_too_many_restarts_in_the_window_give_up_and_escalate(
    make: Callable[..., Supervisor],
) -> None:
    sup = make(POLICY)
    for generation in range(1, 4):
        instance, handler = sup.up(generation)
        down = ChaincodeDown(instance, handler, f"crash {generation}", ExitStatus(code=1))
        sup.ref.tell(down)  # type: ignore[arg-type]
        if generation < 3:
            sup.wait_event(events.RESTART_SCHEDULED, generation)
            sup.clock.advance(10)  # the backoff, well inside the 60 s window
            sup.launches(generation)
    sup.wait_event(events.GAVE_UP)
    assert sup.states.snapshot() == {"kv": "failed"}
    assert wait_for(lambda: [name for name, _ in sup.escalated] == ["kv"]), sup.escalated
    assert "crash 3" in sup.escalated[0][1]
    with pytest.raises(ChaincodeFailed, match="chaincode kv has failed"):
        sup.acquire().result(WAIT)
    # Launching it by name tries again.
    retry = sup.acquire(explicit=True)
    assert sup.launches(3)[-1].reply is retry
    assert sup.states.snapshot() == {}


def test_restarts_spread_beyond_the_window_never_give_up(
    make: Callable[..., Supervisor],
) -> None:
    sup = make(POLICY)
    for generation in range(1, 6):
        instance, handler = sup.up(generation)
        sup.clock.advance(61)  # up for longer than the window each time
        down = ChaincodeDown(instance, handler, "crash", ExitStatus(code=1))
        sup.ref.tell(down)  # type: ignore[arg-type]
        sup.wait_event(events.RESTART_SCHEDULED, generation)
        sup.clock.advance(1)
        sup.launches(generation)
    assert events.GAVE_UP not in sup.kinds()


def test_a_hang_up_waits_a_moment_for_the_exit_status(make: Callable[..., Supervisor]) -> None:
    sup = make(POLICY)
    instance, handler = sup.up(1)
    # The connection ends first; the supervisor settles until the exit status comes.
    sup.ref.tell(ChaincodeDown(instance, handler, "stream closed"))  # type: ignore[arg-type]
    wait_for(lambda: sup.states.snapshot() == {"kv": "settling"}, what="settling")
    sup.ref.tell(ChaincodeDown(instance, None, "exited with code 0", ExitStatus(code=0)))  # type: ignore[arg-type]
    sup.wait_event(events.NOT_RESTARTED)  # a clean exit after a hang-up: transient stays down


def test_no_exit_status_within_the_grace_period_counts_as_abnormal(
    make: Callable[..., Supervisor],
) -> None:
    sup = make(POLICY)
    instance, handler = sup.up(1)
    sup.ref.tell(ChaincodeDown(instance, handler, "stream closed"))  # type: ignore[arg-type]
    wait_for(lambda: sup.clock.pending() == 1, what="the grace period to be armed")
    assert sup.clock.advance(SETTLE_SECONDS) == 1
    sup.wait_event(events.RESTART_SCHEDULED)
    (scheduled,) = [e for e in sup.events if e.kind == events.RESTART_SCHEDULED]
    assert scheduled.detail == "stream closed"
