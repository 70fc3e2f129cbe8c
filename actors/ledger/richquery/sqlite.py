"""Rich queries over a sqlite state table: SQL narrows, the Python engine decides.

Fabric counterpart: CouchDB's JSON indexes (``_index``) and the index half of ``_find``. The
selector's indexable part is translated to a ``WHERE`` clause on ``json_extract`` that selects a
*superset* of the matching documents (every translation below errs on the side of keeping a
row); the rows are then run through :func:`.query.execute`, which applies the whole selector,
order, skip and pagination. So results are the pure-Python engine's by construction, and a test
checks both paths against each other.

What is pushed down (at the top level, in ``$and`` and in ``$or`` whose every branch is):
comparisons with numbers (cross-type: ``$gt: 5`` also keeps strings, arrays and objects),
``$eq``/``$in`` with booleans, null, numbers and printable-ASCII strings (plus any string with
another character, which ICU may find equal), ``$exists``, ``$type``, ``$size``, and
``_id`` conditions with strings (the key column, bytewise). Paths with an all-digit segment
(array positions) are not pushed down. An index from a chaincode package becomes a sqlite
expression index on ``(namespace, json_extract(...))`` over its columns (and one on whether the
first column holds a non-ASCII string), which queries name with ``INDEXED BY``.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple

from .errors import RichQueryError
from .indexes import IndexDef
from .query import (
    DEFAULT_INTERNAL_QUERY_LIMIT,
    DEFAULT_TOTAL_QUERY_LIMIT,
    Query,
    QueryResult,
    execute,
    plan_query,
)
from .selector import Node, split_path

__all__ = [
    "STATE_TABLE",
    "SqlTable",
    "candidates",
    "create_index",
    "drop_indexes",
    "sql_filter",
    "sqlite_execute",
]

_DOC = "CASE WHEN json_valid(CAST({value} AS TEXT)) THEN CAST({value} AS TEXT) END"
_NUMERIC = "('integer','real')"
_BELOW_NUMBERS = "('null','true','false')"
_TYPES = {
    "null": "('null')",
    "boolean": "('true','false')",
    "number": _NUMERIC,
    "string": "('text')",
    "array": "('array')",
    "object": "('object')",
}
_ASCII = re.compile(r"[ -~]*")
_DIGITS = re.compile(r"[+-]?[0-9]+")
_SAFE_INT = 1 << 53
_EXOTIC = "*[^ -~]*"  # a string with a character outside printable ASCII
_RANGES = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


class SqlTable(NamedTuple):
    """Where the state is: table and column names (the ledger's ``state`` table by default)."""

    table: str = "state"
    namespace: str = "ns"
    key: str = "key"
    value: str = "value"


STATE_TABLE = SqlTable()


class Filter(NamedTuple):
    sql: str
    params: list[Any]


_TRUE = Filter("1", [])


def _json_path(path: str) -> str | None:
    """The sqlite JSON path of a field, or None when the field must be matched in Python: the
    path is written inside a SQL string literal, so a name holding a quote or a backslash (which
    a chaincode's selector or a package's index may carry) never reaches the SQL."""
    segments = split_path(path)
    unsafe = ('"', "'", "\\")
    if not segments or any(_DIGITS.fullmatch(s) or any(c in s for c in unsafe) for s in segments):
        return None
    return "$" + "".join(f'."{s}"' for s in segments)


def _extract(table: SqlTable, json_path: str, function: str = "json_extract") -> str:
    # Must be textually identical to the indexed expression for sqlite to use the index.
    doc = _DOC.format(value=table.value)
    return f"{function}({doc}, '{json_path}')"


def sql_filter(
    node: Node | None, table: SqlTable = STATE_TABLE, seek: tuple[str, str] | None = None
) -> Filter:
    """A WHERE clause keeping at least every row whose document ``node`` matches.

    ``seek = (field, "equal" | "other")`` splits a top-level string ``$eq`` on ``field`` in two
    exact halves (the equal strings, which an index finds, and the strings ICU may find equal)
    for a ``UNION ALL`` of two queries: sqlite cannot seek an index for the ``OR`` of both.
    """
    if node is None:
        return _TRUE
    name, arg = node
    if name == "$and":
        parts = [p for p in (sql_filter(item, table, seek) for item in arg) if p is not _TRUE]
        if not parts:
            return _TRUE
        return Filter(
            " AND ".join(f"({p.sql})" for p in parts), [x for p in parts for x in p.params]
        )
    if name == "$or":
        parts = [sql_filter(item, table) for item in arg]
        if not parts or any(p is _TRUE for p in parts):
            return _TRUE
        return Filter(
            " OR ".join(f"({p.sql})" for p in parts), [x for p in parts for x in p.params]
        )
    if name.startswith("$"):
        return _TRUE
    if name == "_id":
        return _id_filter(arg, table)
    json_path = _json_path(name)
    if json_path is None:
        return _TRUE
    value = _extract(table, json_path)
    kind = _extract(table, json_path, "json_type")
    if seek is not None and seek[0] == name and arg[0] == "$eq" and _is_ascii(arg[1]):
        if seek[1] == "equal":
            return Filter(f"{value} = ?", [arg[1]])
        return Filter(f"{kind} = 'text' AND {_exotic(value)} = 1", [])
    return _condition(arg, value, kind, json_path, table)


def _condition(cond: Node, value: str, kind: str, json_path: str, table: SqlTable) -> Filter:
    op, arg = cond
    if op == "$exists":
        return Filter(f"{kind} IS NOT NULL" if arg else f"{kind} IS NULL", [])
    if op == "$type":
        return Filter(f"{kind} IN {_TYPES.get(arg, '()')}", [])
    if op == "$size":
        doc = _DOC.format(value=table.value)
        return Filter(f"{kind} = 'array' AND json_array_length({doc}, '{json_path}') = ?", [arg])
    if op == "$eq":
        return _equal(arg, value, kind) or _TRUE
    if op == "$in":
        parts = [_equal(item, value, kind) for item in arg]
        if any(p is None for p in parts):
            return _TRUE
        # An array field matches $in when one of its elements does.
        return Filter(
            " OR ".join([f"{kind} = 'array'", *(f"({p.sql})" for p in parts if p)]),
            [x for p in parts if p for x in p.params],
        )
    if op in ("$gt", "$gte") and _is_number(arg):
        # sqlite orders NULL < numbers < TEXT, and json_extract gives strings, arrays and
        # objects as TEXT (all above numbers, as in Mango) and true/false as 1/0 (kept when
        # above the bound: a superset). So the plain comparison keeps every match and seeks.
        return Filter(f"{value} {_RANGES[op]} ?", [arg])
    if op in ("$lt", "$lte") and _is_number(arg):
        return Filter(
            f"({kind} IN {_NUMERIC} AND {value} {_RANGES[op]} ?) OR {kind} IN {_BELOW_NUMBERS}",
            [arg],
        )
    return _TRUE


def _is_number(value: Any) -> bool:
    # Below 2**53 only: sqlite keeps a document's big integers exact while Fabric rounds them
    # to a float64, and the two agree on any comparison with a smaller bound.
    return type(value) in (int, float) and abs(value) < _SAFE_INT


def _is_ascii(value: Any) -> bool:
    return type(value) is str and _ASCII.fullmatch(value) is not None


def _equal(arg: Any, value: str, kind: str) -> Filter | None:
    if arg is None:
        return Filter(f"{kind} = 'null'", [])
    if arg is True or arg is False:
        return Filter(f"{kind} = '{'true' if arg else 'false'}'", [])
    if _is_number(arg):
        return Filter(f"{value} = ? AND {kind} IN {_NUMERIC}", [arg])
    if _is_ascii(arg):
        # ICU finds some other strings equal to an ASCII one (ignorable code points, singleton
        # decompositions such as U+212A KELVIN SIGN = "K"): keep every non-ASCII string too.
        return Filter(f"{kind} = 'text' AND ({value} = ? OR {_exotic(value)} = 1)", [arg])
    return None


def _exotic(value: str) -> str:
    # Its own expression index lets the "other strings" half of a string $eq seek too.
    return f"({value} GLOB '{_EXOTIC}')"


def _id_filter(cond: Node, table: SqlTable) -> Filter:
    op, arg = cond
    sql_op = {"$eq": "=", **_RANGES}.get(op)
    if sql_op is None or type(arg) is not str:
        return _TRUE
    # Keys are stored as UTF-8 BLOBs, compared bytewise like Mango compares _id.
    return Filter(f"{table.key} {sql_op} ?", [arg.encode("utf-8", "surrogatepass")])


def index_name(namespace: str, index: IndexDef) -> str:
    columns = "\0".join(index.fields)
    digest = hashlib.sha256(
        f"{namespace}\0{index.ddoc}\0{index.name}\0{columns}".encode()
    ).hexdigest()
    return f"richquery_{digest[:24]}"


def create_index(
    conn: sqlite3.Connection, namespace: str, index: IndexDef, table: SqlTable = STATE_TABLE
) -> str:
    """Create (or keep) the sqlite expression index for one chaincode index; its name."""
    columns = []
    for field in index.fields:
        json_path = _json_path(field)
        if json_path is None:
            continue  # positional paths cannot be indexed by json_extract; the scan handles them
        columns.append(_extract(table, json_path))
    name = index_name(namespace, index)
    if columns:
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table.table} "
            f"({table.namespace}, {', '.join(columns)})"
        )
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {name}_x ON {table.table} "
            f"({table.namespace}, {_exotic(columns[0])})"
        )
    return name


def drop_indexes(conn: sqlite3.Connection, namespace: str, indexes: Sequence[IndexDef]) -> None:
    for index in indexes:
        name = index_name(namespace, index)
        conn.execute(f"DROP INDEX IF EXISTS {name}")
        conn.execute(f"DROP INDEX IF EXISTS {name}_x")


def candidate_rows(
    conn: sqlite3.Connection,
    namespace: str,
    query: Query,
    index: IndexDef | None = None,
    table: SqlTable = STATE_TABLE,
) -> list[tuple[bytes, bytes]]:
    """The namespace's rows the SQL filter keeps, through ``index`` when it helps."""
    seek = _seek_field(query.selector, index)
    ns = namespace.encode()
    select = f"SELECT {table.key}, {table.value} FROM {table.table}"
    if seek is None:
        where = sql_filter(query.selector, table)
        return _rows(
            conn, f"{select} WHERE {table.namespace} = ? AND ({where.sql})", [ns, *where.params]
        )
    # Without statistics sqlite prefers the primary key (ns, key) to an expression index on
    # a WITHOUT ROWID table; name the index whose first column the selector constrains.
    indexed = f"{select} INDEXED BY {index_name(namespace, index)}"
    equal = sql_filter(query.selector, table, (seek, "equal"))
    other = sql_filter(query.selector, table, (seek, "other"))
    sql = f"{indexed} WHERE {table.namespace} = ? AND ({equal.sql})"
    params = [ns, *equal.params]
    if other.sql != equal.sql:
        exotic = f"{select} INDEXED BY {index_name(namespace, index)}_x"
        sql += f" UNION ALL {exotic} WHERE {table.namespace} = ? AND ({other.sql})"
        params += [ns, *other.params]
    try:
        return _rows(conn, sql, params)
    except RichQueryError:
        where = sql_filter(query.selector, table)  # e.g. the index was dropped meanwhile
        return _rows(
            conn, f"{select} WHERE {table.namespace} = ? AND ({where.sql})", [ns, *where.params]
        )


def _seek_field(node: Node | None, index: IndexDef | None) -> str | None:
    """The index's first column, if a top-level condition lets sqlite seek on it."""
    if index is None or _json_path(index.fields[0]) is None:
        return None
    stack = [] if node is None else [node]
    while stack:
        name, arg = stack.pop()
        if name == "$and":
            stack.extend(arg)
        elif name == index.fields[0] and (
            (arg[0] == "$eq" and (_is_ascii(arg[1]) or _is_number(arg[1])))
            or (arg[0] in ("$gt", "$gte") and _is_number(arg[1]))
        ):
            return name
    return None


def _rows(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[tuple[bytes, bytes]]:
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.Error as exc:
        raise RichQueryError("internal_error", f"state database query failed: {exc}") from exc


def candidates(
    conn: sqlite3.Connection,
    namespace: str,
    query: Query,
    indexes: Sequence[IndexDef] = (),
    table: SqlTable = STATE_TABLE,
) -> list[tuple[str, bytes]]:
    """The (key, value) rows :func:`.query.execute` needs to see for ``query``."""
    index = plan_query(query, indexes).index
    rows = candidate_rows(conn, namespace, query, index, table)
    return [(key.decode("utf-8", "surrogateescape"), value) for key, value in rows]


def sqlite_execute(
    conn: sqlite3.Connection,
    namespace: str,
    query: Query,
    indexes: Sequence[IndexDef] = (),
    *,
    page_size: int = 0,
    bookmark: str = "",
    total_limit: int = DEFAULT_TOTAL_QUERY_LIMIT,
    internal_limit: int = DEFAULT_INTERNAL_QUERY_LIMIT,
    table: SqlTable = STATE_TABLE,
) -> QueryResult:
    """:func:`.query.execute` over the namespace's rows that the SQL filter keeps."""
    rows = candidates(conn, namespace, query, indexes, table)
    return execute(
        query,
        rows,
        indexes,
        page_size=page_size,
        bookmark=bookmark,
        total_limit=total_limit,
        internal_limit=internal_limit,
    )
