"""The error every rich-query mistake becomes (Fabric: CouchDB's HTTP 400 answers).

Fabric hands the chaincode CouchDB's error as ``error handling CouchDB request.
Error:<error>,  Status Code:400,  Reason:<reason>``; :class:`RichQueryError` renders the same
text so chaincode written against Fabric sees what it would see there.
"""

from __future__ import annotations

from ..errors import LedgerError

__all__ = ["RichQueryError"]


class RichQueryError(LedgerError):
    """A malformed query, selector, sort, index definition or bookmark."""

    def __init__(self, error: str, reason: str) -> None:
        self.error = error
        self.reason = reason
        super().__init__(
            f"error handling CouchDB request. Error:{error},  Status Code:400,  Reason:{reason}"
        )
