"""Block validation (MVCC + phantom reads) and preparation of the block's state updates.

Fabric counterpart: ``core/ledger/kvledger/txmgmt/validation`` (``validator.validateTx``,
``rangeQueryResultsValidator``, the combined DB+batch iterator) and ``txmgr.prepareTxOps`` /
``applyWriteSet`` for turning a valid transaction into state updates.

Transactions of a block are checked in order against the committed state overlaid with the
updates of the earlier *valid* transactions of the same block.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping

from .model import Height, HistoryEntry, ValidationCode, VersionedValue
from .privdata import (
    EXPIRY_NS,
    CollectionRules,
    PvtWrites,
    all_eligible,
    expiry_key,
    hashed_ns,
    key_hash,
    private_ns,
)
from .rwset import CollHashed, RangeQuery, SimulationResults
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
        self,
        tx_id: str,
        results: SimulationResults,
        version: Height,
        timestamp: float,
        private: Mapping[tuple[str, str], PvtWrites] | None = None,
        rules: CollectionRules = all_eligible,
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
            for coll in ns.collections:
                self._apply_collection(namespace, coll, version, private or {}, rules)

    def _apply_collection(
        self,
        namespace: str,
        coll: CollHashed,
        version: Height,
        private: Mapping[tuple[str, str], PvtWrites],
        rules: CollectionRules,
    ) -> None:
        """Hashed writes on every peer; private values where this peer is a member and has
        them (Fabric ``prepareTxOps`` for collections, ``pvtstatepurgemgmt`` scheduling).
        Private data never goes to the history database, as in Fabric."""
        if not coll.writes and not coll.metadata_writes:
            return
        hns = hashed_ns(namespace, coll.collection)
        eligible, block_to_live = rules(namespace, coll.collection)
        pvt = private.get((namespace, coll.collection)) if eligible else None
        plain_keys: dict[str, str] = {}
        if pvt is not None:
            for key in (*pvt.writes, *pvt.metadata_keys):
                plain_keys[key_hash(key).hex()] = key
        hashed = self.updates.setdefault(hns, {})
        metadata = {m.key_hash.hex(): m.entries for m in coll.metadata_writes}
        for write in coll.writes:
            hk = write.key_hash.hex()
            if write.value_hash is None:
                hashed[hk] = None
                continue
            entries = metadata.get(hk)
            if entries is None:
                previous = self.get(hns, hk)
                entries = () if previous is None else previous.metadata
            hashed[hk] = VersionedValue(write.value_hash, version, entries)
            if block_to_live:
                expiry = min(version.block_num + block_to_live + 1, 2**64 - 1)
                entry = expiry_key(expiry, namespace, coll.collection, hk)
                self.updates.setdefault(EXPIRY_NS, {})[entry] = VersionedValue(
                    plain_keys.get(hk, "").encode(), version
                )
        for hk, entries in metadata.items():
            if hk in hashed and hashed[hk] is not None and hashed[hk].version == version:
                continue  # written by this tx: the entries went with the value
            previous = self.get(hns, hk)
            if previous is not None:
                hashed[hk] = VersionedValue(previous.value, version, entries)
        if pvt is None:
            return
        pns = private_ns(namespace, coll.collection)
        values = self.updates.setdefault(pns, {})
        for key, value in pvt.writes.items():
            values[key] = None if value is None else VersionedValue(value, version)
        for key in pvt.metadata_keys:
            if key in pvt.writes:
                continue
            # A metadata-only update moves the hashed key's version; the value follows it.
            previous = self.get(pns, key)
            if previous is not None:
                values[key] = VersionedValue(previous.value, version)

    def expire(self, block_num: int) -> None:
        """Delete the private data whose blockToLive ends with this block, on every peer,
        unless the key was written again since (Fabric ``pvtstatepurgemgmt``)."""
        if EXPIRY_NS not in self._state.data:
            return  # nothing ever scheduled: every block of a peer without blockToLive
        due = list(
            self._state.iter_range_unlocked(
                EXPIRY_NS, f"{block_num:020d}", f"{block_num + 1:020d}", False
            )
        )
        if not due:
            return
        expiries = self.updates.setdefault(EXPIRY_NS, {})
        for entry, scheduled in due:
            expiries[entry] = None
            _, namespace, collection, hk = entry.split("\x00")
            hns = hashed_ns(namespace, collection)
            if self.updated(hns, hk):
                continue
            current = self.get(hns, hk)
            if current is None or current.version != scheduled.version:
                continue
            self.updates.setdefault(hns, {})[hk] = None
            if scheduled.value:
                pns = private_ns(namespace, collection)
                key = scheduled.value.decode()
                if self.get(pns, key) is not None:
                    self.updates.setdefault(pns, {})[key] = None


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
        for coll in ns.collections:
            # Hashed reads: the same rule on key hashes, so every peer decides alike.
            hns = hashed_ns(namespace, coll.collection)
            for hashed_read in coll.reads:
                hk = hashed_read.key_hash.hex()
                if batch.updated(hns, hk):
                    return ValidationCode.MVCC_READ_CONFLICT
                committed = batch.get(hns, hk)
                if (None if committed is None else committed.version) != hashed_read.version:
                    return ValidationCode.MVCC_READ_CONFLICT
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
