"""Simulation results: the read/write set of one transaction and its protobuf form.

Fabric counterpart: ``core/ledger/kvledger/txmgmt/rwsetutil`` (``RWSetBuilder``, ``TxRwSet``,
``NsRwSet``). Serialization follows ``RWSetBuilder.build``: namespaces sorted, reads, writes and
metadata writes sorted by key, range queries in the order they were issued.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple, overload

from google.protobuf.message import DecodeError

from protos.ledger.rwset import rwset_pb2
from protos.ledger.rwset.kvrwset import kv_rwset_pb2

from .errors import LedgerError
from .model import Height, Metadata

__all__ = [
    "CollHashed",
    "HashedMetadataWrite",
    "HashedRead",
    "HashedWrite",
    "MetadataWrite",
    "NsResults",
    "PvtCollection",
    "RangeQuery",
    "RangeReads",
    "Read",
    "SimulationResults",
    "Write",
    "pvt_from_proto",
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


class RangeReads(Sequence[Read]):
    """The reads of one range query, kept as its keys and their versions; a :class:`Read` is
    made only when asked for. Executing a transaction (an endorser's work) never asks: a
    range of 100 keys then makes 2 objects instead of 100 tuples that lived as long as the
    transaction's results and made the peer's garbage collector run often (20 % of the peer's
    time in the range workload)."""

    __slots__ = ("keys", "versions")

    def __init__(self, keys: Sequence[str] = (), versions: Sequence[Height | None] = ()) -> None:
        if len(keys) != len(versions):
            raise ValueError("a range read needs a version (or None) per key")
        self.keys = tuple(keys)
        self.versions = tuple(versions)

    @classmethod
    def of(cls, reads: Iterable[Read]) -> RangeReads:
        pairs = list(reads)
        return cls([read.key for read in pairs], [read.version for read in pairs])

    def __len__(self) -> int:
        return len(self.keys)

    @overload
    def __getitem__(self, index: int) -> Read: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Read, ...]: ...

    def __getitem__(self, index: int | slice) -> Read | tuple[Read, ...]:
        if isinstance(index, slice):
            return tuple(map(Read, self.keys[index], self.versions[index]))
        return Read(self.keys[index], self.versions[index])

    def __iter__(self) -> Iterator[Read]:
        return map(Read, self.keys, self.versions)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RangeReads):
            return self.keys == other.keys and self.versions == other.versions
        return NotImplemented  # not equal to a list of its reads: the hashes would differ

    def __hash__(self) -> int:
        return hash((self.keys, self.versions))

    def __repr__(self) -> str:
        return f"RangeReads({list(self)!r})"


class RangeQuery(NamedTuple):
    """A ``RangeQueryInfo`` with raw reads, replayed at commit for phantom detection.

    When ``itr_exhausted`` is false, ``end_key`` is the last key the transaction read and the
    replay includes it (Fabric ``resultsItr.updateRangeQueryInfo``).
    """

    start_key: str
    end_key: str
    itr_exhausted: bool
    reads: RangeReads


class HashedRead(NamedTuple):
    """A ``KVReadHash``: SHA-256 of the key and the hashed key's version seen (None: absent)."""

    key_hash: bytes
    version: Height | None


class HashedWrite(NamedTuple):
    """A ``KVWriteHash``: ``value_hash is None`` is a delete; ``is_purge`` a PurgePrivateData."""

    key_hash: bytes
    value_hash: bytes | None
    is_purge: bool = False


class HashedMetadataWrite(NamedTuple):
    """A ``KVMetadataWriteHash``: the hashed key's new metadata (public, unhashed entries)."""

    key_hash: bytes
    entries: Metadata


class CollHashed(NamedTuple):
    """A ``CollectionHashedReadWriteSet``: what every peer sees of one collection's part of a
    transaction. ``pvt_rwset_hash`` is SHA-256 of the collection's private ``KVRWSet`` bytes
    (empty when the transaction only read the collection)."""

    collection: str
    reads: tuple[HashedRead, ...] = ()
    writes: tuple[HashedWrite, ...] = ()
    metadata_writes: tuple[HashedMetadataWrite, ...] = ()
    pvt_rwset_hash: bytes = b""


class PvtCollection(NamedTuple):
    """A ``CollectionPvtReadWriteSet`` of a namespace: the serialized private ``KVRWSet``
    (writes with keys and values, metadata writes with keys only)."""

    namespace: str
    collection: str
    rwset: bytes


class NsResults(NamedTuple):
    """Everything one transaction did in one namespace (Fabric ``rwsetutil.NsRwSet``)."""

    namespace: str
    reads: tuple[Read, ...] = ()
    range_queries: tuple[RangeQuery, ...] = ()
    writes: tuple[Write, ...] = ()
    metadata_writes: tuple[MetadataWrite, ...] = ()
    collections: tuple[CollHashed, ...] = ()

    def is_empty(self) -> bool:
        return not (
            self.reads
            or self.range_queries
            or self.writes
            or self.metadata_writes
            or self.collections
        )


def _namespace_of(ns: NsResults) -> str:
    return ns.namespace


@dataclass(frozen=True)
class SimulationResults:
    """Immutable snapshot of a transaction's read/write set, keyed by namespace.

    ``private`` holds the private read/write sets of the collections written: they travel
    apart from the public set (:meth:`to_proto` leaves them out; :meth:`pvt_to_proto` is the
    ``TxPvtReadWriteSet``), and a committing peer keeps only those of its collections."""

    ns_results: tuple[NsResults, ...] = ()
    private: tuple[PvtCollection, ...] = ()

    def __post_init__(self) -> None:
        # Built once per transaction on the thread serving the chaincode: nothing to sort
        # or check for the usual single namespace, and the index by namespace when asked.
        results = self.ns_results
        if type(results) is not tuple:
            results = tuple(results)
        if len(results) > 1:
            results = tuple(sorted(results, key=_namespace_of))
            if len({ns.namespace for ns in results}) != len(results):
                raise LedgerError("simulation results name a namespace more than once")
        if results is not self.ns_results:
            object.__setattr__(self, "ns_results", results)

    @cached_property
    def _by_ns(self) -> dict[str, NsResults]:
        return {ns.namespace: ns for ns in self.ns_results}

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
        return any(
            ns.writes
            or ns.metadata_writes
            or any(c.writes or c.metadata_writes for c in ns.collections)
            for ns in self.ns_results
        )

    def has_collections(self) -> bool:
        """Whether any namespace touched a private data collection (hashed reads or writes)."""
        return any(ns.collections for ns in self.ns_results)

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
            ns_rwset = tx.ns_rwset.add(
                namespace=ns.namespace, rwset=kv.SerializeToString(deterministic=True)
            )
            for coll in ns.collections:
                ns_rwset.collection_hashed_rwset.add(
                    collection_name=coll.collection,
                    hashed_rwset=_hashed_to_proto(coll).SerializeToString(deterministic=True),
                    pvt_rwset_hash=coll.pvt_rwset_hash,
                )
        return tx

    def pvt_to_proto(self) -> rwset_pb2.TxPvtReadWriteSet | None:
        """The ``TxPvtReadWriteSet`` (namespaces and collections sorted), None without one."""
        if not self.private:
            return None
        tx = rwset_pb2.TxPvtReadWriteSet(data_model=rwset_pb2.TxReadWriteSet.KV)
        current = None
        for pvt in sorted(self.private, key=lambda p: (p.namespace, p.collection)):
            if current is None or current.namespace != pvt.namespace:
                current = tx.ns_pvt_rwset.add(namespace=pvt.namespace)
            current.collection_pvt_rwset.add(collection_name=pvt.collection, rwset=pvt.rwset)
        return tx

    def with_private(self, private: Iterable[PvtCollection]) -> SimulationResults:
        """The same public results carrying ``private`` (e.g. from the transient store)."""
        return SimulationResults(self.ns_results, tuple(private))

    def to_bytes(self) -> bytes:
        return self.to_proto().SerializeToString(deterministic=True)

    @classmethod
    def from_proto(cls, tx: rwset_pb2.TxReadWriteSet) -> SimulationResults:
        """Parse a public read/write set (e.g. from a ``ChaincodeAction``) for committing."""
        ns_results = []
        for ns_rwset in tx.ns_rwset:
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
                    collections=tuple(
                        _hashed_from_proto(ns_rwset.namespace, c)
                        for c in ns_rwset.collection_hashed_rwset
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
    def build(
        cls, ns_results: Iterable[NsResults], private: tuple[PvtCollection, ...] = ()
    ) -> SimulationResults:
        """Results from per-namespace parts, dropping namespaces the tx did nothing in."""
        return cls(tuple(ns for ns in ns_results if not ns.is_empty()), private)


def pvt_from_proto(tx: rwset_pb2.TxPvtReadWriteSet) -> tuple[PvtCollection, ...]:
    """The private sets of a ``TxPvtReadWriteSet``."""
    return tuple(
        PvtCollection(ns.namespace, coll.collection_name, coll.rwset)
        for ns in tx.ns_pvt_rwset
        for coll in ns.collection_pvt_rwset
    )


def _version(version: Height | None) -> kv_rwset_pb2.Version | None:
    if version is None:
        return None
    return kv_rwset_pb2.Version(block_num=version[0], tx_num=version[1])


def _hashed_to_proto(coll: CollHashed) -> kv_rwset_pb2.HashedRWSet:
    return kv_rwset_pb2.HashedRWSet(
        hashed_reads=[
            kv_rwset_pb2.KVReadHash(key_hash=r.key_hash, version=_version(r.version))
            for r in coll.reads
        ],
        hashed_writes=[
            kv_rwset_pb2.KVWriteHash(
                key_hash=w.key_hash,
                is_delete=w.value_hash is None,
                value_hash=w.value_hash or b"",
                is_purge=w.is_purge,
            )
            for w in coll.writes
        ],
        metadata_writes=[
            kv_rwset_pb2.KVMetadataWriteHash(
                key_hash=m.key_hash,
                entries=[kv_rwset_pb2.KVMetadataEntry(name=n, value=v) for n, v in m.entries],
            )
            for m in coll.metadata_writes
        ],
    )


_EMPTY_HASH = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def _hashed_from_proto(namespace: str, coll: rwset_pb2.CollectionHashedReadWriteSet) -> CollHashed:
    hashed = kv_rwset_pb2.HashedRWSet()
    try:
        hashed.ParseFromString(coll.hashed_rwset)
    except DecodeError as exc:
        raise LedgerError(
            f"namespace {namespace!r} collection {coll.collection_name!r}: bad HashedRWSet: {exc}"
        ) from exc
    return CollHashed(
        coll.collection_name,
        reads=tuple(
            HashedRead(
                r.key_hash,
                Height(r.version.block_num, r.version.tx_num) if r.HasField("version") else None,
            )
            for r in hashed.hashed_reads
        ),
        # Fabric's readers take an empty value hash, or the hash of "", as a delete too.
        writes=tuple(
            HashedWrite(
                w.key_hash,
                None
                if w.is_delete or not w.value_hash or w.value_hash == _EMPTY_HASH
                else w.value_hash,
                w.is_purge,
            )
            for w in hashed.hashed_writes
        ),
        metadata_writes=tuple(
            HashedMetadataWrite(m.key_hash, tuple(sorted((e.name, e.value) for e in m.entries)))
            for m in hashed.metadata_writes
        ),
        pvt_rwset_hash=coll.pvt_rwset_hash,
    )


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
        RangeReads.of(_read_from_proto(read) for read in info.raw_reads.kv_reads),
    )
