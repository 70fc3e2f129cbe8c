"""A channel's rich-query service: its namespaces' indexes and where queries read from.

Fabric counterpart: the CouchDB side of ``statecouchdb.VersionedDB`` (``ExecuteQuery``,
``ExecuteQueryWithPagination``, ``ProcessIndexesForChaincodeDeploy``). One
:class:`RichQueryEngine` belongs to a :class:`~actors.ledger.Ledger`; simulators call
:meth:`RichQueryEngine.query`. Documents come from the simulation's snapshot of the committed
state, or, when the ledger is on sqlite, from its ``state`` table narrowed by SQL (and the
namespace's indexes).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import NamedTuple

from ..model import VersionedValue
from ..state import Snapshot
from .indexes import INDEX_DIR, IndexDef, parse_index_definition
from .query import DEFAULT_INTERNAL_QUERY_LIMIT, DEFAULT_TOTAL_QUERY_LIMIT, execute, parse_query
from .sqlite import candidates, create_index, drop_indexes

__all__ = ["RichPage", "RichQueryEngine", "SqliteSource"]

_CHUNK = 4096  # entries read from the snapshot per lock acquisition

# Lends the ledger's sqlite connection (under its lock) for the duration of a query.
SqliteSource = Callable[[str], AbstractContextManager[sqlite3.Connection]]


class RichPage(NamedTuple):
    """What one rich query returns: (key, value as returned, committed value read) rows."""

    rows: list[tuple[str, bytes, VersionedValue | None]]
    bookmark: str


class RichQueryEngine:
    def __init__(
        self,
        *,
        sqlite: SqliteSource | None = None,
        internal_limit: int = DEFAULT_INTERNAL_QUERY_LIMIT,
    ) -> None:
        self._sqlite = sqlite
        self._internal_limit = internal_limit
        self._lock = threading.Lock()
        self._indexes: dict[str, dict[tuple[str, str], IndexDef]] = {}

    def install_indexes(self, namespace: str, files: Mapping[str, bytes]) -> list[IndexDef]:
        """Validate and create a package's index files (``path -> contents``; files outside
        ``META-INF/statedb/couchdb/indexes/`` are ignored). All are checked before any is
        created, so a bad file leaves nothing half-installed; same ddoc/name replaces."""
        definitions = [
            parse_index_definition(data, path)
            for path, data in sorted(files.items())
            if path.startswith(INDEX_DIR) and path.endswith(".json")
        ]
        with self._lock:
            known = self._indexes.setdefault(namespace, {})
            replaced = [
                known[(d.ddoc, d.name)]
                for d in definitions
                if known.get((d.ddoc, d.name), d).fields != d.fields
            ]
            if self._sqlite is not None:
                with self._sqlite("create rich-query indexes") as db:
                    drop_indexes(db, namespace, replaced)
                    for definition in definitions:
                        create_index(db, namespace, definition)
            for definition in definitions:
                known[(definition.ddoc, definition.name)] = definition
        return definitions

    def indexes(self, namespace: str) -> list[IndexDef]:
        with self._lock:
            return list(self._indexes.get(namespace, {}).values())

    def query(
        self,
        snapshot: Snapshot,
        namespace: str,
        query: str,
        *,
        page_size: int = 0,
        bookmark: str = "",
        total_limit: int = DEFAULT_TOTAL_QUERY_LIMIT,
    ) -> RichPage:
        """Run a Mango query (Fabric's rewrite applied) over the namespace's committed state."""
        parsed = parse_query(query)
        indexes = self.indexes(namespace)
        options = {
            "page_size": page_size,
            "bookmark": bookmark,
            "total_limit": total_limit,
            "internal_limit": self._internal_limit,
        }
        if self._sqlite is not None:
            # Only the SQL holds the connection's lock (and so commits); Python decides after.
            with self._sqlite("run a rich query") as db:
                docs = candidates(db, namespace, parsed, indexes)
            result = execute(parsed, docs, indexes, **options)
            # The read is recorded with the simulation's snapshot version; should sqlite be a
            # block ahead, MVCC at commit catches a value that changed meanwhile.
            rows = [(key, value, snapshot.get(namespace, key)) for key, value in result.rows]
            return RichPage(rows, result.bookmark)
        committed = dict(_whole_namespace(snapshot, namespace))
        docs = ((key, versioned.value) for key, versioned in committed.items())
        result = execute(parsed, docs, indexes, **options)
        return RichPage(
            [(key, value, committed[key]) for key, value in result.rows], result.bookmark
        )


def _whole_namespace(snapshot: Snapshot, namespace: str) -> Iterator[tuple[str, VersionedValue]]:
    """Every key of the namespace as the snapshot sees it, in chunks (commits go on)."""
    after = None
    while True:
        keys, values = snapshot.range_chunk(namespace, "", "", after, _CHUNK)
        yield from zip(keys, values, strict=True)
        if len(keys) < _CHUNK:
            return
        after = keys[-1]
