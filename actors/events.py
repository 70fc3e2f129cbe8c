"""Lifecycle events: what subscribers hear about chaincode and the peer's own actors.

Fabric has no counterpart; it logs a container's exit and leaves the cause in the container's
log. Here every launch, exit, crash and supervision decision is a :class:`LifecycleEvent`
published to in-process subscribers (``ChaincodeSupport.subscribe``) and to the admin
service's ``Events`` stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# The kinds, in the order a chaincode's life usually shows them.
LAUNCHING = "launching"  # a launch began (detail: the runtime)
BUILDING = "building"  # the runtime is building the chaincode's image
BUILT = "built"
LAUNCHED = "launched"  # the instance runs (detail: pid, container, address)
READY = "ready"  # REGISTER -> READY done; transactions flow
LAUNCH_FAILED = "launch_failed"
EXITED = "exited"  # the instance ended (exit code or signal, last log lines)
CRASHED = "crashed"  # a peer-side actor died of an exception
RESTART_SCHEDULED = "restart_scheduled"  # delay: seconds until the relaunch
NOT_RESTARTED = "not_restarted"  # the policy says leave it down
GAVE_UP = "gave_up"  # restart intensity exceeded: the chaincode is marked failed
STOPPED = "stopped"  # stopped on request
RESTARTED = "restarted"  # a peer-side actor (registry, launcher, VM controller) was replaced


@dataclass(frozen=True)
class LifecycleEvent:
    """One thing that happened to a chaincode (or, with ``chaincode`` "", to the peer)."""

    chaincode: str
    kind: str
    detail: str = ""  # the human-readable reason or description
    instance: str = ""  # which instance: "system process pid 123", "container 3f2a..."
    exit_code: int | None = None
    signal: int | None = None
    delay: float | None = None  # restart_scheduled: seconds until the relaunch
    last_lines: tuple[str, ...] = ()  # the chaincode's last log lines, when it has a log
    actor: str = ""  # crashed/restarted: which actor ("handler", "launcher", ...)
    timestamp: float = field(default_factory=time.time)


Subscriber = Callable[[LifecycleEvent], None]


class EventBus:
    """Synchronous fan-out to subscribers. Publishing runs every callback on the publisher's
    thread, so callbacks must be quick (queue the event, don't process it); one that raises
    is logged and the rest still run."""

    def __init__(self) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Add ``callback``; returns a function that removes it (idempotent)."""
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not callback)

        return unsubscribe

    def publish(self, event: LifecycleEvent) -> None:
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber failed on %s", event)
