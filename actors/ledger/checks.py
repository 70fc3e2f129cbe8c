"""Argument checks shared by the simulator and the ledger.

Fabric counterpart: ``statedb.ValidateKeyValue`` (keys must be valid UTF-8) plus the argument
checks the Go shim does before a request reaches the peer. Kept apart so every entry point
reports the same message for the same mistake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import LedgerError
from .model import Metadata

__all__ = [
    "DONE_MESSAGE",
    "check_bound",
    "check_key",
    "check_namespace",
    "check_txid",
    "check_value",
    "check_write_key",
    "normalize_metadata",
]

# Fabric's exact text (txmgr.queryExecutor.checkDone), so peers report the same error.
DONE_MESSAGE = "this instance should not be used after calling Done()"


def check_namespace(namespace: Any) -> str:
    if type(namespace) is not str:
        raise TypeError(f"namespace must be a str, got {type(namespace).__name__}")
    if not namespace:
        raise LedgerError("namespace must not be an empty string")
    return namespace


def _check_utf8(what: str, text: str) -> None:
    # Lone surrogates are the only Python strs that are not valid UTF-8; they would also break
    # the byte-wise key order that ranges rely on.
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise LedgerError(f"invalid {what} [{text!r}]: must be a valid UTF-8 string") from None


def check_key(key: Any) -> str:
    """A key that may be read: any valid UTF-8 str (reading ``""`` simply finds nothing)."""
    if type(key) is not str:
        raise TypeError(f"key must be a str, got {type(key).__name__}")
    _check_utf8("key", key)
    return key


def check_write_key(key: Any) -> str:
    """A key that may be written: non-empty, because ``""`` is the open end of every range."""
    check_key(key)
    if not key:
        raise LedgerError("key must not be an empty string")
    return key


def check_bound(name: str, bound: Any) -> str:
    if type(bound) is not str:
        raise TypeError(f"{name} must be a str, got {type(bound).__name__}")
    _check_utf8(name, bound)
    return bound


def check_value(value: Any) -> bytes:
    if type(value) is bytes:
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"value must be bytes, got {type(value).__name__}")


def check_txid(txid: Any) -> str:
    if type(txid) is not str:
        raise TypeError(f"txid must be a str, got {type(txid).__name__}")
    if not txid:
        raise LedgerError("txid must not be an empty string")
    return txid


def normalize_metadata(metadata: Mapping[str, bytes] | None) -> Metadata:
    """Sorted immutable form of a metadata map; ``None``/``{}`` mean "no metadata"."""
    if metadata is None:
        return ()
    if not isinstance(metadata, Mapping):
        raise TypeError(
            f"metadata must be a mapping of str to bytes, got {type(metadata).__name__}"
        )
    entries = []
    for name, value in metadata.items():
        if type(name) is not str:
            raise TypeError(f"metadata name must be a str, got {type(name).__name__}")
        entries.append((name, check_value(value)))
    entries.sort(key=lambda entry: entry[0])
    return tuple(entries)
