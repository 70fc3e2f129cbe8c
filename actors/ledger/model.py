"""Values that cross the ledger's module boundaries.

Fabric counterparts: ``core/ledger/internal/version.Height``, ``protos/ledger/queryresult``
(``KV``, ``KeyModification``) and ``protos/peer.TxValidationCode``.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

__all__ = [
    "KV",
    "Height",
    "HistoryEntry",
    "KeyModification",
    "Metadata",
    "ValidationCode",
    "VersionedValue",
]


class Height(NamedTuple):
    """Version of a committed key: the block and the index of the transaction inside it."""

    block_num: int
    tx_num: int


class KV(NamedTuple):
    """One result of a range query (Fabric ``queryresult.KV``)."""

    namespace: str
    key: str
    value: bytes


class KeyModification(NamedTuple):
    """One entry of a key's history (Fabric ``queryresult.KeyModification``).

    ``value`` is ``b""`` for a delete; ``timestamp`` is the transaction's channel-header time
    (unix seconds), as Fabric's history database reports it.
    """

    tx_id: str
    value: bytes
    timestamp: float
    is_delete: bool


class ValidationCode(enum.Enum):
    """Outcome of committing one transaction; values are Fabric's ``TxValidationCode`` numbers."""

    VALID = 0
    DUPLICATE_TXID = 9
    MVCC_READ_CONFLICT = 11
    PHANTOM_READ_CONFLICT = 12


# Metadata is kept as a sorted tuple of (name, value) pairs so that a VersionedValue stays
# immutable and hashable; callers get a fresh dict copy.
Metadata = tuple[tuple[str, bytes], ...]


class VersionedValue(NamedTuple):
    """A committed value with its version and state metadata (Fabric ``statedb.VersionedValue``)."""

    value: bytes
    version: Height
    metadata: Metadata = ()


class HistoryEntry(NamedTuple):
    """One write of one valid transaction, on its way to the history database."""

    namespace: str
    key: str
    version: Height
    tx_id: str
    value: bytes | None  # None: delete
    timestamp: float  # the transaction's channel-header time, unix seconds
