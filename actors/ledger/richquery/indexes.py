"""CouchDB index definitions from a chaincode package (Fabric: ``internal/ccmetadata``).

A package carries one index per file under ``META-INF/statedb/couchdb/indexes/*.json`` in
Fabric's format: ``{"index": {"fields": [...], "partial_filter_selector": {...}?},
"ddoc": "...", "name": "...", "type": "json"}``; a field is ``"a.b"`` or ``{"a.b": "asc"}``.
:func:`parse_index_definition` validates one file as Fabric's packaging validator and CouchDB's
``_index`` endpoint do, and returns an :class:`IndexDef` the planner can use.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..errors import LedgerError
from .selector import Node, normalize, split_path

__all__ = ["INDEX_DIR", "IndexDef", "IndexDefinitionError", "parse_index_definition"]

INDEX_DIR = "META-INF/statedb/couchdb/indexes/"


class IndexDefinitionError(LedgerError):
    """An index file that Fabric (or CouchDB) would refuse."""


@dataclass(frozen=True)
class IndexDef:
    """One JSON index: its design document, name and columns (dotted field paths)."""

    ddoc: str  # always "_design/<name>"
    name: str
    fields: tuple[str, ...]
    partial_filter: Node | None = None

    @property
    def segments(self) -> tuple[tuple[str, ...], ...]:
        return tuple(split_path(field) for field in self.fields)


_TOP_KEYS = {"index", "ddoc", "name", "type"}


def parse_index_definition(data: bytes | str, filename: str = "<index>") -> IndexDef:
    """Validate one index file; raises :class:`IndexDefinitionError` with Fabric's wording."""

    def invalid(reason: str) -> IndexDefinitionError:
        return IndexDefinitionError(
            f"Index metadata file [{filename}] is not a valid index definition: {reason}"
        )

    try:
        definition = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexDefinitionError(
            f"Index metadata file [{filename}] is not a valid JSON: {exc}"
        ) from None
    if type(definition) is not dict:
        raise invalid("an index definition must be a JSON object")
    for key in definition:
        if key not in _TOP_KEYS:
            raise invalid(f"Invalid field name: {key}")
    if definition.get("type", "json") != "json":
        raise invalid("Index type must be json")
    index = definition.get("index")
    if type(index) is not dict or "fields" not in index:
        raise invalid('Index definition must include a "fields" definition')
    for key in index:
        if key not in ("fields", "partial_filter_selector"):
            raise invalid(f"Invalid field name: {key}")
    fields = index["fields"]
    if type(fields) is not list or not fields:
        raise invalid("Expecting a JSON array of fields")
    columns = tuple(_column(field, invalid) for field in fields)
    if len(set(columns)) != len(columns):
        raise invalid("Index fields must be unique")
    partial = None
    if "partial_filter_selector" in index:
        try:
            partial = normalize(index["partial_filter_selector"])
        except LedgerError as exc:
            raise invalid(f"partial_filter_selector: {exc}") from None
    digest = hashlib.sha1(json.dumps(index, sort_keys=True).encode()).hexdigest()
    ddoc = _name(definition.get("ddoc", digest), "ddoc", invalid)
    name = _name(definition.get("name", digest), "name", invalid)
    if not ddoc.startswith("_design/"):
        ddoc = "_design/" + ddoc
    return IndexDef(ddoc=ddoc, name=name, fields=columns, partial_filter=partial)


def _column(field: Any, invalid: Any) -> str:
    if type(field) is dict and len(field) == 1:
        ((path, direction),) = field.items()
        if type(direction) is not str or direction.lower() not in ("asc", "desc"):
            raise invalid(f"Sort must be asc or desc: {json.dumps(field)}")
    else:
        path = field
    if type(path) is not str or not path:
        raise invalid(f"Invalid index field: {json.dumps(field)}")
    try:
        split_path(path)
    except LedgerError as exc:
        raise invalid(str(exc)) from None
    return path


def _name(value: Any, what: str, invalid: Any) -> str:
    if type(value) is not str or not value or value == "_design/":
        raise invalid(f"{what} must be a non-empty string")
    return value
