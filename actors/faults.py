"""Fault injection: ``ccactors faults`` runs an invoke load and breaks the peer on a schedule.

Fabric has no counterpart: Fabric ships no fault injector, and nothing in it restarts chaincode
or its own goroutines. Here the runner starts a peer (:class:`ChaincodeSupport`) with
supervision turned up (a permanent restart policy, hung chaincode detection), drives a
closed-loop invoke load through it, injects one fault every few seconds and then checks what
the load saw against the ledger:

* every transaction writes one unique key with its txid as the value, then commits;
* each submission gets exactly one outcome (a done-callback on its future): an outcome
  arriving twice is *duplicated*, none within the bound is *hung*, none at all is *lost*;
* the ledger check: every committed write belongs to a succeeded transaction, no succeeded
  transaction's write is missing, no key was written twice;
* recovery time per fault: injection -> the next READY of the chaincode (or the RESTARTED of
  the peer actor that was stopped), from the peer's lifecycle events.

The pure parts (configuration, schedule, outcome accounting, ledger check, recovery times,
report) are separate from :class:`FaultRunner`, which does the I/O.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from actors.events import LifecycleEvent
    from actors.support import ChaincodeSupport

log = logging.getLogger(__name__)

CHANNEL = "faults-channel"
TARGET = "examples.faulty:Faulty"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# -- fault kinds -----------------------------------------------------------------------------

KILL = "kill"  # SIGKILL the chaincode process (docker: docker kill the container)
HANDLER_EXCEPTION = "handler_exception"  # an exception inside the chaincode's Handler actor
STOP_LAUNCHER = "stop_launcher"  # stop the RuntimeLauncher actor
STOP_VMCONTROLLER = "stop_vmcontroller"  # stop the VMController actor
CRASH_REGISTRY = "crash_registry"  # an exception inside the TXContext registry actor
HANG = "hang"  # SIGSTOP the chaincode process (docker: pause the container)
NEVER_REGISTERS = "never_registers"  # a process chaincode that never sends REGISTER
PIPE_GARBAGE = "pipe_garbage"  # a system chaincode writes a non-frame on its pipe
GRPC_GARBAGE = "grpc_garbage"  # a rogue client sends non-protobuf bytes to Register

FAULT_KINDS = (
    KILL,
    HANDLER_EXCEPTION,
    STOP_LAUNCHER,
    STOP_VMCONTROLLER,
    CRASH_REGISTRY,
    HANG,
    NEVER_REGISTERS,
    PIPE_GARBAGE,
    GRPC_GARBAGE,
)
CHAINCODE_FAULTS = frozenset((KILL, HANDLER_EXCEPTION, HANG, PIPE_GARBAGE))
"""Faults aimed at one of the load's chaincodes; recovered at its next READY."""
ACTOR_FAULTS: Mapping[str, str] = {
    STOP_LAUNCHER: "launcher",
    STOP_VMCONTROLLER: "vmcontroller",
    CRASH_REGISTRY: "registry",
}
"""Faults aimed at a peer actor; recovered when that actor is RESTARTED."""
RUNTIMES = ("system", "process", "docker")
NOT_ON: Mapping[str, frozenset[str]] = {
    "system": frozenset(),
    "process": frozenset((PIPE_GARBAGE,)),  # the chaincode talks gRPC: there is no pipe
    "docker": frozenset((PIPE_GARBAGE,)),
}

SUCCEEDED = "succeeded"


def faults_for(runtime: str) -> tuple[str, ...]:
    """The fault kinds that apply to ``runtime`` (the default of ``--faults``)."""
    return tuple(kind for kind in FAULT_KINDS if kind not in NOT_ON[runtime])


# -- configuration ---------------------------------------------------------------------------


class FaultsConfigError(ValueError):
    """A bad option for a fault run (the CLI turns it into a usage error)."""


class FaultsUnavailable(RuntimeError):
    """The run cannot happen on this machine (e.g. no Docker engine for the docker runtime)."""


@dataclass(frozen=True)
class FaultsConfig:
    """What one fault run does. ``faults`` empty means every kind that applies."""

    runtime: str = "system"
    clients: int = 64
    duration: float = 60.0
    fault_every: float = 2.0
    faults: tuple[str, ...] = ()
    chaincodes: int = 2
    seed: int | None = None
    execute_timeout: float = 3.0
    startup_timeout: float = 10.0
    margin: float = 5.0  # a client gives up on a transaction after execute + startup + margin
    hung_after: int = 1  # Config.hung_after: execute timeouts in a row that make a chaincode hung

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise FaultsConfigError(
                f"--runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}"
            )
        if self.clients < 1:
            raise FaultsConfigError(f"--clients must be at least 1, got {self.clients}")
        if self.chaincodes < 1:
            raise FaultsConfigError(f"--chaincodes must be at least 1, got {self.chaincodes}")
        for name, flag in (
            ("duration", "--duration"),
            ("fault_every", "--fault-every"),
            ("execute_timeout", "--execute-timeout"),
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise FaultsConfigError(f"{flag} must be a positive number of seconds, got {value}")
        if not math.isfinite(self.startup_timeout) or self.startup_timeout < 5:
            # Config refuses less (Fabric's floor); say it in terms of our flag.
            raise FaultsConfigError(
                f"--startup-timeout must be at least 5 seconds, got {self.startup_timeout}"
            )
        if not math.isfinite(self.margin) or self.margin < 0:
            raise FaultsConfigError(f"margin must be >= 0, got {self.margin}")
        if self.hung_after < 1:
            raise FaultsConfigError(f"hung_after must be at least 1, got {self.hung_after}")
        kinds = tuple(self.faults) or faults_for(self.runtime)
        unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
        if unknown:
            raise FaultsConfigError(
                f"--faults: unknown fault kind(s) {', '.join(unknown)} "
                f"(known: {', '.join(FAULT_KINDS)})"
            )
        unusable = [kind for kind in kinds if kind in NOT_ON[self.runtime]]
        if unusable:
            raise FaultsConfigError(
                f"--faults: {', '.join(unusable)} cannot be injected on the {self.runtime} "
                "runtime (pipe_garbage needs the system runtime's pipe)"
            )
        object.__setattr__(self, "faults", tuple(dict.fromkeys(kinds)))

    @property
    def wait_bound(self) -> float:
        """How long a client waits for one outcome before counting the transaction hung."""
        return self.execute_timeout + self.startup_timeout + self.margin

    @property
    def chaincode_names(self) -> tuple[str, ...]:
        return tuple(f"faulty{i}" for i in range(self.chaincodes))


def parse_fault_list(text: str) -> tuple[str, ...]:
    """``"kill, hang"`` -> ``("kill", "hang")``; ``"all"`` or empty -> ``()`` (the default)."""
    kinds = tuple(part.strip() for part in text.split(",") if part.strip())
    return () if kinds in ((), ("all",)) else kinds


# -- schedule --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduledFault:
    """Inject ``kind`` at ``at`` seconds into the load, aimed at ``target`` (a chaincode
    name, a peer actor's name, or "" when the fault makes its own target)."""

    at: float
    kind: str
    target: str


def build_schedule(
    kinds: Sequence[str], duration: float, every: float, chaincodes: Sequence[str], seed: int
) -> tuple[ScheduledFault, ...]:
    """One fault every ``every`` seconds strictly inside ``(0, duration)``.

    Kinds are dealt like cards: each round is a fresh shuffle of all of them, so every kind
    comes once before any comes twice. Chaincode faults pick their target at random.
    """
    if not kinds:
        return ()
    rng = random.Random(seed)
    deck: list[str] = []
    out: list[ScheduledFault] = []
    count = max(0, math.ceil(duration / every) - 1)
    for n in range(1, count + 1):
        if not deck:
            deck = list(kinds)
            rng.shuffle(deck)
        kind = deck.pop()
        if kind in CHAINCODE_FAULTS:
            target = rng.choice(list(chaincodes))
        elif kind in ACTOR_FAULTS:
            target = ACTOR_FAULTS[kind]
        else:
            target = ""
        out.append(ScheduledFault(round(n * every, 6), kind, target))
    return tuple(out)


# -- outcome accounting ----------------------------------------------------------------------

_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
_HEX = re.compile(r"\b[0-9a-f]{12,}\b")


def describe_failure(exc: BaseException, width: int = 60) -> str:
    """``"ExecuteTimeout: timeout expired while executing transaction"``: the type name and
    the start of the message's first line, numbers and ids blanked so that reasons group."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    text = _NUMBER.sub("N", _HEX.sub("…", text))[:width]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Tx:
    """One submission as the runner tracks it (internal, guarded by the book's lock)."""

    __slots__ = (
        "chaincode",
        "client",
        "done",
        "final",
        "hung",
        "key",
        "outcome",
        "outcomes",
        "resolved_at",
        "result",
        "submitted_at",
        "txid",
    )

    def __init__(self, txid: str, client: int, chaincode: str, key: str, at: float) -> None:
        self.txid = txid
        self.client = client
        self.chaincode = chaincode
        self.key = key
        self.submitted_at = at
        self.resolved_at: float | None = None
        self.outcome: str | None = None  # "ok" or a failure reason: the execution's outcome
        self.outcomes = 0  # how many outcomes arrived (1 is right)
        self.result: Any = None
        self.final: str | None = None  # SUCCEEDED or why not, once the client decided
        self.hung = False
        self.done = threading.Event()


@dataclass(frozen=True)
class TxInfo:
    """A transaction worth naming in the report (hung, lost, duplicated)."""

    txid: str
    chaincode: str
    key: str
    submitted_at: float  # seconds into the run
    outcome: str | None  # what finally arrived, if anything
    resolved_at: float | None


@dataclass(frozen=True)
class Attempt:
    """What the ledger check needs to know about one transaction."""

    txid: str
    chaincode: str
    key: str
    succeeded: bool


@dataclass(frozen=True)
class Accounting:
    """What the load saw. ``succeeded + failed + hung + unfinished == submitted``; ``lost``
    (no outcome ever) is a subset of ``hung + unfinished``."""

    submitted: int
    succeeded: int
    failures: Mapping[str, int]
    hung: int
    late: int  # hung, but an outcome arrived after the client gave up
    lost: int
    duplicated: int
    mismatched: int  # a result that is not this transaction's (other txid or write set)
    unfinished: int  # the client never concluded (it was stuck, see stuck_threads)
    examples: Mapping[str, tuple[TxInfo, ...]]  # "hung", "lost", "duplicated": a few each

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


class OutcomeBook:
    """Thread-safe record of every submission and its outcome.

    Clients call :meth:`submit`, the future's done-callback :meth:`executed` (once, or a
    second call is a duplicated outcome), the client :meth:`conclude` or :meth:`give_up`.
    ``clock`` gives seconds into the run.
    """

    EXAMPLES = 10

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._txs: dict[str, _Tx] = {}
        self._duplicates: list[str] = []
        self.logged_duplicates = 0  # InvalidStateError records seen in the log

    def submit(self, txid: str, client: int, chaincode: str, key: str) -> _Tx:
        tx = _Tx(txid, client, chaincode, key, self._clock())
        with self._lock:
            if txid in self._txs:
                raise ValueError(f"txid {txid} submitted twice")
            self._txs[txid] = tx
        return tx

    def executed(self, tx: _Tx, outcome: str, result: Any = None) -> None:
        """The execution's outcome: ``"ok"`` with its result, or a failure reason."""
        with self._lock:
            tx.outcomes += 1
            if tx.outcomes > 1:
                self._duplicates.append(tx.txid)
                return
            tx.outcome = outcome
            tx.result = result
            tx.resolved_at = self._clock()
        tx.done.set()

    def resolve_future(self, tx: _Tx, future: Future[Any]) -> None:
        """A done-callback: read the future and record its outcome."""
        if future.cancelled():
            self.executed(tx, "cancelled")
            return
        exc = future.exception()
        if exc is not None:
            self.executed(tx, describe_failure(exc))
        else:
            self.executed(tx, "ok", future.result())

    def conclude(self, tx: _Tx, final: str) -> None:
        """The client's verdict: :data:`SUCCEEDED` or why not."""
        with self._lock:
            tx.final = final
            tx.result = None  # keep memory flat over long runs

    def give_up(self, tx: _Tx) -> None:
        """No outcome within the bound: the transaction is hung (an outcome may come later)."""
        with self._lock:
            tx.hung = True

    def snapshot(self) -> tuple[int, int, int, int]:
        """(submitted, succeeded, failed, in flight) for progress lines."""
        with self._lock:
            txs = list(self._txs.values())
        succeeded = sum(1 for tx in txs if tx.final == SUCCEEDED)
        failed = sum(1 for tx in txs if tx.final is not None and tx.final != SUCCEEDED)
        in_flight = sum(1 for tx in txs if tx.final is None and not tx.hung)
        return len(txs), succeeded, failed, in_flight

    def unresolved(self) -> int:
        with self._lock:
            return sum(1 for tx in self._txs.values() if tx.outcome is None)

    def attempts(self) -> list[Attempt]:
        with self._lock:
            return [
                Attempt(tx.txid, tx.chaincode, tx.key, tx.final == SUCCEEDED)
                for tx in self._txs.values()
            ]

    def accounting(self) -> Accounting:
        with self._lock:
            txs = list(self._txs.values())
            duplicates = list(self._duplicates)
        failures: Counter[str] = Counter()
        hung, late, lost, unfinished, mismatched = [], 0, [], 0, 0
        for tx in txs:
            if tx.outcome is None:
                lost.append(tx)
            if tx.hung:
                hung.append(tx)
                late += tx.outcome is not None
            elif tx.final is None:
                unfinished += 1
            elif tx.final != SUCCEEDED:
                failures[tx.final] += 1
                mismatched += tx.final.startswith("mismatched result")
        by_id = {tx.txid: tx for tx in txs}

        def info(items: Iterable[_Tx]) -> tuple[TxInfo, ...]:
            return tuple(
                TxInfo(tx.txid, tx.chaincode, tx.key, tx.submitted_at, tx.outcome, tx.resolved_at)
                for tx in list(items)[: self.EXAMPLES]
            )

        return Accounting(
            submitted=len(txs),
            succeeded=sum(1 for tx in txs if tx.final == SUCCEEDED),
            failures=dict(failures.most_common()),
            hung=len(hung),
            late=late,
            lost=len(lost),
            duplicated=len(duplicates) + self.logged_duplicates,
            mismatched=mismatched,
            unfinished=unfinished,
            examples={
                "hung": info(hung),
                "lost": info(lost),
                "duplicated": info(by_id[t] for t in dict.fromkeys(duplicates)),
            },
        )


class DuplicateOutcomeLog(logging.Handler):
    """Counts log records that show a future resolved twice (``InvalidStateError``): the
    resolver raised instead of our done-callback running a second time."""

    def __init__(self, book: OutcomeBook) -> None:
        super().__init__(logging.DEBUG)
        self.book = book
        self.samples: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        exc = record.exc_info[1] if record.exc_info else None
        if (
            "InvalidStateError" in text
            or isinstance(exc, InvalidStateError)
            or "InvalidStateError" in (record.exc_text or "")
        ):
            self.book.logged_duplicates += 1
            if len(self.samples) < 5:
                self.samples.append(f"{record.name}: {text[:200]}")


# -- the ledger check ------------------------------------------------------------------------


class Modification(Protocol):
    tx_id: str


class LedgerView(Protocol):
    """What the check reads (``actors.ledger.Ledger`` through :class:`LedgerReader`)."""

    def state(self, namespace: str, key: str) -> bytes | None: ...

    def history(self, namespace: str, key: str) -> Sequence[Modification]: ...

    def keys(self, namespace: str) -> Iterable[str]: ...


class LedgerReader:
    """A :class:`LedgerView` of a real channel ledger."""

    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger

    def state(self, namespace: str, key: str) -> bytes | None:
        return self._ledger.get_state(namespace, key)

    def history(self, namespace: str, key: str) -> Sequence[Modification]:
        return self._ledger.get_history_for_key(namespace, key)

    def keys(self, namespace: str) -> Iterator[str]:
        simulator = self._ledger.new_simulator(f"faults-ledger-check-{uuid.uuid4().hex}")
        try:
            with simulator.get_state_range_scan_iterator(namespace, "", "") as results:
                for kv in results:
                    yield kv.key
        finally:
            simulator.done()


WRITE_WITHOUT_SUCCESS = "write_without_success"  # committed, but its tx did not succeed
WRONG_VALUE = "wrong_value"  # committed with another value than its txid
MISSING_WRITE = "missing_write"  # the tx succeeded, its write is not there
DUPLICATED_WRITE = "duplicated_write"  # the key was written more than once
UNEXPECTED_KEY = "unexpected_key"  # a key no client wrote
LEDGER_PROBLEMS = (
    WRITE_WITHOUT_SUCCESS,
    WRONG_VALUE,
    MISSING_WRITE,
    DUPLICATED_WRITE,
    UNEXPECTED_KEY,
)


@dataclass(frozen=True)
class LedgerProblem:
    kind: str
    chaincode: str
    key: str
    txid: str
    detail: str = ""


@dataclass(frozen=True)
class LedgerCheck:
    """Result of :func:`check_ledger`."""

    checked: int  # transactions checked
    committed: int  # of those, how many have their key in state
    problems: tuple[LedgerProblem, ...]

    @property
    def consistent(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        counts = Counter(problem.kind for problem in self.problems)
        return {kind: counts[kind] for kind in LEDGER_PROBLEMS if counts[kind]}


def check_ledger(
    attempts: Iterable[Attempt], view: LedgerView, namespaces: Iterable[str] = ()
) -> LedgerCheck:
    """Every committed write belongs to a succeeded transaction and carries its txid; every
    succeeded transaction's write is there; no key was modified more than once; and (for each
    of ``namespaces``) no key exists that no transaction wrote."""
    problems: list[LedgerProblem] = []
    checked = committed = 0
    attempted: dict[str, set[str]] = {}
    for attempt in attempts:
        checked += 1
        ns, key, txid = attempt.chaincode, attempt.key, attempt.txid
        attempted.setdefault(ns, set()).add(key)
        value = view.state(ns, key)
        history = list(view.history(ns, key))
        if value is not None:
            committed += 1
            if not attempt.succeeded:
                problems.append(
                    LedgerProblem(WRITE_WITHOUT_SUCCESS, ns, key, txid, "committed, tx not counted")
                )
            if value != txid.encode():
                shown = value[:60].decode("utf-8", "replace")
                problems.append(LedgerProblem(WRONG_VALUE, ns, key, txid, f"value {shown!r}"))
        elif attempt.succeeded:
            problems.append(LedgerProblem(MISSING_WRITE, ns, key, txid, "succeeded, not in state"))
        if len(history) > 1:
            writers = ", ".join(m.tx_id for m in history[:4])
            problems.append(
                LedgerProblem(
                    DUPLICATED_WRITE, ns, key, txid, f"{len(history)} modifications: {writers}"
                )
            )
    for ns in namespaces:
        expected = attempted.get(ns, set())
        for key in view.keys(ns):
            if key not in expected:
                problems.append(LedgerProblem(UNEXPECTED_KEY, ns, key, "", "no client wrote it"))
    return LedgerCheck(checked, committed, tuple(problems))


# -- recovery times --------------------------------------------------------------------------


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


def recovers_by_event(kind: str) -> bool:
    return kind in CHAINCODE_FAULTS or kind in ACTOR_FAULTS


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
    death_to_ready_s: tuple[float, ...] = ()  # first death event -> READY

    def stats(self, values: Sequence[float]) -> dict[str, float] | None:
        if not values:
            return None
        return {
            "min": round(min(values), 3),
            "median": round(statistics.median(values), 3),
            "max": round(max(values), 3),
        }


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


# -- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultReport:
    config: FaultsConfig
    seconds: float  # the load's actual length
    accounting: Accounting
    restarts: Restarts
    records: tuple[FaultRecord, ...]
    summaries: tuple[FaultSummary, ...]
    ledger: LedgerCheck
    events: Mapping[str, int]  # lifecycle events by kind
    findings: tuple[str, ...] = ()  # anomalies that are not counters (say what was seen)
    stuck_threads: tuple[str, ...] = ()  # stacks of client threads that never finished
    shutdown_s: float | None = None  # None: shutdown did not finish within its bound
    duplicate_log: tuple[str, ...] = ()

    @property
    def hung(self) -> int:
        return self.accounting.hung + sum(1 for r in self.records if r.injection.hung_probe)

    @property
    def ok(self) -> bool:
        a = self.accounting
        return (
            a.lost == 0
            and a.duplicated == 0
            and self.hung == 0
            and a.mismatched == 0
            and a.unfinished == 0
            and self.ledger.consistent
        )

    def to_json(self) -> dict[str, Any]:
        a, c = self.accounting, self.config
        faults = {}
        for s in self.summaries:
            faults[s.kind] = {
                "injected": s.injected,
                "skipped": s.skipped,
                "recovered": s.recovered if recovers_by_event(s.kind) else None,
                "unexpected": s.unexpected,
                "recovery_s": None
                if not recovers_by_event(s.kind)
                else {
                    **(s.stats(s.recovery_s) or {}),
                    "values": [round(v, 3) for v in s.recovery_s],
                },
                "death_to_ready_s": None
                if not recovers_by_event(s.kind)
                else {
                    **(s.stats(s.death_to_ready_s) or {}),
                    "values": [round(v, 3) for v in s.death_to_ready_s],
                },
                "probe_s": None
                if not s.probe_s
                else {**(s.stats(s.probe_s) or {}), "values": [round(v, 3) for v in s.probe_s]},
            }
        return {
            "ok": self.ok,
            "runtime": c.runtime,
            "clients": c.clients,
            "chaincodes": list(c.chaincode_names),
            "duration_s": c.duration,
            "fault_every_s": c.fault_every,
            "faults_selected": list(c.faults),
            "seed": c.seed,
            "execute_timeout_s": c.execute_timeout,
            "startup_timeout_s": c.startup_timeout,
            "hung_bound_s": c.wait_bound,
            "seconds": round(self.seconds, 3),
            "submitted": a.submitted,
            "succeeded": a.succeeded,
            "failed": a.failed,
            "failures": dict(a.failures),
            "lost": a.lost,
            "duplicated": a.duplicated,
            "hung": self.hung,
            "hung_probes": self.hung - a.hung,
            "late": a.late,
            "mismatched": a.mismatched,
            "unfinished": a.unfinished,
            "restarts": self.restarts.total,
            "chaincode_restarts": self.restarts.chaincode,
            "actor_restarts": dict(self.restarts.actors),
            "gave_up": self.restarts.gave_up,
            "faults": faults,
            "injections": [
                {
                    "at_s": round(r.injection.at, 3),
                    "kind": r.injection.kind,
                    "target": r.injection.target,
                    "injected": r.injection.injected,
                    "detail": r.injection.detail,
                    "probe": r.injection.probe or None,
                    "probe_s": None
                    if r.injection.probe_s is None
                    else round(r.injection.probe_s, 3),
                    "expected": r.injection.expected,
                    "detected_s": None if r.detected_s is None else round(r.detected_s, 3),
                    "recovery_s": None if r.recovery_s is None else round(r.recovery_s, 3),
                    "events": list(r.events),
                }
                for r in self.records
            ],
            "ledger": {
                "consistent": self.ledger.consistent,
                "checked": self.ledger.checked,
                "committed": self.ledger.committed,
                "problems": self.ledger.counts(),
                "examples": [
                    {
                        "kind": p.kind,
                        "chaincode": p.chaincode,
                        "key": p.key,
                        "txid": p.txid,
                        "detail": p.detail,
                    }
                    for p in self.ledger.problems[:10]
                ],
            },
            "events": dict(self.events),
            "transactions": {
                name: [
                    {
                        "txid": t.txid,
                        "chaincode": t.chaincode,
                        "key": t.key,
                        "submitted_at_s": round(t.submitted_at, 3),
                        "outcome": t.outcome,
                        "resolved_at_s": None if t.resolved_at is None else round(t.resolved_at, 3),
                    }
                    for t in items
                ]
                for name, items in a.examples.items()
                if items
            },
            "findings": list(self.findings),
            "stuck_threads": list(self.stuck_threads),
            "duplicate_log": list(self.duplicate_log),
            "shutdown_s": None if self.shutdown_s is None else round(self.shutdown_s, 3),
        }


def _stats_text(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return (
        f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}"
        f"  (n={len(values)})"
    )


def render_table(report: FaultReport) -> str:
    """The report as the readable table ``ccactors faults`` prints."""
    a, c = report.accounting, report.config
    lines = [
        f"ccactors faults: {c.runtime} runtime, {c.clients} clients over {c.chaincodes} "
        f"chaincode(s) for {report.seconds:.1f} s, a fault every {c.fault_every:g} s "
        f"(seed {c.seed})",
        f"  submitted    {a.submitted:8d}",
        f"  succeeded    {a.succeeded:8d}",
        f"  failed       {a.failed:8d}",
    ]
    for reason, count in a.failures.items():
        lines.append(f"    {count:8d}  {reason}")
    lines += [
        f"  lost         {a.lost:8d}",
        f"  duplicated   {a.duplicated:8d}",
        f"  hung         {report.hung:8d}   (no outcome within {c.wait_bound:g} s; "
        f"{a.late} answered later)",
    ]
    if a.mismatched or a.unfinished:
        lines.append(f"  mismatched   {a.mismatched:8d}   unfinished {a.unfinished}")
    actors = ", ".join(f"{k} {v}" for k, v in report.restarts.actors.items()) or "none"
    lines.append(
        f"  restarts     {report.restarts.total:8d}   (chaincode {report.restarts.chaincode}; "
        f"peer actors: {actors}; gave up {report.restarts.gave_up})"
    )
    lines.append(
        f"  {'fault':<18} {'injected':>8} {'skipped':>7} {'recovered':>9}  "
        "recovery s: min / median / max"
    )
    for s in report.summaries:
        if recovers_by_event(s.kind):
            recovered, timing = f"{s.recovered:9d}", _stats_text(s.recovery_s)
        else:
            recovered = f"{'n/a':>9}"
            timing = f"probe answered in {_stats_text(s.probe_s)}"
        if s.unexpected:
            timing += f"  UNEXPECTED x{s.unexpected}"
        lines.append(f"  {s.kind:<18} {s.injected:8d} {s.skipped:7d} {recovered}  {timing}")
    ledger = report.ledger
    if ledger.consistent:
        lines.append(
            f"  ledger       consistent ({ledger.checked} transactions checked, "
            f"{ledger.committed} writes committed)"
        )
    else:
        counts = ", ".join(f"{k} {v}" for k, v in ledger.counts().items())
        lines.append(f"  ledger       INCONSISTENT: {counts}")
        for problem in ledger.problems[:5]:
            lines.append(
                f"    {problem.kind} {problem.chaincode}/{problem.key} {problem.txid} "
                f"{problem.detail}"
            )
    for name, items in a.examples.items():
        for tx in items[:3]:
            lines.append(
                f"  {name} tx {tx.txid} on {tx.chaincode} submitted at {tx.submitted_at:.2f} s: "
                f"{tx.outcome or 'no outcome'}"
            )
    for finding in report.findings:
        lines.append(f"  finding: {finding}")
    if report.stuck_threads:
        lines.append(f"  stuck client threads: {len(report.stuck_threads)} (stacks in --json)")
    shutdown = "did not finish" if report.shutdown_s is None else f"{report.shutdown_s:.2f} s"
    lines.append(f"  shutdown     {shutdown}")
    lines.append(f"  result       {'OK' if report.ok else 'FAILED'}")
    return "\n".join(lines)


# -- the runner ------------------------------------------------------------------------------

PROBE_BYTES = b"\x07" + b"not a protobuf message" * 3  # field 0, wire type 7: never parses


def _proc_state(pid: int) -> str | None:
    """The process's state letter from /proc (R, S, T stopped, Z zombie), None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()[0]


def _ident(instance: Any) -> str | None:
    """``"pid 123"`` or ``"container <id>"`` for a running instance."""
    if instance is None:
        return None
    container = getattr(instance, "container_id", None)
    if container:
        return f"container {container}"
    pid = getattr(instance, "pid", None)
    return f"pid {pid}" if pid else None


class FaultRunner:
    """Runs one fault run (see the module doc). ``progress`` gets a line a second."""

    def __init__(self, config: FaultsConfig, progress: IO[str] | None = None) -> None:
        if config.seed is None:
            config = replace(config, seed=random.randrange(2**31))
        self.config = config
        self.progress = progress
        self.run_id = uuid.uuid4().hex[:8]
        self._t0 = time.monotonic()
        self._inject_times: list[float] = []
        self._never = itertools.count(1)
        self.book = OutcomeBook(self.now)
        self._events: list[ObservedEvent] = []
        self._events_lock = threading.Lock()
        self._injections: list[Injection] = []
        self._injections_lock = threading.Lock()
        self._findings: list[str] = []
        self._stop = threading.Event()
        self._support: ChaincodeSupport | None = None
        self._docker: Any = None
        self._package_dir: str | None = None
        self._stopped_pids: list[int] = []  # SIGSTOPped by a hang fault
        self._paused: list[str] = []  # containers paused by a hang fault
        self._never_pids: list[int] = []
        self._seen: dict[str, list[str]] = {}  # chaincode -> instances it ran on ("pid 12")
        self._closing = threading.Event()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def finding(self, text: str) -> None:
        log.warning("faults: %s", text)
        with self._injections_lock:
            self._findings.append(text)

    # -- set-up ------------------------------------------------------------------------------

    def _policy(self, restart: str = "permanent") -> Any:
        from actors.supervisor import RestartPolicy

        return RestartPolicy(
            restart=restart, max_restarts=1000, within=60, backoff_initial=0.05, backoff_max=1.0
        )

    def _definitions(self) -> tuple[Any, ...]:
        from actors.config import ChaincodeDefinition

        runtime, policy = self.config.runtime, self._policy()
        out = []
        for name in self.config.chaincode_names:
            if runtime == "docker":
                assert self._package_dir is not None
                definition = ChaincodeDefinition(
                    name,
                    runtime="docker",
                    package=str(Path(self._package_dir) / "faulty.tar.gz"),
                    restart=policy,
                )
            else:
                definition = ChaincodeDefinition(
                    name,
                    runtime=runtime,
                    target=TARGET,
                    workdir=str(EXAMPLES.parent) if runtime == "process" else None,
                    restart=policy,
                )
            out.append(definition)
        return tuple(out)

    def _prepare_docker(self) -> None:
        from actors.images import BASE_IMAGE, build_shim_image, docker_client
        from actors.packaging import create_package
        from bench.workloads import RUNTIMES as BENCH_RUNTIMES

        why_not = BENCH_RUNTIMES["docker"].available()  # an engine and the base image
        if why_not is not None:
            raise FaultsUnavailable(f"the docker runtime cannot run here: {why_not}")
        self._docker = docker_client(timeout=60)
        build_shim_image(self._docker, BASE_IMAGE, progress=self._say)  # cheap when current
        self._package_dir = tempfile.mkdtemp(prefix="ccactors-faults-")
        create_package(
            EXAMPLES, "faulty", target=TARGET, out=Path(self._package_dir) / "faulty.tar.gz"
        )

    def _make_support(self) -> ChaincodeSupport:
        from actors.config import Config
        from actors.runtimes.docker import DockerRuntime
        from actors.runtimes.process import ProcessRuntime
        from actors.runtimes.system import SystemRuntime
        from actors.support import ChaincodeSupport

        c = self.config
        holder: dict[str, ChaincodeSupport] = {}

        def peer_address() -> str | None:
            return holder["support"].peer_address()

        runtimes: dict[str, Any] = {
            "system": SystemRuntime(),
            "process": ProcessRuntime(peer_address),
        }
        if c.runtime == "docker":
            runtimes["docker"] = DockerRuntime(
                peer_address, peer_id=f"faults-{self.run_id}", network_id="ccactors"
            )
        config = Config(
            startup_timeout=c.startup_timeout,
            execute_timeout=c.execute_timeout,
            hung_after=c.hung_after,
            restart=self._policy(),
            chaincodes=self._definitions(),
        )
        support = holder["support"] = ChaincodeSupport(config, runtimes=runtimes)
        try:
            support.listen("127.0.0.1:0")
        except Exception:
            support.shutdown()
            raise
        return support

    def _on_event(self, event: LifecycleEvent) -> None:
        with self._events_lock:
            self._events.append(
                ObservedEvent(
                    self.now(),
                    event.chaincode,
                    event.kind,
                    event.actor,
                    event.detail or event.instance,
                )
            )

    def events(self) -> list[ObservedEvent]:
        with self._events_lock:
            return list(self._events)

    # -- the load ----------------------------------------------------------------------------

    def _client(self, client: int) -> None:
        support, book, c = self._support, self.book, self.config
        assert support is not None
        names = c.chaincode_names
        seq = 0
        while not self._stop.is_set():
            seq += 1
            chaincode = names[(client + seq) % len(names)]
            key = f"c{client}-{seq}"
            txid = f"faults-{self.run_id}-{client}-{seq}"
            tx = book.submit(txid, client, chaincode, key)
            try:
                future = support.execute_async(CHANNEL, txid, chaincode, ["put", key, txid])
            except Exception as exc:
                book.executed(tx, describe_failure(exc))
                book.conclude(tx, tx.outcome or describe_failure(exc))
                continue
            future.add_done_callback(lambda f, tx=tx: book.resolve_future(tx, f))
            if not tx.done.wait(c.wait_bound):
                book.give_up(tx)
                continue
            book.conclude(tx, self._finish(support, tx, chaincode, key, txid))

    def _finish(self, support: Any, tx: _Tx, chaincode: str, key: str, txid: str) -> str:
        """Commit an execution that came back; the transaction's final outcome."""
        if tx.outcome != "ok":
            return tx.outcome or "no outcome"
        result = tx.result
        if result.response.status >= 400:
            message = _NUMBER.sub("N", result.response.message)[:50]
            return f"status {result.response.status}: {message}"
        writes = result.results.writes(chaincode) if result.results is not None else {}
        if result.txid != txid or dict(writes) != {key: txid.encode()}:
            return f"mismatched result: txid {result.txid}, writes {sorted(writes)[:3]}"
        try:
            code = support.commit(CHANNEL, result)
        except Exception as exc:
            return f"commit raised {describe_failure(exc)}"
        return SUCCEEDED if code.name == "VALID" else f"commit {code.name}"

    def _report_progress(self, injected: Callable[[], int]) -> None:
        while not self._stop.wait(1.0):
            submitted, succeeded, failed, in_flight = self.book.snapshot()
            print(
                f"[{self.now():6.1f}s] submitted {submitted} succeeded {succeeded} "
                f"failed {failed} in flight {in_flight} faults {injected()}",
                file=self.progress,
                flush=True,
            )

    # -- faults ------------------------------------------------------------------------------

    def _record(self, injection: Injection) -> None:
        with self._injections_lock:
            self._injections.append(injection)

    def _inject(self, fault: ScheduledFault) -> None:
        at = self.now()
        with self._injections_lock:
            self._inject_times.append(at)
        try:
            injection = getattr(self, f"_fault_{fault.kind}")(fault, at)
        except Exception as exc:
            injection = Injection(
                at, fault.kind, fault.target, False, f"injection raised {describe_failure(exc)}"
            )
            self.finding(f"{fault.kind} at {at:.2f} s: injection raised {exc!r}")
        self._record(injection)

    def _instance(self, name: str) -> Any:
        assert self._support is not None
        return self._support.instance_of(name)

    def _fault_kill(self, fault: ScheduledFault, at: float) -> Injection:
        instance = self._instance(fault.target)
        if instance is None:
            return Injection(at, fault.kind, fault.target, False, "no running instance")
        container = getattr(instance, "container_id", None)
        if container:
            self._docker.containers.get(container).kill()
            return Injection(at, fault.kind, fault.target, True, f"docker kill {container[:12]}")
        pid = instance.pid
        os.kill(pid, signal.SIGKILL)
        return Injection(at, fault.kind, fault.target, True, f"SIGKILL pid {pid}")

    def _fault_hang(self, fault: ScheduledFault, at: float) -> Injection:
        instance = self._instance(fault.target)
        if instance is None:
            return Injection(at, fault.kind, fault.target, False, "no running instance")
        container = getattr(instance, "container_id", None)
        if container:
            self._docker.containers.get(container).pause()
            self._paused.append(container)
            return Injection(at, fault.kind, fault.target, True, f"docker pause {container[:12]}")
        pid = instance.pid
        os.kill(pid, signal.SIGSTOP)
        self._stopped_pids.append(pid)
        return Injection(at, fault.kind, fault.target, True, f"SIGSTOP pid {pid}")

    def _fault_handler_exception(self, fault: ScheduledFault, at: float) -> Injection:
        from actors.supervisor import Poison

        assert self._support is not None
        handler = self._support.handler_for(fault.target)
        if handler is None:
            return Injection(at, fault.kind, fault.target, False, "no handler")
        handler.tell(Poison(f"fault injection at {at:.2f} s"))
        return Injection(at, fault.kind, fault.target, True, "Poison told to its Handler")

    def _stop_actor(self, fault: ScheduledFault, at: float, ref: Any) -> Injection:
        actor = ref.actor_ref
        actor.stop(block=False)
        return Injection(at, fault.kind, fault.target, True, f"stopped {actor}")

    def _fault_stop_launcher(self, fault: ScheduledFault, at: float) -> Injection:
        assert self._support is not None
        return self._stop_actor(fault, at, self._support.launcher)

    def _fault_stop_vmcontroller(self, fault: ScheduledFault, at: float) -> Injection:
        assert self._support is not None
        return self._stop_actor(fault, at, self._support.vmcontroller)

    def _fault_crash_registry(self, fault: ScheduledFault, at: float) -> Injection:
        from actors.supervisor import Poison

        assert self._support is not None
        self._support.registry.tell(Poison(f"fault injection at {at:.2f} s"))
        return Injection(at, fault.kind, fault.target, True, "Poison told to the registry")

    def _probe(self, future: Future[Any], bound: float) -> tuple[str, float | None, bool]:
        """Wait for a probe transaction: (what it got, after how long, hung)."""
        started = time.monotonic()
        done = threading.Event()
        future.add_done_callback(lambda f: done.set())
        if not done.wait(bound):
            return f"no outcome within {bound:g} s", None, True
        exc = future.exception()
        got = (
            describe_failure(exc)
            if exc is not None
            else f"status {future.result().response.status}"
        )
        return got, time.monotonic() - started, False

    def _fault_never_registers(self, fault: ScheduledFault, at: float) -> Injection:
        from actors.config import ChaincodeDefinition
        from actors.errors import StartupTimeout

        support, c = self._support, self.config
        assert support is not None
        name = f"never{next(self._never)}"
        # Restarting a chaincode that can never register cannot help: temporary policy, so
        # the fault measures only what a caller gets (a startup timeout, not a hang).
        support.define(
            ChaincodeDefinition(
                name,
                runtime="process",
                command=(sys.executable, "-c", "import time; time.sleep(3600)"),
                restart=self._policy("temporary"),
            )
        )
        future = support.execute_async(CHANNEL, None, name, ["put", "never", "registers"])
        pid_seen: list[int] = []

        def watch_pid() -> None:
            while not future.done():
                try:
                    pid = getattr(support.instance_of(name), "pid", None)
                except Exception:
                    return
                if pid and pid not in pid_seen:
                    pid_seen.append(pid)
                time.sleep(0.05)

        watcher = threading.Thread(target=watch_pid, name="faults-never-pid", daemon=True)
        watcher.start()
        got, took, hung = self._probe(future, c.startup_timeout + c.margin)
        expected = None if hung else isinstance(future.exception(), StartupTimeout)
        for pid in pid_seen:
            self._never_pids.append(pid)
        return Injection(
            at,
            fault.kind,
            name,
            True,
            f"process chaincode {name} sleeping instead of registering (pids {pid_seen})",
            probe=got,
            probe_s=took,
            expected=expected,
            hung_probe=hung,
        )

    def _fault_pipe_garbage(self, fault: ScheduledFault, at: float) -> Injection:
        support, c = self._support, self.config
        assert support is not None
        if support.handler_for(fault.target) is None:
            return Injection(at, fault.kind, fault.target, False, "no handler")
        future = support.execute_async(CHANNEL, None, fault.target, ["garbage", "64"])
        got, took, hung = self._probe(future, c.wait_bound)
        # The connection must end: the garbage transaction fails with it.
        expected = None if hung else future.exception() is not None
        return Injection(
            at,
            fault.kind,
            fault.target,
            True,
            "the chaincode wrote a 64-byte non-frame on its pipe",
            probe=got,
            probe_s=took,
            expected=expected,
            hung_probe=hung,
        )

    def _fault_grpc_garbage(self, fault: ScheduledFault, at: float) -> Injection:
        import grpc

        support, c = self._support, self.config
        assert support is not None
        address = support.peer_address()
        if not address:
            return Injection(at, fault.kind, "listener", False, "no listener")
        handlers_before = {name: support.handler_for(name) for name in c.chaincode_names}
        finished = threading.Event()
        closed: list[str] = []

        def requests() -> Iterator[bytes]:
            yield PROBE_BYTES
            finished.wait(c.wait_bound)

        channel = grpc.insecure_channel(address)
        try:
            call = channel.stream_stream("/protos.ChaincodeSupport/Register")(requests())

            def read() -> None:
                try:
                    for _ in call:
                        closed.append("the peer answered garbage with a message")
                        return
                    closed.append("stream ended")
                except grpc.RpcError as exc:
                    closed.append(f"stream closed: {exc.code().name}")

            started = time.monotonic()
            reader = threading.Thread(target=read, name="faults-grpc-garbage", daemon=True)
            reader.start()
            reader.join(c.wait_bound)
            took = time.monotonic() - started
            if not closed:
                call.cancel()
        finally:
            finished.set()
            channel.close()
        changed = [
            name
            for name, ref in handlers_before.items()
            if ref is not None and support.handler_for(name) is not ref
        ]
        if closed:
            detail = "rogue Register stream sent non-protobuf bytes"
            with self._injections_lock:
                others = [t for t in self._inject_times if at < t <= at + took + 0.5]
            if changed and not others:
                # No other fault explains it: the garbage took down other connections too.
                detail += f"; the handlers of {changed} were replaced meanwhile"
                self.finding(f"grpc_garbage at {at:.2f} s: the handlers of {changed} changed")
            return Injection(
                at,
                fault.kind,
                "listener",
                True,
                detail,
                probe=closed[0],
                probe_s=took,
                expected=not closed[0].startswith("the peer answered")
                and not (changed and not others),
            )
        return Injection(
            at,
            fault.kind,
            "listener",
            True,
            "rogue Register stream sent non-protobuf bytes",
            probe=f"stream still open after {c.wait_bound:g} s",
            probe_s=None,
            expected=False,
            hung_probe=True,
        )

    def _injector(
        self, schedule: Sequence[ScheduledFault], threads: list[threading.Thread]
    ) -> None:
        for fault in schedule:
            if self._stop.wait(max(0.0, fault.at - self.now())):
                return
            thread = threading.Thread(
                target=self._inject, args=(fault,), name=f"faults-{fault.kind}", daemon=True
            )
            threads.append(thread)
            thread.start()

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> FaultReport:
        c = self.config
        dup_log = DuplicateOutcomeLog(self.book)
        root = logging.getLogger()
        root.addHandler(dup_log)
        support = None
        shutdown_s: float | None = None
        try:
            if c.runtime == "docker":
                self._prepare_docker()
            support = self._support = self._make_support()
            unsubscribe = support.subscribe(self._on_event)
            for name in c.chaincode_names:
                support.launch(name, timeout=c.startup_timeout + 30)
            report = self._load(support)
            unsubscribe()
        finally:
            self._closing.set()
            if support is not None:
                self._say("load done; shutting the peer down")
                shutdown_s = self._shutdown(support)
            root.removeHandler(dup_log)
            self._cleanup()
        return replace(
            report,
            findings=tuple(self._findings),
            shutdown_s=shutdown_s,
            duplicate_log=tuple(dup_log.samples),
        )

    def _say(self, text: str) -> None:
        if self.progress is not None:
            print(f"[{self.now():6.1f}s] {text}", file=self.progress, flush=True)

    def _load(self, support: ChaincodeSupport) -> FaultReport:
        c = self.config
        assert c.seed is not None
        schedule = build_schedule(c.faults, c.duration, c.fault_every, c.chaincode_names, c.seed)
        with self._events_lock:  # times are from here on; the launch's events are not counted
            self._t0 = time.monotonic()
            self._events.clear()
        clients = [
            threading.Thread(target=self._client, args=(i,), name=f"faults-client-{i}", daemon=True)
            for i in range(c.clients)
        ]
        fault_threads: list[threading.Thread] = []
        injector = threading.Thread(
            target=self._injector,
            args=(schedule, fault_threads),
            name="faults-injector",
            daemon=True,
        )
        watcher = threading.Thread(
            target=self._watch_instances, name="faults-instances", daemon=True
        )
        watcher.start()
        progress = None
        if self.progress is not None:
            progress = threading.Thread(
                target=self._report_progress,
                args=(lambda: len(self._injections),),
                name="faults-progress",
                daemon=True,
            )
        for thread in (*clients, injector, *([progress] if progress else [])):
            thread.start()
        time.sleep(max(0.0, c.duration - self.now()))
        self._stop.set()
        seconds = self.now()
        submitted, succeeded, failed, in_flight = self.book.snapshot()
        self._say(
            f"load stopped: submitted {submitted} succeeded {succeeded} failed {failed} "
            f"in flight {in_flight}; waiting for stragglers and recoveries"
        )
        # Clients finish the transaction they are in (bounded by their own wait).
        deadline = time.monotonic() + c.wait_bound + 5
        for thread in clients:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = self._stacks([t for t in clients if t.is_alive()])
        injector.join(5)
        for thread in list(fault_threads):
            thread.join(max(0.0, deadline + c.wait_bound - time.monotonic()))
        for thread in fault_threads:
            if thread.is_alive():
                self.finding(f"fault thread {thread.name} did not finish")
        # Stragglers: outcomes of transactions whose client gave up.
        deadline = time.monotonic() + c.wait_bound
        while self.book.unresolved() and time.monotonic() < deadline:
            time.sleep(0.1)
        # Faults injected near the end: give them the time a restart may take.
        deadline = time.monotonic() + c.startup_timeout + c.execute_timeout + c.margin
        while time.monotonic() < deadline:
            records = [relate(i, self.events()) for i in self._injections]
            if all(r.recovery_s is not None for r in records if r.needs_recovery):
                break
            time.sleep(0.1)
        self._check_leftovers()
        events = self.events()
        records = tuple(relate(i, events) for i in sorted(self._injections, key=lambda i: i.at))
        for record in records:
            if record.needs_recovery and record.recovery_s is None:
                self.finding(
                    f"{record.injection.kind} on {record.injection.target} at "
                    f"{record.injection.at:.2f} s: no recovery event; its events: "
                    f"{list(record.events) or 'none'}"
                )
            if record.injection.expected is False:
                self.finding(
                    f"{record.injection.kind} on {record.injection.target} at "
                    f"{record.injection.at:.2f} s: probe got {record.injection.probe}"
                )
        ledger = check_ledger(
            self.book.attempts(),
            LedgerReader(support.ledgers.get(CHANNEL)),
            c.chaincode_names,
        )
        return FaultReport(
            config=c,
            seconds=seconds,
            accounting=self.book.accounting(),
            restarts=count_restarts(events),
            records=records,
            summaries=summarize(records, c.faults),
            ledger=ledger,
            events=dict(Counter(e.kind for e in events).most_common()),
            stuck_threads=stuck,
        )

    @staticmethod
    def _stacks(threads: Sequence[threading.Thread]) -> tuple[str, ...]:
        frames = sys._current_frames()
        out = []
        for thread in threads:
            frame = frames.get(thread.ident or -1)
            stack = "".join(traceback.format_stack(frame)[-8:]) if frame else "?"
            out.append(f"{thread.name}:\n{stack}")
        return tuple(out)

    def _watch_instances(self) -> None:
        """Note every instance the load's chaincodes run on, to find leftovers at the end."""
        while not self._closing.wait(0.25):
            for name in self.config.chaincode_names:
                self._current_instance(name)

    def _current_instance(self, name: str) -> str | None:
        assert self._support is not None
        try:
            ident = _ident(self._support.instance_of(name))
        except Exception:
            return None
        if ident is not None:
            with self._injections_lock:
                seen = self._seen.setdefault(name, [])
                if ident not in seen:
                    seen.append(ident)
        return ident

    def _alive(self, ident: str) -> bool:
        kind, _, value = ident.partition(" ")
        if kind == "pid":
            return _proc_state(int(value)) not in (None, "Z")
        try:
            return self._docker.containers.get(value).status in ("running", "paused")
        except Exception:
            return False

    def _still_alive(self, idents: Iterable[str], within: float) -> list[str]:
        """Those of ``idents`` still running after waiting up to ``within`` seconds."""
        deadline = time.monotonic() + within
        alive = list(idents)
        while alive:
            alive = [ident for ident in alive if self._alive(ident)]
            if not alive or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return alive

    def _all_instances(self) -> list[str]:
        with self._injections_lock:
            seen = [ident for idents in self._seen.values() for ident in idents]
        return seen + [f"pid {pid}" for pid in self._never_pids]

    def _check_leftovers(self) -> None:
        """Instances the peer replaced but did not end, and what our faults froze."""
        for name in self.config.chaincode_names:
            current = self._current_instance(name)
            with self._injections_lock:
                replaced = [i for i in self._seen.get(name, []) if i != current]
            for ident in self._still_alive(replaced, 5):
                self.finding(f"{name}: replaced instance {ident} still runs (now: {current})")
        for pid in self._stopped_pids:
            state = _proc_state(pid)
            if state == "T":
                self.finding(f"hang: pid {pid} is still stopped (SIGSTOP) at the end of the load")
        for ident in self._still_alive([f"pid {pid}" for pid in self._never_pids], 5):
            self.finding(f"never_registers: {ident} still runs after its launch failed")
        for container in self._paused:
            with contextlib.suppress(Exception):
                state = self._docker.containers.get(container).attrs["State"]
                if state.get("Paused"):
                    self.finding(f"hang: container {container[:12]} is still paused")

    def _shutdown(self, support: ChaincodeSupport) -> float | None:
        started = time.monotonic()
        done = threading.Event()

        def shut() -> None:
            try:
                support.shutdown()
            except Exception as exc:
                self.finding(f"shutdown raised {exc!r}")
            finally:
                done.set()

        threading.Thread(target=shut, name="faults-shutdown", daemon=True).start()
        if not done.wait(60):
            self.finding("shutdown did not finish within 60 s")
            return None
        took = time.monotonic() - started
        for ident in self._still_alive(self._all_instances(), 5):
            self.finding(f"{ident} still runs after the peer shut down")
        return took

    def _cleanup(self) -> None:
        """Whatever the peer should have ended but did not (reported as findings already)."""
        self._closing.set()
        pids = {int(i.split()[1]) for i in self._all_instances() if i.startswith("pid ")}
        for pid in pids | set(self._stopped_pids):
            if _proc_state(pid) not in (None, "Z"):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        if self._docker is not None:
            from actors.runtimes.docker import PEER_LABEL

            ours = {"label": f"{PEER_LABEL}=faults-{self.run_id}"}
            with contextlib.suppress(Exception):
                for container in self._docker.containers.list(all=True, filters=ours):
                    with contextlib.suppress(Exception):
                        container.remove(force=True)
                for image in self._docker.images.list(filters=ours):
                    with contextlib.suppress(Exception):
                        self._docker.images.remove(image.id, force=True)
            self._docker.close()
        if self._package_dir is not None:
            shutil.rmtree(self._package_dir, ignore_errors=True)


def run(config: FaultsConfig, progress: IO[str] | None = None) -> FaultReport:
    """Run one fault run and return its report."""
    return FaultRunner(config, progress).run()


__all__ = [
    "FAULT_KINDS",
    "Accounting",
    "Attempt",
    "FaultRecord",
    "FaultReport",
    "FaultRunner",
    "FaultsConfig",
    "FaultsConfigError",
    "FaultsUnavailable",
    "Injection",
    "LedgerCheck",
    "LedgerProblem",
    "ObservedEvent",
    "OutcomeBook",
    "ScheduledFault",
    "build_schedule",
    "check_ledger",
    "count_restarts",
    "faults_for",
    "parse_fault_list",
    "relate",
    "render_table",
    "run",
    "summarize",
]
