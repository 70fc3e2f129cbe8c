"""Sending to actors that may stop, crash or be replaced.

A tell to a stopped pykka actor raises ActorDeadError, and pykka drops what was queued to an
actor when it stops. Here: :func:`tell_quietly` for notifications (a dead recipient has nothing
left to learn), :class:`SupervisedActor` for actors that hand back their queued mail when they
end, and :class:`SupervisedRef` for references that follow an actor to its replacement (the
supervisor that replaces it is in :mod:`actors.supervisor`).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pykka
from pykka.messages import _ActorStop

from actors.errors import SupportShutdown

log = logging.getLogger(__name__)


def tell_quietly(ref: pykka.ActorRef[Any], message: Any) -> None:
    """``ref.tell(message)``, doing nothing if the actor has stopped."""
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(message)


# -- supervised references -------------------------------------------------------------------


class SupervisedRef:
    """A reference to a supervised actor that follows it across restarts.

    ``tell`` and ``ask`` go to the current actor. If it has died, they wait (at most
    ``wait`` seconds) for the supervisor to put a replacement in, then go there; if the
    supervisor gave up or is shutting down, they raise :class:`pykka.ActorDeadError`.
    """

    def __init__(self, name: str, ref: pykka.ActorRef[Any], wait: float = 5.0) -> None:
        self.name = name
        self._ref = ref
        self._wait = wait
        self._down: str | None = None
        self._changed = threading.Condition()

    @property
    def actor_ref(self) -> pykka.ActorRef[Any]:
        """The current actor (may be dead by the time you use it)."""
        return self._ref

    def tell(self, message: Any) -> None:
        ref = self._ref
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            self._successor(ref).tell(message)

    def ask(self, message: Any, timeout: float | None = None) -> Any:
        ref = self._ref
        try:
            return ref.ask(message, timeout=timeout)
        except pykka.ActorDeadError:
            return self._successor(ref).ask(message, timeout=timeout)

    def is_alive(self) -> bool:
        return self._ref.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        self.close("stopped")
        self._ref.stop(timeout=timeout)

    def replace(self, ref: pykka.ActorRef[Any]) -> None:
        with self._changed:
            self._ref = ref
            self._changed.notify_all()

    def close(self, reason: str) -> None:
        """No replacement will come: waiting callers get ActorDeadError naming ``reason``."""
        with self._changed:
            if self._down is None:
                self._down = reason
            self._changed.notify_all()

    def _successor(self, dead: pykka.ActorRef[Any]) -> pykka.ActorRef[Any]:
        deadline = time.monotonic() + self._wait
        with self._changed:
            while self._ref is dead and self._down is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise pykka.ActorDeadError(f"{self.name} is not running (no replacement)")
                self._changed.wait(remaining)
            if self._ref is dead:
                raise pykka.ActorDeadError(f"{self.name} is not running: {self._down}")
            return self._ref

    def __repr__(self) -> str:
        return f"SupervisedRef({self.name}, {self._ref})"


# -- supervised actors -----------------------------------------------------------------------


@dataclass(frozen=True)
class ChildEnded:
    """To a supervisor: a supervised actor died (``error``) or was stopped (None)."""

    name: str
    ref: pykka.ActorRef[Any]
    error: BaseException | None
    queued: tuple[Any, ...]  # tells still in its mailbox, for the replacement
    handover: Any = None  # facts about the world it kept (e.g. running instances)


Watcher = Callable[[ChildEnded], bool]


def drain_mailbox(actor: pykka.ThreadingActor) -> list[Any]:
    """Take what is queued to a stopping actor: asks get ActorDeadError, tells are returned.
    pykka would drop the tells, leaving whoever waits on them waiting."""
    tells = []
    while True:
        try:
            envelope = actor.actor_inbox.get_nowait()
        except queue.Empty:
            return tells
        if envelope.reply_to is None:
            tells.append(envelope.message)
        elif isinstance(envelope.message, _ActorStop):
            envelope.reply_to.set(None)
        else:
            dead = pykka.ActorDeadError(f"{actor.actor_ref} stopped before handling it")
            envelope.reply_to.set_exception(exc_info=(type(dead), dead, None))


class ThreadingActor(pykka.ThreadingActor):
    """Base of every actor here: a daemon thread, and a mailbox that is a C-implemented
    ``queue.SimpleQueue`` instead of pykka's ``queue.Queue``, whose put and get go through a
    Python-level Condition (its ``notify`` was 8 % of the peer's GIL samples at 1 client)."""

    use_daemon_thread = True

    @staticmethod
    def _create_actor_inbox() -> Any:
        return queue.SimpleQueue()


class SupervisedActor(ThreadingActor):
    """Base of the peer actors a :class:`RootSupervisor` watches. On its end, the actor gives
    back what it owns (:meth:`ended`), then reports to its watcher with the tells still
    queued; if nobody watches (shutdown), the queued messages are abandoned with an error."""

    child_name = "actor"

    def __init__(self, *, watcher: Watcher | None = None) -> None:
        super().__init__()
        self.watcher = watcher

    def on_stop(self) -> None:
        self._end(None)

    def on_failure(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        log.error("%s crashed: %r", self.child_name, exc_value)
        self._end(exc_value)

    def _end(self, error: BaseException | None) -> None:
        handover = self.ended(error)
        queued = tuple(drain_mailbox(self))
        report = ChildEnded(self.child_name, self.actor_ref, error, queued, handover)
        if self.watcher is None or not self.watcher(report):
            cause = f"{self.child_name} {'crashed' if error else 'stopped'}"
            for message in queued:
                self.abandon(message, cause)

    def ended(self, error: BaseException | None) -> Any:
        """Release what this actor owns; return what a replacement should take over."""
        return None

    @classmethod
    def abandon(cls, message: Any, cause: str) -> None:
        """``message`` will never be handled: tell whoever waits on it (default: a ``reply``
        future gets an error)."""
        reply = getattr(message, "reply", None)
        if isinstance(reply, Future) and not reply.done():
            reply.set_exception(
                SupportShutdown(f"{cause} before handling {type(message).__name__}")
            )
