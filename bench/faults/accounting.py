"""What the load saw: one outcome per submission, counted as succeeded, failed, hung, lost or
duplicated (also from the log, where a future resolved twice shows as ``InvalidStateError``).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any

SUCCEEDED = "succeeded"

NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
_HEX = re.compile(r"\b[0-9a-f]{12,}\b")


def describe_failure(exc: BaseException) -> str:
    """``"ExecuteTimeout: timeout expired while executing transaction"``: the type name and
    the start of the message's first line, numbers and ids blanked so that reasons group."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    text = NUMBER.sub("N", _HEX.sub("…", text))[:60]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Tx:
    """One submission as the runner tracks it (guarded by the book's lock)."""

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
        self._txs: dict[str, Tx] = {}
        self._duplicates: list[str] = []
        self.logged_duplicates = 0  # InvalidStateError records seen in the log

    def submit(self, txid: str, client: int, chaincode: str, key: str) -> Tx:
        tx = Tx(txid, client, chaincode, key, self._clock())
        with self._lock:
            if txid in self._txs:
                raise ValueError(f"txid {txid} submitted twice")
            self._txs[txid] = tx
        return tx

    def executed(self, tx: Tx, outcome: str, result: Any = None) -> None:
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

    def resolve_future(self, tx: Tx, future: Future[Any]) -> None:
        """A done-callback: read the future and record its outcome."""
        if future.cancelled():
            self.executed(tx, "cancelled")
            return
        exc = future.exception()
        if exc is not None:
            self.executed(tx, describe_failure(exc))
        else:
            self.executed(tx, "ok", future.result())

    def conclude(self, tx: Tx, final: str) -> None:
        """The client's verdict: :data:`SUCCEEDED` or why not."""
        with self._lock:
            tx.final = final
            tx.result = None  # keep memory flat over long runs

    def give_up(self, tx: Tx) -> None:
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

        def info(items: Iterable[Tx]) -> tuple[TxInfo, ...]:
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
