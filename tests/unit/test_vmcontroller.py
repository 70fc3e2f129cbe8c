"""The VMController alone, message in, message out: a fake runtime whose operations the test
releases by hand, and an Inbox for the launcher it reports to."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pykka
import pytest

from actors.config import ChaincodeDefinition
from actors.runtimes import Connect, ExitStatus
from actors.vmcontroller import (
    Building,
    Built,
    GetInstance,
    InstanceExited,
    InstanceStarted,
    ListInstances,
    StartFailed,
    StartInstance,
    StopAll,
    StopInstance,
    VMController,
)
from tests.helpers import Inbox, wait_for

WAIT = 5.0


@dataclass
class FakeInstance:
    chaincode: str
    number: int
    log: list[str]
    ended: threading.Event = field(default_factory=threading.Event)
    status: ExitStatus = field(default_factory=ExitStatus)

    def wait(self) -> ExitStatus:
        self.ended.wait()
        return self.status

    def exit_status(self, timeout: float = 0.0) -> ExitStatus | None:
        return self.status if self.ended.wait(timeout) else None

    def stop(self, timeout: float = 5.0) -> None:
        self.log.append(f"stop {self.chaincode}#{self.number}")
        self.ended.set()

    def describe(self) -> str:
        return f"fake {self.chaincode}#{self.number}"


class FakeRuntime:
    """Starts FakeInstances (as the "system" runtime); ``gate`` (when set) holds each start
    until the test opens it."""

    kind = "fake"

    def __init__(self) -> None:
        self.log: list[str] = []
        self.gate: threading.Event | None = None
        self.fail: str | None = None
        self.started: list[FakeInstance] = []

    def start(self, definition: ChaincodeDefinition, connect: Connect) -> FakeInstance:
        self.log.append(f"start {definition.name}")
        if self.gate is not None:
            assert self.gate.wait(WAIT)
        if self.fail is not None:
            raise RuntimeError(self.fail)
        instance = FakeInstance(definition.name, len(self.started) + 1, self.log)
        self.started.append(instance)
        return instance

    def close(self) -> None:
        pass


class BuildingRuntime(FakeRuntime):
    def build(self, definition: ChaincodeDefinition) -> None:
        self.log.append(f"build {definition.name}")


@dataclass
class Controller:
    ref: pykka.ActorRef[Any]
    runtime: FakeRuntime
    launcher: Inbox

    def start(self, name: str = "kv", launch_id: int = 1, runtime: str = "system") -> None:
        definition = ChaincodeDefinition(name, runtime=runtime, target="examples.kv:KVChaincode")
        self.ref.tell(StartInstance(definition, launch_id, self.launcher))  # type: ignore[arg-type]

    def stop(self, name: str = "kv") -> Future[bool]:
        done: Future[bool] = Future()
        self.ref.tell(StopInstance(name, done, timeout=1))
        return done


def make(runtime: FakeRuntime) -> Iterator[Controller]:
    holder: list[Any] = []
    ref = VMController.start(
        runtimes={"system": runtime}, connect=lambda stream, instance: None, me=lambda: holder[0]
    )
    holder.append(ref)
    yield Controller(ref, runtime, Inbox())
    for instance in runtime.started:
        instance.ended.set()
    ref.stop()


@pytest.fixture
def vm() -> Iterator[Controller]:
    yield from make(FakeRuntime())


def test_a_started_instance_is_reported_listed_and_its_exit_too(vm: Controller) -> None:
    vm.start()
    (started,) = vm.launcher.wait(InstanceStarted)
    instance = vm.runtime.started[0]
    assert (started.chaincode, started.launch_id, started.instance) == ("kv", 1, instance)
    assert vm.ref.ask(GetInstance("kv"), timeout=WAIT) is instance
    assert vm.ref.ask(ListInstances(), timeout=WAIT) == {"kv": "fake kv#1"}
    instance.status = ExitStatus(signal=9)
    instance.ended.set()
    (exited,) = vm.launcher.wait(InstanceExited)
    assert exited.status == ExitStatus(signal=9) and exited.instance is instance


def test_operations_on_one_chaincode_run_one_after_the_other(vm: Controller) -> None:
    vm.runtime.gate = gate = threading.Event()
    vm.start()
    stopped = vm.stop()
    wait_for(lambda: vm.runtime.log == ["start kv"], what="the start to begin")
    assert not stopped.done()  # queued behind the start in progress
    gate.set()
    assert stopped.result(WAIT) is True
    assert vm.runtime.log == ["start kv", "stop kv#1"]
    assert vm.ref.ask(GetInstance("kv"), timeout=WAIT) is None


def test_different_chaincodes_do_not_wait_for_each_other(vm: Controller) -> None:
    vm.runtime.gate = gate = threading.Event()
    vm.start("a")
    wait_for(lambda: vm.runtime.log == ["start a"], what="a's start to begin")
    assert vm.stop("b").result(WAIT) is True  # b's lane is free while a's start blocks
    gate.set()
    vm.launcher.wait(InstanceStarted)


def test_a_new_start_replaces_the_stale_instance_first(vm: Controller) -> None:
    vm.start(launch_id=1)
    vm.launcher.wait(InstanceStarted)
    vm.start(launch_id=2)
    (_, second) = vm.launcher.wait(InstanceStarted, 2)
    assert second.launch_id == 2
    assert vm.runtime.log == ["start kv", "stop kv#1", "start kv"]
    assert vm.ref.ask(GetInstance("kv"), timeout=WAIT) is vm.runtime.started[1]


def test_a_failing_start_is_reported_and_the_lane_goes_on(vm: Controller) -> None:
    vm.runtime.fail = "image missing"
    vm.start()
    (failed,) = vm.launcher.wait(StartFailed)
    assert failed.reason == "error starting container: image missing"
    vm.runtime.fail = None
    vm.start(launch_id=2)
    vm.launcher.wait(InstanceStarted)


def test_an_unknown_runtime_is_reported(vm: Controller) -> None:
    vm.start(runtime="process")
    (failed,) = vm.launcher.wait(StartFailed)
    assert failed.reason == "no runtime 'process' configured"


def test_a_build_is_announced_before_the_start() -> None:
    for vm in make(BuildingRuntime()):
        vm.start()
        vm.launcher.wait(InstanceStarted)
        assert [type(m) for m in vm.launcher.messages][:3] == [Building, Built, InstanceStarted]
        assert vm.runtime.log == ["build kv", "start kv"]


def test_stop_all_waits_for_starts_under_way_and_refuses_new_ones(vm: Controller) -> None:
    vm.start("a")
    vm.launcher.wait(InstanceStarted)
    vm.runtime.gate = gate = threading.Event()
    vm.start("b")
    wait_for(lambda: vm.runtime.log[-1:] == ["start b"], what="b's start to begin")
    drained: Future[int] = Future()
    vm.ref.tell(StopAll(drained))
    assert not drained.done()
    gate.set()
    assert drained.result(WAIT) == 1  # a; b was started after the count, and stopped too
    assert sorted(line for line in vm.runtime.log if line.startswith("stop")) == [
        "stop a#1",
        "stop b#2",
    ]
    vm.start("c", launch_id=9)
    (failed,) = vm.launcher.wait(StartFailed)
    assert (failed.chaincode, failed.reason) == ("c", "shutting down")
