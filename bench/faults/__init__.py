"""Fault injection: ``ccactors faults`` runs an invoke load and breaks the peer on a schedule.

Fabric has no counterpart: Fabric ships no fault injector, and nothing in it restarts chaincode
or its own goroutines. The run checks that every submission got exactly one outcome (none is
*lost* or *hung*, none *duplicated*), that the ledger holds exactly the succeeded writes, and
how long the peer took to recover from each fault. The pure parts (configuration, accounting,
ledger check, recovery, report) are separate from :mod:`.runner`, which does the I/O.
"""

from typing import TYPE_CHECKING, Any

from .accounting import (
    SUCCEEDED,
    Accounting,
    Attempt,
    DuplicateOutcomeLog,
    OutcomeBook,
    describe_failure,
)
from .config import (
    ACTOR_FAULTS,
    CHAINCODE_FAULTS,
    FAULT_KINDS,
    FaultsConfig,
    FaultsConfigError,
    FaultsUnavailable,
    ScheduledFault,
    build_schedule,
    faults_for,
    parse_fault_list,
    recovers_by_event,
)
from .ledger import (
    DUPLICATED_WRITE,
    MISSING_WRITE,
    UNEXPECTED_KEY,
    WRITE_WITHOUT_SUCCESS,
    WRONG_VALUE,
    LedgerCheck,
    LedgerProblem,
    LedgerReader,
    check_ledger,
)
from .recovery import FaultRecord, Injection, ObservedEvent, count_restarts, relate, summarize
from .report import FaultReport, render_table

if TYPE_CHECKING:
    from .runner import FaultRunner, run


def __getattr__(name: str) -> Any:
    # The runner (the I/O, and the peer's modules) loads on first use, so the `ccactors`
    # command, which imports this package for its `faults` options, starts no slower.
    if name in ("FaultRunner", "run"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ACTOR_FAULTS",
    "CHAINCODE_FAULTS",
    "DUPLICATED_WRITE",
    "FAULT_KINDS",
    "MISSING_WRITE",
    "SUCCEEDED",
    "UNEXPECTED_KEY",
    "WRITE_WITHOUT_SUCCESS",
    "WRONG_VALUE",
    "Accounting",
    "Attempt",
    "DuplicateOutcomeLog",
    "FaultRecord",
    "FaultReport",
    "FaultRunner",
    "FaultsConfig",
    "FaultsConfigError",
    "FaultsUnavailable",
    "Injection",
    "LedgerCheck",
    "LedgerProblem",
    "LedgerReader",
    "ObservedEvent",
    "OutcomeBook",
    "ScheduledFault",
    "build_schedule",
    "check_ledger",
    "count_restarts",
    "describe_failure",
    "faults_for",
    "parse_fault_list",
    "recovers_by_event",
    "relate",
    "render_table",
    "run",
    "summarize",
]
