"""RuntimeLauncher actor: launch states, de-duplication, startup timeout, launch metrics.

Fabric counterparts: ``core/chaincode/runtime_launcher.go`` and ``handler_registry.go``. All
callers wanting a chaincode that is not ready attach to one launch state, so 64 concurrent first
invokes start it once. The launch ends at the first of READY (success), start failure,
registration failure, exit of the instance, or the startup timeout.

The launcher also keeps the :class:`HandlerDirectory` of ready handlers. ChaincodeSupport
reads it without a message; only the launcher writes it. It tells each chaincode's supervisor
when the chaincode comes up (READY) and goes down (instance exit, Handler end), and publishes
the lifecycle events of launches.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any

import pykka

from actors import events
from actors.errors import LaunchError, StartupTimeout, UnknownChaincode
from actors.events import LifecycleEvent
from actors.handler import HandlerGone, HandlerReady, RegisterHandler, RegistrationRefused
from actors.mailbox import SupervisedActor, SupervisedRef, Watcher, tell_quietly
from actors.runtimes import ExitStatus, exit_cause, last_log_lines
from actors.vmcontroller import (
    Building,
    Built,
    InstanceExited,
    InstanceStarted,
    RunningInstances,
    StartFailed,
    StartInstance,
    StopInstance,
)

if TYPE_CHECKING:
    from actors.config import ChaincodeDefinition, Config
    from actors.metrics import Metrics
    from actors.runtimes import Instance
    from actors.scheduler import Deadline, Scheduler

log = logging.getLogger(__name__)

HandlerRef = pykka.ActorRef[Any]

# Launch ids stay unique across launcher restarts: exits of instances started by a previous
# launcher must not be mistaken for those of a launch of the current one.
_launch_ids = itertools.count(1)


class HandlerDirectory:
    """The ready handlers by chaincode name (Fabric's ``HandlerRegistry``). One writer, the
    launcher; it outlives launchers (a replacement takes it over). Anyone reads it without a
    message, so a transaction finds its Handler without an ask."""

    def __init__(self) -> None:
        self._handlers: dict[str, HandlerRef] = {}

    def get(self, chaincode: str) -> HandlerRef | None:
        """The Handler serving ``chaincode``, if it is ready and alive."""
        handler = self._handlers.get(chaincode)
        return handler if handler is not None and handler.is_alive() else None

    def publish(self, chaincode: str, handler: HandlerRef) -> None:
        self._handlers[chaincode] = handler

    def withdraw(self, chaincode: str, handler: HandlerRef) -> bool:
        """Remove ``chaincode`` if ``handler`` still serves it (not a newer one)."""
        if self._handlers.get(chaincode) is not handler:
            return False
        del self._handlers[chaincode]
        return True

    def ready(self) -> dict[str, HandlerRef]:
        """A snapshot of the entries whose Handler is alive."""
        return {n: h for n, h in list(self._handlers.items()) if h.is_alive()}

    def prune(self) -> None:
        """Drop the entries whose Handler has died (a replacement launcher starts here)."""
        for name, handler in list(self._handlers.items()):
            if not handler.is_alive():
                self.withdraw(name, handler)


@dataclass(frozen=True)
class LauncherDeps:
    """What the launcher needs from the peer around it."""

    config: Config
    definitions: Mapping[str, ChaincodeDefinition]
    vmcontroller: SupervisedRef
    scheduler: Scheduler
    metrics: Metrics
    directory: HandlerDirectory
    publish: Callable[[LifecycleEvent], None]
    supervisor_for: Callable[[str], SupervisedRef | None]


@dataclass(frozen=True)
class Launch:
    """Make ``chaincode`` ready; ``reply`` gets the Handler's ref or a LaunchError."""

    chaincode: str
    reply: Future[HandlerRef]


@dataclass(frozen=True)
class Stop:
    """Stop ``chaincode``: its handler and its instance. ``reply`` gets True when done."""

    chaincode: str
    reply: Future[bool]


@dataclass(frozen=True)
class LaunchTimedOut:
    chaincode: str
    launch_id: int
    _: KW_ONLY
    building: bool = False


@dataclass(frozen=True)
class Status:
    """Ask: {chaincode: "ready" | "launching" | "building"}."""


@dataclass(frozen=True)
class ChaincodeUp:
    """To the chaincode's supervisor: it is READY, served by ``handler``, running as
    ``instance`` (None for a chaincode started by the user in dev mode)."""

    instance: Instance | None
    handler: HandlerRef


@dataclass(frozen=True)
class ChaincodeDown:
    """To the chaincode's supervisor: the instance exited (``status`` known) or the Handler
    ended (``status`` None: the exit, if any, is reported separately)."""

    instance: Instance | None
    handler: HandlerRef | None
    cause: str
    status: ExitStatus | None = None
    _: KW_ONLY
    crashed: bool = False  # the Handler actor died of an exception
    # The Handler ended for a reason of its own (crash, hang, protocol error), so the end is
    # abnormal whatever the exit code; False when the chaincode simply hung up.
    abnormal: bool = False


@dataclass
class _LaunchState:
    launch_id: int
    started: float
    waiters: list[Future[HandlerRef]] = field(default_factory=list)
    handler: HandlerRef | None = None
    deadline: Deadline | None = None
    building: bool = False
    # A launch completes once the chaincode is READY *and* its instance has been reported
    # started (either may come first); a dev-mode registration has no instance to wait for.
    awaiting_instance: bool = True
    ready_handler: HandlerRef | None = None
    dev: bool = False  # registered by a chaincode the user started (dev mode)


class RuntimeLauncher(SupervisedActor):
    """Starts chaincode on demand and tracks which handler serves which chaincode."""

    child_name = "launcher"

    def __init__(
        self,
        *,
        deps: LauncherDeps,
        me: Callable[[], SupervisedRef],
        watcher: Watcher | None = None,
    ) -> None:
        super().__init__(watcher=watcher)
        self.config = deps.config
        self.definitions = deps.definitions
        self.vmcontroller = deps.vmcontroller
        self.scheduler = deps.scheduler
        self.metrics = deps.metrics
        self.directory = deps.directory
        self._launching: dict[str, _LaunchState] = {}
        # The latest instance per chaincode, kept after it exits: its handler may only then
        # ask how it ended (the exit is often noticed before the stream's end).
        self._instances: dict[str, Instance] = {}
        # The generation that is up, per chaincode: what its supervisor is told about.
        self._up: dict[str, tuple[Instance | None, HandlerRef]] = {}
        self._publish = deps.publish
        self._supervisor_for = deps.supervisor_for
        self._me = me  # this launcher's supervised reference, for replies that outlive it

    def on_start(self) -> None:
        # A replacement takes over the running chaincode: the ready handlers are in the
        # directory (which outlives launchers), their instances in the VM controller.
        self.directory.prune()
        ready = self.directory.ready()
        if not ready:
            return
        try:
            running = self.vmcontroller.ask(RunningInstances(), timeout=5)
        except (pykka.ActorDeadError, pykka.Timeout) as exc:
            log.warning("launcher could not learn the running instances: %s", exc)
            running = {}
        self._instances.update(running)
        for name, handler in ready.items():
            self._up[name] = (running.get(name), handler)

    def ended(self, error: BaseException | None) -> Any:
        # Nobody will finish these launches now (their deadlines tell a dead actor), so
        # release their waiters instead of leaving callers blocked.
        launching, self._launching = self._launching, {}
        for name, state in launching.items():
            if state.deadline is not None:
                state.deadline.cancel()
            failure = LaunchError(
                f"chaincode launcher crashed while launching {name}: {error!r}"
                if error is not None
                else f"chaincode launcher stopped while launching {name}"
            )
            for waiter in state.waiters:
                if not waiter.done():
                    waiter.set_exception(failure)
            # The replacement knows nothing of this launch: leave nothing of it running.
            if state.handler is not None:
                state.handler.stop(block=False)
            with contextlib.suppress(pykka.ActorDeadError):
                self.vmcontroller.tell(StopInstance(name, None, self._shutdown_timeout(name)))
        return None

    def _event(self, name: str, kind: str, detail: str = "", **fields: Any) -> None:
        self._publish(LifecycleEvent(name, kind, detail, **fields))

    def _tell_supervisor(self, name: str, message: ChaincodeUp | ChaincodeDown) -> None:
        supervisor = self._supervisor_for(name)
        if supervisor is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                supervisor.tell(message)

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is Launch:
            self._launch(message.chaincode, message.reply)
        elif kind is RegisterHandler:
            return self._register(message.chaincode, message.handler)
        elif kind is HandlerReady:
            self._ready(message.chaincode, message.handler)
        elif kind is HandlerGone:
            return self._gone(message)
        elif kind is RegistrationRefused:
            state = self._launching.get(message.chaincode)
            if state is not None and state.handler is None:
                self._fail(
                    message.chaincode,
                    state.launch_id,
                    LaunchError(f"chaincode registration failed: {message.reason}"),
                )
        elif kind is InstanceStarted:
            description = message.instance.describe()
            self._event(message.chaincode, events.LAUNCHED, description, instance=description)
            self._instances[message.chaincode] = message.instance
            state = self._launching.get(message.chaincode)
            if state is not None and state.launch_id == message.launch_id:
                state.awaiting_instance = False
                if state.ready_handler is not None:
                    self._complete(message.chaincode, state)
        elif kind is StartFailed:
            self._fail(message.chaincode, message.launch_id, LaunchError(message.reason))
        elif kind is InstanceExited:
            self._exited(message)
        elif kind is Building or kind is Built:
            self._building(message)
        elif kind is LaunchTimedOut:
            self._timed_out(message)
        elif kind is Stop:
            self._stop_chaincode(message)
        elif kind is Status:
            status = {
                name: "building" if state.building else "launching"
                for name, state in self._launching.items()
            }
            status.update({name: "ready" for name in self.directory.ready()})
            return status
        else:
            raise TypeError(f"RuntimeLauncher: unexpected message {message!r}")
        return None

    def _launch(self, name: str, reply: Future[HandlerRef]) -> None:
        handler = self.directory.get(name)
        if handler is not None:
            reply.set_result(handler)
            return
        state = self._launching.get(name)
        if state is not None:
            state.waiters.append(reply)
            return
        definition = self.definitions.get(name)
        if definition is None:
            reply.set_exception(UnknownChaincode(f"chaincode definition for '{name}' not found"))
            return
        state = _LaunchState(next(_launch_ids), time.monotonic(), [reply])
        self._launching[name] = state
        self._arm(name, state, self.config.startup_timeout)
        self._event(name, events.LAUNCHING, definition.runtime)
        self.vmcontroller.tell(StartInstance(definition, state.launch_id, self._me()))

    def _arm(self, name: str, state: _LaunchState, seconds: float) -> None:
        if state.deadline is not None:
            state.deadline.cancel()
        ref, launch_id, building = self.actor_ref, state.launch_id, state.building
        state.deadline = self.scheduler.call_later(
            seconds, lambda: tell_quietly(ref, LaunchTimedOut(name, launch_id, building=building))
        )

    def _building(self, message: Building | Built) -> None:
        state = self._launching.get(message.chaincode)
        if state is None or state.launch_id != message.launch_id:
            return
        if type(message) is Building:
            state.building = True
            self._arm(message.chaincode, state, self.config.install_timeout)
            self._event(message.chaincode, events.BUILDING)
        else:
            # The startup window (and launch_duration) start again once the image exists.
            state.building = False
            state.started = time.monotonic()
            self._arm(message.chaincode, state, self.config.startup_timeout)
            self._event(message.chaincode, events.BUILT, f"{message.seconds:.1f} s")

    def _register(self, name: str, handler: HandlerRef) -> str | None:
        if self.directory.get(name) is not None:
            return f"duplicate chaincodeID: {name}"
        state = self._launching.get(name)
        if state is None:
            if self.config.mode != "dev":
                return (
                    f"peer will not accept external chaincode connection {name} "
                    "(except in dev mode)"
                )
            # Dev mode: the user started the chaincode; track it like a launch of our own.
            state = self._launching[name] = _LaunchState(
                next(_launch_ids), time.monotonic(), awaiting_instance=False, dev=True
            )
        elif state.handler is not None and state.handler.is_alive():
            return f"duplicate chaincodeID: {name}"
        state.handler = handler
        return None

    def _ready(self, name: str, handler: HandlerRef) -> None:
        state = self._launching.get(name)
        if state is None or state.handler is not handler:
            return  # a launch that failed meanwhile; the handler is being stopped
        state.ready_handler = handler
        if not state.awaiting_instance:
            self._complete(name, state)

    def _complete(self, name: str, state: _LaunchState) -> None:
        handler = state.ready_handler
        assert handler is not None
        del self._launching[name]
        if state.deadline is not None:
            state.deadline.cancel()
        self.directory.publish(name, handler)
        instance = None if state.dev else self._instances.get(name)
        self._up[name] = (instance, handler)
        elapsed = time.monotonic() - state.started
        self.metrics.launch_duration.labels(name, "true").observe(elapsed)
        log.info("chaincode %s ready after %.1f ms", name, elapsed * 1000)
        self._event(
            name,
            events.READY,
            f"{elapsed * 1000:.1f} ms",
            instance=instance.describe() if instance is not None else "",
        )
        # Before the waiters hear: a supervisor relaunching it must know it is up first.
        self._tell_supervisor(name, ChaincodeUp(instance, handler))
        for waiter in state.waiters:
            if not waiter.done():
                waiter.set_result(handler)

    def _gone(self, message: HandlerGone) -> Instance | None:
        name = message.chaincode
        if name is None:
            return None
        self.directory.withdraw(name, message.handler)
        up = self._up.get(name)
        if message.hung:  # no use asking it politely to stop
            self.vmcontroller.tell(StopInstance(name, None, timeout=0))
        if up is not None and up[1] is message.handler:
            del self._up[name]
            self._tell_supervisor(
                name,
                ChaincodeDown(
                    up[0],
                    message.handler,
                    message.reason,
                    crashed=message.crashed,
                    abnormal=not message.closed_by_peer,
                ),
            )
        state = self._launching.get(name)
        if state is not None and state.handler is message.handler:
            self._fail(
                name,
                state.launch_id,
                LaunchError(f"chaincode registration failed: {message.reason}"),
            )
        return self._instances.get(name)

    def _exited(self, message: InstanceExited) -> None:
        name, status, instance = message.chaincode, message.status, message.instance
        tail = last_log_lines(instance)
        self._event(
            name,
            events.EXITED,
            status.describe(),
            instance=instance.describe(),
            exit_code=status.code if status.signal is None else 128 + status.signal,
            signal=status.signal,
            last_lines=tail,
        )
        cause = exit_cause(instance, status, tail)
        up = self._up.get(name)
        handler = None
        if up is not None and up[0] is instance:
            del self._up[name]
            handler = up[1]
            # Out of the directory at once: new requests go to the supervisor, not to a
            # Handler whose stream is about to end.
            self.directory.withdraw(name, handler)
        # Always told: a supervisor waiting to learn how the instance ended needs it.
        self._tell_supervisor(name, ChaincodeDown(instance, handler, cause, status))
        state = self._launching.get(name)
        if state is not None and state.launch_id == message.launch_id:
            self._fail(
                name,
                state.launch_id,
                LaunchError(f"chaincode registration failed: {cause}"),
            )

    def _timed_out(self, message: LaunchTimedOut) -> None:
        name = message.chaincode
        state = self._launching.get(name)
        if state is None or state.launch_id != message.launch_id:
            return
        self.metrics.launch_timeouts.labels(name).inc()
        text = (
            f"timeout expired while building the image of chaincode {name}"
            if message.building
            else f"timeout expired while starting chaincode {name} for transaction"
        )
        self._fail(name, state.launch_id, StartupTimeout(text), count_failure=False)

    def _fail(
        self, name: str, launch_id: int, error: LaunchError, *, count_failure: bool = True
    ) -> None:
        state = self._launching.get(name)
        if state is None or state.launch_id != launch_id:
            return
        del self._launching[name]
        if state.deadline is not None:
            state.deadline.cancel()
        if count_failure:
            self.metrics.launch_failures.labels(name).inc()
        self.metrics.launch_duration.labels(name, "false").observe(time.monotonic() - state.started)
        log.warning("launch of chaincode %s failed: %s", name, error)
        self._event(name, events.LAUNCH_FAILED, str(error))
        for waiter in state.waiters:
            if not waiter.done():
                waiter.set_exception(error)
        # A failed first launch leaves nothing running (Fabric 1.4 stopped the container too).
        if state.handler is not None:
            state.handler.stop(block=False)
        self.vmcontroller.tell(StopInstance(name, None, self._shutdown_timeout(name)))

    def _stop_chaincode(self, message: Stop) -> None:
        name = message.chaincode
        handler = self.directory.get(name)
        if handler is not None:
            self.directory.withdraw(name, handler)
        self._up.pop(name, None)  # a stop on request is no down for the supervisor
        self._event(name, events.STOPPED)
        state = self._launching.get(name)
        if state is not None:
            self._fail(
                name, state.launch_id, LaunchError(f"chaincode {name} stopped while launching")
            )
        if handler is not None:
            handler.stop(block=False)
        self.vmcontroller.tell(StopInstance(name, message.reply, self._shutdown_timeout(name)))

    def _shutdown_timeout(self, name: str) -> float:
        return self.config.restart_policy(self.definitions.get(name)).shutdown_timeout
