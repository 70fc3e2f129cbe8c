"""Supervision end to end on the system runtime: chaincode restarts by policy, crashes of the
peer's own actors, liveness, and what callers see meanwhile."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors.config import ChaincodeDefinition, Config
from actors.errors import (
    ChaincodeFailed,
    ChaincodeRestarting,
    ChaincodeStreamTerminated,
    DuplicateTransaction,
    ExecuteTimeout,
    SupportShutdown,
)
from actors.events import (
    CRASHED,
    EXITED,
    GAVE_UP,
    NOT_RESTARTED,
    READY,
    RESTART_SCHEDULED,
    RESTARTED,
)
from actors.policy import RestartPolicy
from actors.support import ChaincodeSupport
from actors.testing import Poison
from tests.helpers import EventLog, wait_for

CHANNEL = "ch"
CRASHY = "tests.integration.chaincodes:Crashy"
WAIT = 20.0
FAST = RestartPolicy(backoff_initial=0.01, backoff_max=0.05)


@pytest.fixture
def make() -> Iterator[Callable[..., tuple[ChaincodeSupport, EventLog]]]:
    made: list[ChaincodeSupport] = []

    def build(
        policy: RestartPolicy | None = FAST, **config: Any
    ) -> tuple[ChaincodeSupport, EventLog]:
        config.setdefault("startup_timeout", 10.0)
        config.setdefault("execute_timeout", 10.0)
        definitions = (
            ChaincodeDefinition("cc", target=CRASHY, restart=policy),
            ChaincodeDefinition("other", target=CRASHY, restart=policy),
        )
        support = ChaincodeSupport(Config(channels=(CHANNEL,), chaincodes=definitions, **config))
        made.append(support)
        return support, EventLog(support)

    yield build
    for support in made:
        support.shutdown()


def run(
    support: ChaincodeSupport, *args: str, chaincode: str = "cc", txid: str | None = None, **kw: Any
) -> Any:
    return support.execute_async(CHANNEL, txid, chaincode, list(args), **kw).result(WAIT)


def pid_of(support: ChaincodeSupport, chaincode: str = "cc") -> int:
    return int(run(support, "ok", chaincode=chaincode).response.payload.split()[1])


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "State:\tZ" not in status.read()
    except FileNotFoundError:
        return False


# -- chaincode restarts ----------------------------------------------------------------------


def test_killed_chaincode_is_restarted_without_waiting_for_a_request(make: Any) -> None:
    support, events = make()
    first = pid_of(support)
    in_flight = support.execute_async(CHANNEL, None, "cc", ["sleep", "5"])
    time.sleep(0.2)
    started = time.monotonic()
    os.kill(first, signal.SIGKILL)
    with pytest.raises(ChaincodeStreamTerminated, match=r"exited with code 137 \(SIGKILL\)"):
        in_flight.result(WAIT)
    assert time.monotonic() - started < 3, "in-flight work must fail at once, not time out"

    assert wait_for(lambda: events.count(READY, "cc") == 2), events.kinds("cc")
    (exited,) = events.of(EXITED, "cc")
    assert (exited.exit_code, exited.signal) == (137, signal.SIGKILL)
    assert exited.instance == f"system process pid {first}"
    (scheduled,) = events.of(RESTART_SCHEDULED, "cc")
    assert 0.008 <= scheduled.delay <= 0.012  # backoff_initial 10 ms, jitter 20 %
    assert "SIGKILL" in scheduled.detail
    kinds = events.kinds("cc")
    assert kinds.index(EXITED) < kinds.index(RESTART_SCHEDULED) < len(kinds) - 1
    second = pid_of(support)
    assert second != first and alive(second) and not alive(first)


def test_requests_during_a_restart_wait_for_ready(make: Any) -> None:
    support, events = make(RestartPolicy(backoff_initial=0.5, jitter=0))
    first = pid_of(support)
    os.kill(first, signal.SIGKILL)
    assert wait_for(lambda: events.count(RESTART_SCHEDULED, "cc") == 1)
    started = time.monotonic()
    second = pid_of(support)  # waits for the relaunch, which comes after the backoff
    assert time.monotonic() - started >= 0.3
    assert second != first
    assert events.count(READY, "cc") == 2


def test_fail_fast_policy_names_the_cause(make: Any) -> None:
    support, events = make(RestartPolicy(backoff_initial=2.0, jitter=0, during_restart="fail"))
    os.kill(pid_of(support), signal.SIGKILL)
    assert wait_for(lambda: events.count(RESTART_SCHEDULED, "cc") == 1)
    assert support.status()["cc"] == "restarting"
    with pytest.raises(ChaincodeRestarting, match=r"restarting after: .*SIGKILL"):
        run(support, "ok")
    assert wait_for(lambda: events.count(READY, "cc") == 2, timeout=10)
    assert run(support, "ok").response.status == 200


def test_gives_up_past_the_restart_intensity_and_an_explicit_launch_retries(make: Any) -> None:
    support, events = make(RestartPolicy(max_restarts=2, within=60, backoff_initial=0.01))
    for crash in range(3):
        assert wait_for(lambda n=crash: events.count(READY, "cc") == n + 1 or n == 0)
        with pytest.raises(ChaincodeStreamTerminated, match="exited with code 7"):
            run(support, "exit", "7")
    assert wait_for(lambda: events.count(GAVE_UP, "cc") == 1), events.kinds("cc")
    (gave_up,) = events.of(GAVE_UP, "cc")
    assert "more than 2 restarts in 60 s" in gave_up.detail
    assert "exited with code 7" in gave_up.detail
    assert support.status()["cc"] == "failed"
    started = time.monotonic()
    with pytest.raises(ChaincodeFailed, match="more than 2 restarts"):
        run(support, "ok")
    assert time.monotonic() - started < 1, "a failed chaincode fails fast"
    assert events.count(READY, "cc") == 3  # nothing relaunched it

    support.launch("cc", timeout=WAIT)  # by name: try again
    assert support.status()["cc"] == "ready"
    assert run(support, "ok").response.status == 200


@pytest.mark.parametrize(
    ("restart", "code", "expected"),
    [
        ("transient", "0", NOT_RESTARTED),
        ("transient", "7", RESTART_SCHEDULED),
        ("permanent", "0", RESTART_SCHEDULED),
        ("temporary", "7", NOT_RESTARTED),
    ],
)
def test_restart_types(make: Any, restart: str, code: str, expected: str) -> None:
    support, events = make(RestartPolicy(restart=restart, backoff_initial=0.01))
    pid_of(support)
    with pytest.raises(ChaincodeStreamTerminated):
        run(support, "exit", code)
    assert wait_for(
        lambda: events.count(NOT_RESTARTED, "cc") + events.count(RESTART_SCHEDULED, "cc")
    )
    time.sleep(0.2)  # a wrong second decision would show up by now
    decisions = [k for k in events.kinds("cc") if k in (NOT_RESTARTED, RESTART_SCHEDULED)]
    assert decisions == [expected]
    if expected == NOT_RESTARTED:
        assert "cc" not in support.status()
        # Left down: the next request launches it on demand, as Fabric does.
        assert run(support, "ok").response.status == 200


def test_handler_crash_fails_its_transactions_and_the_chaincode_is_replaced(make: Any) -> None:
    support, events = make()
    first = pid_of(support)
    other = pid_of(support, "other")
    in_flight = support.execute_async(CHANNEL, None, "cc", ["sleep", "5"])
    time.sleep(0.2)
    support.handler_for("cc").tell(Poison("boom"))
    with pytest.raises(ChaincodeStreamTerminated, match=r"handler crashed: .*Poison"):
        in_flight.result(3)
    assert wait_for(lambda: events.count(READY, "cc") == 2), events.kinds("cc")
    (crashed,) = events.of(CRASHED, "cc")
    assert crashed.actor == "handler"
    second = pid_of(support)
    assert second != first and wait_for(lambda: not alive(first), timeout=10)
    assert pid_of(support, "other") == other  # the other chaincode never noticed


def test_hung_chaincode_is_detected_and_replaced(make: Any) -> None:
    support, events = make(RestartPolicy(backoff_initial=0.01, shutdown_timeout=0.5), hung_after=1)
    first = pid_of(support)
    os.kill(first, signal.SIGSTOP)
    try:
        with pytest.raises(ExecuteTimeout):
            run(support, "ok", timeout=0.5)
        assert wait_for(lambda: events.count(READY, "cc") == 2), events.kinds("cc")
        (scheduled,) = events.of(RESTART_SCHEDULED, "cc")
        assert "chaincode hung" in scheduled.detail
        assert pid_of(support) != first
        assert wait_for(lambda: not alive(first), timeout=10), "the hung process is killed"
    finally:
        if alive(first):
            os.kill(first, signal.SIGKILL)


def test_shutdown_during_a_backoff_releases_waiting_requests(make: Any) -> None:
    support, events = make(RestartPolicy(backoff_initial=5.0, jitter=0))
    os.kill(pid_of(support), signal.SIGKILL)
    assert wait_for(lambda: events.count(RESTART_SCHEDULED, "cc") == 1)
    waiting = support.execute_async(CHANNEL, None, "cc", ["ok"])
    time.sleep(0.1)
    started = time.monotonic()
    support.shutdown()
    with pytest.raises(SupportShutdown):
        waiting.result(5)
    assert time.monotonic() - started < 5


# -- the peer's own actors -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["stop", "exception"])
def test_launcher_is_replaced_and_keeps_what_runs(make: Any, how: str) -> None:
    support, events = make()
    first = pid_of(support)
    old = support.launcher.actor_ref
    if how == "stop":
        old.stop()
    else:
        old.tell(Poison())
    assert wait_for(lambda: events.count(RESTARTED)), events.kinds()
    (restarted,) = events.of(RESTARTED)
    assert restarted.actor == "launcher" and restarted.chaincode == ""
    assert support.launcher.actor_ref is not old and support.launcher.is_alive()
    assert events.count(CRASHED) == (how == "exception")
    # The running chaincode was kept, a new one launches, and exits are still noticed.
    assert pid_of(support) == first
    assert pid_of(support, "other") != first
    assert support.status() == {"cc": "ready", "other": "ready"}
    os.kill(first, signal.SIGKILL)
    assert wait_for(lambda: events.count(READY, "cc") == 2), events.kinds("cc")
    assert pid_of(support) != first


def test_vmcontroller_is_replaced_and_takes_over_the_instances(make: Any) -> None:
    support, events = make()
    first = pid_of(support)
    support.vmcontroller.tell(Poison())
    assert wait_for(lambda: events.count(RESTARTED)), events.kinds()
    assert events.of(RESTARTED)[0].actor == "vmcontroller"
    assert support.instances()["cc"] == f"system process pid {first}"
    # A restart goes through the new controller, which removes the old instance first.
    os.kill(first, signal.SIGKILL)
    assert wait_for(lambda: events.count(READY, "cc") == 2), events.kinds("cc")
    second = pid_of(support)
    support.stop("cc")
    assert wait_for(lambda: not alive(second), timeout=10)


def test_registry_is_replaced_and_rebuilt_from_the_handlers(make: Any) -> None:
    support, events = make()
    pid_of(support)
    slow = support.execute_async(CHANNEL, "T1", "cc", ["sleep", "1.5"])
    time.sleep(0.2)
    support.registry.tell(Poison())
    assert wait_for(lambda: events.count(RESTARTED)), events.kinds()
    assert events.of(RESTARTED)[0].actor == "registry"
    # The in-flight transaction is known to the new registry: its txid is still taken...
    with pytest.raises(DuplicateTransaction, match=re.escape("txid: T1(ch) exists")):
        run(support, "ok", txid="T1")
    # ...and it completes normally.
    assert slow.result(WAIT).response.status == 200
    assert run(support, "ok", txid="T1").response.status == 200
