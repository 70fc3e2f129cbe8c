"""Where a channel's ledger lives: committed state, history, transaction ids and height.

Fabric counterparts: the state database (``statedb/stateleveldb``), the history database
(``kvledger/history``) and the block store's transaction-id index (``blkstorage``), which Fabric
keeps in separate leveldb instances. Here one backend holds all of them so that a block is
written atomically. :class:`MemoryStorage` keeps nothing durable; :class:`SqliteStorage` keeps
one sqlite3 file per channel (WAL mode; one connection writes blocks, another serves history
and txid lookups, so those never wait for a block's write and sync).

The working copy of the state always lives in :class:`~actors.ledger.state.VersionedState`
(loaded from storage at open); storage is written once per block, before that copy changes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import NamedTuple, Protocol

from protos.ledger.rwset.kvrwset import kv_rwset_pb2

from .errors import LedgerError
from .model import (
    Height,
    HistoryEntry,
    KeyModification,
    Metadata,
    ValidationCode,
    VersionedValue,
)
from .state import UpdateBatch

__all__ = [
    "DEFAULT_SYNCHRONOUS",
    "SYNCHRONOUS_LEVELS",
    "BlockRecord",
    "MemoryStorage",
    "SqliteStorage",
    "Storage",
    "TxRecord",
    "check_synchronous",
    "ledger_file",
]

# sqlite's PRAGMA synchronous levels, in WAL mode (https://sqlite.org/pragma.html#pragma_synchronous):
SYNCHRONOUS_LEVELS = {
    "OFF": "no fsync: a process crash loses nothing, a power loss may lose or corrupt blocks",
    "NORMAL": "fsync at checkpoints only: a power loss may lose the last committed blocks",
    "FULL": "fsync of the WAL at every block: a committed block survives a power loss",
    "EXTRA": "as FULL in WAL mode",
}
# What Fabric promises: its block store syncs each block to disk before the commit returns.
DEFAULT_SYNCHRONOUS = "FULL"


def check_synchronous(level: object) -> str:
    """The level in upper case, or LedgerError naming the ones there are."""
    if not isinstance(level, str) or level.upper() not in SYNCHRONOUS_LEVELS:
        raise LedgerError(
            f"unknown sqlite synchronous level {level!r} (one of {', '.join(SYNCHRONOUS_LEVELS)})"
        )
    return level.upper()


class TxRecord(NamedTuple):
    """A transaction of a committed block, valid or not (Fabric indexes both by txid)."""

    tx_id: str
    tx_num: int
    code: ValidationCode


class BlockRecord(NamedTuple):
    """Everything one committed block changes in storage."""

    block_num: int
    updates: UpdateBatch
    history: list[HistoryEntry]  # empty when the history database is disabled
    txs: list[TxRecord]
    # Private write sets no longer needed once this block is stored: those of its txids,
    # and any endorsed below ``transient_below`` (orphans of proposals never submitted).
    transient_done: tuple[str, ...] = ()
    transient_below: int = 0


class Storage(Protocol):
    def height(self) -> int: ...
    def load_state(self) -> Iterator[tuple[str, str, VersionedValue]]: ...
    def tx_code(self, tx_id: str) -> ValidationCode | None: ...
    def history(self, namespace: str, key: str) -> list[KeyModification]: ...
    def write_block(self, block: BlockRecord) -> None: ...
    def transient_put(self, tx_id: str, height: int, data: bytes) -> None: ...
    def transient_get(self, tx_id: str) -> list[bytes]: ...
    def transient_drop(self, tx_ids: list[str]) -> None: ...
    def close(self) -> None: ...


class MemoryStorage:
    """Non-durable storage: history and transaction ids in dicts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._height = 0
        self._txs: dict[str, ValidationCode] = {}
        # (namespace, key) -> modifications, oldest first (appending is cheap).
        self._history: dict[tuple[str, str], list[KeyModification]] = {}
        self._transient: dict[str, list[tuple[int, bytes]]] = {}

    def height(self) -> int:
        return self._height

    def transient_put(self, tx_id: str, height: int, data: bytes) -> None:
        with self._lock:
            self._transient.setdefault(tx_id, []).append((height, data))

    def transient_get(self, tx_id: str) -> list[bytes]:
        with self._lock:
            return [data for _, data in self._transient.get(tx_id, ())]

    def transient_drop(self, tx_ids: list[str]) -> None:
        with self._lock:
            for tx_id in tx_ids:
                self._transient.pop(tx_id, None)

    def load_state(self) -> Iterator[tuple[str, str, VersionedValue]]:
        return iter(())

    def tx_code(self, tx_id: str) -> ValidationCode | None:
        return self._txs.get(tx_id)

    def history(self, namespace: str, key: str) -> list[KeyModification]:
        with self._lock:
            entries = self._history.get((namespace, key), ())
            return entries[::-1]

    def write_block(self, block: BlockRecord) -> None:
        with self._lock:
            for tx in block.txs:
                self._txs[tx.tx_id] = tx.code
            for entry in block.history:
                self._history.setdefault((entry.namespace, entry.key), []).append(
                    _modification(entry.tx_id, entry.value, entry.timestamp)
                )
            for tx_id in block.transient_done:
                self._transient.pop(tx_id, None)
            if block.transient_below:
                for tx_id, copies in list(self._transient.items()):
                    kept = [c for c in copies if c[0] >= block.transient_below]
                    if kept:
                        self._transient[tx_id] = kept
                    else:
                        del self._transient[tx_id]
            self._height = block.block_num + 1

    def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS info (
    name TEXT PRIMARY KEY,
    value
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    ns BLOB NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    block_num INTEGER NOT NULL,
    tx_num INTEGER NOT NULL,
    metadata BLOB,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    ns BLOB NOT NULL,
    key BLOB NOT NULL,
    block_num INTEGER NOT NULL,
    tx_num INTEGER NOT NULL,
    tx_id TEXT NOT NULL,
    value BLOB,
    timestamp REAL NOT NULL,
    PRIMARY KEY (ns, key, block_num, tx_num)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transient (
    tx_id TEXT NOT NULL,
    height INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS transient_tx ON transient (tx_id);
CREATE TABLE IF NOT EXISTS txids (
    tx_id TEXT PRIMARY KEY,
    block_num INTEGER NOT NULL,
    tx_num INTEGER NOT NULL,
    code INTEGER NOT NULL
) WITHOUT ROWID;
"""

SCHEMA_VERSION = 1


class SqliteStorage:
    """Durable storage in one sqlite3 file.

    Namespaces and keys are stored as UTF-8 BLOBs: byte-wise order like Fabric's, and no
    surprises with the NUL bytes of composite keys. A block is one sqlite transaction, so a
    crash at any moment leaves the file at a block boundary; ``synchronous`` (see
    :data:`SYNCHRONOUS_LEVELS`) decides whether a committed block also survives a power loss.
    """

    def __init__(self, path: str, channel_id: str, synchronous: str = DEFAULT_SYNCHRONOUS) -> None:
        level = check_synchronous(synchronous)
        self.path = path
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._closed = False
        db: sqlite3.Connection | None = None
        reader: sqlite3.Connection | None = None
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per block.
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={level}")
            db.executescript(_SCHEMA)
            self._check_identity(db, channel_id)
            # WAL readers see the last committed block and never block the writer.
            reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            reader.execute("PRAGMA query_only=1")
        except (sqlite3.Error, LedgerError) as exc:
            for connection in (db, reader):
                if connection is not None:
                    connection.close()
            if isinstance(exc, LedgerError):
                raise
            raise LedgerError(f"cannot open ledger file {path}: {exc}") from exc
        self._db, self._reader = db, reader

    def _check_identity(self, db: sqlite3.Connection, channel_id: str) -> None:
        rows = dict(db.execute("SELECT name, value FROM info"))
        if not rows:
            db.executemany(
                "INSERT INTO info (name, value) VALUES (?, ?)",
                [("schema", SCHEMA_VERSION), ("channel", channel_id), ("height", 0)],
            )
            return
        if rows.get("schema") != SCHEMA_VERSION:
            raise LedgerError(f"{self.path}: unsupported ledger schema {rows.get('schema')!r}")
        if rows.get("channel") != channel_id:
            raise LedgerError(
                f"{self.path} holds the ledger of channel {rows.get('channel')!r}, "
                f"not {channel_id!r}"
            )

    @contextmanager
    def _connection(self, doing: str, *, read: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection (the writer's, or with ``read`` the reader's) under its lock, with
        sqlite errors reported as LedgerError."""
        with self._read_lock if read else self._lock:
            if self._closed:
                raise LedgerError(f"{self.path}: ledger storage is closed")
            try:
                yield self._reader if read else self._db
            except sqlite3.Error as exc:
                raise LedgerError(f"{self.path}: failed to {doing}: {exc}") from exc

    def height(self) -> int:
        with self._connection("read the height") as db:
            (height,) = db.execute("SELECT value FROM info WHERE name = 'height'").fetchone()
        return int(height)

    def load_state(self) -> Iterator[tuple[str, str, VersionedValue]]:
        with self._connection("load the state") as db:
            rows = db.execute(
                "SELECT ns, key, value, block_num, tx_num, metadata FROM state"
            ).fetchall()
        for ns, key, value, block_num, tx_num, metadata in rows:
            yield (
                ns.decode(),
                key.decode(),
                VersionedValue(value, Height(block_num, tx_num), _decode_metadata(metadata)),
            )

    def tx_code(self, tx_id: str) -> ValidationCode | None:
        with self._connection("look up a txid", read=True) as db:
            row = db.execute("SELECT code FROM txids WHERE tx_id = ?", (tx_id,)).fetchone()
        return None if row is None else ValidationCode(row[0])

    def history(self, namespace: str, key: str) -> list[KeyModification]:
        with self._connection("read history", read=True) as db:
            rows = db.execute(
                "SELECT tx_id, value, timestamp FROM history WHERE ns = ? AND key = ? "
                "ORDER BY block_num DESC, tx_num DESC",
                (namespace.encode(), key.encode()),
            ).fetchall()
        return [_modification(tx_id, value, timestamp) for tx_id, value, timestamp in rows]

    def write_block(self, block: BlockRecord) -> None:
        puts, deletes = [], []
        for ns, changes in block.updates.items():
            ns_bytes = ns.encode()
            for key, value in changes.items():
                if value is None:
                    deletes.append((ns_bytes, key.encode()))
                else:
                    puts.append(
                        (
                            ns_bytes,
                            key.encode(),
                            value.value,
                            value.version.block_num,
                            value.version.tx_num,
                            _encode_metadata(value.metadata),
                        )
                    )
        history = [
            (
                e.namespace.encode(),
                e.key.encode(),
                e.version.block_num,
                e.version.tx_num,
                e.tx_id,
                e.value,
                e.timestamp,
            )
            for e in block.history
        ]
        txs = [(tx.tx_id, block.block_num, tx.tx_num, tx.code.value) for tx in block.txs]
        with self._connection(f"write block {block.block_num}") as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM state WHERE ns = ? AND key = ?", deletes)
                db.executemany(
                    "INSERT OR REPLACE INTO state "
                    "(ns, key, value, block_num, tx_num, metadata) VALUES (?, ?, ?, ?, ?, ?)",
                    puts,
                )
                db.executemany(
                    "INSERT OR REPLACE INTO history "
                    "(ns, key, block_num, tx_num, tx_id, value, timestamp) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    history,
                )
                db.executemany(
                    "INSERT INTO txids (tx_id, block_num, tx_num, code) VALUES (?, ?, ?, ?)",
                    txs,
                )
                db.executemany(
                    "DELETE FROM transient WHERE tx_id = ?",
                    [(tx_id,) for tx_id in block.transient_done],
                )
                if block.transient_below:
                    db.execute("DELETE FROM transient WHERE height < ?", (block.transient_below,))
                db.execute(
                    "UPDATE info SET value = ? WHERE name = 'height'", (block.block_num + 1,)
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def transient_put(self, tx_id: str, height: int, data: bytes) -> None:
        with self._connection("store a private write set") as db:
            db.execute(
                "INSERT INTO transient (tx_id, height, data) VALUES (?, ?, ?)",
                (tx_id, height, data),
            )

    def transient_get(self, tx_id: str) -> list[bytes]:
        with self._connection("read private write sets", read=True) as db:
            rows = db.execute("SELECT data FROM transient WHERE tx_id = ?", (tx_id,)).fetchall()
        return [data for (data,) in rows]

    def transient_drop(self, tx_ids: list[str]) -> None:
        with self._connection("drop private write sets") as db:
            db.executemany("DELETE FROM transient WHERE tx_id = ?", [(t,) for t in tx_ids])

    def rich_query_connection(self, doing: str) -> AbstractContextManager[sqlite3.Connection]:
        """The connection under the lock, for rich queries and their indexes (richquery)."""
        return self._connection(doing)

    def close(self) -> None:
        with self._lock, self._read_lock:
            if not self._closed:
                self._closed = True
                self._db.close()
                self._reader.close()


def _modification(tx_id: str, value: bytes | None, timestamp: float) -> KeyModification:
    return KeyModification(tx_id, value or b"", timestamp, value is None)


def _encode_metadata(metadata: Metadata) -> bytes | None:
    # Fabric serializes state metadata as a KVMetadataWrite's entries; reuse that encoding.
    if not metadata:
        return None
    entries = [kv_rwset_pb2.KVMetadataEntry(name=name, value=value) for name, value in metadata]
    return kv_rwset_pb2.KVMetadataWrite(entries=entries).SerializeToString(deterministic=True)


def _decode_metadata(data: bytes | None) -> Metadata:
    if not data:
        return ()
    message = kv_rwset_pb2.KVMetadataWrite()
    message.ParseFromString(data)
    return tuple((entry.name, entry.value) for entry in message.entries)


def ledger_file(directory: str, channel_id: str) -> str:
    return os.path.join(directory, f"{channel_id}.sqlite")
