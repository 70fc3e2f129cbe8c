"""The RuntimeLauncher alone, message in, message out (as Fabric's runtime_launcher_test.go):
its VM controller, supervisors and handlers are Inboxes, its deadlines run on a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

from actors import events
from actors.config import ChaincodeDefinition, Config
from actors.errors import LaunchError, StartupTimeout, UnknownChaincode
from actors.events import LifecycleEvent
from actors.handler import HandlerGone, HandlerReady, RegisterHandler
from actors.launcher import (
    ChaincodeDown,
    ChaincodeUp,
    HandlerDirectory,
    Launch,
    LauncherDeps,
    RuntimeLauncher,
    Status,
)
from actors.metrics import Metrics
from actors.runtimes import ExitStatus
from actors.testing import FakeClock
from actors.vmcontroller import InstanceExited, InstanceStarted, StartFailed, StartInstance
from actors.vmcontroller import StopInstance as VMStop
from tests.helpers import Inbox

WAIT = 5.0
STARTUP = 30.0


@dataclass
class FakeInstance:
    chaincode: str
    last: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"fake {self.chaincode}"

    def last_lines(self, lines: int) -> list[str]:
        return list(self.last[-lines:])


@dataclass
class Launcher:
    ref: pykka.ActorRef[Any]
    vm: Inbox
    supervisor: Inbox
    directory: HandlerDirectory
    clock: FakeClock
    events: list[LifecycleEvent]
    metrics: Metrics

    def tell(self, message: Any) -> None:
        self.ref.tell(message)

    def settle(self) -> dict[str, str]:
        """Everything told so far has been handled (the mailbox is in order)."""
        return self.ref.ask(Status(), timeout=WAIT)

    def launch(self, name: str = "kv") -> Future[Any]:
        reply: Future[Any] = Future()
        self.tell(Launch(name, reply))
        return reply

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


@pytest.fixture
def launcher() -> Iterator[Launcher]:
    vm, supervisor, clock = Inbox(), Inbox(), FakeClock()
    directory, published, metrics = HandlerDirectory(), [], Metrics()
    deps = LauncherDeps(
        config=Config(startup_timeout=STARTUP),
        definitions={"kv": ChaincodeDefinition("kv", target="examples.kv:KVChaincode")},
        vmcontroller=vm,  # type: ignore[arg-type]
        scheduler=clock.scheduler(),
        metrics=metrics,
        directory=directory,
        publish=published.append,
        supervisor_for=lambda name: supervisor if name == "kv" else None,  # type: ignore[arg-type,return-value]
    )
    holder: list[Any] = []
    ref = RuntimeLauncher.start(deps=deps, me=lambda: holder[0])
    holder.append(ref)
    yield Launcher(ref, vm, supervisor, directory, clock, published, metrics)
    ref.stop()


def bring_up(launcher: Launcher) -> tuple[Future[Any], Inbox, FakeInstance]:
    """Launch kv and walk it to READY; the caller's future, the handler, the instance."""
    reply = launcher.launch()
    (start,) = launcher.vm.wait(StartInstance)
    handler, instance = Inbox(), FakeInstance("kv")
    assert launcher.ref.ask(RegisterHandler("kv", handler), timeout=WAIT) is None  # type: ignore[arg-type]
    launcher.tell(HandlerReady("kv", handler))  # type: ignore[arg-type]
    launcher.tell(InstanceStarted("kv", start.launch_id, instance))  # type: ignore[arg-type]
    return reply, handler, instance


def test_a_launch_starts_one_instance_however_many_wait(launcher: Launcher) -> None:
    replies = [launcher.launch() for _ in range(5)]
    launcher.settle()
    (start,) = launcher.vm.of(StartInstance)
    assert start.definition.name == "kv" and start.reply_to is launcher.ref
    assert launcher.settle() == {"kv": "launching"}
    assert not any(r.done() for r in replies)
    assert launcher.kinds() == [events.LAUNCHING]


def test_ready_and_started_complete_the_launch_in_either_order(launcher: Launcher) -> None:
    reply, handler, instance = bring_up(launcher)
    assert reply.result(WAIT) is handler
    assert launcher.directory.get("kv") is handler
    assert launcher.settle() == {"kv": "ready"}
    (up,) = launcher.supervisor.wait(ChaincodeUp)
    assert up.instance is instance and up.handler is handler
    assert launcher.kinds() == [events.LAUNCHING, events.LAUNCHED, events.READY]
    # Ready now: a launch is answered at once, nothing new is started.
    assert launcher.launch().result(WAIT) is handler
    assert len(launcher.vm.of(StartInstance)) == 1


def test_the_startup_timeout_fails_the_waiters_and_stops_the_instance(
    launcher: Launcher,
) -> None:
    reply = launcher.launch()
    launcher.settle()
    assert launcher.clock.advance(STARTUP - 0.001) == 0
    assert not reply.done()
    assert launcher.clock.advance(0.001) == 1
    with pytest.raises(StartupTimeout, match="timeout expired while starting chaincode kv"):
        reply.result(WAIT)
    (stop,) = launcher.vm.wait(VMStop)
    assert stop.chaincode == "kv"
    assert launcher.settle() == {}
    assert launcher.metrics.registry.get_sample_value(
        "chaincode_launch_timeouts_total", {"chaincode": "kv"}
    )


def test_a_failed_start_fails_the_launch_with_its_reason(launcher: Launcher) -> None:
    reply = launcher.launch()
    (start,) = launcher.vm.wait(StartInstance)
    launcher.tell(StartFailed("kv", start.launch_id, "no such image"))
    with pytest.raises(LaunchError, match="no such image"):
        reply.result(WAIT)
    assert launcher.kinds()[-1] == events.LAUNCH_FAILED
    # A stale deadline of the failed launch does nothing.
    launcher.clock.advance(STARTUP)
    launcher.settle()
    assert launcher.kinds().count(events.LAUNCH_FAILED) == 1


def test_an_unknown_chaincode_is_refused(launcher: Launcher) -> None:
    with pytest.raises(UnknownChaincode, match="'nope' not found"):
        launcher.launch("nope").result(WAIT)
    assert launcher.vm.messages == []


def test_registration_outside_a_launch_is_refused_in_net_mode(launcher: Launcher) -> None:
    refusal = launcher.ref.ask(RegisterHandler("kv", Inbox()), timeout=WAIT)  # type: ignore[arg-type]
    assert refusal == "peer will not accept external chaincode connection kv (except in dev mode)"


def test_a_second_registration_is_a_duplicate(launcher: Launcher) -> None:
    reply, _, _ = bring_up(launcher)
    reply.result(WAIT)
    refusal = launcher.ref.ask(RegisterHandler("kv", Inbox()), timeout=WAIT)  # type: ignore[arg-type]
    assert refusal == "duplicate chaincodeID: kv"


def test_an_exit_takes_the_chaincode_down_and_tells_its_supervisor(launcher: Launcher) -> None:
    reply, handler, instance = bring_up(launcher)
    reply.result(WAIT)
    instance.last = ("Traceback", "boom")
    launcher.tell(InstanceExited("kv", 0, ExitStatus(code=3), instance))  # type: ignore[arg-type]
    launcher.settle()
    assert launcher.directory.get("kv") is None
    (down,) = launcher.supervisor.wait(ChaincodeDown)
    assert down.handler is handler and down.status == ExitStatus(code=3)
    assert down.cause == "chaincode kv exited with code 3; last log lines: Traceback | boom"
    exited = [e for e in launcher.events if e.kind == events.EXITED]
    assert [(e.exit_code, e.last_lines) for e in exited] == [(3, ("Traceback", "boom"))]


def test_a_handler_that_ends_leaves_the_directory_and_gets_the_instance(
    launcher: Launcher,
) -> None:
    reply, handler, instance = bring_up(launcher)
    reply.result(WAIT)
    gone = HandlerGone("kv", handler, "stream closed", closed_by_peer=True)  # type: ignore[arg-type]
    assert launcher.ref.ask(gone, timeout=WAIT) is instance
    assert launcher.directory.get("kv") is None
    (down,) = launcher.supervisor.wait(ChaincodeDown)
    assert down.status is None and not down.abnormal and down.cause == "stream closed"


def test_a_hung_handler_gets_its_instance_killed(launcher: Launcher) -> None:
    reply, handler, _ = bring_up(launcher)
    reply.result(WAIT)
    gone = HandlerGone("kv", handler, "hung", hung=True)  # type: ignore[arg-type]
    launcher.ref.ask(gone, timeout=WAIT)
    (stop,) = launcher.vm.wait(VMStop)
    assert stop.timeout == 0
    (down,) = launcher.supervisor.wait(ChaincodeDown)
    assert down.abnormal
