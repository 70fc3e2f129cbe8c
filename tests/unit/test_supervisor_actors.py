"""RootSupervisor and SupervisedRef with a toy child: replacement, re-delivery of queued
mail, giving up, shutdown."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

from actors.errors import SupportShutdown
from actors.events import CRASHED, GAVE_UP, RESTARTED, LifecycleEvent
from actors.mailbox import SupervisedActor, SupervisedRef, Watcher
from actors.policy import Restart, RestartPolicy
from actors.supervisor import RootSupervisor, ShuttingDown, Supervise
from actors.testing import Poison
from tests.helpers import wait_for

WAIT = 5.0


@dataclass(frozen=True)
class Record:
    value: int
    reply: Future[int] | None = None


@dataclass(frozen=True)
class Block:
    until: threading.Event


class Child(SupervisedActor):
    child_name = "child"

    def __init__(self, handover: Any, *, watcher: Watcher | None = None) -> None:
        super().__init__(watcher=watcher)
        self.generation = (handover or 0) + 1

    def ended(self, error: BaseException | None) -> int:
        return self.generation  # the replacement learns how many came before it

    def on_receive(self, message: Any) -> Any:
        if type(message) is Block:
            message.until.wait(WAIT)
        elif type(message) is Record:
            if message.reply is not None:
                message.reply.set_result(self.generation)
        elif message == "generation":
            return self.generation
        else:
            raise TypeError(f"unexpected {message!r}")
        return None


@pytest.fixture
def root() -> Iterator[tuple[pykka.ActorRef[Any], list[LifecycleEvent]]]:
    events: list[LifecycleEvent] = []
    policy = RestartPolicy(Restart.PERMANENT, max_restarts=2, within=60, backoff_initial=0)
    ref = RootSupervisor.start(events.append, policy)
    yield ref, events
    ref.ask(ShuttingDown())
    ref.stop()
    pykka.ActorRegistry.stop_all()


def supervise(root: pykka.ActorRef[Any]) -> SupervisedRef:
    return root.ask(
        Supervise("child", lambda watcher, handover: Child.start(handover, watcher=watcher))
    )


def test_a_crashed_child_is_replaced_and_its_queued_mail_delivered(root: Any) -> None:
    ref, events = root
    child = supervise(ref)
    first = child.actor_ref
    gate = threading.Event()
    child.tell(Block(gate))
    child.tell(Poison())
    queued: Future[int] = Future()
    child.tell(Record(1, queued))  # behind the poison: must reach the replacement
    gate.set()
    assert queued.result(WAIT) == 2
    assert child.actor_ref is not first
    assert child.ask("generation", timeout=WAIT) == 2  # the handover counted generations
    # The queued mail reaches the replacement before RESTARTED is published, and the old
    # actor's thread finishes on its own: wait for both rather than race them.
    wait_for(lambda: len(events) >= 2 and not first.is_alive(), WAIT, what="the restart")
    assert [e.kind for e in events] == [CRASHED, RESTARTED]
    assert events[1].actor == "child" and "Poison" in events[1].detail


def test_a_stale_reference_follows_the_replacement(root: Any) -> None:
    ref, _ = root
    child = supervise(ref)
    old = child.actor_ref
    old.stop()  # a normal stop of a permanent child: replaced too
    reply: Future[int] = Future()
    child.tell(Record(2, reply))  # the dead ref raises inside; the SupervisedRef waits
    assert reply.result(WAIT) == 2


def test_past_the_intensity_the_root_gives_up_and_callers_get_an_error(root: Any) -> None:
    ref, events = root
    child = supervise(ref)
    for generation in (1, 2):
        current = child.actor_ref
        current.tell(Poison())
        assert child.ask("generation", timeout=WAIT) == generation + 1
    gate = threading.Event()
    child.tell(Block(gate))
    child.tell(Poison())
    lost: Future[int] = Future()
    child.tell(Record(3, lost))
    gate.set()
    with pytest.raises(SupportShutdown, match="gave up: more than 2 restarts"):
        lost.result(WAIT)
    with pytest.raises(pykka.ActorDeadError, match="gave up"):
        child.tell(Record(4))
    assert events[-1].kind == GAVE_UP and events[-1].actor == "child"


def test_after_shutting_down_nothing_is_restarted(root: Any) -> None:
    ref, events = root
    child = supervise(ref)
    ref.ask(ShuttingDown())
    child.actor_ref.stop()
    with pytest.raises(pykka.ActorDeadError, match="shut down"):
        child.tell(Record(5))
    assert events == []
