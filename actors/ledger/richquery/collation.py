"""CouchDB's collation of JSON values, as sort keys (CouchDB: ``couch_ejson_compare``).

Type order: ``null < false < true < numbers < strings < arrays < objects``. Numbers compare by
value (``1 == 1.0``). Strings compare with ICU's root-locale collator at its default (tertiary)
strength, as CouchDB does: ``"a" < "A" < "aa" < "b"``, punctuation before digits before
letters, ``"10" < "9"``, and strings that differ only by completely ignorable code points or
canonical equivalence are equal. We use the ICU library bundled with the ``pyicu-wheels``
package (ICU 77 today); CouchDB uses the libicu of its build (ICU 72 in Debian 12 based images),
so the order of rare scripts or new code points may differ between ICU versions.
Arrays compare element-wise (a prefix sorts first); objects member by member, key then value,
in bytewise key order: Fabric stores documents and query literals through Go maps, so members
are always in that order on a Fabric peer.

``_id`` is compared with Erlang's term order instead (``cmp_raw``): strings bytewise, and
numbers < atoms (``false < null < true``) < objects < arrays < strings.
"""

from __future__ import annotations

import functools
from typing import Any

import icu

__all__ = ["collation_key", "compare", "raw_key", "string_key", "term_equal", "type_name"]

_COLLATOR = icu.Collator.createInstance(icu.Locale.getRoot())


@functools.lru_cache(maxsize=65536)
def string_key(text: str) -> bytes:
    """ICU root-collator sort key: bytes that compare as the strings collate."""
    return _COLLATOR.getSortKey(text)


def collation_key(value: Any) -> tuple:
    """A key whose Python order is CouchDB's collation order of JSON values."""
    if value is None:
        return (0,)
    if value is False:
        return (1,)
    if value is True:
        return (2,)
    kind = type(value)
    if kind is int or kind is float:
        return (3, value)
    if kind is str:
        return (4, string_key(value))
    if kind is list:
        return (5, tuple(collation_key(item) for item in value))
    if kind is dict:
        return (
            6,
            tuple(
                (string_key(name), collation_key(value[name])) for name in sorted(value, key=_utf8)
            ),
        )
    raise TypeError(f"not a JSON value: {value!r}")


def compare(a: Any, b: Any) -> int:
    """-1, 0 or 1 as ``a`` collates before, equal to or after ``b``."""
    ka, kb = collation_key(a), collation_key(b)
    return (ka > kb) - (ka < kb)


def raw_key(value: Any) -> tuple:
    """Erlang term order, which Mango uses for conditions on ``_id``."""
    if value is None:
        return (1, "null")
    if value is True or value is False:
        return (1, "true" if value else "false")
    kind = type(value)
    if kind is int or kind is float:
        return (0, value)
    if kind is dict:
        return (2, tuple((_utf8(k), raw_key(value[k])) for k in sorted(value, key=_utf8)))
    if kind is list:
        return (3, tuple(raw_key(item) for item in value))
    if kind is str:
        return (4, _utf8(value))
    raise TypeError(f"not a JSON value: {value!r}")


def term_equal(a: Any, b: Any) -> bool:
    """Exact equality of JSON terms (``$all``): ``1`` and ``1.0`` differ, strings bytewise."""
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(term_equal(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return a.keys() == b.keys() and all(term_equal(a[k], b[k]) for k in a)
    return a == b


def type_name(value: Any) -> str:
    """Mango's ``$type`` name of a JSON value."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "boolean"
    kind = type(value)
    if kind is int or kind is float:
        return "number"
    if kind is str:
        return "string"
    if kind is list:
        return "array"
    return "object"


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")
