"""The ledger check: what was committed against what the load counted as succeeded.
:func:`check_ledger` is pure over a :class:`LedgerView`; :class:`LedgerReader` adapts a ledger.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .accounting import Attempt


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
