"""Rich queries: CouchDB's Mango query language over the embedded state database.

Fabric counterpart: ``core/ledger/kvledger/txmgmt/statedb/statecouchdb`` (with CouchDB 3.4 as
the reference for Mango itself). Modules: :mod:`.collation` (CouchDB's order of JSON values),
:mod:`.selector` (normalize and match selectors), :mod:`.indexes` (index definitions from a
chaincode package), :mod:`.query` (plan, execute, paginate), :mod:`.sqlite` (the same queries
narrowed by SQL over a sqlite state table, with expression indexes).
"""

from .errors import RichQueryError
from .indexes import INDEX_DIR, IndexDef, IndexDefinitionError, parse_index_definition
from .query import (
    DEFAULT_INTERNAL_QUERY_LIMIT,
    DEFAULT_TOTAL_QUERY_LIMIT,
    Query,
    QueryResult,
    decode_document,
    execute,
    find,
    parse_query,
)

__all__ = [
    "DEFAULT_INTERNAL_QUERY_LIMIT",
    "DEFAULT_TOTAL_QUERY_LIMIT",
    "INDEX_DIR",
    "IndexDef",
    "IndexDefinitionError",
    "Query",
    "QueryResult",
    "RichQueryError",
    "decode_document",
    "execute",
    "find",
    "parse_index_definition",
    "parse_query",
]
