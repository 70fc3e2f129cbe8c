"""Supervisor actors: the root of the supervision tree and one per chaincode.

Fabric has no counterpart: it never restarts chaincode (the next invoke relaunches it, with no
backoff and no budget) and nothing restarts its own goroutines. pykka has no supervision
either: an exception in a tell kills the actor (``on_failure`` runs, ``on_stop`` does not),
and a stopped actor cannot be restarted. So, in the OTP spirit:

* :mod:`actors.policy` decides: restart or not, after which delay, or give up.
* :class:`~actors.mailbox.SupervisedRef` is what everyone holds instead of a peer actor's
  ``ActorRef``: when the actor is replaced, the reference follows.
* :class:`RootSupervisor` replaces the TXContext registry, launcher and VM controller when
  they die, re-delivers what was queued to them and rebuilds their state from the others.
* :class:`ChaincodeSupervisor` (one per chaincode) relaunches a chaincode whose instance or
  Handler died, by policy; meanwhile new requests wait for READY or fail fast.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any

import pykka

from actors.errors import (
    ChaincodeFailed,
    ChaincodeRestarting,
    LaunchError,
    StartupTimeout,
    SupportShutdown,
)
from actors.events import (
    CRASHED,
    GAVE_UP,
    NOT_RESTARTED,
    RESTART_SCHEDULED,
    RESTARTED,
    LifecycleEvent,
)
from actors.launcher import ChaincodeDown, ChaincodeUp, Launch, Stop
from actors.mailbox import (
    ChildEnded,
    SupervisedActor,
    SupervisedRef,
    ThreadingActor,
    Watcher,
    drain_mailbox,
    tell_quietly,
)
from actors.policy import Clock, DuringRestart, Restart, RestartPolicy, RestartTracker
from actors.runtimes import ExitStatus

if TYPE_CHECKING:
    from actors.scheduler import Deadline, Scheduler

log = logging.getLogger(__name__)


# -- the chaincode supervisor ----------------------------------------------------------------


@dataclass(frozen=True)
class Acquire:
    """From ChaincodeSupport: make the chaincode ready; ``reply`` gets its Handler's ref.
    ``explicit``: a launch asked for by name, which also retries a chaincode given up on."""

    reply: Future[Any]
    _: KW_ONLY
    explicit: bool = False


@dataclass(frozen=True)
class StopChaincode:
    """From ChaincodeSupport: stop the chaincode and do not restart it."""

    reply: Future[bool]


@dataclass(frozen=True)
class _RestartDue:
    attempt: int


@dataclass(frozen=True)
class _Relaunched:
    attempt: int
    outcome: Future[Any]


@dataclass(frozen=True)
class _WaitExpired:
    reply: Future[Any]


@dataclass(frozen=True)
class _Settled:
    """The grace period for learning how an instance exited is over."""

    instance: Any


IDLE, UP, SETTLING, RESTARTING, FAILED = "idle", "up", "settling", "restarting", "failed"


class SupervisorStates:
    """What each chaincode supervisor is doing when it is neither idle nor up (settling,
    restarting, failed), for ChaincodeSupport.status. Each chaincode's entry has one writer,
    its supervisor; readers take a snapshot."""

    def __init__(self) -> None:
        self._states: dict[str, str] = {}
        self._lock = threading.Lock()

    def set(self, chaincode: str, state: str) -> None:
        with self._lock:
            if state in (IDLE, UP):
                self._states.pop(chaincode, None)
            else:
                self._states[chaincode] = state

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return dict(self._states)


@dataclass(frozen=True)
class SupervisorDeps:
    """What every chaincode supervisor needs from the peer around it."""

    launcher: SupervisedRef
    scheduler: Scheduler
    publish: Callable[[LifecycleEvent], None]
    startup_timeout: float  # how long a request waits for a restarting chaincode
    states: SupervisorStates
    escalate: Callable[[str, str], None]  # (chaincode, reason): it was given up on
    clock: Clock = time.monotonic


# How long a supervisor whose chaincode's connection ended waits to learn its exit status (the
# stream usually ends a few milliseconds before the process is reaped).
SETTLE_SECONDS = 1.0


class ChaincodeSupervisor(SupervisedActor):
    """Supervises one chaincode: its Handler and its runtime instance, as a unit.

    The launcher reports :class:`~actors.launcher.ChaincodeUp` when the chaincode is READY and
    :class:`~actors.launcher.ChaincodeDown` when its instance exits or its Handler ends. On a
    down, the policy decides: restart after a backoff, leave it down, or give up (mark it
    failed and escalate to the root). Requests that need the chaincode while it is down come
    here (:class:`Acquire`): they wait for READY (bounded by the startup timeout) or fail
    fast, by policy. A restart is a launch like any other, so the launcher's startup timeout
    and the VM controller's removal of the stale instance apply.
    """

    def __init__(
        self,
        name: str,
        *,
        policy: Callable[[], RestartPolicy],
        deps: SupervisorDeps,
        watcher: Watcher | None = None,
    ) -> None:
        super().__init__(watcher=watcher)
        self.child_name = f"chaincode:{name}"
        self.name = name
        self.policy = policy
        self.launcher = deps.launcher
        self.scheduler = deps.scheduler
        self.publish = deps.publish
        self.startup_timeout = deps.startup_timeout
        self.states = deps.states
        self.escalate = deps.escalate
        self.tracker = RestartTracker(policy(), clock=deps.clock)
        self.state = IDLE
        self.instance: Any = None  # of the generation that is up
        self.handler: Any = None
        self.cause = ""  # why it went down last
        self.abnormal = False  # settling: the connection ended abnormally
        self.waiters: dict[Future[Any], Deadline] = {}
        self.attempt = 0  # restart attempts; stale timers and launches carry an older one
        self.timer: Deadline | None = None

    def _set(self, state: str) -> None:
        self.state = state
        self.states.set(self.name, state)

    def ended(self, error: BaseException | None) -> Any:
        if self.timer is not None:
            self.timer.cancel()
        self._fail_waiters(SupportShutdown(f"supervisor of chaincode {self.name} stopped"))
        self.states.set(self.name, IDLE)

    @classmethod
    def abandon(cls, message: Any, cause: str) -> None:
        if type(message) is Acquire and not message.reply.done():
            message.reply.set_exception(SupportShutdown(f"{cause} before launching"))
        else:
            super().abandon(message, cause)

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is Acquire:
            self._acquire(message)
        elif kind is ChaincodeUp:
            self._up(message)
        elif kind is ChaincodeDown:
            self._down(message)
        elif kind is _Settled:
            if self.state == SETTLING and message.instance is self.instance:
                self._decide(abnormal=True)
        elif kind is _RestartDue:
            if self.state == RESTARTING and message.attempt == self.attempt:
                self._relaunch()
        elif kind is _Relaunched:
            self._relaunched(message)
        elif kind is _WaitExpired:
            self._wait_expired(message.reply)
        elif kind is StopChaincode:
            self._stop_chaincode(message)
        else:
            raise TypeError(f"ChaincodeSupervisor: unexpected message {message!r}")

    # -- requests ----------------------------------------------------------------------------

    def _acquire(self, message: Acquire) -> None:
        reply = message.reply
        if self.state == FAILED:
            if not message.explicit:
                reply.set_exception(
                    ChaincodeFailed(f"chaincode {self.name} has failed: {self.cause}")
                )
                return
            self.tracker.reset()
            self._set(IDLE)
        if self.state in (SETTLING, RESTARTING):
            if self.policy().during_restart is DuringRestart.FAIL:
                reply.set_exception(
                    ChaincodeRestarting(f"chaincode {self.name} is restarting after: {self.cause}")
                )
                return
            ref = self.actor_ref
            self.waiters[reply] = self.scheduler.call_later(
                self.startup_timeout, lambda: tell_quietly(ref, _WaitExpired(reply))
            )
            return
        self.launcher.tell(Launch(self.name, reply))

    def _wait_expired(self, reply: Future[Any]) -> None:
        if self.waiters.pop(reply, None) is not None and not reply.done():
            reply.set_exception(
                StartupTimeout(
                    f"timeout expired while waiting for chaincode {self.name} to restart "
                    f"after: {self.cause}"
                )
            )

    def _fail_waiters(self, error: BaseException) -> None:
        waiters, self.waiters = self.waiters, {}
        for reply, deadline in waiters.items():
            deadline.cancel()
            if not reply.done():
                reply.set_exception(error)

    def _release_waiters(self) -> None:
        """Down for good or up again: the waiters go to the launcher (which answers at once
        when the chaincode is ready, or launches it on demand, as Fabric does)."""
        waiters, self.waiters = self.waiters, {}
        for reply, deadline in waiters.items():
            deadline.cancel()
            if not reply.done():
                self.launcher.tell(Launch(self.name, reply))

    def _stop_chaincode(self, message: StopChaincode) -> None:
        self.attempt += 1  # whatever restart is pending is void now
        if self.timer is not None:
            self.timer.cancel()
        self._fail_waiters(LaunchError(f"chaincode {self.name} stopped while restarting"))
        self.instance = self.handler = None
        self._set(IDLE)
        self.launcher.tell(Stop(self.name, message.reply))

    # -- lifecycle ---------------------------------------------------------------------------

    def _up(self, message: ChaincodeUp) -> None:
        self.instance, self.handler = message.instance, message.handler
        self.tracker.started()
        self._set(UP)
        self._release_waiters()

    def _down(self, message: ChaincodeDown) -> None:
        same = (message.instance is not None and message.instance is self.instance) or (
            message.handler is not None and message.handler is self.handler
        )
        if not same:
            return
        if self.state == UP:
            self.cause = message.cause
            if message.crashed:
                self.publish(
                    LifecycleEvent(
                        self.name,
                        CRASHED,
                        message.cause,
                        instance=_describe(self.instance),
                        actor="handler",
                    )
                )
            if message.status is not None:
                self._decide(abnormal=message.status != ExitStatus(code=0))
            elif self.instance is not None:
                # The connection ended first; the exit status, which says more about why and
                # whether it was normal, is usually a few milliseconds behind.
                self.abnormal = message.abnormal
                self._set(SETTLING)
                ref, instance = self.actor_ref, self.instance
                self.timer = self.scheduler.call_later(
                    SETTLE_SECONDS, lambda: tell_quietly(ref, _Settled(instance))
                )
            else:
                self._decide(abnormal=True)
        elif self.state == SETTLING and message.status is not None:
            # The connection's own reason stays first when it was the peer's doing (crash,
            # hang, protocol error); when the chaincode just hung up, the exit says it all.
            self.cause = f"{self.cause}; {message.cause}" if self.abnormal else message.cause
            self._decide(abnormal=self.abnormal or message.status != ExitStatus(code=0))

    def _decide(self, *, abnormal: bool) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.instance = self.handler = None
        self.tracker.policy = self.policy()
        decision = self.tracker.ended(abnormal)
        if decision.give_up:
            self._set(FAILED)
            text = f"gave up: {decision.reason}; last cause: {self.cause}"
            self.publish(LifecycleEvent(self.name, GAVE_UP, text))
            self._fail_waiters(ChaincodeFailed(f"chaincode {self.name} has failed: {text}"))
            self.cause = text
            self.escalate(self.name, text)
        elif decision.restart:
            self._set(RESTARTING)
            self.attempt += 1
            ref, attempt = self.actor_ref, self.attempt
            self.timer = self.scheduler.call_later(
                decision.delay, lambda: tell_quietly(ref, _RestartDue(attempt))
            )
            self.publish(
                LifecycleEvent(
                    self.name, RESTART_SCHEDULED, self.cause, delay=round(decision.delay, 4)
                )
            )
        else:
            self._set(IDLE)
            self.publish(LifecycleEvent(self.name, NOT_RESTARTED, decision.reason))
            self._release_waiters()

    def _relaunch(self) -> None:
        outcome: Future[Any] = Future()
        ref, attempt = self.actor_ref, self.attempt
        outcome.add_done_callback(lambda f: tell_quietly(ref, _Relaunched(attempt, f)))
        try:
            self.launcher.tell(Launch(self.name, outcome))
        except pykka.ActorDeadError as exc:
            outcome.set_exception(LaunchError(f"chaincode launcher is not running: {exc}"))

    def _relaunched(self, message: _Relaunched) -> None:
        if message.attempt != self.attempt or self.state != RESTARTING:
            return
        error = message.outcome.exception()
        if error is None:
            return  # ChaincodeUp (sent before the launch's waiters hear) made it UP already
        self.cause = f"relaunch failed: {error}"
        self._decide(abnormal=True)


def _describe(instance: Any) -> str:
    return instance.describe() if instance is not None else ""


# -- the root supervisor ---------------------------------------------------------------------

Factory = Callable[[Watcher, Any], pykka.ActorRef[Any]]


@dataclass(frozen=True)
class Supervise:
    """Ask the root: start ``factory(watcher, None)`` as child ``name`` and supervise it;
    the reply is its :class:`SupervisedRef`. ``rebuild`` runs after each replacement."""

    name: str
    factory: Factory
    rebuild: Callable[[], None] | None = None


@dataclass(frozen=True)
class ShuttingDown:
    """Ask the root: stop restarting; children that end from now on stay down."""


@dataclass(frozen=True)
class Escalate:
    """To the root: a chaincode supervisor gave up on its chaincode."""

    chaincode: str
    reason: str


@dataclass
class _Child:
    ref: SupervisedRef
    factory: Factory
    tracker: RestartTracker
    rebuild: Callable[[], None] | None


# The peer's own actors: restarted at once, whatever ended them, up to 20 times a minute.
PEER_ACTOR_POLICY = RestartPolicy(
    Restart.PERMANENT, max_restarts=20, within=60.0, backoff_initial=0.0, jitter=0.0
)


class RootSupervisor(ThreadingActor):
    """Root of the supervision tree: the TXContext registry, the launcher, the VM controller
    and the chaincode supervisors are its children.

    When a child ends, a fresh actor replaces it (pykka cannot restart one) and its
    :class:`SupervisedRef` moves over, so nobody keeps a dead reference. The tells that were
    queued to the dead actor are delivered to the replacement; only the message it died on is
    lost. The replacement's state is rebuilt from what outlived the dead one: its handover
    (the VM controller's running instances), the live handlers (the registry's index) or the
    other actors (the launcher asks the VM controller).
    """

    def __init__(
        self,
        publish: Callable[[LifecycleEvent], None],
        policy: RestartPolicy = PEER_ACTOR_POLICY,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__()
        self.publish = publish
        self.policy = policy
        self.clock = clock
        self.children: dict[str, _Child] = {}
        self.stopping = False

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is ChildEnded:
            self._child_ended(message)
        elif kind is Supervise:
            return self._supervise(message)
        elif kind is ShuttingDown:
            self.stopping = True
            for child in self.children.values():
                child.ref.close("chaincode support shut down")
        elif kind is Escalate:
            # A chaincode given up on does not take the peer down: it stays failed, visible
            # in status and events, until launched again by name.
            log.error("chaincode %s failed: %s", message.chaincode, message.reason)
        else:
            raise TypeError(f"RootSupervisor: unexpected message {message!r}")
        return None

    def on_stop(self) -> None:
        for message in drain_mailbox(self):
            if type(message) is ChildEnded:
                self._abandon(message, "chaincode support shut down")

    def watcher(self) -> Watcher:
        ref = self.actor_ref

        def watch(ended: ChildEnded) -> bool:
            try:
                ref.tell(ended)
                return True
            except pykka.ActorDeadError:
                return False

        return watch

    def _supervise(self, message: Supervise) -> SupervisedRef:
        ref = SupervisedRef(message.name, message.factory(self.watcher(), None))
        tracker = RestartTracker(self.policy, clock=self.clock)
        self.children[message.name] = _Child(ref, message.factory, tracker, message.rebuild)
        return ref

    def _abandon(self, ended: ChildEnded, cause: str) -> None:
        for queued in ended.queued:  # children are SupervisedActors: they know their mail
            ended.ref.actor_class.abandon(queued, cause)

    def _child_ended(self, ended: ChildEnded) -> None:
        child = self.children.get(ended.name)
        if child is None or child.ref.actor_ref is not ended.ref:
            self._abandon(ended, f"{ended.name} ended")
            return
        what = f"{ended.name} crashed: {ended.error!r}" if ended.error else f"{ended.name} stopped"
        if self.stopping:
            self._abandon(ended, what)
            return
        chaincode, actor = _split(ended.name)
        if ended.error is not None:
            self.publish(LifecycleEvent(chaincode, CRASHED, what, actor=actor))
        decision = child.tracker.ended(abnormal=True)
        if not decision.restart:
            reason = f"{what}; gave up: {decision.reason}"
            log.error("%s", reason)
            child.ref.close(reason)
            self._abandon(ended, reason)
            self.publish(LifecycleEvent(chaincode, GAVE_UP, reason, actor=actor))
            return
        started = self.clock()
        try:
            fresh = child.factory(self.watcher(), ended.handover)
        except Exception as exc:  # cannot even start: nothing more to try
            log.exception("restarting %s failed", ended.name)
            child.ref.close(f"{what}; restart failed: {exc!r}")
            self._abandon(ended, what)
            return
        child.ref.replace(fresh)
        for queued in ended.queued:
            tell_quietly(fresh, queued)
        if child.rebuild is not None:
            child.rebuild()
        child.tracker.started()
        took = (self.clock() - started) * 1000
        log.warning("%s; replaced in %.1f ms", what, took)
        self.publish(
            LifecycleEvent(chaincode, RESTARTED, f"{what}; replaced in {took:.1f} ms", actor=actor)
        )


def _split(child_name: str) -> tuple[str, str]:
    """Child name -> (chaincode, actor) for events: "chaincode:kv" is kv's supervisor."""
    if child_name.startswith("chaincode:"):
        return child_name.removeprefix("chaincode:"), "supervisor"
    return "", child_name
