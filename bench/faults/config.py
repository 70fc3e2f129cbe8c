"""What a fault run does: its options, the fault kinds and the schedule they are injected on."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


def faults_for(runtime: str) -> tuple[str, ...]:
    """The fault kinds that apply to ``runtime`` (the default of ``--faults``)."""
    return tuple(kind for kind in FAULT_KINDS if kind not in NOT_ON[runtime])


def recovers_by_event(kind: str) -> bool:
    """Whether a lifecycle event marks the recovery from ``kind`` (the others are probed)."""
    return kind in CHAINCODE_FAULTS or kind in ACTOR_FAULTS


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
