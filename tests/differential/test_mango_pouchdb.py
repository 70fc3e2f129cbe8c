"""Differential test: our Mango engine against PouchDB's (pouchdb-find 9.0.0, a real Mango
implementation written by others), run in Node over the same generated documents and queries.

One Node process serves the whole session over JSON lines (tests/differential/pouchdb/server.js),
so hundreds of examples take seconds. Both sides get indexes on ``a`` and ``b``; a query with a
sort must return the same ids in the same order, one without a sort the same set of ids.
Generation stays where CouchDB (our reference) and PouchDB agree: see :mod:`.strategies`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from actors.ledger.richquery import RichQueryError, find, parse_index_definition, parse_query
from tests import helpers

from .strategies import documents, queries

HERE = Path(__file__).parent / "pouchdb"
INDEXED = ["a", "b"]
INDEXES = [
    parse_index_definition(json.dumps({"index": {"fields": [f]}, "ddoc": f, "name": f}))
    for f in INDEXED
]
EXAMPLES = int(os.environ.get("MANGO_DIFFERENTIAL_EXAMPLES", "400"))


class PouchDB:
    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            ["node", str(HERE / "server.js")],
            cwd=HERE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        # Sorted keys: Fabric stores documents through Go maps, so CouchDB sees members in
        # bytewise order, and PouchDB compares objects in insertion order.
        self._proc.stdin.write(json.dumps(request, sort_keys=True) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the PouchDB server exited ({self._proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@pytest.fixture(scope="module")
def pouchdb() -> Iterator[PouchDB]:
    if shutil.which("node") is None:
        helpers.skip_or_fail("node is not installed (run: make test)")
    if not (HERE / "node_modules" / ".ccactors-installed").exists():
        helpers.skip_or_fail("PouchDB is not installed (run: bash tools/ensure_node_pouchdb.sh)")
    server = PouchDB()
    yield server
    server.close()


def ours(docs: list[dict[str, Any]], query: dict[str, Any]) -> list[tuple[str, bytes]]:
    stored = [
        (doc["_id"], json.dumps({k: v for k, v in doc.items() if k != "_id"}).encode())
        for doc in docs
    ]
    return find(parse_query(json.dumps(query), fabric=False), stored, INDEXES).rows


@pytest.mark.timeout(600)  # shrinking a failure takes minutes
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(docs=documents(), query=queries())
def test_same_results_as_pouchdb(
    pouchdb: PouchDB, docs: list[dict[str, Any]], query: dict[str, Any]
) -> None:
    assert pouchdb.call({"op": "load", "docs": docs, "indexes": [[f] for f in INDEXED]}) == {
        "ok": True
    }
    asked = dict(query)
    if "fields" in query:  # to know which document each projection is; Fabric adds it too
        asked["fields"] = [*query["fields"], "_id"]
    theirs = pouchdb.call({"op": "find", "query": asked})
    assert "error" not in theirs, theirs
    try:
        mine = ours(docs, query)
    except RichQueryError as exc:
        pytest.fail(f"we refused a query PouchDB answers: {exc}")
    keys = [key for key, _ in mine]
    if "sort" in query:
        assert keys == theirs["ids"]
    else:
        assert sorted(keys) == sorted(theirs["ids"])
    if "fields" in query:  # the same projection
        projected = {key: json.loads(value) for key, value in mine}
        assert projected == {doc.pop("_id"): doc for doc in theirs["docs"]}
