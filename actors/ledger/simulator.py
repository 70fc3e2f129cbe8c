"""Transaction simulation: reads committed state, buffers writes, records the read set.

Fabric counterpart: ``core/ledger/kvledger/txmgmt/txmgr`` (``txSimulator``, ``queryExecutor``,
``resultsItr``) together with ``rwsetutil.RWSetBuilder``.

Every read of a simulation sees one committed state: the :class:`~.state.Snapshot` taken when
the simulator was created (Fabric holds the commit lock for reading instead, so commits wait).

Deliberate differences from Fabric, all in the direction of fewer spurious conflicts:

* Range queries are recorded with raw reads only, never merkle summaries.
* A range iterator that returned nothing and was not exhausted observed nothing, so it adds no
  ``RangeQueryInfo`` (Fabric would record an unbounded range that conflicts with any key).
* A paginated iterator that stops at its page size records ``itr_exhausted=False`` up to the
  last key returned, unless the range really has no more keys.

As in Fabric, a range query stops at the ledger's ``totalQueryLimit`` without reading further,
so its ``RangeQueryInfo`` holds exactly the keys it returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .checks import (
    DONE_MESSAGE,
    check_bound,
    check_key,
    check_namespace,
    check_value,
    check_write_key,
    normalize_metadata,
)
from .errors import LedgerError, ReadOnlyViolation, WriteSetTooLarge
from .model import KV, Height, KeyModification, Metadata, VersionedValue
from .privdata import (
    PvtWrite,
    hashed_ns,
    key_hash,
    private_ns,
    pvt_rwset_bytes,
    sha256,
    version_text,
)
from .richquery import DEFAULT_TOTAL_QUERY_LIMIT
from .richquery.engine import RichPage, RichQueryEngine
from .rwset import (
    CollHashed,
    HashedMetadataWrite,
    HashedRead,
    HashedWrite,
    MetadataWrite,
    NsResults,
    PvtCollection,
    RangeQuery,
    RangeReads,
    Read,
    SimulationResults,
    Write,
)
from .state import Snapshot

__all__ = ["RangeIterator", "RichQueryIterator", "TxSimulator"]

# Entries fetched per lock acquisition while iterating a range: the peer sends at most 100
# results per QueryResponse, so one chunk usually serves one response.
RANGE_CHUNK = 128

_UNREAD: Any = object()
_MEMORY_ENGINE = RichQueryEngine()  # for simulators made without a ledger's engine

HistorySource = Callable[[str, str], list[KeyModification]]


class TxSimulator:
    """Simulates one transaction against a channel's committed state.

    Not safe for concurrent use by several threads at once; sequential use from different
    threads is fine. Threads that may overlap (a peer serving requests on one thread and ending
    the transaction on another) hold :attr:`lock` while they use it.
    """

    __slots__ = (
        "_data",
        "_done",
        "_failed",
        "_height",
        "_history",
        "_iterators",
        "_limit",
        "_max_write_set",
        "_metadata_writes",
        "_paginated",
        "_pvt",
        "_reads",
        "_rich",
        "_snapshot",
        "_write_bytes",
        "_write_performed",
        "_writes",
        "lock",
        "txid",
    )

    def __init__(
        self,
        txid: str,
        snapshot: Snapshot,
        history: HistorySource | None,
        *,
        total_query_limit: int = 0,
        max_write_set: int = 0,
        rich: RichQueryEngine | None = None,
    ) -> None:
        """``total_query_limit``: results one range query returns at most; ``max_write_set``:
        bytes of keys, values and metadata the transaction may write (0: no limit)."""
        self.txid = txid
        self._snapshot = snapshot
        self._rich = rich
        # The snapshot's own fast path, inlined on the hottest read (see get_state).
        self._data = snapshot._data
        self._height = snapshot.height
        self._history = history
        self._limit = total_query_limit
        self._max_write_set = max_write_set
        self._write_bytes = 0
        self._failed: str | None = None  # why this simulation can produce no results
        # namespace -> key -> value seen at the first read (None: key did not exist).
        self._reads: dict[str, dict[str, VersionedValue | None]] = {}
        self._writes: dict[str, dict[str, bytes | None]] = {}
        self._metadata_writes: dict[str, dict[str, Metadata]] = {}
        self._iterators: list[RangeIterator] = []
        self._done = False
        self._write_performed = False
        self._paginated = False
        self._pvt: _Private | None = None  # made by the first private data call
        self.lock = threading.Lock()

    # -- reads ---------------------------------------------------------------------------

    def get_state(self, ns: str, key: str) -> bytes | None:
        """Committed value of ``key`` (never this tx's own writes); records the read."""
        if self._done:
            raise LedgerError(DONE_MESSAGE)
        reads = self._reads.get(ns)
        if reads is None:
            reads = self._ns_reads(ns)
        if type(key) is not str:
            check_key(key)
        seen = reads.get(key, _UNREAD)
        if seen is _UNREAD:
            check_key(key)
            ns_data = self._data.get(ns)
            seen = None if ns_data is None else ns_data.get(key)
            if seen is None or seen.version.block_num >= self._height:
                seen = self._snapshot.get(ns, key)
            reads[key] = seen
        return None if seen is None else seen.value

    def get_state_multiple(self, ns: str, keys: list[str]) -> list[bytes | None]:
        """Values of several keys."""
        self._check_open()
        reads = self._reads.get(ns)
        if reads is None:
            reads = self._ns_reads(ns)
        if isinstance(keys, str):
            raise TypeError("keys must be a list of str, not a str")
        keys = [check_key(key) for key in keys]
        snapshot = self._snapshot
        for key in keys:
            if key not in reads:
                reads[key] = snapshot.get(ns, key)
        return [None if (seen := reads[key]) is None else seen.value for key in keys]

    def get_state_metadata(self, ns: str, key: str) -> dict[str, bytes]:
        """Committed metadata of ``key`` (``{}`` if none); records the read like Fabric."""
        self._check_open()
        reads = self._reads.get(ns)
        if reads is None:
            reads = self._ns_reads(ns)
        check_key(key)
        seen = reads.get(key, _UNREAD)
        if seen is _UNREAD:
            seen = reads[key] = self._snapshot.get(ns, key)
        return {} if seen is None else dict(seen.metadata)

    def get_state_range_scan_iterator(self, ns: str, start_key: str, end_key: str) -> RangeIterator:
        """Iterator over ``[start_key, end_key)`` in byte-wise key order; ``""`` is open."""
        self._check_open()
        return self._new_iterator(ns, start_key, end_key, 0)

    def get_state_range_scan_iterator_with_pagination(
        self, ns: str, start_key: str, end_key: str, page_size: int
    ) -> RangeIterator:
        """At most ``page_size`` results (0 or negative: no page limit, as Fabric's state
        database takes it); ``bookmark`` then names the key to resume from."""
        self._check_open()
        if type(page_size) is not int:
            raise TypeError(f"page_size must be an int, got {type(page_size).__name__}")
        if self._write_performed:
            # Fabric's exact text, typo included, so chaincode sees the same error as on Fabric.
            raise ReadOnlyViolation(
                f"txid [{self.txid}]: unsuppored transaction. Paginated queries are supported "
                "only in a read-only transaction"
            )
        iterator = self._new_iterator(ns, start_key, end_key, max(page_size, 0))
        self._paginated = True
        return iterator

    # -- rich queries (hook for actors.ledger.richquery) -----------------------------------

    def execute_query(
        self,
        ns: str,
        query: str,
        *,
        page_size: int = 0,
        bookmark: str = "",
        total_limit: int = DEFAULT_TOTAL_QUERY_LIMIT,
    ) -> RichQueryIterator:
        """A Mango query (CouchDB semantics, Fabric's rules); paginated when ``page_size`` or
        ``bookmark`` is given. Returned keys join the read set; no phantom protection, as in
        Fabric. Raises :class:`~actors.ledger.richquery.RichQueryError` for a bad query."""
        self._check_open()
        check_namespace(ns)
        paginated = bool(page_size or bookmark)
        if paginated and self._write_performed:
            raise ReadOnlyViolation(
                f"txid [{self.txid}]: unsuppored transaction. Paginated queries are supported "
                "only in a read-only transaction"
            )
        engine = self._rich if self._rich is not None else _MEMORY_ENGINE
        page = engine.query(
            self._snapshot,
            ns,
            query,
            page_size=page_size,
            bookmark=bookmark,
            total_limit=total_limit,
        )
        if paginated:
            self._paginated = True
        reads = self._reads.get(ns)
        if reads is None:
            reads = self._ns_reads(ns)
        return RichQueryIterator(ns, page, reads)

    def get_history_for_key(self, ns: str, key: str) -> Iterator[KeyModification]:
        """Committed modifications of ``key``, newest first; not part of the read set."""
        self._check_open()
        check_namespace(ns)
        check_key(key)
        if self._history is None:
            raise LedgerError("history database is not enabled")
        return iter(self._history(ns, key))

    # -- writes --------------------------------------------------------------------------

    def put_state(self, ns: str, key: str, value: bytes) -> None:
        """Buffer a write; an empty value is recorded as a delete (Fabric ``newKVWrite``)."""
        self._check_writable()
        writes = self._writes.get(ns)
        if writes is None:
            writes = self._writes[check_namespace(ns)] = {}
        if type(key) is not str or not key.isascii() or not key:
            check_write_key(key)
        if type(value) is not bytes:
            value = check_value(value)
        if self._max_write_set:
            old = writes.get(key, _UNREAD)
            self._grow(len(value) + (len(key) if old is _UNREAD else -len(old or b"")))
        writes[key] = value or None
        self._write_performed = True

    def delete_state(self, ns: str, key: str) -> None:
        self._check_writable()
        writes = self._writes.get(ns)
        if writes is None:
            writes = self._writes[check_namespace(ns)] = {}
        check_write_key(key)
        if self._max_write_set:
            old = writes.get(key, _UNREAD)
            self._grow(len(key) if old is _UNREAD else -len(old or b""))
        writes[key] = None
        self._write_performed = True

    def set_state_metadata(self, ns: str, key: str, metadata: Mapping[str, bytes]) -> None:
        """Replace the key's metadata at commit; ``{}`` removes it. No-op if the key is gone."""
        self._check_writable()
        check_namespace(ns)
        check_write_key(key)
        entries = normalize_metadata(metadata)
        if self._max_write_set:
            self._grow(len(key) + sum(len(name) + len(value) for name, value in entries))
        self._metadata_writes.setdefault(ns, {})[key] = entries
        self._write_performed = True

    # -- private data (Fabric's GetPrivateData & co.) ---------------------------------------

    def _private(self) -> _Private:
        pvt = self._pvt
        if pvt is None:
            pvt = self._pvt = _Private()
        return pvt

    def get_private_data(self, ns: str, coll: str, key: str) -> bytes | None:
        """The committed private value, which must be at the hashed key's version (a peer
        that is not a member, or missed the data, has only the hash: Fabric's error)."""
        self._check_open()
        check_namespace(ns)
        check_key(key)
        hashed = self._snapshot.get(hashed_ns(ns, coll), key_hash(key).hex())
        value = self._snapshot.get(private_ns(ns, coll), key)
        hashed_version = None if hashed is None else hashed.version
        value_version = None if value is None else value.version
        if hashed_version != value_version:
            raise LedgerError(
                "private data matching public hash version is not available. Public hash "
                f"version = {version_text(hashed_version)}, Private data version = "
                f"{version_text(value_version)}"
            )
        self._private().read(ns, coll, key, hashed_version)
        return None if value is None else value.value

    def get_private_data_hash(self, ns: str, coll: str, key: str) -> bytes | None:
        """SHA-256 of the committed private value; every peer has it."""
        self._check_open()
        check_namespace(ns)
        check_key(key)
        hashed = self._snapshot.get(hashed_ns(ns, coll), key_hash(key).hex())
        self._private().read(ns, coll, key, None if hashed is None else hashed.version)
        return None if hashed is None else hashed.value

    def get_private_data_metadata(self, ns: str, coll: str, key: str) -> dict[str, bytes]:
        """The metadata of the hashed key (key-level endorsement of private data)."""
        self._check_open()
        check_namespace(ns)
        check_key(key)
        hashed = self._snapshot.get(hashed_ns(ns, coll), key_hash(key).hex())
        self._private().read(ns, coll, key, None if hashed is None else hashed.version)
        return {} if hashed is None else dict(hashed.metadata)

    def put_private_data(self, ns: str, coll: str, key: str, value: bytes) -> None:
        """Buffer a private write; an empty value is a delete, as for public data."""
        self._check_writable()
        check_namespace(ns)
        check_write_key(key)
        if type(value) is not bytes:
            value = check_value(value)
        self._private_write(ns, coll, key, PvtWrite(value or None), len(value))

    def delete_private_data(self, ns: str, coll: str, key: str) -> None:
        self._check_writable()
        check_namespace(ns)
        check_write_key(key)
        self._private_write(ns, coll, key, PvtWrite(None), 0)

    def purge_private_data(self, ns: str, coll: str, key: str) -> None:
        """Delete the key and (Fabric 2.5) its history of private values on every peer."""
        self._check_writable()
        check_namespace(ns)
        check_write_key(key)
        self._private_write(ns, coll, key, PvtWrite(None, purge=True), 0)

    def set_private_data_metadata(
        self, ns: str, coll: str, key: str, metadata: Mapping[str, bytes]
    ) -> None:
        self._check_writable()
        check_namespace(ns)
        check_write_key(key)
        entries = normalize_metadata(metadata)
        if self._max_write_set:
            self._grow(len(key) + sum(len(name) + len(value) for name, value in entries))
        self._private().metadata.setdefault((ns, coll), {})[key] = entries
        self._write_performed = True

    def get_private_data_range_scan_iterator(
        self, ns: str, coll: str, start_key: str, end_key: str
    ) -> RangeIterator:
        """Private values in ``[start_key, end_key)``; recorded nowhere (never validated), and
        only in a transaction that writes nothing (Fabric's rule)."""
        self.check_private_query()
        check_namespace(ns)
        check_bound("start_key", start_key)
        check_bound("end_key", end_key)
        iterator = RangeIterator(
            self._snapshot, private_ns(ns, coll), start_key, end_key, 0, self._limit
        )
        self._pvt.iterators.append(iterator)  # type: ignore[union-attr]
        return iterator

    def execute_query_on_private_data(
        self, ns: str, coll: str, query: str, *, total_limit: int = DEFAULT_TOTAL_QUERY_LIMIT
    ) -> RichQueryIterator:
        """A Mango query over the collection's private values (not paginated, not recorded)."""
        self.check_private_query()
        check_namespace(ns)
        engine = self._rich if self._rich is not None else _MEMORY_ENGINE
        page = engine.query(self._snapshot, private_ns(ns, coll), query, total_limit=total_limit)
        return RichQueryIterator(ns, page, {})

    def check_private_query(self) -> None:
        """Fabric's precondition of a query on private data: nothing written so far (and no
        write allowed after it)."""
        self._check_open()
        if self._write_performed:
            raise ReadOnlyViolation(
                f"txid [{self.txid}]: unsuppored transaction. Queries on pvt data is supported "
                "only in a read-only transaction"
            )
        self._private().queried = True

    def _private_write(self, ns: str, coll: str, key: str, write: PvtWrite, size: int) -> None:
        writes = self._private().writes.setdefault((ns, coll), {})
        if self._max_write_set:
            old = writes.get(key)
            self._grow(size + (len(key) if old is None else -len(old.value or b"")))
        writes[key] = write
        self._write_performed = True

    # -- results and lifecycle -----------------------------------------------------------

    def has_writes(self) -> bool:
        return any(self._writes.values()) or any(self._metadata_writes.values())

    def get_results(self) -> SimulationResults:
        """Snapshot of the read/write set so far; callable any number of times, also after
        :meth:`done`. Open iterators contribute what they have returned up to now.

        Raises :class:`WriteSetTooLarge` if a write went over the limit: such a transaction
        has no results to endorse or commit (Fabric ``GetTxSimulationResults`` failing)."""
        if self._failed is not None:
            raise WriteSetTooLarge(self._failed)
        if not self._iterators and self._pvt is None and not self._metadata_writes:
            return self._plain_results()
        range_queries: dict[str, list[RangeQuery]] = {}
        seen_ranges: set[tuple[str, str, str, bool]] = set()
        for iterator in self._iterators:
            query = iterator.range_query()
            if query is None:
                continue
            # Fabric's RWSetBuilder keeps the first of identical (start, end, exhausted) ranges.
            dedup = (iterator.namespace, query.start_key, query.end_key, query.itr_exhausted)
            if dedup not in seen_ranges:
                seen_ranges.add(dedup)
                range_queries.setdefault(iterator.namespace, []).append(query)
        namespaces = set(self._reads) | set(self._writes) | set(self._metadata_writes)
        namespaces |= set(range_queries)
        collections: dict[str, tuple[CollHashed, ...]] = {}
        private: tuple[PvtCollection, ...] = ()
        if self._pvt is not None:
            collections, private = self._pvt.results()
            namespaces |= set(collections)
        parts = []
        for ns in namespaces:
            reads = self._reads.get(ns, {})
            writes = self._writes.get(ns, {})
            metadata_writes = self._metadata_writes.get(ns, {})
            parts.append(
                NsResults(
                    namespace=ns,
                    reads=tuple(
                        Read(key, None if (seen := reads[key]) is None else seen.version)
                        for key in sorted(reads)
                    ),
                    range_queries=tuple(range_queries.get(ns, ())),
                    writes=tuple(Write(key, writes[key]) for key in sorted(writes)),
                    metadata_writes=tuple(
                        MetadataWrite(key, metadata_writes[key]) for key in sorted(metadata_writes)
                    ),
                    collections=collections.get(ns, ()),
                )
            )
        return SimulationResults.build(parts, private)

    def _plain_results(self) -> SimulationResults:
        """:meth:`get_results` of a simulation of plain reads and writes, the common case (on
        the thread that serves the chaincode, once per transaction): the same results,
        without the passes for range queries, metadata and collections."""
        all_reads, all_writes = self._reads, self._writes
        parts = []
        for ns in sorted(all_reads.keys() | all_writes.keys()):
            reads = all_reads.get(ns)
            writes = all_writes.get(ns)
            if reads or writes:
                parts.append(
                    NsResults(
                        ns,
                        tuple(
                            [
                                Read(key, None if seen is None else seen.version)
                                for key, seen in sorted(reads.items())
                            ]
                        )
                        if reads
                        else (),
                        (),
                        tuple([Write(key, value) for key, value in sorted(writes.items())])
                        if writes
                        else (),
                    )
                )
        return SimulationResults(tuple(parts))

    def done(self) -> None:
        """End the simulation: closes its iterators and releases its snapshot (Fabric's
        ``Done()`` releasing the commit read lock); later reads and writes raise."""
        if self._done:
            return
        self._done = True
        for iterator in self._iterators:
            iterator.close()
        if self._pvt is not None:
            for iterator in self._pvt.iterators:
                iterator.close()
        self._snapshot.close()

    def __enter__(self) -> TxSimulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.done()

    # -- internals -----------------------------------------------------------------------

    def _ns_reads(self, ns: str) -> dict[str, VersionedValue | None]:
        reads = self._reads[check_namespace(ns)] = {}
        return reads

    def _check_open(self) -> None:
        if self._done:
            raise LedgerError(DONE_MESSAGE)

    def _check_writable(self) -> None:
        if self._done:
            raise LedgerError(DONE_MESSAGE)
        if self._failed is not None:
            raise WriteSetTooLarge(self._failed)
        if self._pvt is not None and self._pvt.queried:
            raise ReadOnlyViolation(
                f"txid [{self.txid}]: unsuppored transaction. Transaction has already performed "
                "queries on pvt data. Writes are not allowed"
            )
        if self._paginated:
            raise ReadOnlyViolation(
                f"txid [{self.txid}]: unsuppored transaction. Transaction has already performed "
                "a paginated query. Writes are not allowed"
            )

    def _grow(self, delta: int) -> None:
        """Count ``delta`` more bytes of write set, or fail the transaction over the limit."""
        size = self._write_bytes + delta
        if size > self._max_write_set:
            self._failed = (
                f"the write set would exceed {self._max_write_set} bytes "
                "(ledger.state.maxWriteSetSize); the transaction fails"
            )
            raise WriteSetTooLarge(self._failed)
        self._write_bytes = size

    def _new_iterator(self, ns: str, start_key: str, end_key: str, page_size: int) -> RangeIterator:
        check_namespace(ns)
        check_bound("start_key", start_key)
        check_bound("end_key", end_key)
        iterator = RangeIterator(self._snapshot, ns, start_key, end_key, page_size, self._limit)
        self._iterators.append(iterator)
        return iterator

    def __repr__(self) -> str:
        state = "done" if self._done else "active"
        return f"TxSimulator(txid={self.txid!r}, {state})"


class _Private:
    """What one simulation did with private data (made on first use: public-only
    transactions pay nothing for it)."""

    __slots__ = ("iterators", "metadata", "queried", "reads", "writes")

    def __init__(self) -> None:
        self.reads: dict[tuple[str, str], dict[str, Height | None]] = {}
        self.writes: dict[tuple[str, str], dict[str, PvtWrite]] = {}
        self.metadata: dict[tuple[str, str], dict[str, Metadata]] = {}
        self.iterators: list[RangeIterator] = []
        self.queried = False

    def read(self, ns: str, coll: str, key: str, version: Height | None) -> None:
        self.reads.setdefault((ns, coll), {}).setdefault(key, version)

    def results(self) -> tuple[dict[str, tuple[CollHashed, ...]], tuple[PvtCollection, ...]]:
        """Per namespace, the collections' hashed sets (sorted by name); and the private
        sets of the collections written. Entries sorted by plain key, as Fabric's builder."""
        by_ns: dict[str, list[CollHashed]] = {}
        private: list[PvtCollection] = []
        for ns, coll in sorted(set(self.reads) | set(self.writes) | set(self.metadata)):
            reads = self.reads.get((ns, coll), {})
            writes = self.writes.get((ns, coll), {})
            metadata = self.metadata.get((ns, coll), {})
            rwset_hash = b""
            if writes or metadata:
                rwset = pvt_rwset_bytes(writes, metadata)
                rwset_hash = sha256(rwset)
                private.append(PvtCollection(ns, coll, rwset))
            by_ns.setdefault(ns, []).append(
                CollHashed(
                    coll,
                    reads=tuple(HashedRead(key_hash(k), reads[k]) for k in sorted(reads)),
                    writes=tuple(
                        HashedWrite(
                            key_hash(k),
                            None if (w := writes[k]).value is None else sha256(w.value),
                            w.purge,
                        )
                        for k in sorted(writes)
                    ),
                    metadata_writes=tuple(
                        HashedMetadataWrite(key_hash(k), metadata[k]) for k in sorted(metadata)
                    ),
                    pvt_rwset_hash=rwset_hash,
                )
            )
        return {ns: tuple(colls) for ns, colls in by_ns.items()}, tuple(private)


class RangeIterator:
    """Results of one range query; records what it returned for phantom validation.

    Reads its simulation's snapshot in chunks of :data:`RANGE_CHUNK` under the state lock, so
    it never blocks commits for long and never sees what they change.
    """

    __slots__ = (
        "_at",
        "_bookmark",
        "_closed",
        "_end_reached",
        "_exhausted",
        "_keys",
        "_last_fetched",
        "_read_keys",
        "_read_versions",
        "_snapshot",
        "_values",
        "end_key",
        "limit",
        "namespace",
        "page_size",
        "start_key",
    )

    def __init__(
        self,
        snapshot: Snapshot,
        namespace: str,
        start_key: str,
        end_key: str,
        page_size: int,
        limit: int = 0,
    ) -> None:
        self._snapshot = snapshot
        self.namespace = namespace
        self.start_key = start_key
        self.end_key = end_key
        self.page_size = page_size  # 0: not paginated
        self.limit = limit  # totalQueryLimit; 0: none
        # The chunk read last, as two lists; _at is the next entry to return.
        self._keys: list[str] = []
        self._values: list[VersionedValue] = []
        self._at = 0
        self._last_fetched: str | None = None
        self._end_reached = False  # storage has nothing beyond the buffer
        self._exhausted = False  # the consumer was told there is nothing more in the range
        self._closed = False
        self._bookmark: str | None = None
        # What it returned, for its RangeQueryInfo: two lists, not a Read per key (see
        # rwset.RangeReads).
        self._read_keys: list[str] = []
        self._read_versions: list[Height] = []

    def __iter__(self) -> RangeIterator:
        return self

    def __next__(self) -> KV:
        keys, values = self.take(1)
        if not keys:
            raise StopIteration
        return KV(self.namespace, keys[0], values[0])

    def take(self, n: int) -> tuple[list[str], list[bytes]]:
        """The keys and values of what ``n`` calls of ``next`` would return, at once (the peer
        answers a query in batches of up to 100 results): no tuple per result."""
        keys: list[str] = []
        values: list[bytes] = []
        read = self._read_keys
        while len(keys) < n and not (self._closed or self._exhausted):
            want = n - len(keys)
            if self.page_size:
                want = min(want, self.page_size - len(read))
                if want <= 0:
                    self._finish_page()
                    break
            if self.limit:
                # Fabric checks totalQueryLimit before Next(): the key beyond is not read, so
                # it is not in the RangeQueryInfo and a change to it cannot fail this
                # transaction.
                want = min(want, self.limit - len(read))
                if want <= 0:
                    break
            if self._at == len(self._keys) and not self._end_reached:
                self._fill()
            at = self._at
            end = min(at + want, len(self._keys))
            if at == end:
                self._exhausted = True
                self._bookmark = ""
                break
            got, versioned = self._keys[at:end], self._values[at:end]
            self._at = end
            read += got
            self._read_versions += [value.version for value in versioned]
            keys += got
            values += [value.value for value in versioned]
        return keys, values

    @property
    def bookmark(self) -> str:
        """Key to restart from (as the next start key) to continue after the results returned
        so far; ``""`` when the range has no more keys. Like Fabric's leveldb scanner."""
        if self._bookmark is not None:
            return self._bookmark
        return self._peek_next_key()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop iterating; what was returned so far stays in the transaction's read set."""
        self._closed = True
        self._keys, self._values, self._at = [], [], 0

    def __enter__(self) -> RangeIterator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def range_query(self) -> RangeQuery | None:
        """The ``RangeQueryInfo`` this iterator contributes, or None if it observed nothing."""
        reads = RangeReads(self._read_keys, self._read_versions)
        if self._exhausted:
            return RangeQuery(self.start_key, self.end_key, True, reads)
        if not reads:
            return None
        return RangeQuery(self.start_key, reads.keys[-1], False, reads)

    def _fill(self) -> None:
        limit = RANGE_CHUNK
        for cap in (self.page_size, self.limit):
            if cap:
                limit = min(limit, cap - len(self._read_keys))
        keys, values = self._snapshot.range_chunk(
            self.namespace, self.start_key, self.end_key, self._last_fetched, limit
        )
        if len(keys) < limit:
            self._end_reached = True
        if keys:
            self._last_fetched = keys[-1]
        self._keys, self._values, self._at = keys, values, 0

    def _finish_page(self) -> None:
        # The page is full: learn whether the range really ends here, so the recorded
        # RangeQueryInfo says "exhausted" only when it is.
        if self._bookmark is None:
            self._bookmark = self._peek_next_key()
            self._exhausted = self._bookmark == ""

    def _peek_next_key(self) -> str:
        if self._at < len(self._keys):
            return self._keys[self._at]
        after = self._read_keys[-1] if self._read_keys else None
        keys, _ = self._snapshot.range_chunk(self.namespace, self.start_key, self.end_key, after, 1)
        return keys[0] if keys else ""

    def __repr__(self) -> str:
        return (
            f"RangeIterator({self.namespace!r}, [{self.start_key!r}, {self.end_key!r}), "
            f"returned={len(self._read_keys)}, exhausted={self._exhausted})"
        )


class RichQueryIterator:
    """Results of one rich query; each key returned joins the read set (Fabric's
    ``queryResultsItr`` adds a ``KVRead`` per result), keeping a key's first-read version."""

    __slots__ = ("_reads", "_rows", "bookmark", "namespace")

    def __init__(
        self, namespace: str, page: RichPage, reads: dict[str, VersionedValue | None]
    ) -> None:
        self.namespace = namespace
        self.bookmark = page.bookmark
        self._rows = iter(page.rows)
        self._reads = reads

    def __iter__(self) -> RichQueryIterator:
        return self

    def __next__(self) -> KV:
        key, value, committed = next(self._rows)
        self._reads.setdefault(key, committed)
        return KV(self.namespace, key, value)

    def close(self) -> None:
        self._rows = iter(())
