"""The transport interface: a bidirectional stream of ``protos.ChaincodeMessage``.

Fabric's counterpart is the gRPC ``ChaincodeSupport_RegisterServer`` stream (``Send``/``Recv``)
that ``Handler.ProcessStream`` reads from; ours abstracts over pipes and gRPC.
"""

from __future__ import annotations

from typing import Protocol

from protos.peer.chaincode_shim_pb2 import ChaincodeMessage


class ConnectionClosed(Exception):
    """The other side went away (EOF, broken pipe, stream cancelled) or we closed the stream."""


class MalformedMessage(Exception):
    """Bytes arrived that are not a ChaincodeMessage; the stream is unusable after this."""


class MessageStream(Protocol):
    """A bidirectional ChaincodeMessage stream.

    ``send`` is safe to call from several threads (implementations serialise writes, as both
    Fabric sides do with a mutex). ``recv`` is called from a single reader thread.
    """

    def send(self, msg: ChaincodeMessage) -> None:
        """Send one message without blocking on the other side (the Handler's reader thread
        sends replies); raises :class:`ConnectionClosed` if the stream is gone."""

    def recv(self) -> ChaincodeMessage:
        """Block for the next message; raises :class:`ConnectionClosed` or
        :class:`MalformedMessage`."""

    def close(self) -> None:
        """Close the stream; idempotent. A blocked ``recv`` raises :class:`ConnectionClosed`."""
