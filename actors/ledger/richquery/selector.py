"""Mango selectors: validation, normalization and matching (CouchDB: ``mango_selector``).

A selector is normalized the way CouchDB does it, in three passes: operators (implicit ``$and``
of several members, implicit ``$eq`` of a bare value, argument checks), field names (nested
objects become dotted paths, ``$and``/``$or``/``$not``/``$nor`` given under a field are pushed
out to the selector level) and negations (``$not``/``$nor`` pushed down to the conditions by De
Morgan, so ``{"$not": {"a": 1}}`` becomes ``a $ne 1``, which, as in CouchDB, never matches a
document lacking ``a``). The normalized form is a tree of tuples:

* ``("$and" | "$or", [node, ...])``, ``("$not", node)``, ``("$nor", [node, ...])`` (the last
  two only inside ``$elemMatch``/``$allMatch`` bodies, which CouchDB does not push negations into)
* ``(path, condition)`` with ``path`` the dotted field name as written (``""`` = the value
  itself, inside element bodies) and ``condition`` one of ``(op, argument)``,
  ``("$not", condition)``, ``("$elemMatch" | "$allMatch" | "$keyMapMatch", node)``.

Besides the operators Fabric's documentation names, CouchDB 3.4's ``$beginsWith`` and
``$keyMapMatch`` are accepted; ``$text`` (text indexes) and the geo operators are refused.

:func:`compile_selector` turns that tree into a predicate over a decoded JSON document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .collation import collation_key, raw_key, term_equal, type_name
from .errors import RichQueryError

__all__ = [
    "BAD_PATH",
    "MISSING",
    "Node",
    "compile_selector",
    "has_required_fields",
    "lookup",
    "normalize",
    "split_path",
]

Node = tuple
Predicate = Callable[[Any], bool]

_COMPARISONS = ("$eq", "$ne", "$lt", "$lte", "$gt", "$gte")
_NEGATED = {
    "$lt": "$gte",
    "$lte": "$gt",
    "$eq": "$ne",
    "$ne": "$eq",
    "$gte": "$lt",
    "$gt": "$lte",
    "$in": "$nin",
    "$nin": "$in",
}
_UNSUPPORTED = ("$where", "$geoWithin", "$geoIntersects", "$near", "$nearSphere", "$text")
MISSING = object()  # a path that does not exist in the document
BAD_PATH = object()  # a path that runs into a scalar or past an array's end


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _bad_arg(op: str, arg: Any) -> RichQueryError:
    return RichQueryError("bad_arg", f"Bad argument for operator {op}: {_json_text(arg)}")


def _is_int(value: Any) -> bool:
    return type(value) is int


# -- pass 1: operators ------------------------------------------------------------------------


def _norm_ops(sel: Any) -> Node:
    if type(sel) is not dict or not sel:
        return ("$eq", sel)
    if len(sel) > 1:
        return ("$and", [_norm_ops({name: value}) for name, value in sel.items()])
    ((name, arg),) = sel.items()
    if not name.startswith("$"):
        return (name, _norm_ops(arg))
    if name in ("$and", "$or", "$nor"):
        if type(arg) is not list:
            raise _bad_arg(name, arg)
        return (name, [_norm_ops(item) for item in arg])
    if name in ("$not", "$elemMatch", "$allMatch"):
        if type(arg) is not dict:
            raise _bad_arg(name, arg)
        return (name, _norm_ops(arg))
    if name in _COMPARISONS:
        return (name, arg)
    if name in ("$in", "$nin", "$all"):
        if type(arg) is not list:
            raise _bad_arg(name, arg)
        return (name, arg)
    if name == "$exists":
        if type(arg) is not bool:
            raise _bad_arg(name, arg)
        return (name, arg)
    if name == "$type":
        if type(arg) is not str:
            raise _bad_arg(name, arg)
        return (name, arg)
    if name == "$size":
        if not _is_int(arg) or arg < 0:
            raise _bad_arg(name, arg)
        return (name, arg)
    if name == "$mod":
        # CouchDB accepts a zero divisor and then fails inside the query; refuse it up front.
        if type(arg) is not list or len(arg) != 2 or not all(map(_is_int, arg)) or arg[0] == 0:
            raise _bad_arg(name, arg)
        return (name, arg)
    if name == "$keyMapMatch":
        if type(arg) is not dict:
            raise _bad_arg(name, arg)
        return (name, _norm_ops(arg))
    if name == "$beginsWith":
        if type(arg) is not str:
            raise RichQueryError("invalid_operator", f"Invalid operator: {name}")
        return (name, arg)
    if name == "$regex":
        if type(arg) is not str:
            raise RichQueryError("invalid_operator", f"Invalid operator: {name}")
        try:
            # Byte-oriented like CouchDB's PCRE without the unicode flag: '.' is one byte and
            # \w, \d are ASCII-only.
            compiled = re.compile(arg.encode("utf-8", "surrogatepass"))
        except (re.error, OverflowError, RecursionError):
            raise _bad_arg(name, arg) from None
        return (name, compiled)
    if name in _UNSUPPORTED:
        raise RichQueryError("not_supported", f"Unsupported operator: {name}")
    raise RichQueryError("invalid_operator", f"Invalid operator: {name}")


# -- pass 2: field names ----------------------------------------------------------------------


def _norm_fields(node: Node, path: str) -> Node:
    name, arg = node
    if name in ("$and", "$or", "$nor"):
        return (name, [_norm_fields(item, path) for item in arg])
    if name == "$not":
        return (name, _norm_fields(arg, path))
    if name in ("$elemMatch", "$allMatch", "$keyMapMatch"):
        return (_checked_path(path), (name, _norm_fields(arg, "")))
    if name.startswith("$"):
        return (_checked_path(path), node)
    return _norm_fields(arg, f"{path}.{name}" if path else name)


def _checked_path(path: str) -> str:
    split_path(path)
    return path


# -- pass 3: negations ------------------------------------------------------------------------


def _norm_negations(node: Node) -> Node:
    name, arg = node
    if name == "$not":
        return _negate(arg)
    if name == "$nor":
        return ("$and", [_negate(item) for item in arg])
    if name in ("$and", "$or"):
        return (name, [_norm_negations(item) for item in arg])
    return node


def _negate(node: Node) -> Node:
    name, arg = node
    if name == "$not":
        return _norm_negations(arg)
    if name == "$nor":
        return ("$or", [_norm_negations(item) for item in arg])
    if name == "$and":
        return ("$or", [_negate(item) for item in arg])
    if name == "$or":
        return ("$and", [_negate(item) for item in arg])
    if name in _NEGATED:
        return (_NEGATED[name], arg)
    if name == "$exists":
        return (name, not arg)
    if name.startswith("$"):
        return ("$not", node)
    return (name, _negate(arg))


def normalize(selector: Any) -> Node | None:
    """Validate and normalize a selector; ``None`` for the empty selector (matches all)."""
    if type(selector) is not dict:
        raise RichQueryError(
            "invalid_selector_json", f"Selector must be a JSON object, not: {_json_text(selector)}"
        )
    if not selector:
        return None
    node = _norm_negations(_norm_fields(_norm_ops(selector), ""))
    # Like CouchDB, only a condition without a field at the top is refused; deeper down (as
    # in {"$and": [{}, ...]}) an empty path is the document itself, which equals no literal.
    if node[0] == "":
        raise RichQueryError("invalid_selector", "One or more conditions is missing a field name.")
    return node


# -- field paths ------------------------------------------------------------------------------

_SPLIT = re.compile(r"(?<!\\)\.")


def split_path(path: str) -> tuple[str, ...]:
    """``a.b\\.c`` -> ``("a", "b.c")``: dots split unless escaped; backslashes then dropped."""
    if not path:
        return ()
    parts = tuple(part.replace("\\", "") for part in _SPLIT.split(path))
    if any(not part for part in parts):
        raise RichQueryError("invalid_field_name", f"Invalid field name: {path}")
    return parts


_INDEX = re.compile(r"[+-]?[0-9]+")


def lookup(value: Any, segments: tuple[str, ...]) -> Any:
    """The value at ``segments``, or :data:`MISSING` / :data:`BAD_PATH` (``get_field``)."""
    for segment in segments:
        kind = type(value)
        if kind is dict:
            value = value.get(segment, MISSING)
            if value is MISSING:
                return MISSING
        elif kind is list:
            if not _INDEX.fullmatch(segment):
                return BAD_PATH
            position = int(segment)
            if not 0 <= position < len(value):
                return BAD_PATH
            value = value[position]
        else:
            return BAD_PATH
    return value


# -- matching ---------------------------------------------------------------------------------


def compile_selector(node: Node | None) -> Predicate:
    """A predicate over a decoded document (with its ``_id``) for a normalized selector."""
    if node is None:
        return lambda doc: True
    return _compile(node)


def _compile(node: Node) -> Predicate:
    name, arg = node
    if name == "$and":
        parts = [_compile(item) for item in arg]
        if len(parts) == 2:  # the common implicit $and of two fields, without a generator
            first, second = parts
            return lambda value: first(value) and second(value)
        return lambda value: all(part(value) for part in parts)
    if name == "$or":
        if not arg:
            return lambda value: True
        parts = [_compile(item) for item in arg]
        return lambda value: any(part(value) for part in parts)
    if name == "$nor":
        parts = [_compile(item) for item in arg]
        return lambda value: not any(part(value) for part in parts)
    if name == "$not":
        inner = _compile(arg)
        return lambda value: not inner(value)
    segments = split_path(name)
    condition = _compile_condition(arg, raw=name == "_id")
    absent_ok = arg == ("$exists", False)

    def field(value: Any) -> bool:
        found = lookup(value, segments)
        if found is MISSING:
            return absent_ok
        if found is BAD_PATH:
            return False
        return condition(found)

    return field


def _compile_condition(cond: Node, raw: bool) -> Predicate:
    op, arg = cond
    key = raw_key if raw else collation_key
    if op == "$not":
        inner = _compile_condition(arg, raw)
        return lambda value: not inner(value)
    if op == "$elemMatch":
        sub = _compile(arg)
        return lambda value: type(value) is list and any(sub(item) for item in value)
    if op == "$allMatch":
        sub = _compile(arg)
        return lambda value: type(value) is list and bool(value) and all(map(sub, value))
    if op == "$keyMapMatch":
        sub = _compile(arg)
        return lambda value: type(value) is dict and any(map(sub, value))
    if op == "$beginsWith":
        prefix = arg.encode("utf-8", "surrogatepass")
        return lambda value: (
            type(value) is str and value.encode("utf-8", "surrogatepass").startswith(prefix)
        )
    if op in _COMPARISONS:
        target = key(arg)
        if op == "$eq":
            return lambda value: key(value) == target
        if op == "$ne":
            return lambda value: key(value) != target
        if op == "$lt":
            return lambda value: key(value) < target
        if op == "$lte":
            return lambda value: key(value) <= target
        if op == "$gt":
            return lambda value: key(value) > target
        return lambda value: key(value) >= target
    if op in ("$in", "$nin"):
        targets = {key(item) for item in arg}

        def is_in(value: Any) -> bool:
            if type(value) is list:
                return any(key(item) in targets for item in value)
            return key(value) in targets

        if op == "$in":
            return is_in
        return lambda value: not is_in(value)
    if op == "$exists":
        return lambda value: arg
    if op == "$type":
        return lambda value: type_name(value) == arg
    if op == "$size":
        return lambda value: type(value) is list and len(value) == arg
    if op == "$mod":
        divisor, remainder = arg

        def mod(value: Any) -> bool:
            if type(value) is not int:
                return False
            rem = abs(value) % abs(divisor)  # Erlang rem: the sign follows the dividend
            return (-rem if value < 0 else rem) == remainder

        return mod
    if op == "$regex":
        return lambda value: (
            type(value) is str and arg.search(value.encode("utf-8", "surrogatepass")) is not None
        )
    if op == "$all":
        whole = arg[0] if len(arg) == 1 and type(arg[0]) is list else None

        def all_of(value: Any) -> bool:
            if not arg or type(value) is not list:
                return False
            if all(any(term_equal(a, item) for item in value) for a in arg):
                return True
            return whole is not None and term_equal(whole, value)

        return all_of
    raise RichQueryError("invalid_operator", f"Invalid operator: {op}")


# -- planning helpers (CouchDB: has_required_fields, is_constant_field) -----------------------


def has_required_fields(node: Node | None, required: list[str]) -> bool:
    """Whether every matching document must have all of ``required`` (index usability)."""
    if not required:
        return True
    if node is None:
        return False
    return not _remaining([node], list(required))


def _remaining(nodes: list[Node], required: list[str]) -> list[str]:
    for name, arg in nodes:
        if not required:
            return []
        if name == "$and":
            required = _remaining(arg, required)
        elif name == "$or" and arg:
            # (CouchDB also takes an empty $or, which matches everything, as requiring every
            # field, and so drops documents lacking an index column; we do not.)
            left: set[str] = set()
            for item in arg:
                left.update(_remaining([item], required))
            required = sorted(left)
        elif name.startswith("$"):
            continue
        elif arg != ("$exists", False) and name in required:
            required = [field for field in required if field != name]
    return required
