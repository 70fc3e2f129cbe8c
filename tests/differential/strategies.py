"""Hypothesis strategies for documents and Mango queries, shared by the differential tests.

The generated space is where CouchDB's Mango (our reference) and pouchdb-find agree; every
constraint below exists because of a documented pouchdb-find deviation, not to avoid a case
our engine gets wrong (see the table in /work/shared/reference/privdata-richquery.md §8):

* strings use ``[a-c0-2]`` only: ICU's root collation (CouchDB) and JavaScript's code-unit order
  (PouchDB) agree there; document ids are ``d00``..``d99``.
* ``a``, ``b``, ``o`` and ``o.x`` are always present and ``a``, ``o.x`` never null (PouchDB's
  ``$ne``/``$nin``/``$not`` match missing fields and its ``$nin`` never matches null); negations
  only use ``a`` and ``o.x``; ``o`` is always an object (PouchDB returns a falsy parent for
  ``o.x``).
* ``t`` is always an array of scalars and ``u`` an array of ``{"x": scalar}`` objects (PouchDB
  picks the ``$elemMatch`` mode from the first element's type).
* no array argument to ``$ne`` (PouchDB then behaves like ``$nin``: ``{"$ne": [false]}``
  does not match ``false``).
* no explicit ``$and`` (PouchDB merges its members per field), no ``$or: []`` / ``$all: []``, no
  ``null`` in ``$in``, no floats in ``$all``, no implicit array equality, no ``$eq: {}``.
* a sort is on ``a`` or ``b`` with an index on it (PouchDB keeps documents lacking the field).
* ``fields`` are never empty (PouchDB returns ``{}``; Fabric, which always adds ``_id``, too,
  but CouchDB itself returns whole documents).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

ALPHABET = "abc012"
strings = st.text(alphabet=ALPHABET, max_size=3)
numbers = st.one_of(st.integers(min_value=-4, max_value=6), st.sampled_from([0.5, -1.5, 2.25, 1e3]))
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
non_null_scalars = st.one_of(st.booleans(), numbers, strings)
scalar_arrays = st.lists(non_null_scalars, max_size=3)
small_objects = st.fixed_dictionaries({"x": scalars}, optional={"y": scalars})
values = st.one_of(scalars, scalar_arrays, small_objects)


@st.composite
def documents(draw: Any) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=0, max_value=14))
    ids = draw(
        st.lists(st.integers(0, 99), min_size=count, max_size=count, unique=True).map(sorted)
    )
    docs = []
    for number in ids:
        doc: dict[str, Any] = {
            "_id": f"d{number:02d}",
            "a": draw(st.one_of(non_null_scalars, scalar_arrays)),
            "b": draw(values),
            "o": draw(st.fixed_dictionaries({"x": non_null_scalars}, optional={"y": scalars})),
            "t": draw(scalar_arrays),
            "u": draw(st.lists(st.fixed_dictionaries({"x": non_null_scalars}), max_size=3)),
        }
        if draw(st.booleans()):
            doc["c"] = draw(values)
        docs.append(doc)
    return docs


COMPARISON_OPS = ["$eq", "$gt", "$gte", "$lt", "$lte"]
TYPES = ["null", "boolean", "number", "string", "array", "object"]
regexes = st.builds(
    lambda head, body, tail: head + body + tail,
    st.sampled_from(["", "^"]),
    st.text(alphabet="abc01.", min_size=1, max_size=3),
    st.sampled_from(["", "$", "*"]),
)


def _condition(field: str) -> Any:
    """A condition usable on ``field`` in both implementations."""
    options = [
        st.builds(lambda op, v: {op: v}, st.sampled_from(COMPARISON_OPS), values),
        st.builds(lambda v: {"$in": v}, st.lists(non_null_scalars, min_size=0, max_size=3)),
        st.builds(lambda v: {"$exists": v}, st.booleans()),
        st.builds(lambda v: {"$type": v}, st.sampled_from(TYPES)),
        st.builds(lambda v: {"$size": v}, st.integers(0, 3)),
        st.builds(lambda d, r: {"$mod": [d, r]}, st.integers(1, 3), st.integers(-2, 2)),
        st.builds(lambda v: {"$regex": v}, regexes),
        st.builds(
            lambda v: {"$all": v},
            st.lists(st.one_of(st.booleans(), st.integers(-4, 6), strings), min_size=1, max_size=2),
        ),
        st.builds(lambda v: {"$elemMatch": v}, _element_ops()),
        st.builds(lambda v: {"$allMatch": v}, _element_ops()),
        non_null_scalars,  # implicit $eq
    ]
    if field in NEGATABLE:
        options += [
            st.builds(lambda v: {"$ne": v}, st.one_of(scalars, small_objects)),
            st.builds(lambda v: {"$nin": v}, st.lists(non_null_scalars, max_size=3)),
        ]
    if field == "u":
        options = [
            st.builds(lambda v: {"$elemMatch": {"x": v}}, _element_ops()),
            st.builds(lambda v: {"$allMatch": {"x": v}}, _element_ops()),
            st.builds(lambda v: {"$size": v}, st.integers(0, 3)),
        ]
    if field == "_id":
        options = [
            st.builds(
                lambda op, v: {op: v},
                st.sampled_from(COMPARISON_OPS),
                st.sampled_from(["d", "d1", "d50", "d99", "e"]),
            )
        ]
    return st.one_of(options)


def _element_ops() -> Any:
    return st.one_of(
        st.builds(lambda op, v: {op: v}, st.sampled_from(COMPARISON_OPS), non_null_scalars),
        st.builds(lambda v: {"$type": v}, st.sampled_from(TYPES)),
    )


FIELDS = ["a", "b", "c", "o.x", "o.y", "t", "u", "_id"]
NEGATABLE = ["a", "o.x"]


@st.composite
def field_conditions(draw: Any, fields: list[str] = FIELDS) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(fields), min_size=1, max_size=2, unique=True))
    return {field: draw(_condition(field)) for field in chosen}


@st.composite
def selectors(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["fields", "fields", "or", "not", "nor", "empty"]))
    if kind == "empty":
        return {}
    if kind == "fields":
        return draw(field_conditions())
    if kind == "or":
        return {"$or": draw(st.lists(field_conditions(), min_size=1, max_size=3))}
    negatable = field_conditions(NEGATABLE)
    if kind == "not":
        return {"$not": draw(negatable)}
    return {"$nor": draw(st.lists(negatable, min_size=1, max_size=2))}


@st.composite
def queries(draw: Any) -> dict[str, Any]:
    query: dict[str, Any] = {"selector": dict(draw(selectors())), "limit": 1000}
    # PouchDB's planner uses an index only for a field named at the selector's top level with
    # an operator it can index; "$exists": true on an otherwise unconstrained field is one.
    free = [field for field in ("a", "b") if field not in query["selector"]]
    sort_field = draw(st.sampled_from([None, *free]))
    if sort_field is not None:
        query["selector"][sort_field] = {"$exists": True}
        direction = draw(st.sampled_from(["asc", "desc"]))
        query["sort"] = [{sort_field: direction}]
        query["skip"] = draw(st.integers(0, 3))
        query["limit"] = draw(st.integers(1, 20))
    if draw(st.integers(0, 3)) == 0:
        query["fields"] = draw(
            st.lists(
                st.sampled_from(["a", "b", "c", "o.x", "o.y", "t"]),
                min_size=1,
                max_size=3,
                unique=True,
            )
        )
    return query
