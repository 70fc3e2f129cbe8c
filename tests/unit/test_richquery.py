"""Rich queries: CouchDB's Mango semantics and errors, Fabric's batching, pagination and
index files (actors/ledger/richquery)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from actors.ledger.richquery import (
    IndexDefinitionError,
    RichQueryError,
    execute,
    find,
    parse_index_definition,
    parse_query,
)
from actors.ledger.richquery.collation import collation_key
from actors.ledger.richquery.sqlite import create_index, sqlite_execute


def stored(**docs: Any) -> list[tuple[str, bytes]]:
    return [(key, json.dumps(doc).encode()) for key, doc in docs.items()]


def keys(selector: dict[str, Any], docs: list[tuple[str, bytes]], **query: Any) -> list[str]:
    parsed = parse_query(json.dumps({"selector": selector, **query}))
    return [key for key, _ in execute(parsed, docs, INDEXES).rows]


def index(*fields: Any, name: str = "i") -> Any:
    return parse_index_definition(
        json.dumps({"index": {"fields": list(fields)}, "ddoc": name, "name": name, "type": "json"})
    )


INDEXES = [index("n", name="n"), index("s", name="s")]


def test_collation_orders_types_then_values_like_couchdb() -> None:
    ordered = [None, False, True, -2, 1, 1.5, 10, "", " ", "10", "9", "a", "A", "aa", "b", "B"]
    ordered += [[], [1], [1, 2], [2], {}, {"a": 1}, {"a": 2}, {"b": 0}]
    assert sorted(reversed(ordered), key=collation_key) == ordered
    assert collation_key(1) == collation_key(1.0)
    assert collation_key("K") == collation_key("\u212a")  # ICU: canonically equivalent


DOCS = stored(
    k1={"n": 1, "s": "a", "tags": ["x", "y"], "o": {"p": {"q": 1}}, "a.b": 1},
    k2={"n": 2, "s": "B", "tags": ["y"], "o": {"p": {"q": 2}}},
    k3={"n": 3.0, "s": "b", "tags": [], "arr": [{"v": 1}, {"v": 5}]},
    k4={"n": -7, "s": None, "arr": [{"v": 5}]},
    k5={"s": "c"},
)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({"n": 1}, ["k1"]),
        ({"n": {"$gt": 1}}, ["k2", "k3"]),
        ({"n": {"$gt": 0}, "s": {"$lt": "b"}}, ["k1"]),  # ICU: "a" < "b" < "B"
        ({"s": {"$gt": "b"}}, ["k2", "k5"]),
        ({"$not": {"n": 1}}, ["k2", "k3", "k4"]),  # negations need the field (k5 has no n)
        ({"n": {"$ne": 1}}, ["k2", "k3", "k4"]),
        ({"$nor": [{"n": 1}, {"n": 2}]}, ["k3", "k4"]),
        ({"$or": [{"n": 1}, {"s": "c"}]}, ["k1", "k5"]),
        ({"$or": []}, ["k1", "k2", "k3", "k4", "k5"]),
        ({"n": {"$exists": False}}, ["k5"]),
        ({"s": {"$type": "null"}}, ["k4"]),
        ({"n": {"$in": [2, 3]}}, ["k2", "k3"]),
        ({"n": {"$nin": [2, 3]}}, ["k1", "k4"]),
        ({"tags": {"$in": ["x"]}}, ["k1"]),  # an array field: any element
        ({"tags": "x"}, []),  # no implicit traversal into arrays
        ({"tags": {"$all": ["y"]}}, ["k1", "k2"]),
        ({"tags": {"$all": [["y"]]}}, ["k2"]),  # a single array argument equal to the field
        ({"tags": {"$size": 0}}, ["k3"]),
        ({"n": {"$mod": [2, 1]}}, ["k1", "k3"]),  # 3.0 is the integer 3 after Fabric's decoding
        ({"n": {"$mod": [2, -1]}}, ["k4"]),  # the remainder takes the dividend's sign
        ({"s": {"$regex": "^[a-b]$"}}, ["k1", "k3"]),
        ({"o.p.q": 2}, ["k2"]),
        ({"o": {"p": {"q": {"$gte": 1}}}}, ["k1", "k2"]),
        ({"a\\.b": 1}, ["k1"]),
        ({"tags.1": "y"}, ["k1"]),
        ({"arr": {"$elemMatch": {"v": {"$gt": 4}}}}, ["k3", "k4"]),
        ({"arr": {"$allMatch": {"v": 5}}}, ["k4"]),
        ({"tags": {"$elemMatch": {"$eq": "y"}}}, ["k1", "k2"]),
        ({"o": {"$keyMapMatch": {"$eq": "p"}}}, ["k1", "k2"]),
        ({"s": {"$beginsWith": "b"}}, ["k3"]),
        ({"_id": {"$gt": "k3"}}, ["k4", "k5"]),
        ({}, ["k1", "k2", "k3", "k4", "k5"]),
    ],
)
def test_selectors_match_as_couchdb(selector: dict[str, Any], expected: list[str]) -> None:
    # Sorted: without a sort the order is the chosen index's (by n for a condition on n).
    assert sorted(keys(selector, DOCS)) == expected


def test_only_json_objects_are_documents() -> None:
    docs = [("bin", b"\x00\xff"), ("arr", b"[1]"), ("num", b"5"), ("nan", b'{"n": NaN}')]
    docs += [("big", b'{"n": 1e400}'), ("twice", b'{"n": 1, "n": 2}'), ("ok", b'{"n": 1}')]
    assert keys({}, docs) == ["ok"]


def test_sort_needs_an_index_and_follows_it() -> None:
    assert keys({"n": {"$gt": 0}}, DOCS, sort=[{"n": "desc"}]) == ["k3", "k2", "k1"]
    assert keys({}, DOCS, sort=["s"]) == ["k4", "k1", "k3", "k2", "k5"]  # null, a, b, B, c
    with pytest.raises(RichQueryError, match="no_usable_index"):
        keys({}, DOCS, sort=["tags"])


def test_fields_are_projected_and_marshalled_as_go_does() -> None:
    query = parse_query(json.dumps({"selector": {"n": 1}, "fields": ["s", "o.p.q", "nope"]}))
    assert execute(query, DOCS).rows == [("k1", b'{"o":{"p":{"q":1}},"s":"a"}')]
    query = parse_query(json.dumps({"selector": {}, "fields": ["h"]}))
    docs = stored(k={"h": "<&>", "z": 1})
    assert execute(query, docs).rows == [("k", b'{"h":"\\u003c\\u0026\\u003e"}')]


def test_pagination_bookmarks_continue_and_end() -> None:
    docs = stored(**{f"k{i}": {"n": i % 3, "s": str(i)} for i in range(10)})
    query = parse_query(json.dumps({"selector": {"n": {"$gte": 0}}, "sort": ["n"]}))
    seen, bookmark = [], ""
    for _ in range(5):
        page = execute(query, docs, INDEXES, page_size=4, bookmark=bookmark)
        seen += [key for key, _ in page.rows]
        if len(page.rows) < 4:
            break
        bookmark = page.bookmark
    assert seen == ["k0", "k3", "k6", "k9", "k1", "k4", "k7", "k2", "k5", "k8"]
    empty = execute(query, docs, INDEXES, page_size=4, bookmark=page.bookmark)
    assert empty.rows == [] and empty.bookmark == page.bookmark  # echoed, as CouchDB does
    nothing = execute(parse_query('{"selector": {"n": 9}}'), docs, page_size=4)
    assert nothing.bookmark == "nil"


def test_fabric_replaces_limit_reapplies_skip_per_batch_and_caps_the_total() -> None:
    docs = stored(**{f"k{i:02d}": {"n": i} for i in range(20)})
    query = parse_query(json.dumps({"selector": {}, "limit": 2, "skip": 1}))
    rows = execute(query, docs, internal_limit=5).rows
    # skip 1 then 5 rows, per batch: k00, k06, k12, k18 are skipped; the user's limit is ignored.
    assert [key for key, _ in rows] == [f"k{i:02d}" for i in range(20) if i % 6]
    assert len(execute(query, docs, total_limit=3).rows) == 3
    # A plain CouchDB request honours limit and skip once.
    plain = parse_query(json.dumps({"selector": {}, "limit": 2, "skip": 1}), fabric=False)
    assert [key for key, _ in find(plain, docs).rows] == ["k01", "k02"]


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("{", "invalid query JSON"),
        ("[1]", "must be a JSON object, not an array"),
        ('{"selector": {"a": 1}, "fields": "a"}', "fields definition must be an array"),
        ('{"fields": ["a"]}', "Missing required key: selector"),
        ('{"selector": [1]}', "Selector must be a JSON object, not: [1]"),
        ('{"selector": {"a": {"$foo": 1}}}', "Error:invalid_operator,  Status Code:400,  Reason:"),
        ('{"selector": {"$where": "x"}}', "Unsupported operator: $where"),
        ('{"selector": {"a": {"$in": 1}}}', "Bad argument for operator $in: 1"),
        ('{"selector": {"a": {"$mod": [0, 1]}}}', "Bad argument for operator $mod"),
        ('{"selector": {"a": {"$regex": "("}}}', "Bad argument for operator $regex"),
        ('{"selector": {"a": {"$size": -1}}}', "Bad argument for operator $size"),
        ('{"selector": {"a": {"$exists": 1}}}', "Bad argument for operator $exists"),
        ('{"selector": {"$and": {}}}', "Bad argument for operator $and"),
        ('{"selector": {"": 1}}', "One or more conditions is missing a field name."),
        ('{"selector": {"a..b": 1}}', "Invalid field name: a..b"),
        ('{"selector": {}, "skip": -1}', "-1 is not an integer greater than or equal to zero"),
        ('{"selector": {}, "sort": "a"}', "Sort must be an array of sort specs"),
        ('{"selector": {}, "sort": [{"a": "up"}]}', 'Invalid sort direction: "up"'),
        ('{"selector": {}, "sort": ["a", {"b": "desc"}]}', "single direction for all fields"),
        ('{"selector": {}, "colour": 1}', "Invalid key colour for this request."),
        ('{"selector": {}, "bookmark": "???"}', "Invalid bookmark value"),
        ('{"selector": {"a": ' + "[" * 500 + "]" * 500 + "}}", "nests deeper than 64 levels"),
        ('{"selector": ' + '{"a": ' * 2000 + "1" + "}" * 2001, "invalid query JSON"),
    ],
)
def test_bad_queries_get_clear_errors(query: str, error: str) -> None:
    with pytest.raises(RichQueryError) as caught:
        execute(parse_query(query), DOCS)
    assert error in str(caught.value)
    assert str(caught.value).startswith(("error handling CouchDB request. Error:",))


def test_a_bookmark_of_another_query_is_refused() -> None:
    page = execute(parse_query('{"selector": {"n": {"$gt": 0}}}'), DOCS, page_size=1)
    with pytest.raises(RichQueryError, match="invalid_bookmark"):
        execute(parse_query('{"selector": {"n": 1}}'), DOCS, page_size=1, bookmark=page.bookmark)


@pytest.mark.parametrize(
    ("definition", "error"),
    [
        (b"{", "is not a valid JSON"),
        (b'{"index": {"fields": ["a"]}, "type": "text"}', "Index type must be json"),
        (b'{"ddoc": "d"}', 'Index definition must include a "fields" definition'),
        (b'{"index": {"fields": "a"}}', "Expecting a JSON array of fields"),
        (b'{"index": {"fields": [{"a": "up"}]}}', "Sort must be asc or desc"),
        (b'{"index": {"fields": ["a"], "extra": 1}}', "Invalid field name: extra"),
        (b'{"index": {"fields": ["a"]}, "colour": 1}', "Invalid field name: colour"),
    ],
)
def test_bad_index_definitions_are_refused(definition: bytes, error: str) -> None:
    with pytest.raises(IndexDefinitionError) as caught:
        parse_index_definition(definition, "indexes/bad.json")
    assert "indexes/bad.json" in str(caught.value) and error in str(caught.value)


def test_index_definition_in_fabrics_format() -> None:
    definition = {
        "index": {"fields": ["docType", {"owner": "desc"}]},
        "ddoc": "indexOwnerDoc",
        "name": "indexOwner",
        "type": "json",
    }
    parsed = parse_index_definition(json.dumps(definition))
    assert (parsed.ddoc, parsed.name, parsed.fields) == (
        "_design/indexOwnerDoc",
        "indexOwner",
        ("docType", "owner"),
    )


def test_sqlite_indexes_are_used_and_agree() -> None:
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE state (ns BLOB, key BLOB, value BLOB, PRIMARY KEY (ns, key)) WITHOUT ROWID"
    )
    docs = stored(**{f"k{i}": {"owner": f"o{i % 7}", "n": i} for i in range(50)})
    db.executemany("INSERT INTO state VALUES (?, ?, ?)", [(b"cc", k.encode(), v) for k, v in docs])
    owner = index("owner", name="owner")
    name = create_index(db, "cc", owner)
    query = parse_query('{"selector": {"owner": "o3", "n": {"$gt": 20}}}')
    traced: list[str] = []
    db.set_trace_callback(traced.append)
    assert sqlite_execute(db, "cc", query, [owner]) == execute(query, docs, [owner])
    assert any(f"INDEXED BY {name}" in sql for sql in traced)
    plan = db.execute(f"EXPLAIN QUERY PLAN {traced[-1]}".replace("?", "NULL")).fetchall()
    assert any(name in row[-1] for row in plan)


@pytest.mark.parametrize("on_disk", [False, True], ids=["memory", "sqlite"])
def test_ledger_rich_queries_record_reads_and_guard_pagination(
    on_disk: bool, tmp_path: Any
) -> None:
    from actors.ledger import Ledger, ReadOnlyViolation

    ledger = Ledger("ch", path=str(tmp_path / "ch.sqlite") if on_disk else None)
    sim = ledger.new_simulator("t1")
    for i in range(6):
        sim.put_state("cc", f"k{i}", json.dumps({"owner": f"o{i % 2}", "n": i}).encode())
    sim.put_state("cc", "raw", b"\x00not json")
    sim.done()
    ledger.commit("t1", sim.get_results())
    files = {
        "META-INF/statedb/couchdb/indexes/n.json": json.dumps(
            {"index": {"fields": ["n"]}, "ddoc": "n", "name": "n", "type": "json"}
        ).encode(),
        "META-INF/other.json": b"not an index",
    }
    assert [i.name for i in ledger.rich_queries.install_indexes("cc", files)] == ["n"]
    if on_disk:  # a redefined index replaces the sqlite index it had
        changed = {next(iter(files)): files[next(iter(files))].replace(b'"n"]', b'"owner"]')}
        ledger.rich_queries.install_indexes("cc", changed)
        ledger.rich_queries.install_indexes("cc", files)
        with ledger._storage.rich_query_connection("list indexes") as db:
            names = db.execute("SELECT name FROM sqlite_master WHERE name LIKE 'richquery%'")
            assert len(names.fetchall()) == 2  # the index and its non-ASCII companion

    sim = ledger.new_simulator("t2")
    query = json.dumps({"selector": {"owner": "o1"}, "sort": [{"n": "desc"}]})
    iterator = sim.execute_query("cc", query)
    assert next(iterator).key == "k5"
    # Only what the chaincode was given is read (Fabric: a KVRead per returned result).
    assert [r.key for r in sim.get_results().ns_results[0].reads] == ["k5"]
    assert [kv.key for kv in iterator] == ["k3", "k1"]
    page = sim.execute_query("cc", query, page_size=2)
    assert [kv.key for kv in page] == ["k5", "k3"]
    rest = sim.execute_query("cc", query, page_size=2, bookmark=page.bookmark)
    assert [kv.key for kv in rest] == ["k1"]
    with pytest.raises(ReadOnlyViolation):
        sim.put_state("cc", "k9", b"{}")
    writer = ledger.new_simulator("t3")
    writer.put_state("cc", "k9", b"{}")
    with pytest.raises(ReadOnlyViolation, match="only in a read-only transaction"):
        writer.execute_query("cc", query, page_size=1)
    assert [kv.key for kv in writer.execute_query("cc", query)] == ["k5", "k3", "k1"]
    with pytest.raises(RichQueryError, match="Invalid operator"):
        writer.execute_query("cc", '{"selector": {"n": {"$bad": 1}}}')


def test_a_quote_in_a_field_name_stays_inside_its_namespace() -> None:
    """A field name is written into the SQL's JSON path literal: one with a quote must be
    matched in Python instead, never widen the query to another chaincode's rows."""
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE state (ns BLOB, key BLOB, value BLOB, PRIMARY KEY (ns, key)) WITHOUT ROWID"
    )
    mine = stored(a={"n": 1})
    theirs = stored(secret={"n": 2})
    db.executemany("INSERT INTO state VALUES (?, ?, ?)", [(b"cc", k.encode(), v) for k, v in mine])
    db.executemany(
        "INSERT INTO state VALUES (?, ?, ?)", [(b"other", k.encode(), v) for k, v in theirs]
    )
    field = "x')) OR 1=1 OR ((json_type('{}','$"
    query = parse_query(json.dumps({"selector": {field: {"$exists": False}}}))
    assert sqlite_execute(db, "cc", query) == execute(query, mine)
