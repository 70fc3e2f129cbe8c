"""How ChaincodeMessages travel between peer and chaincode.

Every transport offers the same small :class:`MessageStream` interface, so the peer's Handler
and the chaincode shim do not care whether they talk over a multiprocessing pipe
(:mod:`actors.transports.pipe`) or a gRPC stream.
"""

from actors.transports.base import ConnectionClosed, MalformedMessage, MessageStream

__all__ = ["ConnectionClosed", "MalformedMessage", "MessageStream"]
