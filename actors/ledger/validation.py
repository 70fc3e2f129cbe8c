"""Block validation (MVCC + phantom reads) and preparation of the block's state updates.

Fabric counterpart: ``core/ledger/kvledger/txmgmt/validation`` (``validator.validateTx``,
``rangeQueryResultsValidator``, the combined DB+batch iterator) and ``txmgr.prepareTxOps`` /
``applyWriteSet`` for turning a valid transaction into state updates.

Transactions of a block are checked in order against the committed state overlaid with the
updates of the earlier *valid* transactions of the same block.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from .model import Height, HistoryEntry, ValidationCode, VersionedValue
from .rwset import RangeQuery, SimulationResults
from .state import UpdateBatch, VersionedState

__all__ = ["BlockBatch", "validate_tx"]


class BlockBatch:
    """Committed state plus the pending updates of the block being validated."""

    def __init__(self, state: VersionedState) -> None:
        self._state = state
        self.updates: UpdateBatch = {}
        self.history: list[HistoryEntry] = []

    def get(self, namespace: str, key: str) -> VersionedValue | None:
        pending = self.updates.get(namespace)
        if pending is not None and key in pending:
            return pending[key]
        return self._state.get(namespace, key)

    def updated(self, namespace: str, key: str) -> bool:
        pending = self.updates.get(namespace)
        return pending is not None and key in pending

    def iter_range(
        self, namespace: str, start: str, end: str, include_end: bool
    ) -> Iterator[tuple[str, Height]]:
        """Keys with versions in the range as they stand after the pending updates."""
        committed = self._state.iter_range_unlocked(namespace, start, end, include_end)
        pending_ns = self.updates.get(namespace, {})
        pending = sorted(
            (key, value)
            for key, value in pending_ns.items()
            if _in_range(key, start, end, include_end)
        )
        if not pending:
            for key, value in committed:
                yield key, value.version
            return
        # Merge by key; the pending (newer) entry wins and a pending delete hides the key.
        # Tag 0 sorts pending before committed for an equal key.
        merged = heapq.merge(
            ((key, 0, value) for key, value in pending),
            ((key, 1, value) for key, value in committed),
        )
        previous: str | None = None
        for key, _tag, value in merged:
            if key == previous:
                continue
            previous = key
            if value is not None:
                yield key, value.version

    def apply_tx(
        self, tx_id: str, results: SimulationResults, version: Height, timestamp: float
    ) -> None:
        """Add a valid transaction's writes to the batch (Fabric ``prepareTxOps``)."""
        for ns in results.ns_results:
            namespace = ns.namespace
            writes = {write.key: write.value for write in ns.writes}
            metadata = {mw.key: mw.entries for mw in ns.metadata_writes}
            pending = self.updates.setdefault(namespace, {})
            for key, value in writes.items():
                if value is None:
                    pending[key] = None
                else:
                    new_metadata = metadata.get(key)
                    if new_metadata is None:
                        # A value-only update keeps the key's existing metadata.
                        previous = self.get(namespace, key)
                        new_metadata = () if previous is None else previous.metadata
                    pending[key] = VersionedValue(value, version, new_metadata)
                self.history.append(HistoryEntry(namespace, key, version, tx_id, value, timestamp))
            for key, entries in metadata.items():
                if key in writes:
                    continue
                # A metadata-only update bumps the version; on a missing key it is a no-op.
                previous = self.get(namespace, key)
                if previous is not None:
                    pending[key] = VersionedValue(previous.value, version, entries)
            if not pending:
                del self.updates[namespace]


def validate_tx(results: SimulationResults, batch: BlockBatch) -> ValidationCode:
    """MVCC check of one transaction, namespace by namespace like Fabric's ``validateTx``."""
    for ns in results.ns_results:
        namespace = ns.namespace
        for read in ns.reads:
            # Any update of the key by an earlier tx of this block is a conflict: this tx
            # cannot have seen it (Fabric validateKVRead).
            if batch.updated(namespace, read.key):
                return ValidationCode.MVCC_READ_CONFLICT
            committed = batch.get(namespace, read.key)
            if (None if committed is None else committed.version) != read.version:
                return ValidationCode.MVCC_READ_CONFLICT
        for query in ns.range_queries:
            if not _range_unchanged(batch, namespace, query):
                return ValidationCode.PHANTOM_READ_CONFLICT
    return ValidationCode.VALID


def _range_unchanged(batch: BlockBatch, namespace: str, query: RangeQuery) -> bool:
    """Re-run the query over current state; it must yield exactly what the tx saw."""
    if not query.itr_exhausted and not query.reads:
        return True  # the tx observed nothing (never produced by our simulator)
    # Not exhausted: the tx stopped after end_key (its last read), which is then inclusive.
    current = batch.iter_range(
        namespace, query.start_key, query.end_key, include_end=not query.itr_exhausted
    )
    for read in query.reads:
        found = next(current, None)
        if found is None or found[0] != read.key or found[1] != read.version:
            return False
    return next(current, None) is None


def _in_range(key: str, start: str, end: str, include_end: bool) -> bool:
    if key < start:
        return False
    if not end:
        return True
    return key <= end if include_end else key < end
