"""The chaincode side of the protocol: what a Python chaincode links against.

Fabric counterpart: fabric-chaincode-go's ``shim`` package. A chaincode subclasses
:class:`Chaincode`, and a :class:`ShimHandler` runs it over any
:class:`~actors.transports.base.MessageStream` (a pipe today, gRPC later)::

    class Counter(Chaincode):
        def invoke(self, stub: ChaincodeStub) -> Response:
            n = int(stub.get_state("n") or b"0") + 1
            stub.put_state("n", str(n))
            return success(str(n))

    ShimHandler(stream, Counter(), name="counter:1.0").run()
"""

from actors.shim.chaincode import (
    ERROR,
    ERRORTHRESHOLD,
    OK,
    Chaincode,
    ChaincodeRequestError,
    Contract,
    error,
    success,
)
from actors.shim.handler import ShimHandler
from actors.shim.iterators import HistoryQueryIterator, StateQueryIterator
from actors.shim.stub import ChaincodeStub, create_composite_key, split_composite_key
from protos.peer.proposal_response_pb2 import Response

__all__ = [
    "ERROR",
    "ERRORTHRESHOLD",
    "OK",
    "Chaincode",
    "ChaincodeRequestError",
    "ChaincodeStub",
    "Contract",
    "HistoryQueryIterator",
    "Response",
    "ShimHandler",
    "StateQueryIterator",
    "create_composite_key",
    "error",
    "split_composite_key",
    "success",
]
