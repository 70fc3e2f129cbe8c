"""RuntimeLauncher actor: launch states, de-duplication, startup timeout, launch metrics.

Fabric counterparts: ``core/chaincode/runtime_launcher.go`` and ``handler_registry.go``. All
callers wanting a chaincode that is not ready attach to one launch state, so 64 concurrent first
invokes start it once. The launch ends at the first of READY (success), start failure,
registration failure, exit of the instance, or the startup timeout.

The launcher also keeps the directory of ready handlers. ChaincodeSupport reads it without a
message (a dict read); only the launcher writes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pykka

from actors.errors import LaunchError, StartupTimeout, SupportShutdown, UnknownChaincode
from actors.handler import HandlerGone, HandlerReady, RegisterHandler, RegistrationRefused
from actors.mailbox import tell_quietly
from actors.vmcontroller import (
    Building,
    Built,
    InstanceExited,
    InstanceStarted,
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
    building: bool = False


@dataclass(frozen=True)
class Status:
    """Ask: {chaincode: "ready" | "launching" | "building"}."""


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


class RuntimeLauncher(pykka.ThreadingActor):
    """Starts chaincode on demand and tracks which handler serves which chaincode."""

    use_daemon_thread = True

    def __init__(
        self,
        config: Config,
        definitions: Mapping[str, ChaincodeDefinition],
        vmcontroller: pykka.ActorRef[Any],
        scheduler: Scheduler,
        metrics: Metrics,
        directory: dict[str, HandlerRef],
        on_event: Callable[[str, str, str], None] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.definitions = definitions
        self.vmcontroller = vmcontroller
        self.scheduler = scheduler
        self.metrics = metrics
        self.directory = directory  # ready handlers, read lock-free by ChaincodeSupport
        self._launching: dict[str, _LaunchState] = {}
        # The latest instance per chaincode, kept after it exits: its handler may only then
        # ask how it ended (the exit is often noticed before the stream's end).
        self._instances: dict[str, Instance] = {}
        self._next_id = 0
        self._on_event = on_event or (lambda chaincode, kind, detail: None)

    def on_stop(self) -> None:
        # Shutdown: nobody will finish these launches now (the deadlines die with the
        # scheduler), so release their waiters instead of leaving callers blocked forever.
        launching, self._launching = self._launching, {}
        for name, state in launching.items():
            if state.deadline is not None:
                state.deadline.cancel()
            error = SupportShutdown(f"chaincode support shut down while launching {name}")
            for waiter in state.waiters:
                if not waiter.done():
                    waiter.set_exception(error)

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
            self._on_event(message.chaincode, "started", message.instance.describe())
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
            status.update({name: "ready" for name in self.directory})
            return status
        else:
            raise TypeError(f"RuntimeLauncher: unexpected message {message!r}")
        return None

    def _launch(self, name: str, reply: Future[HandlerRef]) -> None:
        handler = self.directory.get(name)
        if handler is not None and handler.is_alive():
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
        self._next_id += 1
        state = _LaunchState(self._next_id, time.monotonic(), [reply])
        self._launching[name] = state
        self._arm(name, state, self.config.startup_timeout)
        self._on_event(name, "launching", definition.runtime)
        self.vmcontroller.tell(StartInstance(definition, state.launch_id, self.actor_ref))

    def _arm(self, name: str, state: _LaunchState, seconds: float) -> None:
        if state.deadline is not None:
            state.deadline.cancel()
        ref, launch_id, building = self.actor_ref, state.launch_id, state.building
        state.deadline = self.scheduler.call_later(
            seconds, lambda: tell_quietly(ref, LaunchTimedOut(name, launch_id, building))
        )

    def _building(self, message: Building | Built) -> None:
        state = self._launching.get(message.chaincode)
        if state is None or state.launch_id != message.launch_id:
            return
        if type(message) is Building:
            state.building = True
            self._arm(message.chaincode, state, self.config.install_timeout)
            self._on_event(message.chaincode, "building", "")
        else:
            # The startup window (and launch_duration) start again once the image exists.
            state.building = False
            state.started = time.monotonic()
            self._arm(message.chaincode, state, self.config.startup_timeout)
            self._on_event(message.chaincode, "built", f"{message.seconds:.1f} s")

    def _register(self, name: str, handler: HandlerRef) -> str | None:
        current = self.directory.get(name)
        if current is not None and current.is_alive():
            return f"duplicate chaincodeID: {name}"
        state = self._launching.get(name)
        if state is None:
            if self.config.mode != "dev":
                return (
                    f"peer will not accept external chaincode connection {name} "
                    "(except in dev mode)"
                )
            # Dev mode: the user started the chaincode; track it like a launch of our own.
            self._next_id += 1
            state = self._launching[name] = _LaunchState(
                self._next_id, time.monotonic(), awaiting_instance=False
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
        self.directory[name] = handler
        elapsed = time.monotonic() - state.started
        self.metrics.launch_duration.labels(name, "true").observe(elapsed)
        log.info("chaincode %s ready after %.1f ms", name, elapsed * 1000)
        self._on_event(name, "ready", f"{elapsed * 1000:.1f} ms")
        for waiter in state.waiters:
            if not waiter.done():
                waiter.set_result(handler)

    def _gone(self, message: HandlerGone) -> Instance | None:
        name = message.chaincode
        if name is None:
            return None
        if self.directory.get(name) is message.handler:
            del self.directory[name]
        state = self._launching.get(name)
        if state is not None and state.handler is message.handler:
            self._fail(
                name,
                state.launch_id,
                LaunchError(f"chaincode registration failed: {message.reason}"),
            )
        return self._instances.get(name)

    def _exited(self, message: InstanceExited) -> None:
        name = message.chaincode
        self._on_event(name, "exited", message.status.describe())
        state = self._launching.get(name)
        if state is not None and state.launch_id == message.launch_id:
            self._fail(
                name,
                state.launch_id,
                LaunchError(f"chaincode registration failed: {message.status.describe()}"),
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
        self._on_event(name, "launch_failed", str(error))
        for waiter in state.waiters:
            if not waiter.done():
                waiter.set_exception(error)
        # A failed first launch leaves nothing running (Fabric 1.4 stopped the container too).
        if state.handler is not None:
            state.handler.stop(block=False)
        self.vmcontroller.tell(StopInstance(name, None))

    def _stop_chaincode(self, message: Stop) -> None:
        name = message.chaincode
        handler = self.directory.pop(name, None)
        state = self._launching.get(name)
        if state is not None:
            self._fail(
                name, state.launch_id, LaunchError(f"chaincode {name} stopped while launching")
            )
        if handler is not None:
            handler.stop(block=False)
        self.vmcontroller.tell(StopInstance(name, message.reply))
