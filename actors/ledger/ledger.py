"""Channel ledgers and the peer's ledger manager.

Fabric counterparts: ``core/ledger/kvledger`` (``kvLedger``: ``NewTxSimulator``,
``CommitLegacy``, ``GetTransactionByID``), ``txmgr.LockBasedTxMgr`` (validate + commit under the
commit lock) and ``ledgermgmt.LedgerMgr`` (channel id -> ledger).

There are no blocks in the Fabric sense: :meth:`Ledger.commit_block` takes the block's
transactions as (txid, simulation results) pairs. Block numbers start at 0 and
:attr:`Ledger.height` is the number of blocks committed.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Sequence

from .checks import check_key, check_namespace, check_txid
from .errors import LedgerError
from .model import Height, KeyModification, ValidationCode
from .rwset import SimulationResults
from .simulator import TxSimulator
from .state import VersionedState
from .storage import BlockRecord, MemoryStorage, SqliteStorage, Storage, TxRecord, ledger_file
from .validation import BlockBatch, validate_tx

__all__ = ["Ledger", "LedgerManager"]

# Channel ids end up in file names; this admits Fabric's channel names (lower case, digits,
# '.', '-') and a little more (upper case, '_'), but nothing that could escape the directory.
_CHANNEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,248}")


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

    Thread-safe. Point reads take no lock; commits are serialized by ``_commit_lock`` and
    applied to the in-memory state atomically with respect to range and multi-key reads
    (see :mod:`actors.ledger.state`).
    """

    def __init__(
        self,
        channel_id: str,
        *,
        path: str | None = None,
        history: bool = True,
        synchronous: str = "NORMAL",
    ) -> None:
        """``path=None`` keeps the ledger in memory; else it is the sqlite3 file to use."""
        self.channel_id = _check_channel_id(channel_id)
        self.history_enabled = bool(history)
        self.path = path
        self._storage: Storage = (
            MemoryStorage() if path is None else SqliteStorage(path, channel_id, synchronous)
        )
        self._state = VersionedState()
        self._state.load(self._storage.load_state())
        self._height = self._storage.height()
        self._commit_lock = threading.Lock()
        self._closed = False

    # -- simulation and queries -----------------------------------------------------------

    def new_simulator(self, txid: str) -> TxSimulator:
        self._check_open()
        history = self._storage.history if self.history_enabled else None
        return TxSimulator(check_txid(txid), self._state, history)

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
        return self.get_tx_validation_code(txid) is not None

    @property
    def height(self) -> int:
        return self._height

    # -- commit ---------------------------------------------------------------------------

    def commit(
        self, txid: str, results: SimulationResults, timestamp: float | None = None
    ) -> ValidationCode:
        """Commit a block holding the single transaction ``txid``."""
        return self.commit_block([(txid, results)], timestamp)[0]

    def commit_block(
        self,
        txs: Sequence[tuple[str, SimulationResults]],
        timestamp: float | None = None,
    ) -> list[ValidationCode]:
        """Validate the block's transactions in order and apply the valid ones.

        Every transaction id is recorded, valid or not, as Fabric's block store does; so a
        txid seen in any earlier block (or earlier in this block) is ``DUPLICATE_TXID``.
        """
        txs = self._check_block(txs)
        block_time = time.time() if timestamp is None else float(timestamp)
        with self._commit_lock:
            self._check_open()
            block_num = self._height
            batch = BlockBatch(self._state)
            codes: list[ValidationCode] = []
            records: list[TxRecord] = []
            seen: set[str] = set()
            for tx_num, (txid, results) in enumerate(txs):
                if txid in seen or self._storage.tx_code(txid) is not None:
                    codes.append(ValidationCode.DUPLICATE_TXID)
                    continue
                seen.add(txid)
                code = validate_tx(results, batch)
                if code is ValidationCode.VALID:
                    batch.apply_tx(txid, results, Height(block_num, tx_num))
                codes.append(code)
                records.append(TxRecord(txid, tx_num, code))
            history = batch.history if self.history_enabled else []
            # Durable first: if storage fails the in-memory state is still the committed one.
            self._storage.write_block(
                BlockRecord(block_num, block_time, batch.updates, history, records)
            )
            self._state.apply(batch.updates)
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
    def _check_block(
        txs: Sequence[tuple[str, SimulationResults]],
    ) -> list[tuple[str, SimulationResults]]:
        if isinstance(txs, (str, bytes)) or not isinstance(txs, Sequence):
            raise TypeError("a block must be a list of (txid, SimulationResults) pairs")
        checked = []
        for index, tx in enumerate(txs):
            if not isinstance(tx, tuple) or len(tx) != 2:
                raise TypeError(f"block entry {index} must be a (txid, SimulationResults) pair")
            txid, results = tx
            if not isinstance(results, SimulationResults):
                raise TypeError(
                    f"block entry {index}: results must be SimulationResults, "
                    f"got {type(results).__name__}"
                )
            checked.append((check_txid(txid), results))
        return checked


class LedgerManager:
    """The peer's ledgers, one per channel, in memory or one sqlite3 file per channel."""

    def __init__(
        self, path: str | None = None, history: bool = True, *, synchronous: str = "NORMAL"
    ) -> None:
        self.path = path
        self.history = history
        self._synchronous = synchronous
        self._ledgers: dict[str, Ledger] = {}
        self._lock = threading.Lock()
        self._closed = False
        if path is not None:
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as exc:
                raise LedgerError(f"cannot create ledger directory {path}: {exc}") from exc

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
                channel_id, path=file, history=self.history, synchronous=self._synchronous
            )
            self._ledgers[channel_id] = ledger
            return ledger

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

    def __enter__(self) -> LedgerManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "memory" if self.path is None else self.path
        return f"LedgerManager({where}, channels={len(self._ledgers)})"
