"""Embedded versioned state database and transaction simulator with Fabric's semantics.

Fabric counterpart: ``core/ledger/kvledger`` — ``txmgmt`` (state DB, tx manager, simulator,
rwset utilities, MVCC validation) and the history database. A :class:`LedgerManager` holds one
:class:`Ledger` per channel; a ledger hands out :class:`TxSimulator` objects whose
:class:`SimulationResults` are committed (and validated) with :meth:`Ledger.commit` or
:meth:`Ledger.commit_block`.
"""

from .errors import LedgerError, ReadOnlyViolation, WriteSetTooLarge
from .ledger import BlockTx, Ledger, LedgerManager
from .model import KV, Height, KeyModification, ValidationCode
from .rwset import SimulationResults
from .simulator import RangeIterator, TxSimulator

__all__ = [
    "KV",
    "BlockTx",
    "Height",
    "KeyModification",
    "Ledger",
    "LedgerError",
    "LedgerManager",
    "RangeIterator",
    "ReadOnlyViolation",
    "SimulationResults",
    "TxSimulator",
    "ValidationCode",
    "WriteSetTooLarge",
]
