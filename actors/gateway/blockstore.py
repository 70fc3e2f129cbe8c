"""A channel's block store: committed blocks, the txid index, commit notifications.

Fabric counterparts: ``common/ledger/blkstorage`` (blocks by number, the transaction index that
answers "which block, which validation code" for a txid, first occurrence only) and the commit
notifications the Gateway's CommitStatus and ChaincodeEvents wait on
(``core/ledger/kvledger`` ``commitNotifier``). The state database stays in
:mod:`actors.ledger`; this holds the chain of ``common.Block`` s that clients and tools read.

In memory, or in one sqlite file per channel (``synchronous=FULL``). A block is stored in two
steps around the state commit, so that a crash at any point loses nothing and applies nothing
twice: :meth:`BlockStore.begin` stores it *pending*, with the codes validation gave before
MVCC; the state database commits; :meth:`BlockStore.finish` stores the final codes and makes
the block visible. On restart, :meth:`BlockStore.pending` returns a block left pending, and the
committer finishes it (see :mod:`actors.gateway.committer`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from actors.gateway.blocks import transactions_filter
from protos.common.common_pb2 import (
    TRANSACTIONS_FILTER,
    Block,
    ChannelHeader,
    Envelope,
    Payload,
)

log = logging.getLogger(__name__)

Listener = Callable[[int, int], None]  # (validation code, block number)


@dataclass(frozen=True)
class TxStatus:
    code: int
    block: int


def _txids(block: Block) -> list[str]:
    out = []
    for raw in block.data.data:
        try:
            payload = Payload.FromString(Envelope.FromString(raw).payload)
            out.append(ChannelHeader.FromString(payload.header.channel_header).tx_id)
        except Exception:
            out.append("")
    return out


class BlockStore:
    """Blocks of one channel, in order, with a txid index and waiters. Thread-safe."""

    def __init__(self, channel_id: str, *, path: str | Path | None = None) -> None:
        self.channel_id = channel_id
        # Readers (CommitStatus, ChaincodeEvents, the endorser's duplicate check) take _lock;
        # the writer and close also take _write_lock, held across the sqlite write, so a
        # synchronous=FULL fsync never keeps a reader waiting. Order: _write_lock, then _lock.
        self._lock = threading.Condition()
        self._write_lock = threading.Lock()
        self._blocks: list[bytes] = []
        self._index: dict[str, TxStatus] = {}
        self._waiters: dict[str, list[Listener]] = {}
        self._closed = False
        self._db: sqlite3.Connection | None = None
        self._pending: Block | None = None
        if path is not None:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS blocks "
                "(number INTEGER PRIMARY KEY, data BLOB, pending INTEGER NOT NULL DEFAULT 0)"
            )
            for data, pending in self._db.execute(
                "SELECT data, pending FROM blocks ORDER BY number"
            ):
                block = Block.FromString(data)
                if pending:
                    self._pending = block
                else:
                    self._index_block(block, data)

    @property
    def height(self) -> int:
        with self._lock:
            return len(self._blocks)

    def last_header(self):  # type: ignore[no-untyped-def]
        with self._lock:
            return Block.FromString(self._blocks[-1]).header if self._blocks else None

    def _index_block(self, block: Block, data: bytes) -> list[tuple[str, TxStatus]]:
        codes = transactions_filter(block)
        fresh = []
        for i, txid in enumerate(_txids(block)):
            if txid and txid not in self._index:
                status = TxStatus(codes[i] if i < len(codes) else 255, block.header.number)
                self._index[txid] = status
                fresh.append((txid, status))
        self._blocks.append(data)
        return fresh

    @property
    def next_number(self) -> int:
        """The number the next block must have (a pending block counts)."""
        with self._lock:
            return len(self._blocks) + (self._pending is not None)

    def pending(self) -> Block | None:
        """A block :meth:`begin` stored that was never finished (after a crash)."""
        with self._lock:
            return self._pending

    def begin(self, block: Block) -> None:
        """Store the next block, pending: its TRANSACTIONS_FILTER holds the codes validation
        gave before the state commit."""
        with self._write_lock:
            with self._lock:
                if self._closed:
                    raise RuntimeError(f"block store of {self.channel_id} is closed")
                if self._pending is not None:
                    raise RuntimeError(f"block {self._pending.header.number} is still pending")
                if block.header.number != len(self._blocks):
                    raise ValueError(
                        f"expected block {len(self._blocks)}, got {block.header.number}"
                    )
            if self._db is not None:
                self._db.execute(
                    "INSERT INTO blocks (number, data, pending) VALUES (?, ?, 1)",
                    (block.header.number, block.SerializeToString()),
                )
            with self._lock:
                self._pending = block

    def finish(self, codes: bytes) -> None:
        """The pending block's final codes: store them, index its txids, wake the waiters."""
        with self._write_lock:
            with self._lock:
                block = self._pending
            if block is None:
                raise RuntimeError("no pending block")
            block.metadata.metadata[TRANSACTIONS_FILTER] = codes
            data = block.SerializeToString()
            if self._db is not None:
                self._db.execute(
                    "UPDATE blocks SET data = ?, pending = 0 WHERE number = ?",
                    (data, block.header.number),
                )
            with self._lock:
                self._pending = None
                fresh = self._index_block(block, data)
                woken = [(cb, st) for txid, st in fresh for cb in self._waiters.pop(txid, [])]
                self._lock.notify_all()
        for callback, status in woken:
            try:  # a waiter's failure is its own: the committer calls these
                callback(status.code, status.block)
            except Exception:
                log.exception("a commit listener failed")

    def append(self, block: Block) -> None:
        """Store the next block, its TRANSACTIONS_FILTER already final."""
        self.begin(block)
        self.finish(transactions_filter(block))

    def status(self, txid: str) -> TxStatus | None:
        with self._lock:
            return self._index.get(txid)

    def has_txid(self, txid: str) -> bool:
        with self._lock:
            return txid in self._index

    def on_commit(self, txid: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener(code, block)`` once ``txid`` is committed (at once if it is).
        Registering and looking up happen under one lock, so no commit slips between."""
        with self._lock:
            status = self._index.get(txid)
            if status is None:
                self._waiters.setdefault(txid, []).append(listener)
        if status is not None:
            listener(status.code, status.block)
            return lambda: None

        def cancel() -> None:
            with self._lock:
                waiting = self._waiters.get(txid, [])
                if listener in waiting:
                    waiting.remove(listener)
                if not waiting:
                    self._waiters.pop(txid, None)

        return cancel

    def block(self, number: int) -> Block:
        with self._lock:
            return Block.FromString(self._blocks[number])

    def blocks_from(
        self, start: int, *, stop: threading.Event, poll: float = 0.5
    ) -> Iterator[Block]:
        """Blocks ``start``, ``start + 1``, ... waiting for new ones until ``stop`` is set or
        the store closes."""
        number = start
        while not stop.is_set():
            with self._lock:
                while number >= len(self._blocks) and not self._closed and not stop.is_set():
                    self._lock.wait(poll)
                if self._closed or stop.is_set():
                    return
                data = self._blocks[number]
            yield Block.FromString(data)
            number += 1

    def close(self) -> None:
        with self._write_lock:
            with self._lock:
                self._closed = True
                self._lock.notify_all()
            if self._db is not None:
                self._db.close()
                self._db = None
