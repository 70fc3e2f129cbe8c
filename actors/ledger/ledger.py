"""Channel ledgers and the peer's ledger manager.

Fabric counterparts: ``core/ledger/kvledger`` (``kvLedger``: ``NewTxSimulator``,
``CommitLegacy``, ``GetTransactionByID``), ``txmgr.LockBasedTxMgr`` (validate + commit under the
commit lock) and ``ledgermgmt.LedgerMgr`` (channel id -> ledger).

There are no blocks in the Fabric sense: :meth:`Ledger.commit_block` takes the block's
transactions as (txid, simulation results[, timestamp]) tuples. Block numbers start at 0 and
:attr:`Ledger.height` is the number of blocks committed.
"""

from __future__ import annotations

import fcntl
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO

from google.protobuf.message import DecodeError

from protos.ledger.rwset.rwset_pb2 import TxPvtReadWriteSet

from .checks import check_key, check_namespace, check_txid
from .errors import LedgerError, LedgerLocked
from .model import Height, KeyModification, ValidationCode
from .privdata import CollectionRules, PvtWrites, all_eligible, parse_pvt_rwset, sha256
from .richquery.engine import RichQueryEngine
from .rwset import PvtCollection, SimulationResults, pvt_from_proto
from .simulator import TxSimulator
from .state import VersionedState
from .storage import (
    DEFAULT_SYNCHRONOUS,
    BlockRecord,
    MemoryStorage,
    SqliteStorage,
    Storage,
    TxRecord,
    check_synchronous,
    ledger_file,
)
from .validation import BlockBatch, validate_tx

__all__ = ["BlockTx", "Ledger", "LedgerManager"]

# One transaction of a block: (txid, results) or (txid, results, timestamp), where timestamp is
# the transaction's channel-header time in unix seconds (None: the time of the commit).
BlockTx = tuple[str, SimulationResults] | tuple[str, SimulationResults, float | None]

# Channel ids end up in file names; this admits Fabric's channel names (lower case, digits,
# '.', '-') and a little more (upper case, '_'), but nothing that could escape the directory.
_CHANNEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,248}")

# Fabric's ledger.pvtdataStore.transientstoreMaxBlockRetention: private write sets endorsed
# this many blocks ago and never committed are dropped.
TRANSIENT_RETENTION = 1000


def _check_limit(name: str, value: object) -> int:
    if type(value) is not int or value < 0:
        raise LedgerError(f"{name} must be a non-negative int (0: no limit), got {value!r}")
    return value


def _lock_directory(path: str) -> IO[bytes]:
    """Hold ``path/LOCK`` exclusively while open: two peers writing one ledger would corrupt
    it (leveldb's LOCK file does this for Fabric). The holder writes its pid and command line
    into it, so that a second peer can say who holds the directory."""
    file = open(os.path.join(path, "LOCK"), "a+b")  # noqa: SIM115 - held until close()
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        file.seek(0)
        holder = file.read(300).decode("utf-8", "replace").strip()
        file.close()
        raise LedgerLocked(
            f"ledger directory {path} is in use by another process "
            f"({holder or 'unknown'}; its LOCK is held)"
        ) from exc
    file.truncate(0)
    file.write(f"pid {os.getpid()}: {' '.join(sys.argv)[:200]}".encode())
    file.flush()
    return file


def _check_channel_id(channel_id: object) -> str:
    if type(channel_id) is not str:
        raise TypeError(f"channel id must be a str, got {type(channel_id).__name__}")
    if not _CHANNEL_ID.fullmatch(channel_id):
        raise LedgerError(
            f"invalid channel id {channel_id!r}: use letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, at most 249 characters"
        )
    return channel_id


class Ledger:
    """The state of one channel: simulation, validation and commit.

    Thread-safe. Each simulator reads a snapshot of the committed state; commits are
    serialized by ``_commit_lock`` and never wait for simulations (see
    :mod:`actors.ledger.state`).
    """

    def __init__(
        self,
        channel_id: str,
        *,
        path: str | None = None,
        history: bool = True,
        synchronous: str = DEFAULT_SYNCHRONOUS,
        total_query_limit: int = 0,
        max_write_set: int = 0,
    ) -> None:
        """``path=None`` keeps the ledger in memory; else it is the sqlite3 file to use.

        ``synchronous`` is sqlite's durability level (see :class:`SqliteStorage`);
        ``total_query_limit`` caps the results of one range query (Fabric's
        ``ledger.state.totalQueryLimit``) and ``max_write_set`` the bytes one transaction may
        write; 0 means no limit.
        """
        self.channel_id = _check_channel_id(channel_id)
        self.history_enabled = bool(history)
        self.path = path
        self.total_query_limit = _check_limit("total_query_limit", total_query_limit)
        self.max_write_set = _check_limit("max_write_set", max_write_set)
        self._storage: Storage = (
            MemoryStorage() if path is None else SqliteStorage(path, channel_id, synchronous)
        )
        # Rich queries read the sqlite state table when there is one (hook: richquery).
        self.rich_queries = RichQueryEngine(
            sqlite=self._storage.rich_query_connection
            if isinstance(self._storage, SqliteStorage)
            else None
        )
        self._height = self._storage.height()
        self._state = VersionedState()
        self._state.load(self._storage.load_state(), self._height)
        self._commit_lock = threading.Lock()
        self._closed = False
        # Which collections this peer keeps values of, and their blockToLive (the peer sets
        # it from the chaincode definitions); by default all, forever.
        self.collection_rules: CollectionRules = all_eligible

    # -- simulation and queries -----------------------------------------------------------

    def new_simulator(self, txid: str) -> TxSimulator:
        self._check_open()
        history = self._storage.history if self.history_enabled else None
        return TxSimulator(
            check_txid(txid),
            self._state.snapshot(),
            history,
            total_query_limit=self.total_query_limit,
            max_write_set=self.max_write_set,
            rich=self.rich_queries,
        )

    def get_state(self, namespace: str, key: str) -> bytes | None:
        value = self._state.get(check_namespace(namespace), check_key(key))
        return None if value is None else value.value

    def get_version(self, namespace: str, key: str) -> Height | None:
        value = self._state.get(check_namespace(namespace), check_key(key))
        return None if value is None else value.version

    def get_state_metadata(self, namespace: str, key: str) -> dict[str, bytes]:
        value = self._state.get(check_namespace(namespace), check_key(key))
        return {} if value is None else dict(value.metadata)

    def get_history_for_key(self, namespace: str, key: str) -> list[KeyModification]:
        """Committed modifications of a key, newest first."""
        self._check_open()
        if not self.history_enabled:
            raise LedgerError("history database is not enabled")
        return self._storage.history(check_namespace(namespace), check_key(key))

    def get_tx_validation_code(self, txid: str) -> ValidationCode | None:
        """Validation code of a committed transaction, None if no block holds ``txid``."""
        self._check_open()
        return self._storage.tx_code(check_txid(txid))

    def txid_exists(self, txid: str) -> bool:
        """Whether a committed block holds ``txid``, valid or not (Fabric ``TxIDExists``): what
        an endorser checks to refuse a duplicate transaction. An index lookup, not a scan."""
        return self.get_tx_validation_code(txid) is not None

    @property
    def height(self) -> int:
        return self._height

    # -- private data between endorsement and commit (Fabric's transient store) -----------

    def persist_private(self, txid: str, results: SimulationResults) -> None:
        """Keep an endorsed transaction's private write sets until its block commits."""
        pvt = results.pvt_to_proto()
        if pvt is None:
            return
        self._check_open()
        self._storage.transient_put(
            check_txid(txid), self._height, pvt.SerializeToString(deterministic=True)
        )

    def discard_private(self, txids: Sequence[str]) -> None:
        """Forget the private write sets of transactions a block holds but that never reached
        the state (refused before MVCC, e.g. by their endorsement policy), as Fabric purges
        every txid of a committed block from its transient store."""
        if txids:
            self._check_open()
            self._storage.transient_drop(list(txids))

    def _private_of(
        self, txid: str, results: SimulationResults
    ) -> dict[tuple[str, str], PvtWrites]:
        """The private write sets that match the transaction's hashes: its own, else copies
        from the transient store (Fabric's coordinator checks the same hash)."""
        expected = {
            (ns.namespace, c.collection): c.pvt_rwset_hash
            for ns in results.ns_results
            for c in ns.collections
            if c.pvt_rwset_hash
        }
        if not expected:
            return {}
        candidates: list[PvtCollection] = list(results.private)
        if not candidates:
            for data in self._storage.transient_get(txid):
                try:
                    candidates += pvt_from_proto(TxPvtReadWriteSet.FromString(data))
                except DecodeError:
                    continue
        found: dict[tuple[str, str], PvtWrites] = {}
        for pvt in candidates:
            slot = (pvt.namespace, pvt.collection)
            if slot not in found and expected.get(slot) == sha256(pvt.rwset):
                try:
                    found[slot] = parse_pvt_rwset(pvt.rwset)
                except LedgerError:
                    continue
        return found

    # -- commit ---------------------------------------------------------------------------

    def commit(
        self, txid: str, results: SimulationResults, timestamp: float | None = None
    ) -> ValidationCode:
        """Commit a block holding the single transaction ``txid``; ``timestamp`` is its
        channel-header time (unix seconds), what its history entries report."""
        return self.commit_block([(txid, results, timestamp)])[0]

    def commit_block(self, txs: Sequence[BlockTx]) -> list[ValidationCode]:
        """Validate the block's transactions in order and apply the valid ones.

        Every transaction id is recorded, valid or not, as Fabric's block store does; so a
        txid seen in any earlier block (or earlier in this block) is ``DUPLICATE_TXID``.
        History entries carry their transaction's timestamp, as Fabric's history database
        reports the channel header's (the time of the commit for a transaction without one).
        """
        checked = self._check_block(txs)
        now = time.time()
        with self._commit_lock:
            self._check_open()
            block_num = self._height
            batch = BlockBatch(self._state)
            codes: list[ValidationCode] = []
            records: list[TxRecord] = []
            transient_done: list[str] = []
            seen: set[str] = set()
            for tx_num, (txid, results, timestamp) in enumerate(checked):
                if txid in seen or self._storage.tx_code(txid) is not None:
                    codes.append(ValidationCode.DUPLICATE_TXID)
                    continue
                seen.add(txid)
                code = validate_tx(results, batch)
                private = None
                if results.ns_results and results.has_collections():
                    transient_done.append(txid)
                    private = self._private_of(txid, results)
                if code is ValidationCode.VALID:
                    stamp = now if timestamp is None else timestamp
                    batch.apply_tx(
                        txid,
                        results,
                        Height(block_num, tx_num),
                        stamp,
                        private,
                        self.collection_rules,
                    )
                codes.append(code)
                records.append(TxRecord(txid, tx_num, code))
            batch.expire(block_num)
            history = batch.history if self.history_enabled else []
            below = 0
            if block_num % TRANSIENT_RETENTION == 0 and block_num > TRANSIENT_RETENTION:
                below = block_num - TRANSIENT_RETENTION
            # Durable first: if storage fails the in-memory state is still the committed one.
            self._storage.write_block(
                BlockRecord(
                    block_num, batch.updates, history, records, tuple(transient_done), below
                )
            )
            self._state.apply(block_num, batch.updates)
            self._height = block_num + 1
        return codes

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release storage. Simulators already handed out may still read the in-memory copy,
        but no new simulator, commit or history query is accepted."""
        with self._commit_lock:
            if self._closed:
                return
            self._closed = True
            self._storage.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "memory" if self.path is None else self.path
        return f"Ledger({self.channel_id!r}, height={self._height}, {where})"

    def _check_open(self) -> None:
        if self._closed:
            raise LedgerError(f"ledger for channel {self.channel_id} is closed")

    @staticmethod
    def _check_block(txs: Sequence[BlockTx]) -> list[tuple[str, SimulationResults, float | None]]:
        if isinstance(txs, (str, bytes)) or not isinstance(txs, Sequence):
            raise TypeError("a block must be a list of (txid, SimulationResults) pairs")
        checked = []
        for index, tx in enumerate(txs):
            if not isinstance(tx, tuple) or len(tx) not in (2, 3):
                raise TypeError(
                    f"block entry {index} must be a (txid, SimulationResults[, timestamp]) tuple"
                )
            txid, results, timestamp = tx if len(tx) == 3 else (*tx, None)
            if not isinstance(results, SimulationResults):
                raise TypeError(
                    f"block entry {index}: results must be SimulationResults, "
                    f"got {type(results).__name__}"
                )
            if timestamp is not None:
                if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
                    raise TypeError(f"block entry {index}: timestamp must be a number or None")
                if not math.isfinite(timestamp) or timestamp < 0:
                    raise LedgerError(f"block entry {index}: bad timestamp {timestamp!r}")
                timestamp = float(timestamp)
            checked.append((check_txid(txid), results, timestamp))
        return checked


class LedgerManager:
    """The peer's ledgers, one per channel, in memory or one sqlite3 file per channel.

    The keyword settings are passed to every :class:`Ledger` it opens.
    """

    def __init__(
        self,
        path: str | None = None,
        history: bool = True,
        *,
        synchronous: str = DEFAULT_SYNCHRONOUS,
        total_query_limit: int = 0,
        max_write_set: int = 0,
    ) -> None:
        self.path = path
        self.history = history
        self.synchronous = check_synchronous(synchronous)
        self.total_query_limit = _check_limit("total_query_limit", total_query_limit)
        self.max_write_set = _check_limit("max_write_set", max_write_set)
        self._ledgers: dict[str, Ledger] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._collection_rules: Callable[[str], CollectionRules] | None = None
        self._directory_lock: IO[bytes] | None = None
        if path is not None:
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as exc:
                raise LedgerError(f"cannot create ledger directory {path}: {exc}") from exc
            self._directory_lock = _lock_directory(path)

    def get(self, channel_id: str, create: bool = True) -> Ledger:
        _check_channel_id(channel_id)
        with self._lock:
            if self._closed:
                raise LedgerError("ledger manager is closed")
            ledger = self._ledgers.get(channel_id)
            if ledger is not None:
                return ledger
            file = None if self.path is None else ledger_file(self.path, channel_id)
            if not create and (file is None or not os.path.exists(file)):
                raise LedgerError(f"failed to find ledger for channel: {channel_id}")
            ledger = Ledger(
                channel_id,
                path=file,
                history=self.history,
                synchronous=self.synchronous,
                total_query_limit=self.total_query_limit,
                max_write_set=self.max_write_set,
            )
            if self._collection_rules is not None:
                ledger.collection_rules = self._collection_rules(channel_id)
            self._ledgers[channel_id] = ledger
            return ledger

    def set_collection_rules(self, rules: Callable[[str], CollectionRules]) -> None:
        """``rules(channel)`` tells each channel's ledger which collections this peer keeps
        (and their blockToLive), for the ledgers open now and those opened later."""
        with self._lock:
            self._collection_rules = rules
            for channel_id, ledger in self._ledgers.items():
                ledger.collection_rules = rules(channel_id)

    def channels(self) -> list[str]:
        """Channels with a ledger: open ones and, when file-backed, those on disk."""
        with self._lock:
            names = set(self._ledgers)
        if self.path is not None:
            for entry in os.listdir(self.path):
                name, ext = os.path.splitext(entry)
                if ext == ".sqlite" and _CHANNEL_ID.fullmatch(name):
                    names.add(name)
        return sorted(names)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            ledgers, self._ledgers = list(self._ledgers.values()), {}
        for ledger in ledgers:
            ledger.close()
        if self._directory_lock is not None:
            self._directory_lock.close()  # releases the lock

    def __enter__(self) -> LedgerManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "memory" if self.path is None else self.path
        return f"LedgerManager({where}, channels={len(self._ledgers)})"
