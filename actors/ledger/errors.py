"""Ledger errors (Fabric: the error values of ``core/ledger`` and ``txmgr``)."""

from __future__ import annotations

__all__ = ["LedgerError", "LedgerLocked", "ReadOnlyViolation", "WriteSetTooLarge"]


class LedgerError(Exception):
    """Any failure reported by the ledger: misuse, closed ledger, unknown channel, storage."""


class LedgerLocked(LedgerError):
    """The ledger directory is held by another process (its LOCK file): one peer per directory."""


class ReadOnlyViolation(LedgerError):
    """A paginated query after a write, or a write after a paginated query.

    Fabric (``txmgr.txSimulator``) only allows paginated queries in read-only transactions,
    because their results are cut at a page boundary that MVCC cannot re-validate cheaply.
    """


class WriteSetTooLarge(LedgerError):
    """A transaction tried to write more than the ledger's ``max_write_set`` bytes.

    The write is refused and the simulation has failed for good: later writes and
    ``get_results`` raise too, so nothing of it can be committed.
    """
