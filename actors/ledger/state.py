"""In-memory versioned world state with ordered keys and snapshots for simulations.

Fabric counterpart: ``core/ledger/kvledger/txmgmt/statedb`` (``VersionedDB``, the leveldb
implementation), ``privacyenabledstate.UpdateBatch``, and the consistency that
``txmgr.LockBasedTxMgr`` gets from its ``commitRWLock``.

Every read of one simulation sees one committed state. Fabric holds a read lock from simulator
creation to ``Done()`` and commits wait for it; here a simulation reads a :class:`Snapshot`
(the state at the height it started at) and commits never wait for simulations:

* Each key maps to one immutable :class:`VersionedValue` whose version names the block that
  wrote it, so a value a snapshot may see is recognised by ``version.block_num < height``.
* A commit first records, per key it changes, the value it replaces (``_old``: (namespace,
  key) -> list of (block_num, previous value)) and keeps deleted keys in a side index
  (``_ghosts``) for range reads. A snapshot reading a key changed at or after its height takes
  the value replaced by the first such change.
* At the end of each commit, records no live snapshot can read are dropped: the extra memory is
  the changes committed during the longest simulation still running, nothing when none is.

Locking: reads take no lock but range reads (the ordered key index, a ``SortedList`` per
namespace, is not safe to read while :meth:`apply` changes it; both take ``lock``). A point
read is safe because a dict lookup is atomic, an ``_old`` list is only appended to or replaced
whole, and a commit records the old value before it replaces the current one. Opening and
closing a snapshot take no lock either (a set add/discard is atomic): a snapshot joins
``_snapshots`` *before* it reads its height, and a commit drops nothing while one is still
reading it, so no record it needs can go.
"""

from __future__ import annotations

import heapq
import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Iterator

from sortedcontainers import SortedList

from .errors import LedgerError
from .model import VersionedValue

__all__ = ["Snapshot", "UpdateBatch", "VersionedState"]

# Pending per-block changes: namespace -> key -> new value, or None for a delete.
UpdateBatch = dict[str, dict[str, VersionedValue | None]]

# The values a key had before the blocks that changed it, oldest change first.
_Changes = list[tuple[int, VersionedValue | None]]


class VersionedState:
    """Committed state of one channel: namespace -> key -> :class:`VersionedValue`."""

    __slots__ = (
        "_ghosts",
        "_index",
        "_old",
        "_snapshots",
        "_undo",
        "data",
        "height",
        "lock",
    )

    def __init__(self) -> None:
        # Public on purpose: the simulator's hot path reads it directly (see module docstring).
        self.data: dict[str, dict[str, VersionedValue]] = {}
        self.height = 0  # blocks applied
        self._index: dict[str, SortedList] = {}
        self._ghosts: dict[str, SortedList] = {}  # deleted keys some live snapshot may see
        self._old: dict[tuple[str, str], _Changes] = {}
        self._undo: deque[tuple[int, list[tuple[str, str]]]] = deque()  # what _old got per block
        self._snapshots: set[_Live] = set()  # one per live snapshot
        self.lock = threading.Lock()

    # -- current state (validation and queries outside a simulation) ----------------------

    def get(self, namespace: str, key: str) -> VersionedValue | None:
        ns_data = self.data.get(namespace)
        return None if ns_data is None else ns_data.get(key)

    def iter_range_unlocked(
        self, namespace: str, start: str, end: str, include_end: bool
    ) -> Iterator[tuple[str, VersionedValue]]:
        """Lazy range scan of the current state without taking ``lock``.

        Only for the committing thread during validation: commits are serialized by the ledger
        and :meth:`apply` is the only writer, so nothing can change the index meanwhile.
        """
        index = self._index.get(namespace)
        if index is None:
            return
        ns_data = self.data[namespace]
        for key in _irange(index, start, end, None, include_end=include_end):
            yield key, ns_data[key]

    # -- snapshots ------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The committed state as it is now, readable until :meth:`Snapshot.close`."""
        live = _Live()
        self._snapshots.add(live)
        live.height = self.height  # after joining: see the module docstring
        return Snapshot(self, live)

    def value_at(
        self, namespace: str, key: str, height: int, current: VersionedValue | None
    ) -> VersionedValue | None:
        """The value ``key`` had at ``height``, given its ``current`` value read just before."""
        changes = self._old.get((namespace, key))
        if changes:
            # The first change at or after ``height`` replaced what the snapshot sees. A
            # 1-tuple sorts before every (block_num, value) entry with the same block_num.
            at = bisect_left(changes, (height,))
            if at < len(changes):
                return changes[at][1]
        if current is not None and current.version.block_num >= height:
            # Written at or after ``height`` with no record of what it replaced: only a
            # snapshot closed (and collected) while still in use gets here.
            raise LedgerError("snapshot read after the snapshot was released")
        return current

    # -- loading and committing -----------------------------------------------------------

    def load(self, entries: Iterable[tuple[str, str, VersionedValue]], height: int) -> None:
        """Bulk-fill from storage at open; builds each index once instead of key by key."""
        with self.lock:
            for namespace, key, value in entries:
                self.data.setdefault(namespace, {})[key] = value
            for namespace, ns_data in self.data.items():
                self._index[namespace] = SortedList(ns_data)
            self.height = height

    def apply(self, block_num: int, updates: UpdateBatch) -> None:
        """Apply one validated block; range readers see all of it or none of it."""
        with self.lock:
            recorded: list[tuple[str, str]] = []
            for namespace, changes in updates.items():
                ns_data = self.data.get(namespace)
                if ns_data is None:
                    ns_data = self.data[namespace] = {}
                    self._index[namespace] = SortedList()
                index = self._index[namespace]
                ghosts = self._ghosts.get(namespace)
                for key, value in changes.items():
                    previous = ns_data.get(key)
                    # Before the current value changes: a lock-free reader that sees the new
                    # value must find the old one here.
                    slot = (namespace, key)
                    changes = self._old.get(slot)
                    if changes is None:
                        self._old[slot] = [(block_num, previous)]
                    else:
                        changes.append((block_num, previous))
                    recorded.append(slot)
                    if value is None:
                        if previous is not None:
                            del ns_data[key]
                            index.remove(key)
                            if ghosts is None:
                                ghosts = self._ghosts[namespace] = SortedList()
                            ghosts.add(key)
                    else:
                        if previous is None:
                            index.add(key)
                            if ghosts and key in ghosts:
                                ghosts.remove(key)
                        ns_data[key] = value
            if recorded:
                self._undo.append((block_num, recorded))
            self.height = block_num + 1
            self._collect()

    def _collect(self) -> None:
        """Drop what no live snapshot can read any more (under ``lock``)."""
        oldest = self.height
        for live in list(self._snapshots):  # a copy: others add and discard meanwhile
            height = live.height
            if height < 0:
                return  # still reading its height: it may need anything; next commit
            oldest = min(oldest, height)
        undo = self._undo
        trimmed: set[tuple[str, str]] = set()
        while undo and undo[0][0] < oldest:
            trimmed.update(undo.popleft()[1])
        for slot in trimmed:
            changes = self._old[slot]
            keep_from = bisect_left(changes, (oldest,))
            if keep_from < len(changes):
                self._old[slot] = changes[keep_from:]  # a new list: readers may hold the old one
                continue
            del self._old[slot]
            namespace, key = slot
            ghosts = self._ghosts.get(namespace)
            if ghosts and key in ghosts:
                ghosts.remove(key)
                if not ghosts:
                    del self._ghosts[namespace]

    def __len__(self) -> int:
        return sum(len(ns_data) for ns_data in self.data.values())


class _Live:
    """A live snapshot's entry in ``VersionedState._snapshots`` (not the snapshot itself, so
    that a snapshot nobody holds is collected and its ``__del__`` removes the entry)."""

    __slots__ = ("height",)

    def __init__(self) -> None:
        self.height = -1  # not known yet: the snapshot is still reading it


class Snapshot:
    """Reads of the committed state at one height (Fabric: a query executor's view under
    the commit read lock). Reads never block commits and commits never change what it sees."""

    __slots__ = ("_closed", "_data", "_live", "_state", "height")

    def __init__(self, state: VersionedState, live: _Live) -> None:
        self._state = state
        self._data = state.data
        self._live = live
        self.height = live.height
        self._closed = False

    def get(self, namespace: str, key: str) -> VersionedValue | None:
        ns_data = self._data.get(namespace)
        value = None if ns_data is None else ns_data.get(key)
        if value is not None and value.version.block_num < self.height:
            return value
        return self._state.value_at(namespace, key, self.height, value)

    def range_chunk(
        self, namespace: str, start: str, end: str, after: str | None, limit: int
    ) -> tuple[list[str], list[VersionedValue]]:
        """Up to ``limit`` entries of ``[start, end)`` (``end == ""``: unbounded) after ``after``,
        as their keys and their values (two lists: no tuple per entry).

        Reading in chunks under the lock keeps commits from waiting on a slow consumer while
        still never reading the index mid-change.
        """
        if self._closed:
            raise LedgerError("snapshot read after the snapshot was released")
        state = self._state
        with state.lock:
            index = state._index.get(namespace)
            if index is None:
                return [], []
            keys: Iterator[str] = _irange(index, start, end, after, include_end=False)
            ghosts = state._ghosts.get(namespace)
            if ghosts:
                keys = heapq.merge(keys, _irange(ghosts, start, end, after, include_end=False))
            ns_data = state.data[namespace]
            height = self.height
            found: list[str] = []
            values: list[VersionedValue] = []
            for key in keys:
                value = ns_data.get(key)  # None: a ghost
                if value is None or value.version.block_num >= height:
                    value = state.value_at(namespace, key, height, value)
                    if value is None:  # created after the snapshot
                        continue
                found.append(key)
                values.append(value)
                if len(found) >= limit:
                    break
            return found, values

    def close(self) -> None:
        """Let commits forget what only this snapshot needed. Idempotent."""
        self._closed = True
        self._state._snapshots.discard(self._live)

    __del__ = close  # a simulator dropped without done() must not pin old values forever

    def __repr__(self) -> str:
        return f"Snapshot(height={self.height}, {'closed' if self._closed else 'live'})"


def _irange(
    index: SortedList, start: str, end: str, after: str | None, include_end: bool
) -> Iterator[str]:
    # Python compares str by code point, which equals UTF-8 byte order for the valid strings
    # the ledger accepts, so this is Fabric's (byte-wise) key order.
    if after is not None and after >= start:
        lower, include_lower = after, False
    else:
        lower, include_lower = start, True
    upper = end if end else None
    return index.irange(lower, upper, inclusive=(include_lower, include_end))
