"""Private data in the ledger: where hashes and values live, how the rwsets are built, expiry.

Fabric counterparts: ``core/ledger/kvledger/txmgmt/privacyenabledstate`` (the derived
namespaces ``<ns>$$h<coll>`` for key hashes and ``<ns>$$p<coll>`` for private values, kept in
the same state database as public data), ``rwsetutil`` (``CollHashedRwSet``,
``CollPvtRwSet``: SHA-256 of keys and values, the private ``KVRWSet`` and its hash),
``pvtstatepurgemgmt`` (blockToLive expiry). Fabric's ``core/transientstore`` (private write
sets between endorsement and commit) is a table of the ledger's storage, used through
:meth:`~actors.ledger.ledger.Ledger.persist_private`. Private data never enters the history
database, as in Fabric.

Layout in the versioned state (one state, so one snapshot sees public, hashed and private data
at one height, and one sqlite transaction writes all of a block):

* hashed state, on every peer: namespace ``<ns>$$h<coll>``, key = hex SHA-256 of the key,
  value = SHA-256 of the value, the version of the write and the key's metadata;
* private state, on member peers only: namespace ``<ns>$$p<coll>``, the plain key and value at
  the same version (so range and rich queries over a collection are ordinary ones there);
* expiry schedule: namespace ``$$btl``, key ``<expiry block>\\x00<ns>\\x00<coll>\\x00<key hash>``,
  value the plain key (empty when this peer never had it), version the write's. A chaincode
  name cannot contain ``$``, so none of these can clash with a chaincode's namespace.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import NamedTuple, Protocol

from google.protobuf.message import DecodeError

from protos.ledger.rwset.kvrwset import kv_rwset_pb2

from .errors import LedgerError
from .model import Height, Metadata

__all__ = [
    "EXPIRY_NS",
    "CollectionRules",
    "PvtWrite",
    "PvtWrites",
    "all_eligible",
    "expiry_key",
    "hashed_ns",
    "key_hash",
    "parse_pvt_rwset",
    "private_ns",
    "pvt_rwset_bytes",
    "sha256",
    "version_text",
]

EXPIRY_NS = "$$btl"


def hashed_ns(namespace: str, collection: str) -> str:
    return f"{namespace}$$h{collection}"


def private_ns(namespace: str, collection: str) -> str:
    return f"{namespace}$$p{collection}"


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def expiry_key(expiry: int, namespace: str, collection: str, hashed_key: str) -> str:
    return f"{expiry:020d}\x00{namespace}\x00{collection}\x00{hashed_key}"


def version_text(version: Height | None) -> str:
    """Fabric's ``version.Height.String()`` (``<nil>`` for none)."""
    if version is None:
        return "<nil>"
    return f"{{BlockNum: {version.block_num}, TxNum: {version.tx_num}}}"


class CollectionRules(Protocol):
    """What committing needs to know of a collection on this peer (from the definitions)."""

    def __call__(self, namespace: str, collection: str) -> tuple[bool, int]:
        """(this peer's org is a member and keeps the values, blockToLive; 0 = forever)."""
        ...


class PvtWrite(NamedTuple):
    """A private write: ``value`` None is a delete; ``purge`` a PurgePrivateData."""

    value: bytes | None
    purge: bool = False


class PvtWrites(NamedTuple):
    """A collection's private ``KVRWSet`` as committing applies it."""

    writes: dict[str, bytes | None]
    metadata_keys: tuple[str, ...]


def pvt_rwset_bytes(writes: Mapping[str, PvtWrite], metadata: Mapping[str, Metadata]) -> bytes:
    """The collection's private ``KVRWSet`` bytes: writes sorted by key (a purge is a delete
    here), metadata writes by key with no entries (the entries are public, in the hashed set)."""
    kv = kv_rwset_pb2.KVRWSet(
        writes=[
            kv_rwset_pb2.KVWrite(
                key=key, is_delete=writes[key].value is None, value=writes[key].value or b""
            )
            for key in sorted(writes)
        ],
        metadata_writes=[kv_rwset_pb2.KVMetadataWrite(key=key) for key in sorted(metadata)],
    )
    return kv.SerializeToString(deterministic=True)


def parse_pvt_rwset(data: bytes) -> PvtWrites:
    kv = kv_rwset_pb2.KVRWSet()
    try:
        kv.ParseFromString(data)
    except DecodeError as exc:
        raise LedgerError(f"bad private KVRWSet: {exc}") from exc
    return PvtWrites(
        {w.key: None if w.is_delete or not w.value else w.value for w in kv.writes},
        tuple(m.key for m in kv.metadata_writes),
    )


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def all_eligible(namespace: str, collection: str) -> tuple[bool, int]:
    """The rules of a ledger told nothing about collections: keep everything, forever."""
    return True, 0
