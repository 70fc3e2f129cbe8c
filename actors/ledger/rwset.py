"""Simulation results: the read/write set of one transaction and its protobuf form.

Fabric counterpart: ``core/ledger/kvledger/txmgmt/rwsetutil`` (``RWSetBuilder``, ``TxRwSet``,
``NsRwSet``). Serialization follows ``RWSetBuilder.build``: namespaces sorted, reads, writes and
metadata writes sorted by key, range queries in the order they were issued.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from google.protobuf.message import DecodeError

from protos.ledger.rwset import rwset_pb2
from protos.ledger.rwset.kvrwset import kv_rwset_pb2

from .errors import LedgerError
from .model import Height, Metadata

__all__ = [
    "MetadataWrite",
    "NsResults",
    "RangeQuery",
    "Read",
    "SimulationResults",
    "Write",
]


class Read(NamedTuple):
    """A ``KVRead``: the committed version seen, ``None`` if the key did not exist."""

    key: str
    version: Height | None


class Write(NamedTuple):
    """A ``KVWrite``: ``value is None`` is a delete."""

    key: str
    value: bytes | None


class MetadataWrite(NamedTuple):
    """A ``KVMetadataWrite``: the key's complete new metadata (empty: remove all metadata)."""

    key: str
    entries: Metadata


class RangeQuery(NamedTuple):
    """A ``RangeQueryInfo`` with raw reads, replayed at commit for phantom detection.

    When ``itr_exhausted`` is false, ``end_key`` is the last key the transaction read and the
    replay includes it (Fabric ``resultsItr.updateRangeQueryInfo``).
    """

    start_key: str
    end_key: str
    itr_exhausted: bool
    reads: tuple[Read, ...]


class NsResults(NamedTuple):
    """Everything one transaction did in one namespace (Fabric ``rwsetutil.NsRwSet``)."""

    namespace: str
    reads: tuple[Read, ...] = ()
    range_queries: tuple[RangeQuery, ...] = ()
    writes: tuple[Write, ...] = ()
    metadata_writes: tuple[MetadataWrite, ...] = ()

    def is_empty(self) -> bool:
        return not (self.reads or self.range_queries or self.writes or self.metadata_writes)


@dataclass(frozen=True)
class SimulationResults:
    """Immutable snapshot of a transaction's read/write set, keyed by namespace."""

    ns_results: tuple[NsResults, ...] = ()
    _by_ns: dict[str, NsResults] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.ns_results, key=lambda ns: ns.namespace))
        by_ns = {ns.namespace: ns for ns in ordered}
        if len(by_ns) != len(ordered):
            raise LedgerError("simulation results name a namespace more than once")
        object.__setattr__(self, "ns_results", ordered)
        object.__setattr__(self, "_by_ns", by_ns)

    # -- convenience views (fresh dicts; the snapshot itself never changes) --------------

    @property
    def namespaces(self) -> list[str]:
        return [ns.namespace for ns in self.ns_results]

    def namespace(self, ns: str) -> NsResults:
        """The namespace's results; an empty :class:`NsResults` if the tx never touched it."""
        return self._by_ns.get(ns) or NsResults(ns)

    def reads(self, ns: str) -> dict[str, Height | None]:
        return {read.key: read.version for read in self.namespace(ns).reads}

    def writes(self, ns: str) -> dict[str, bytes | None]:
        return {write.key: write.value for write in self.namespace(ns).writes}

    def metadata_writes(self, ns: str) -> dict[str, dict[str, bytes]]:
        return {mw.key: dict(mw.entries) for mw in self.namespace(ns).metadata_writes}

    def range_queries(self, ns: str) -> list[RangeQuery]:
        return list(self.namespace(ns).range_queries)

    def has_writes(self) -> bool:
        return any(ns.writes or ns.metadata_writes for ns in self.ns_results)

    # -- protobuf ------------------------------------------------------------------------

    def to_proto(self) -> rwset_pb2.TxReadWriteSet:
        tx = rwset_pb2.TxReadWriteSet(data_model=rwset_pb2.TxReadWriteSet.KV)
        for ns in self.ns_results:
            kv = kv_rwset_pb2.KVRWSet(
                reads=[_read_to_proto(read) for read in ns.reads],
                range_queries_info=[_range_to_proto(rq) for rq in ns.range_queries],
                writes=[
                    kv_rwset_pb2.KVWrite(key=w.key, is_delete=w.value is None, value=w.value or b"")
                    for w in ns.writes
                ],
                metadata_writes=[
                    kv_rwset_pb2.KVMetadataWrite(
                        key=mw.key,
                        entries=[
                            kv_rwset_pb2.KVMetadataEntry(name=name, value=value)
                            for name, value in mw.entries
                        ],
                    )
                    for mw in ns.metadata_writes
                ],
            )
            # Deterministic so that endorsers simulating the same tx produce identical bytes.
            tx.ns_rwset.add(namespace=ns.namespace, rwset=kv.SerializeToString(deterministic=True))
        return tx

    def to_bytes(self) -> bytes:
        return self.to_proto().SerializeToString(deterministic=True)

    @classmethod
    def from_proto(cls, tx: rwset_pb2.TxReadWriteSet) -> SimulationResults:
        """Parse a public read/write set (e.g. from a ``ChaincodeAction``) for committing."""
        ns_results = []
        for ns_rwset in tx.ns_rwset:
            if ns_rwset.collection_hashed_rwset:
                raise LedgerError(
                    f"namespace {ns_rwset.namespace!r}: private data (collection hashed "
                    "read/write sets) is not supported"
                )
            kv = kv_rwset_pb2.KVRWSet()
            try:
                kv.ParseFromString(ns_rwset.rwset)
            except DecodeError as exc:
                raise LedgerError(f"namespace {ns_rwset.namespace!r}: bad KVRWSet: {exc}") from exc
            ns_results.append(
                NsResults(
                    namespace=ns_rwset.namespace,
                    reads=tuple(_read_from_proto(read) for read in kv.reads),
                    range_queries=tuple(_range_from_proto(rq) for rq in kv.range_queries_info),
                    writes=tuple(
                        # Like Fabric's newKVWrite, an empty value is a delete either way.
                        Write(w.key, None if w.is_delete or not w.value else w.value)
                        for w in kv.writes
                    ),
                    metadata_writes=tuple(
                        MetadataWrite(
                            mw.key,
                            tuple(sorted((e.name, e.value) for e in mw.entries)),
                        )
                        for mw in kv.metadata_writes
                    ),
                )
            )
        return cls(tuple(ns_results))

    @classmethod
    def from_bytes(cls, data: bytes) -> SimulationResults:
        tx = rwset_pb2.TxReadWriteSet()
        try:
            tx.ParseFromString(data)
        except DecodeError as exc:
            raise LedgerError(f"bad TxReadWriteSet: {exc}") from exc
        return cls.from_proto(tx)

    @classmethod
    def build(cls, ns_results: Iterable[NsResults]) -> SimulationResults:
        """Results from per-namespace parts, dropping namespaces the tx did nothing in."""
        return cls(tuple(ns for ns in ns_results if not ns.is_empty()))


def _read_to_proto(read: Read) -> kv_rwset_pb2.KVRead:
    if read.version is None:
        return kv_rwset_pb2.KVRead(key=read.key)
    return kv_rwset_pb2.KVRead(
        key=read.key,
        version=kv_rwset_pb2.Version(block_num=read.version[0], tx_num=read.version[1]),
    )


def _read_from_proto(read: kv_rwset_pb2.KVRead) -> Read:
    if not read.HasField("version"):
        return Read(read.key, None)
    return Read(read.key, Height(read.version.block_num, read.version.tx_num))


def _range_to_proto(rq: RangeQuery) -> kv_rwset_pb2.RangeQueryInfo:
    info = kv_rwset_pb2.RangeQueryInfo(
        start_key=rq.start_key, end_key=rq.end_key, itr_exhausted=rq.itr_exhausted
    )
    # Fabric leaves the oneof unset when nothing was read.
    if rq.reads:
        info.raw_reads.kv_reads.extend(_read_to_proto(read) for read in rq.reads)
    return info


def _range_from_proto(info: kv_rwset_pb2.RangeQueryInfo) -> RangeQuery:
    if info.HasField("reads_merkle_hashes"):
        raise LedgerError(
            "range query reads summarised as merkle hashes are not supported; raw reads only"
        )
    return RangeQuery(
        info.start_key,
        info.end_key,
        info.itr_exhausted,
        tuple(_read_from_proto(read) for read in info.raw_reads.kv_reads),
    )
