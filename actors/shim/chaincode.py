"""What user chaincode implements and returns.

Fabric counterpart: fabric-chaincode-go ``shim/interfaces.go`` (the ``Chaincode`` interface) and
``shim/response.go`` (``Success``/``Error`` and the ``OK``/``ERRORTHRESHOLD``/``ERROR`` status
codes). ``ChaincodeRequestError`` stands in for the ``error`` values the Go stub methods return.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from protos.peer.proposal_response_pb2 import Response

if TYPE_CHECKING:
    from actors.shim.stub import ChaincodeStub

OK = 200
"""Status of a successful response."""
ERRORTHRESHOLD = 400
"""Responses with a status at or above this are not endorsed by the peer."""
ERROR = 500
"""Status of an error response (and the Init status that makes the shim reply ERROR)."""


class ChaincodeRequestError(Exception):
    """A stub call to the peer failed.

    Raised when the peer answers a request with ERROR (the message is the peer's text), when
    the connection to the peer is lost while the call waits, or when the same transaction
    already has a request outstanding (the peer serves one request per transaction at a time).
    """


def success(payload: bytes | str = b"", message: str = "") -> Response:
    """A status-200 :class:`Response`; a ``str`` payload is UTF-8 encoded."""
    if isinstance(payload, str):
        payload = payload.encode()
    return Response(status=OK, message=message, payload=payload)


def error(message: str, status: int = ERROR, payload: bytes = b"") -> Response:
    """An error :class:`Response` (status 500 unless given)."""
    return Response(status=status, message=message, payload=payload)


class Chaincode:
    """Base class for user chaincode; the handler calls one method per INIT/TRANSACTION.

    Both methods run several at once, one stub per transaction: keep per-transaction data on
    the stub or in locals, not on ``self``.
    """

    concurrency = "auto"
    """How transactions run. ``"auto"``: as greenlets; once one blocks outside the stub
    (``time.sleep``, I/O) for more than 50-100 ms, each on a thread of its own from then on
    (over a pipe, with the ``greenlet`` package; else as ``"threads"``). ``"threads"``:
    each on a worker thread, so user code may block as long as it likes. ``"greenlets"``: all
    on one thread, each a greenlet that yields while it waits for the peer; user code must not
    block outside the stub (needs the ``greenlet`` package)."""

    write_batch = True
    """When the peer offers it in READY (Fabric 3.x ``useWriteBatch``), every transaction's
    writes (state, private data, metadata, purges) are kept by the stub and sent as
    WRITE_BATCH_STATE when ``invoke``/``init`` returns (or at ``stub.finish_write_batch()``),
    as Fabric's Go shim does after ``StartWriteBatch()``. A write the peer refuses then fails
    the whole transaction at its end instead of raising at the call. False: every write is
    its own request, unless the transaction calls ``stub.start_write_batch()``. Reads never
    see the transaction's own writes either way (Fabric's simulator does not read them)."""

    def init(self, stub: ChaincodeStub) -> Response:
        """Called for INIT (a transaction with ``is_init`` set, or a legacy instantiate)."""
        return success()

    def invoke(self, stub: ChaincodeStub) -> Response:
        """Called for every TRANSACTION."""
        raise NotImplementedError(f"{type(self).__name__} does not implement invoke")


class Contract(Chaincode):
    """A chaincode whose functions are methods: ``invoke`` with args ``["transfer", "A1",
    "bob"]`` calls ``self.fn_transfer(stub, "A1", "bob")``.

    An unknown function or a wrong number of arguments is answered with status 400; an
    exception raised inside a function fails the transaction as usual.
    """

    def invoke(self, stub: ChaincodeStub) -> Response:
        function, params = stub.get_function_and_parameters()
        method = getattr(self, f"fn_{function}", None) if function.isidentifier() else None
        if method is None:
            return error(f"unknown function {function!r}", status=400)
        low, high = _arity(method)
        if not low <= len(params) + 1 <= high:
            try:
                inspect.signature(method).bind(stub, *params)
            except TypeError as exc:
                return error(f"bad arguments for {function}: {exc}", status=400)
        return method(stub, *params)


_arities: dict[object, tuple[int, float]] = {}


def _arity(method: Callable[..., Response]) -> tuple[int, float]:
    """How many positional arguments ``method`` accepts (fewest, most), cached per function:
    ``inspect.signature`` costs more than a whole state request (about 15 us) and binding
    to it 5 us in place. Outside that range :meth:`Contract.invoke` binds to the signature
    for Python's own error message; a required keyword-only parameter, which no call from
    the peer can fill, gives an empty range so that it always does."""
    function = getattr(method, "__func__", method)
    arity = _arities.get(function)
    if arity is None:
        low, high = 0, 0.0
        for param in inspect.signature(method).parameters.values():
            if param.kind is param.VAR_POSITIONAL:
                high = math.inf
            elif param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
                high += 1
                low += param.default is param.empty
            elif param.kind is param.KEYWORD_ONLY and param.default is param.empty:
                low, high = 1, 0.0
                break
        arity = _arities[function] = (low, high)
    return arity
