"""The sqlite path (SQL narrows with json_extract and expression indexes, Python decides) must
return exactly what the pure-Python engine returns, for any documents and queries.

Generation here is wider than against PouchDB: strings include ICU-equal variants (ignorable
code points, KELVIN SIGN = "K", upper case), numbers beyond 2**53, values include non-JSON
bytes, JSON arrays and scalars (not documents), paths with array positions, explicit ``$and``,
pagination.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.ledger.richquery import RichQueryError, execute, parse_index_definition, parse_query
from actors.ledger.richquery.sqlite import create_index, sqlite_execute

from .strategies import documents, field_conditions, queries

INDEXES = [
    parse_index_definition(json.dumps({"index": {"fields": fields}, "ddoc": name, "name": name}))
    for name, fields in (("a", ["a"]), ("b", ["b"]), ("ob", ["o.x", "b"]))
]
EXOTIC = st.sampled_from(["K", "\u212a", "k", "a\u200b", "a", "a\x00", "\u00e9", "e\u0301", "0"])
BIG = st.sampled_from([2**53, 2**53 + 1, 2**63 + 5, 2.0**53])


def _state(values: list[tuple[str, bytes]], indexed: bool) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE state (ns BLOB NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, "
        "block_num INTEGER NOT NULL, tx_num INTEGER NOT NULL, metadata BLOB, "
        "PRIMARY KEY (ns, key)) WITHOUT ROWID"
    )
    db.executemany(
        "INSERT INTO state VALUES (?, ?, ?, 0, 0, NULL)",
        [(ns, key.encode(), value) for key, value in values for ns in (b"cc", b"other")],
    )
    if indexed:
        for index in INDEXES:
            create_index(db, "cc", index)
    return db


@st.composite
def stored(draw: Any) -> list[tuple[str, bytes]]:
    docs = draw(documents())
    out = []
    for doc in docs:
        body = {k: v for k, v in doc.items() if k != "_id"}
        if draw(st.integers(0, 3)):
            body["a"] = draw(st.one_of(EXOTIC, BIG))
        out.append((doc["_id"], json.dumps(body).encode()))
    extras = st.sampled_from(
        [
            *(b"\xff\x00", b"[1, 2]", b"7", b'"a"', b"null", b'{"a": NaN}', b'{"a": 1e400}', b"{"),
            *(b'{"a": 1, "a": "K"}', b'{"a": {"x": 1, "x": 2}}'),
        ]
    )
    for number in range(draw(st.integers(0, 3))):
        out.append((f"x{number}", draw(extras)))
    return out


@st.composite
def exotic_queries(draw: Any) -> dict[str, Any]:
    query = draw(queries())
    if draw(st.booleans()):
        # Alone, so that ICU-equal strings are found often enough to matter.
        query["selector"] = {
            "a": draw(
                st.one_of(
                    EXOTIC,
                    st.builds(lambda v: {"$in": [v]}, EXOTIC),
                    st.builds(lambda op, v: {op: v}, st.sampled_from(["$eq", "$gt", "$lte"]), BIG),
                )
            )
        }
    if draw(st.booleans()):
        query["selector"]["t.0"] = {"$gte": 0}
    if draw(st.integers(0, 3)) == 0:  # explicit $and (kept away from PouchDB, which merges it)
        query["selector"] = {"$and": [query["selector"], draw(field_conditions())]}
    return query


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=stored(), query=exotic_queries(), indexed=st.booleans(), page_size=st.integers(0, 4))
def test_sqlite_path_equals_python(
    values: list[tuple[str, bytes]], query: dict[str, Any], indexed: bool, page_size: int
) -> None:
    parsed = parse_query(json.dumps(query))
    db = _state(values, indexed)
    indexes = INDEXES if indexed else []
    try:
        expected = execute(parsed, values, indexes, page_size=page_size)
    except RichQueryError as exc:
        try:
            sqlite_execute(db, "cc", parsed, indexes, page_size=page_size)
        except RichQueryError as again:
            assert str(again) == str(exc)
            return
        raise AssertionError("only the Python path refused the query") from exc
    got = sqlite_execute(db, "cc", parsed, indexes, page_size=page_size)
    assert got == expected
    if page_size and expected.rows:  # the next page continues identically on both paths
        after = execute(parsed, values, indexes, page_size=page_size, bookmark=expected.bookmark)
        assert (
            sqlite_execute(db, "cc", parsed, indexes, page_size=page_size, bookmark=got.bookmark)
            == after
        )
