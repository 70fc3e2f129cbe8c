"""The cost of one Mango query over N JSON documents, with and without an index.

``python -m bench.richquery [--docs 10000] [--repeats 7] [--json]`` builds one namespace of N
asset documents (``docType``, ``owner`` among N/100 owners, ``size`` 0..N-1, ``color``) and times
:func:`actors.ledger.richquery.execute` over the in-memory state (every document decoded and
matched in Python), and the sqlite path over the ledger's table layout without and with the
package indexes (``owner``, ``size``). Medians of ``--repeats`` runs, in milliseconds, with the
number of results; each cell is checked to return the same rows as the in-memory engine.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from actors.ledger.richquery import IndexDef, execute, parse_index_definition, parse_query
from actors.ledger.richquery.sqlite import create_index, sqlite_execute

QUERIES = {
    "owner = (10 of N)": {"selector": {"docType": "asset", "owner": "o7"}},
    "size > N-50": {"selector": {"size": {"$gt": -50}}},  # the bound is set from --docs
    "sort by size, page of 25": {"selector": {"size": {"$gte": 0}}, "sort": ["size"]},
    "color = (unindexed, 1/4 of N)": {"selector": {"color": "red"}},
}


def _index(field: str) -> IndexDef:
    definition = {"index": {"fields": [field]}, "ddoc": field, "name": field, "type": "json"}
    return parse_index_definition(json.dumps(definition))


def _documents(count: int) -> list[tuple[str, bytes]]:
    colors = ("red", "blue", "green", "white")
    return [
        (
            f"asset{i:06d}",
            json.dumps(
                {
                    "docType": "asset",
                    "owner": f"o{i % (count // 10 or 1)}",
                    "size": i,
                    "color": colors[i % 4],
                }
            ).encode(),
        )
        for i in range(count)
    ]


def _table(docs: list[tuple[str, bytes]]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE state (ns BLOB NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, "
        "block_num INTEGER NOT NULL, tx_num INTEGER NOT NULL, metadata BLOB, "
        "PRIMARY KEY (ns, key)) WITHOUT ROWID"
    )
    db.executemany(
        "INSERT INTO state VALUES (?, ?, ?, 1, 0, NULL)",
        [(b"assets", key.encode(), value) for key, value in docs],
    )
    return db


def _median_ms(run: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def measure(count: int, repeats: int) -> list[dict[str, Any]]:
    docs = _documents(count)
    indexes = [_index("owner"), _index("size")]
    plain, indexed = _table(docs), _table(docs)
    for index in indexes:
        create_index(indexed, "assets", index)
    rows = []
    for name, body in QUERIES.items():
        body = json.loads(json.dumps(body).replace("-50", str(count - 50)))
        query = parse_query(json.dumps(body))
        page = 25 if "sort" in body else 0
        cells = {
            "python (in-memory state)": lambda q=query, p=page: execute(
                q, docs, indexes, page_size=p
            ),
            "sqlite, no index": lambda q=query, p=page: sqlite_execute(
                plain, "assets", q, indexes, page_size=p
            ),
            "sqlite, indexed": lambda q=query, p=page: sqlite_execute(
                indexed, "assets", q, indexes, page_size=p
            ),
        }
        expected = None
        for path, run in cells.items():
            ms, result = _median_ms(run, repeats)
            if expected is None:
                expected = result
            elif result != expected:
                raise SystemExit(f"{name}: {path} returned other rows than the in-memory engine")
            rows.append(
                {
                    "query": name,
                    "path": path,
                    "median_ms": round(ms, 2),
                    "results": len(result.rows),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.richquery", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--docs", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    options = parser.parse_args(argv)
    if options.docs < 100 or options.repeats < 1:
        parser.error("--docs must be at least 100 and --repeats at least 1")
    rows = measure(options.docs, options.repeats)
    if options.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    print(f"Mango query over {options.docs} JSON documents, median of {options.repeats} runs")
    print(f"{'query':32} {'path':26} {'ms':>9} {'results':>8}")
    for row in rows:
        print(f"{row['query']:32} {row['path']:26} {row['median_ms']:9.2f} {row['results']:8d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
