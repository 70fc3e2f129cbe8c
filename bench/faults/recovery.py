"""What the peer's lifecycle events say about each injected fault: when it was detected, when
the target recovered (its next READY, or the stopped actor's RESTARTED), how many restarts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .config import ACTOR_FAULTS, CHAINCODE_FAULTS, recovers_by_event


@dataclass(frozen=True)
class ObservedEvent:
    """A lifecycle event as the runner saw it: ``at`` is seconds into the run."""

    at: float
    chaincode: str
    kind: str
    actor: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Injection:
    """One fault as injected. ``injected`` False: it could not be (``detail`` says why).
    ``probe``: what the fault's own transaction or stream got, ``probe_s`` after ``at``;
    ``expected`` whether that is what the peer should do (None: nothing to judge)."""

    at: float
    kind: str
    target: str
    injected: bool
    detail: str = ""
    probe: str = ""
    probe_s: float | None = None
    expected: bool | None = None
    hung_probe: bool = False


@dataclass(frozen=True)
class FaultRecord:
    """An injection with what the events say about it."""

    injection: Injection
    detected_s: float | None  # -> first death/crash event of the target
    recovery_s: float | None  # -> READY of the chaincode, or RESTARTED of the actor
    events: tuple[str, ...]  # the target's events after the injection, up to its recovery

    @property
    def needs_recovery(self) -> bool:
        return self.injection.injected and recovers_by_event(self.injection.kind)


_DEATHS = frozenset(("exited", "crashed", "restart_scheduled", "gave_up", "not_restarted"))


def relate(injection: Injection, events: Sequence[ObservedEvent]) -> FaultRecord:
    """Find the detection and the recovery of one injection in the run's events."""
    if not injection.injected:
        return FaultRecord(injection, None, None, ())
    kind, target = injection.kind, injection.target
    detected = recovered = None
    seen: list[str] = []
    for event in events:
        if event.at < injection.at:
            continue
        if kind in ACTOR_FAULTS:
            mine = event.actor == target and event.kind in ("crashed", "restarted")
        else:
            mine = bool(target) and event.chaincode == target
        if not mine:
            continue
        if len(seen) < 16:
            seen.append(f"+{event.at - injection.at:.3f}s {event.kind} {event.detail[:80]}".strip())
        if detected is None and (
            event.kind in _DEATHS or (kind in ACTOR_FAULTS and event.kind == "restarted")
        ):
            detected = event.at - injection.at
        if kind in ACTOR_FAULTS and event.kind == "restarted":
            recovered = event.at - injection.at
            break
        if kind in CHAINCODE_FAULTS and event.kind == "ready":
            recovered = event.at - injection.at
            break
    return FaultRecord(injection, detected, recovered, tuple(seen))


@dataclass(frozen=True)
class FaultSummary:
    kind: str
    injected: int
    skipped: int  # could not be injected (e.g. no running instance at that moment)
    recovered: int
    unexpected: int  # the fault's probe got what the peer should not give
    recovery_s: tuple[float, ...]  # injection -> READY (or the actor's RESTARTED)
    probe_s: tuple[float, ...]
    death_to_ready_s: tuple[float, ...]  # first death event -> READY


def summarize(records: Sequence[FaultRecord], kinds: Sequence[str]) -> tuple[FaultSummary, ...]:
    out = []
    for kind in kinds:
        mine = [r for r in records if r.injection.kind == kind]
        injected = [r for r in mine if r.injection.injected]
        out.append(
            FaultSummary(
                kind,
                injected=len(injected),
                skipped=len(mine) - len(injected),
                recovered=sum(1 for r in injected if r.recovery_s is not None),
                unexpected=sum(1 for r in injected if r.injection.expected is False),
                recovery_s=tuple(r.recovery_s for r in injected if r.recovery_s is not None),
                death_to_ready_s=tuple(
                    r.recovery_s - r.detected_s
                    for r in injected
                    if r.recovery_s is not None and r.detected_s is not None
                ),
                probe_s=tuple(
                    r.injection.probe_s for r in injected if r.injection.probe_s is not None
                ),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class Restarts:
    chaincode: int  # restarts scheduled for chaincode
    actors: Mapping[str, int]  # peer actors replaced, by actor
    gave_up: int

    @property
    def total(self) -> int:
        return self.chaincode + sum(self.actors.values())


def count_restarts(events: Iterable[ObservedEvent]) -> Restarts:
    chaincode = gave_up = 0
    actors: Counter[str] = Counter()
    for event in events:
        if event.kind == "restart_scheduled" and event.chaincode:
            chaincode += 1
        elif event.kind == "restarted" and not event.chaincode:
            actors[event.actor or "?"] += 1
        elif event.kind == "gave_up":
            gave_up += 1
    return Restarts(chaincode, dict(sorted(actors.items())), gave_up)
