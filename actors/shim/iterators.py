"""Iterators over the batched results of range, rich and history queries.

Fabric counterpart: fabric-chaincode-go ``shim/stub.go`` ``CommonIterator``,
``StateQueryIterator`` and ``HistoryQueryIterator``.

The peer answers a query with a ``QueryResponse`` holding at most 100 serialized results plus
``has_more`` and an iterator ``id``; the rest is fetched with QUERY_STATE_NEXT{id}. Iterating
yields the protobuf messages themselves (``queryresult.KV`` for state queries,
``queryresult.KeyModification`` for history), as the Go shim's ``Next()`` does.

Iterating to the end does **not** close the iterator: as in Go, call :meth:`close` (or use the
iterator as a context manager) so the peer sees QUERY_STATE_CLOSE and can release the iterator
early. An iterator belongs to one transaction and is not thread-safe.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

from google.protobuf.message import DecodeError, Message

from actors.shim.chaincode import ChaincodeRequestError
from protos.ledger.queryresult.kv_query_result_pb2 import KV, KeyModification
from protos.peer.chaincode_shim_pb2 import (
    ChaincodeMessage,
    QueryResponse,
    QueryStateClose,
    QueryStateNext,
)

RequestFn = Callable[[int, Message], bytes]
"""Sends one request of the given ChaincodeMessage type for the owning transaction and returns
the RESPONSE payload (raises :class:`ChaincodeRequestError` otherwise)."""

T = TypeVar("T", KV, KeyModification)


def parse_query_response(payload: bytes) -> QueryResponse:
    """Decode a RESPONSE payload as ``QueryResponse``."""
    response = QueryResponse()
    try:
        response.ParseFromString(payload)
    except DecodeError as exc:
        raise ChaincodeRequestError(f"malformed QueryResponse from peer: {exc}") from exc
    return response


class _QueryIterator(Generic[T]):
    _result_type: type[T]

    def __init__(self, request: RequestFn, response: QueryResponse) -> None:
        self._request = request
        self._parse = self._result_type.FromString
        # The first reply's id names the iterator for NEXT and CLOSE; the peer repeats it in
        # later replies, but relying on the first one keeps us correct if it ever does not.
        self._id = response.id
        self._take(response)
        self._closed = False

    def _take(self, response: QueryResponse) -> None:
        # The batch's serialized results, taken out of the message once: reading each through
        # the repeated field as it is reached made a wrapper object and a KV to parse into
        # (iterating 100 results and using them: 131 -> 100 us, timeit).
        self._batch = [result.resultBytes for result in response.results]
        self._has_more = response.has_more
        self._pos = 0

    @property
    def id(self) -> str:
        """The peer's iterator id."""
        return self._id

    @property
    def closed(self) -> bool:
        return self._closed

    def has_next(self) -> bool:
        """True if another result is available, fetching the next batch if needed."""
        # A loop, not an if: nothing forbids the peer from sending an empty batch with has_more.
        while self._pos >= len(self._batch):
            if self._closed or not self._has_more:
                return False
            self._fetch_next_batch()
        return True

    def __iter__(self) -> _QueryIterator[T]:
        return self

    def __next__(self) -> T:
        pos = self._pos
        if pos >= len(self._batch):
            if not self.has_next():
                raise StopIteration
            pos = 0
        self._pos = pos + 1
        try:
            return self._parse(self._batch[pos])
        except DecodeError as exc:
            raise ChaincodeRequestError(f"error unmarshaling result from bytes: {exc}") from exc

    def _fetch_next_batch(self) -> None:
        payload = self._request(ChaincodeMessage.QUERY_STATE_NEXT, QueryStateNext(id=self._id))
        self._take(parse_query_response(payload))

    def close(self) -> None:
        """Send QUERY_STATE_CLOSE once; later calls do nothing and iteration stops."""
        if self._closed:
            return
        self._closed = True
        self._request(ChaincodeMessage.QUERY_STATE_CLOSE, QueryStateClose(id=self._id))

    def __enter__(self) -> _QueryIterator[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
            return
        # Do not mask the exception already propagating (often the very connection loss
        # that makes CLOSE fail too).
        with contextlib.suppress(ChaincodeRequestError):
            self.close()


class StateQueryIterator(_QueryIterator[KV]):
    """Results of a range, partial-composite-key or rich query: yields ``queryresult.KV``."""

    _result_type = KV


class HistoryQueryIterator(_QueryIterator[KeyModification]):
    """Results of ``get_history_for_key``: yields ``queryresult.KeyModification``."""

    _result_type = KeyModification
