"""VMController actor: serialises start/stop per chaincode and routes to its runtime.

Fabric counterpart: ``core/container/container.go`` (``VMController`` with its per-ccid lock)
in 1.x, ``ContainerRouter`` in 2.x. Runtime calls block (a process fork, a Docker build), so
they run on worker threads; the actor keeps, per chaincode, a lane of pending operations and
starts the next one only when the previous has finished. Different chaincodes proceed in
parallel. Each started instance gets a waiter thread that reports its exit.

If the actor dies, its replacement takes over the running instances and the pending lane
operations (the handover); operations still running on worker threads report to the
replacement through the supervised reference.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass
from typing import Any

import pykka

from actors.config import ChaincodeDefinition
from actors.mailbox import SupervisedActor, Watcher, tell_quietly
from actors.runtimes import Connect, ExitStatus, Instance, Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartInstance:
    definition: ChaincodeDefinition
    launch_id: int
    reply_to: pykka.ActorRef[Any]


@dataclass(frozen=True)
class StopInstance:
    chaincode: str
    reply: Future[bool] | None
    timeout: float = 5.0  # polite stop, then kill (the restart policy's shutdown_timeout)


@dataclass(frozen=True)
class StopAll:
    """Stop every instance and refuse new starts; ``reply`` gets the number stopped once
    every lane is idle, including starts that were already under way."""

    reply: Future[int]


@dataclass(frozen=True)
class ListInstances:
    """Ask: {chaincode: description}."""


@dataclass(frozen=True)
class RunningInstances:
    """Ask: {chaincode: Instance} of the instances started and not stopped."""


@dataclass(frozen=True)
class GetInstance:
    """Ask: the running instance of ``chaincode``, or None."""

    chaincode: str


@dataclass(frozen=True)
class Building:
    """To the launcher: the runtime is building the chaincode's image."""

    chaincode: str
    launch_id: int


@dataclass(frozen=True)
class Built:
    """To the launcher: the build is done; the instance starts now."""

    chaincode: str
    launch_id: int
    seconds: float


@dataclass(frozen=True)
class InstanceStarted:
    chaincode: str
    launch_id: int
    instance: Instance


@dataclass(frozen=True)
class StartFailed:
    chaincode: str
    launch_id: int
    reason: str


@dataclass(frozen=True)
class InstanceExited:
    chaincode: str
    launch_id: int
    status: ExitStatus
    instance: Instance


@dataclass(frozen=True)
class _OpDone:
    """A lane operation finished: ``instance`` now runs, ``removed`` no longer does."""

    chaincode: str
    instance: Instance | None
    removed: Instance | None
    _: KW_ONLY
    lane_done: bool = True  # False: a progress note from inside a running operation


Op = StartInstance | StopInstance


@dataclass(frozen=True)
class Handover:
    """What a VM controller leaves its replacement: the instances running, and per chaincode
    the operations still waiting in its lane (one may still be running on a worker)."""

    instances: dict[str, Instance]
    lanes: dict[str, tuple[Op, ...]]


class VMController(SupervisedActor):
    child_name = "vmcontroller"

    def __init__(
        self,
        *,
        runtimes: Mapping[str, Runtime],
        connect: Connect,
        me: Callable[[], Any],
        max_workers: int = 16,
        handover: Handover | None = None,
        watcher: Watcher | None = None,
    ) -> None:
        super().__init__(watcher=watcher)
        self.runtimes = runtimes
        self.connect = connect
        self._me = me  # this controller's supervised reference, for workers that outlive it
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="ccactors-vm")
        self._lanes: dict[str, deque[Op]] = {}
        self._instances: dict[str, Instance] = {}
        if handover is not None:
            # A lane that was busy stays busy until its running operation reports here.
            self._instances.update(handover.instances)
            self._lanes.update((name, deque(ops)) for name, ops in handover.lanes.items())
        self._stopping = False
        self._stopped_count = 0
        self._drain_waiters: list[Future[int]] = []

    def ended(self, error: BaseException | None) -> Handover:
        # Running operations finish (their processes are real); queued ones move over.
        self._pool.shutdown(wait=False)
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(self._stopped_count)
        return Handover(dict(self._instances), {n: tuple(q) for n, q in self._lanes.items()})

    @classmethod
    def abandon(cls, message: Any, cause: str) -> None:
        if type(message) is StartInstance:
            name = message.definition.name
            tell_quietly(message.reply_to, StartFailed(name, message.launch_id, cause))
        elif type(message) is StopInstance and message.reply is not None:
            if not message.reply.done():
                message.reply.set_result(False)
        else:
            super().abandon(message, cause)

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is StartInstance:
            self._enqueue(message.definition.name, message)
        elif kind is StopInstance:
            self._enqueue(message.chaincode, message)
        elif kind is _OpDone:
            self._op_done(message)
        elif kind is StopAll:
            self._stop_all(message.reply)
        elif kind is ListInstances:
            return {name: inst.describe() for name, inst in self._instances.items()}
        elif kind is GetInstance:
            return self._instances.get(message.chaincode)
        elif kind is RunningInstances:
            return dict(self._instances)
        else:
            raise TypeError(f"VMController: unexpected message {message!r}")
        return None

    def _enqueue(self, name: str, op: Op) -> None:
        lane = self._lanes.get(name)
        if lane is None:
            self._lanes[name] = deque()
            self._run(name, op)
        else:
            lane.append(op)

    def _run(self, name: str, op: Op) -> None:
        me = self._me()
        # Read on the actor thread; the worker only sees its argument.
        current = self._instances.get(name)

        def work() -> None:
            try:
                if type(op) is StartInstance:
                    done = self._start(op, current, me)
                else:
                    done = self._stop_instance(op, current)
            except Exception:  # a bug in a runtime must not wedge the lane
                log.exception("runtime operation for %s failed", name)
                done = _OpDone(name, None, None)
            tell_quietly(me, done)

        self._pool.submit(work)

    def _op_done(self, done: _OpDone) -> None:
        name = done.chaincode
        if done.removed is not None and self._instances.get(name) is done.removed:
            del self._instances[name]
        if done.instance is not None:
            self._instances[name] = done.instance
        if not done.lane_done:
            return
        lane = self._lanes.get(name)
        if lane:
            self._run(name, lane.popleft())
        else:
            self._lanes.pop(name, None)
            self._check_drained()

    # The two operations run on a worker thread; they only touch their arguments.

    def _start(self, message: StartInstance, stale: Instance | None, me: Any) -> _OpDone:
        definition = message.definition
        name = definition.name
        if stale is not None:  # Fabric removes a stale container of the same name first
            _stop_quietly(stale)
        runtime = self.runtimes.get(definition.runtime)
        if self._stopping:
            tell_quietly(message.reply_to, StartFailed(name, message.launch_id, "shutting down"))
            return _OpDone(name, None, stale)
        if runtime is None:
            tell_quietly(
                message.reply_to,
                StartFailed(
                    name, message.launch_id, f"no runtime {definition.runtime!r} configured"
                ),
            )
            return _OpDone(name, None, stale)
        build = getattr(runtime, "build", None)
        try:
            if build is not None:
                # Building an image can take minutes; the launcher keeps it out of the
                # startup window (Fabric 2.x builds before it starts the timer, too).
                tell_quietly(message.reply_to, Building(name, message.launch_id))
                started = time.monotonic()
                build(definition)
                tell_quietly(
                    message.reply_to, Built(name, message.launch_id, time.monotonic() - started)
                )
            instance = runtime.start(definition, self.connect)
        except Exception as exc:
            log.warning("starting %s failed: %s", name, exc)
            tell_quietly(
                message.reply_to,
                StartFailed(name, message.launch_id, f"error starting container: {exc}"),
            )
            return _OpDone(name, None, stale)
        # Recorded here before the launcher hears of it, so that once a launch completes,
        # asking this actor about its instances finds it.
        tell_quietly(me, _OpDone(name, instance, None, lane_done=False))
        tell_quietly(message.reply_to, InstanceStarted(name, message.launch_id, instance))
        threading.Thread(
            target=_wait_for_exit,
            args=(instance, message.launch_id, message.reply_to),
            name=f"ccactors-wait-{name}",
            daemon=True,
        ).start()
        return _OpDone(name, instance, stale)

    def _stop_instance(self, message: StopInstance, instance: Instance | None) -> _OpDone:
        if instance is not None:
            _stop_quietly(instance, message.timeout)
        if message.reply is not None and not message.reply.done():
            message.reply.set_result(True)
        return _OpDone(message.chaincode, None, instance)

    def _stop_all(self, reply: Future[int]) -> None:
        # Through the lanes, so each stop runs after whatever start is in progress there.
        self._stopping = True
        names = set(self._instances) | set(self._lanes)
        self._stopped_count += len(self._instances)
        for name in names:
            self._enqueue(name, StopInstance(name, None))
        self._drain_waiters.append(reply)
        self._check_drained()

    def _check_drained(self) -> None:
        if self._stopping and not self._lanes:
            waiters, self._drain_waiters = self._drain_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(self._stopped_count)


def _stop_quietly(instance: Instance, timeout: float = 5.0) -> None:
    try:
        instance.stop(timeout)
    except Exception:
        log.exception("stopping %s failed", instance.describe())


def _wait_for_exit(instance: Instance, launch_id: int, reply_to: pykka.ActorRef[Any]) -> None:
    status = instance.wait()
    tell_quietly(reply_to, InstanceExited(instance.chaincode, launch_id, status, instance))
