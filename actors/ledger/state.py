"""In-memory versioned world state with ordered keys.

Fabric counterpart: ``core/ledger/kvledger/txmgmt/statedb`` (``VersionedDB``, the leveldb
implementation) and ``privacyenabledstate.UpdateBatch``.

Concurrency model (why there is no lock on the point-read path):

* Each key maps to one immutable :class:`VersionedValue`; a commit replaces that object, so a
  single-key read is atomic without a lock (a dict lookup is atomic in CPython, and internally
  locked on free-threaded builds).
* The ordered key index (a ``SortedList`` per namespace) is not safe to read while it is being
  changed, so range reads and multi-key reads take ``lock``, which :meth:`apply` holds for a whole
  block: those reads see a block entirely or not at all.
* A simulation spanning several calls is *not* a snapshot (Fabric holds a read lock on the whole
  state for the life of a simulator, blocking commits instead). A read that raced a commit is
  recorded with the version it saw, so MVCC validation rejects such a transaction at commit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from sortedcontainers import SortedList

from .model import VersionedValue

__all__ = ["UpdateBatch", "VersionedState"]

# Pending per-block changes: namespace -> key -> new value, or None for a delete.
UpdateBatch = dict[str, dict[str, VersionedValue | None]]


class VersionedState:
    """Committed state of one channel: namespace -> key -> :class:`VersionedValue`."""

    __slots__ = ("_index", "data", "lock")

    def __init__(self) -> None:
        # Public on purpose: the simulator's hot path reads it directly (see module docstring).
        self.data: dict[str, dict[str, VersionedValue]] = {}
        self._index: dict[str, SortedList] = {}
        self.lock = threading.Lock()

    def get(self, namespace: str, key: str) -> VersionedValue | None:
        ns_data = self.data.get(namespace)
        return None if ns_data is None else ns_data.get(key)

    def get_many(self, namespace: str, keys: Iterable[str]) -> list[VersionedValue | None]:
        with self.lock:
            ns_data = self.data.get(namespace)
            if ns_data is None:
                return [None for _ in keys]
            return [ns_data.get(key) for key in keys]

    def range_chunk(
        self, namespace: str, start: str, end: str, after: str | None, limit: int
    ) -> list[tuple[str, VersionedValue]]:
        """Up to ``limit`` entries of ``[start, end)`` (``end == ""``: unbounded) after ``after``.

        Reading in chunks under the lock keeps commits from waiting on a slow consumer while
        still never reading the index mid-change.
        """
        with self.lock:
            index = self._index.get(namespace)
            if index is None:
                return []
            ns_data = self.data[namespace]
            keys = _irange(index, start, end, after, include_end=False)
            out = []
            for key in keys:
                out.append((key, ns_data[key]))
                if len(out) >= limit:
                    break
            return out

    def iter_range_unlocked(
        self, namespace: str, start: str, end: str, include_end: bool
    ) -> Iterator[tuple[str, VersionedValue]]:
        """Lazy range scan without taking ``lock``.

        Only for the committing thread during validation: commits are serialized by the ledger
        and :meth:`apply` is the only writer, so nothing can change the index meanwhile.
        """
        index = self._index.get(namespace)
        if index is None:
            return
        ns_data = self.data[namespace]
        for key in _irange(index, start, end, None, include_end=include_end):
            yield key, ns_data[key]

    def load(self, entries: Iterable[tuple[str, str, VersionedValue]]) -> None:
        """Bulk-fill from storage at open; builds each index once instead of key by key."""
        with self.lock:
            for namespace, key, value in entries:
                self.data.setdefault(namespace, {})[key] = value
            for namespace, ns_data in self.data.items():
                self._index[namespace] = SortedList(ns_data)

    def apply(self, updates: UpdateBatch) -> None:
        """Apply one validated block; readers of ranges see all of it or none of it."""
        with self.lock:
            for namespace, changes in updates.items():
                ns_data = self.data.get(namespace)
                if ns_data is None:
                    ns_data = self.data[namespace] = {}
                    self._index[namespace] = SortedList()
                index = self._index[namespace]
                for key, value in changes.items():
                    if value is None:
                        if ns_data.pop(key, None) is not None:
                            index.remove(key)
                    else:
                        if key not in ns_data:
                            index.add(key)
                        ns_data[key] = value

    def __len__(self) -> int:
        return sum(len(ns_data) for ns_data in self.data.values())


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
