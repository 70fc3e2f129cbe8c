"""Mango queries over a namespace's documents, with Fabric's batching and pagination.

Fabric counterparts: ``statedb/statecouchdb`` (``applyAdditionalQueryOptions``, the query
scanner that chains ``_find`` batches of ``internalQueryLimit`` with CouchDB's bookmark, and
``totalQueryLimit``) and CouchDB's ``mango_cursor_view`` (planning, order, skip, bookmarks,
fields). The engine is a function of the query and an iterable of ``(key, value bytes)``;
:mod:`.sqlite` narrows that iterable with SQL first when the state is in sqlite.

What Fabric does and this does too:

* Only values that are JSON objects are documents (CouchDB keeps the rest as attachments no
  selector can see); the key is the document's ``_id``. Numbers pass through a float64 as in
  Fabric's Go decoding, so ``5.0`` is the integer ``5`` and integers beyond 2**53 round.
  (Unlike Fabric, an object repeating a member name is not a document; Fabric keeps the last.)
* The user's ``limit`` is replaced by Fabric's batch size; the user's ``skip`` is applied again
  at every batch (every ``internalQueryLimit`` results), as CouchDB re-applies it per request.
* A sort needs a usable index (``no_usable_index`` otherwise); documents lacking a column of
  the chosen index are not in it; results come in index order, ties by ``_id`` bytewise.
* Bookmarks are opaque; an unknown or foreign one is ``invalid_bookmark``; an empty page echoes
  the input bookmark, and no result with no input bookmark gives ``"nil"``.

Deliberate differences: a bookmark names a position (index key, ``_id``), so if the bookmarked
document disappears the next one is not lost (CouchDB skips one raw row). Results without
``fields`` are the stored bytes (Fabric re-marshals them, sorting keys); with ``fields`` they are
marshalled as Go's ``encoding/json`` would (sorted keys, ``<>&`` escaped).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .collation import collation_key
from .errors import RichQueryError
from .indexes import IndexDef
from .selector import (
    BAD_PATH,
    MISSING,
    Node,
    compile_selector,
    has_required_fields,
    lookup,
    normalize,
    split_path,
)

__all__ = [
    "DEFAULT_INTERNAL_QUERY_LIMIT",
    "DEFAULT_TOTAL_QUERY_LIMIT",
    "Query",
    "QueryResult",
    "decode_document",
    "execute",
    "find",
    "parse_query",
]

DEFAULT_TOTAL_QUERY_LIMIT = 100000  # ledger.state.totalQueryLimit in Fabric's core.yaml
DEFAULT_INTERNAL_QUERY_LIMIT = 1000  # ledger.state.couchDBConfig.internalQueryLimit
COUCHDB_DEFAULT_LIMIT = 25  # mango.default_limit
MAX_BOOKMARK = 1 << 20
MAX_DEPTH = 64  # nesting of a query; deeper would only exhaust the matcher's recursion

_KNOWN_KEYS = (
    "selector",
    "use_index",
    "bookmark",
    "limit",
    "skip",
    "sort",
    "fields",
    "partition",
    "r",
    "conflicts",
    "stale",
    "update",
    "stable",
    "execution_stats",
)


@dataclass(frozen=True)
class Query:
    """A validated ``_find`` request."""

    selector: Node | None
    sort: tuple[str, ...]
    descending: bool
    skip: int
    limit: int
    fields: tuple[str, ...] | None
    use_index: tuple[str, ...]  # () or (ddoc,) or (ddoc, name)
    bookmark: str
    digest: str  # binds bookmarks to the selector and sort they were made for


class QueryResult(NamedTuple):
    rows: list[tuple[str, bytes]]
    bookmark: str
    warning: str


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _non_neg_int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise RichQueryError(
            "invalid_non_neg_integer",
            f"{_text(value)} is not an integer greater than or equal to zero",
        )
    return value


def parse_query(text: str | bytes, *, fabric: bool = True) -> Query:
    """Validate a query string; ``fabric=True`` applies Fabric's rewrite (``limit`` replaced,
    ``fields`` must be an array), ``False`` is a plain CouchDB ``_find`` body."""
    try:
        request = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise RichQueryError("bad_request", f"invalid query JSON: {exc}") from None
    if type(request) is not dict:
        raise RichQueryError(
            "bad_request", f"the query must be a JSON object, not {_type_word(request)}"
        )
    if _too_deep(request):
        raise RichQueryError("bad_request", f"the query nests deeper than {MAX_DEPTH} levels")
    if fabric and "fields" in request and type(request["fields"]) is not list:
        raise RichQueryError("bad_request", "fields definition must be an array")
    if "selector" not in request:
        raise RichQueryError("missing_required_key", "Missing required key: selector")
    selector = normalize(request["selector"])
    use_index = _use_index(request.get("use_index"))
    bookmark = request.get("bookmark")
    if bookmark is not None and type(bookmark) is not str:
        raise RichQueryError("invalid_bookmark", f"Invalid bookmark value: {_text(bookmark)}")
    limit = COUCHDB_DEFAULT_LIMIT
    if not fabric and "limit" in request:
        limit = _non_neg_int(request["limit"])
    skip = _non_neg_int(request.get("skip", 0))
    sort, descending = _sort(request.get("sort", []))
    fields = request.get("fields")
    if fields is not None:
        if type(fields) is not list or any(type(f) is not str for f in fields):
            raise RichQueryError(
                "invalid_fields", f"Fields must be an array of strings, not: {_text(fields)}"
            )
        for field in fields:
            split_path(field)
        fields = tuple(fields)
    for key in request:
        if key not in _KNOWN_KEYS:
            raise RichQueryError("invalid_key", f"Invalid key {key} for this request.")
    # Key order does not matter: Fabric re-marshals the query (sorted keys) before CouchDB.
    signature = json.dumps([request["selector"], list(sort), descending], sort_keys=True)
    digest = hashlib.sha256(signature.encode()).hexdigest()[:16]
    return Query(
        selector=selector,
        sort=sort,
        descending=descending,
        skip=skip,
        limit=limit,
        fields=fields,
        use_index=use_index,
        bookmark=bookmark or "",
        digest=digest,
    )


def _too_deep(value: Any) -> bool:
    level = [value]
    for _ in range(MAX_DEPTH):
        level = [
            child
            for item in level
            if type(item) in (dict, list)
            for child in (item.values() if type(item) is dict else item)
        ]
        if not level:
            return False
    return True


def _type_word(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _use_index(value: Any) -> tuple[str, ...]:
    if value is None or value == [] or value == "":
        return ()
    if type(value) is str:
        parts = value.removeprefix("_design/").split("/", 1)
    elif type(value) is list and 1 <= len(value) <= 2 and all(type(v) is str for v in value):
        parts = [value[0].removeprefix("_design/"), *value[1:]]
    else:
        raise RichQueryError("invalid_index_name", f"Invalid index name: {_text(value)}")
    return ("_design/" + parts[0], *parts[1:])


def _sort(value: Any) -> tuple[tuple[str, ...], bool]:
    if type(value) is not list:
        raise RichQueryError(
            "invalid_sort_json", f"Sort must be an array of sort specs, not: {_text(value)}"
        )
    fields: list[str] = []
    directions: set[str] = set()
    for spec in value:
        if type(spec) is str:
            field, direction = spec, "asc"
        elif type(spec) is dict and len(spec) == 1:
            ((field, direction),) = spec.items()
            if direction not in ("asc", "desc"):
                raise RichQueryError(
                    "invalid_sort_dir", f"Invalid sort direction: {_text(direction)}"
                )
        else:
            raise RichQueryError(
                "invalid_sort_json", f"Sort must be an array of sort specs, not: {_text(value)}"
            )
        if not field:
            raise RichQueryError("invalid_sort_field", f"Invalid sort field: {_text(spec)}")
        split_path(field)
        fields.append(field)
        directions.add(direction)
    if len(directions) > 1:
        raise RichQueryError(
            "unsupported_mixed_sort",
            "Sorts currently only support a single direction for all fields.",
        )
    return tuple(fields), directions == {"desc"}


# -- documents --------------------------------------------------------------------------------


def _go_number(text: str) -> int | float:
    # Fabric decodes values into Go maps: every number is a float64, re-encoded without a
    # fraction when integral (below 1e21). Out-of-range numbers make the value non-JSON.
    number = float(text)
    if math.isinf(number):
        raise ValueError("number out of range")
    if number.is_integer() and abs(number) < 1e21:
        return int(number)
    return number


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Go keeps the last of repeated member names, sqlite's json_extract the first: such a value
    # is not a document here, so that the SQL and Python paths cannot disagree about it.
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("repeated member name")
    return members


_DOCUMENT_DECODER = json.JSONDecoder(
    parse_int=_go_number,
    parse_float=_go_number,
    parse_constant=_reject_constant,
    object_pairs_hook=_unique_members,
)


def decode_document(value: bytes) -> dict[str, Any] | None:
    """The document a value is on a Fabric CouchDB peer, or None if it is not a JSON object."""
    if not value or value[:1] not in (b"{", b" ", b"\t", b"\n", b"\r"):
        return None
    try:
        doc = _DOCUMENT_DECODER.decode(value.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return doc if type(doc) is dict else None


# -- planning ---------------------------------------------------------------------------------


class Plan(NamedTuple):
    index: IndexDef | None  # None: CouchDB's special _all_docs index (order by _id)
    warning: str


_NO_INDEX = "No matching index found, create an index to optimize query time."


def plan_query(query: Query, indexes: Sequence[IndexDef]) -> Plan:
    """Choose the index CouchDB would use; a sort without a usable index is an error."""
    usable = [index for index in indexes if _usable(index, query)]
    warning = ""
    if query.use_index:
        named = [i for i in usable if (i.ddoc, i.name)[: len(query.use_index)] == query.use_index]
        if named:
            usable = named
        else:
            what = ", ".join(query.use_index)
            warning = f"{what} was not used because it is not a valid index for this query."
            # Partial-filter indexes are only ever used when named.
            usable = [i for i in usable if i.partial_filter is None]
    else:
        usable = [i for i in usable if i.partial_filter is None]
    if not usable:
        if query.sort and not (query.sort == ("_id",) and _has_id_condition(query.selector)):
            raise RichQueryError(
                "no_usable_index", "No index exists for this sort, try indexing by the sort fields."
            )
        return Plan(None, "\n".join(w for w in (warning, _NO_INDEX) if w))
    usable.sort(key=lambda i: (-_prefix_len(i, query), len(i.fields), i.ddoc, i.name))
    return Plan(usable[0], warning)


def _usable(index: IndexDef, query: Query) -> bool:
    columns = list(index.fields)
    required = [
        c for c in dict.fromkeys(columns) if c not in query.sort and c not in ("_id", "_rev")
    ]
    if not has_required_fields(query.selector, required):
        return False
    if not query.sort:
        return True
    fixed = _fields(query.selector, ("$eq",))
    while columns and columns[0] != query.sort[0]:
        if columns[0] not in fixed:
            return False
        columns.pop(0)
    return tuple(columns[: len(query.sort)]) == query.sort


def _prefix_len(index: IndexDef, query: Query) -> int:
    fields = _fields(query.selector, _RANGE)
    count = 0
    for column in index.fields:
        if column not in fields:
            break
        count += 1
    return count


_RANGE = ("$eq", "$gt", "$gte", "$lt", "$lte")


def _fields(node: Node | None, operators: tuple[str, ...]) -> set[str]:
    """Fields with a condition in ``operators`` among the top-level conditions."""
    return {
        name for name, arg in _top_level(node) if not name.startswith("$") and arg[0] in operators
    }


def _has_id_condition(node: Node | None) -> bool:
    return "_id" in _fields(node, _RANGE) or any(
        n[0] == "_id" and n[1][0] in ("$beginsWith", "$exists") for n in _top_level(node)
    )


def _top_level(node: Node | None) -> list[Node]:
    """The conditions at the top level, those of (nested) top-level ``$and``s included."""
    out: list[Node] = []
    stack = [] if node is None else [node]
    while stack:
        current = stack.pop()
        if current[0] == "$and":
            stack.extend(reversed(current[1]))
        else:
            out.append(current)
    return out


# -- execution --------------------------------------------------------------------------------


class _Row(NamedTuple):
    order: tuple
    key: str
    value: bytes
    doc: dict[str, Any]
    columns: list[Any] | None


def _matching_rows(query: Query, plan: Plan, docs: Iterable[tuple[str, bytes]]) -> list[_Row]:
    predicate = compile_selector(query.selector)
    index = plan.index
    segments = index.segments if index is not None else ()
    partial = compile_selector(index.partial_filter) if index and index.partial_filter else None
    rows = []
    for key, value in docs:
        doc = decode_document(value)
        if doc is None:
            continue
        doc["_id"] = key
        columns = None
        if index is not None:
            columns = [lookup(doc, path) for path in segments]
            if any(c is MISSING or c is BAD_PATH for c in columns):
                continue
            if partial is not None and not partial(doc):
                continue
        try:
            if not predicate(doc):
                continue
            order = _order(columns, key)
        except RecursionError:
            continue  # a value nested too deeply to collate is treated as no match
        rows.append(_Row(order, key, value, doc, columns))
    rows.sort(key=lambda row: row.order)
    return rows


def _order(columns: list[Any] | None, key: str) -> tuple:
    id_key = key.encode("utf-8", "surrogatepass")
    if columns is None:
        return (id_key,)
    return (tuple(collation_key(c) for c in columns), id_key)


def _encode_bookmark(query: Query, row: _Row) -> str:
    payload = _text({"q": query.digest, "c": row.columns, "id": row.key})
    return base64.urlsafe_b64encode(payload.encode("utf-8", "surrogatepass")).decode("ascii")


def _decode_bookmark(query: Query, plan: Plan, bookmark: str) -> tuple | None:
    if not bookmark:
        return None
    invalid = RichQueryError("invalid_bookmark", f"Invalid bookmark value: {_text(bookmark)}")
    if len(bookmark) > MAX_BOOKMARK:
        raise invalid
    try:
        payload = json.loads(base64.urlsafe_b64decode(bookmark.encode("ascii")))
        digest, columns, key = payload["q"], payload["c"], payload["id"]
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeError, RecursionError):
        raise invalid from None
    if digest != query.digest or type(key) is not str or _too_deep(columns):
        raise invalid
    if (plan.index is None) != (columns is None) or (
        columns is not None
        and (type(columns) is not list or len(columns) != len(plan.index.fields))
    ):
        raise invalid
    return _order(columns, key)


def _run(
    query: Query,
    docs: Iterable[tuple[str, bytes]],
    indexes: Sequence[IndexDef],
    bookmark: str,
    batches: Iterable[int],
) -> QueryResult:
    plan = plan_query(query, indexes)
    position = _decode_bookmark(query, plan, bookmark)
    rows = _matching_rows(query, plan, docs)
    orders = [row.order for row in rows]
    if query.descending:
        rows.reverse()
        cursor = 0 if position is None else len(rows) - bisect.bisect_left(orders, position)
    else:
        cursor = 0 if position is None else bisect.bisect_right(orders, position)
    out: list[_Row] = []
    last: _Row | None = None
    for batch_limit in batches:
        # Each batch is one CouchDB request: skip applies again, then up to batch_limit rows;
        # the bookmark is the last row emitted or skipped.
        skipped = rows[cursor : cursor + query.skip]
        cursor += len(skipped)
        if skipped:
            last = skipped[-1]
        batch = rows[cursor : cursor + batch_limit]
        cursor += len(batch)
        if batch:
            last = batch[-1]
        out.extend(batch)
        if len(batch) < batch_limit:
            break
    next_bookmark = _encode_bookmark(query, last) if last is not None else bookmark or "nil"
    results = [(row.key, _project(row, query.fields)) for row in out]
    return QueryResult(results, next_bookmark, plan.warning)


def find(
    query: Query, docs: Iterable[tuple[str, bytes]], indexes: Sequence[IndexDef] = ()
) -> QueryResult:
    """One CouchDB ``_find`` request (honours the request's own ``limit`` and ``bookmark``)."""
    return _run(query, docs, indexes, query.bookmark, [query.limit] if query.limit else [])


def execute(
    query: Query,
    docs: Iterable[tuple[str, bytes]],
    indexes: Sequence[IndexDef] = (),
    *,
    page_size: int = 0,
    bookmark: str = "",
    total_limit: int = DEFAULT_TOTAL_QUERY_LIMIT,
    internal_limit: int = DEFAULT_INTERNAL_QUERY_LIMIT,
) -> QueryResult:
    """A Fabric rich query (``page_size == 0``) or one page of a paginated one.

    The returned bookmark continues the query; ``page_size`` at or above ``total_limit`` is
    capped to it, as in Fabric.
    """
    if type(page_size) is not int or page_size < 0:
        raise RichQueryError(
            "bad_request", f"page size must be a non-negative int, got {page_size!r}"
        )
    if total_limit <= 0 or internal_limit <= 0:
        raise ValueError("query limits must be positive")
    wanted = page_size if 0 < page_size < total_limit else total_limit
    return _run(
        query, docs, indexes, bookmark or query.bookmark, _batch_sizes(wanted, internal_limit)
    )


def _batch_sizes(total: int, internal: int) -> Iterable[int]:
    while total > 0:
        size = min(total, internal)
        yield size
        total -= size


# -- fields -----------------------------------------------------------------------------------


def _project(row: _Row, fields: tuple[str, ...] | None) -> bytes:
    if fields is None:
        return row.value
    out: dict[str, Any] = {}
    for field in fields:
        path = split_path(field)
        found = lookup(row.doc, path)
        if found is MISSING or found is BAD_PATH or path == ("_id",):
            continue  # Fabric strips _id (and ~version) from what it returns
        target = out
        for segment in path[:-1]:
            nested = target.setdefault(segment, {})
            if type(nested) is not dict:
                break
            target = nested
        else:
            target[path[-1]] = found
    return go_marshal(out)


def go_marshal(value: Any) -> bytes:
    """JSON as Go's ``encoding/json`` writes a decoded value: sorted keys, no spaces, HTML
    characters and U+2028/U+2029 escaped, float64 formatting."""
    return _go(value).encode("utf-8", "surrogatepass")


def _go(value: Any) -> str:
    if type(value) is dict:
        items = sorted(value.items(), key=lambda item: item[0].encode("utf-8", "surrogatepass"))
        return "{" + ",".join(f"{_go_string(k)}:{_go(v)}" for k, v in items) + "}"
    if type(value) is list:
        return "[" + ",".join(_go(v) for v in value) + "]"
    if type(value) is str:
        return _go_string(value)
    if type(value) is float:
        if 1e-6 <= abs(value) < 1e21:
            text = repr(value)
            if "e" in text:
                text = format(value, "f").rstrip("0").rstrip(".")
            return text
        mantissa, _, exponent = repr(value).partition("e")
        sign = "-" if exponent.startswith("-") else "+"
        return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"
    return json.dumps(value)


def _go_string(text: str) -> str:
    out = json.dumps(text, ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        out = out.replace(char, escape)
    return out.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
