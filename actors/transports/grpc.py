"""ChaincodeMessages over gRPC bidirectional streams, behind the MessageStream interface.

Fabric counterparts: the peer's ``ChaincodeSupport.Register`` server stream
(``internal/peer/node/start.go``, ``core/chaincode/chaincode_support.go HandleChaincodeStream``),
the shim's client stream (fabric-chaincode-go ``shim/internal/client.go``) and, for
chaincode-as-a-service, ``Chaincode.Connect`` with the roles swapped.

grpcio's synchronous API hands a stream's incoming side to us as an iterator and takes the
outgoing side as an iterator we provide. :class:`GrpcStream` bridges both to ``send``/``recv``:
outgoing messages go through a queue that gRPC drains on its own thread, so ``send`` never
blocks on the network, and writes stay serialised as gRPC requires.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from actors.transports.base import ConnectionClosed, MalformedMessage
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage

DEFAULT_MAX_MESSAGE = 100 * 1024 * 1024

_CLOSE = object()

REGISTER = "/protos.ChaincodeSupport/Register"  # a shim dialling a peer
CONNECT = "/protos.Chaincode/Connect"  # a peer dialling a chaincode service


@dataclass(frozen=True)
class Undecodable:
    """What a stream yields for bytes that are not a ChaincodeMessage."""

    error: str


def decode(data: bytes) -> ChaincodeMessage | Undecodable:
    """The streams' deserializer. A bad message becomes a value the stream reports as
    malformed: raising inside grpcio instead logs a traceback and, on a server, can leave the
    aborted call behind, so that stopping the server waits out its whole grace period."""
    try:
        return ChaincodeMessage.FromString(data)
    except DecodeError as exc:
        return Undecodable(str(exc))


encode = ChaincodeMessage.SerializeToString


def stream_handler(method: str, serve: Any) -> grpc.GenericRpcHandler:
    """A server's handler for one bidi ChaincodeMessage method (``REGISTER`` or
    ``CONNECT``), served by ``serve(request_iterator, context)`` with the lenient decoder."""
    service, _, name = method.strip("/").partition("/")
    handler = grpc.stream_stream_rpc_method_handler(
        serve, request_deserializer=decode, response_serializer=encode
    )
    return grpc.method_handlers_generic_handler(service, {name: handler})


def server_options(max_message_size: int = DEFAULT_MAX_MESSAGE) -> list[tuple[str, Any]]:
    """Options for a server that chaincode dials.

    The Node shim pings every 110 s on an idle stream and the Go shim every 60 s; grpcio's
    defaults answer the fourth idle ping with GOAWAY, which makes the Node shim exit. Fabric
    enforces a 60 s minimum, and so do we.
    """
    return [
        ("grpc.max_send_message_length", max_message_size),
        ("grpc.max_receive_message_length", max_message_size),
        ("grpc.http2.min_ping_interval_without_data_ms", 60_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.keepalive_time_ms", 7_200_000),  # Fabric's ServerInterval 2h
        ("grpc.keepalive_timeout_ms", 20_000),
    ]


def client_options(max_message_size: int = DEFAULT_MAX_MESSAGE) -> list[tuple[str, Any]]:
    """Options for a client (shim dialling the peer, or peer dialling a chaincode service):
    the Go shim's keepalive of 1 min / 20 s, allowed without active calls."""
    return [
        ("grpc.max_send_message_length", max_message_size),
        ("grpc.max_receive_message_length", max_message_size),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


class GrpcStream:
    """A :class:`~actors.transports.base.MessageStream` over one gRPC bidi stream.

    ``incoming`` is what gRPC gives us (the request iterator on a server, the response
    iterator on a client); :meth:`outgoing` is the iterator gRPC sends from.
    """

    def __init__(self, peer: str = "") -> None:
        self.peer = peer
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._incoming: Iterator[ChaincodeMessage] | None = None
        self._closed = threading.Event()
        self._call: Any = None  # client side: the call object, cancelled on close
        self.malformed: str | None = None  # why the other side's bytes were refused

    def attach(self, incoming: Iterator[ChaincodeMessage], call: Any = None) -> None:
        self._incoming = incoming
        self._call = call

    def outgoing(self) -> Iterator[ChaincodeMessage]:
        """The iterator gRPC drains; ends (closing our half) when the stream is closed."""
        get = self._outbox.get
        while True:
            item = get()
            if item is _CLOSE:
                return
            yield item

    def send(self, msg: ChaincodeMessage) -> None:
        if self._closed.is_set():
            raise ConnectionClosed(f"stream to {self.peer or 'peer'} is closed")
        self._outbox.put(msg)

    def recv(self) -> ChaincodeMessage:
        if self._incoming is None:
            raise ConnectionClosed("stream not attached")
        try:
            msg = next(self._incoming)
        except StopIteration as exc:
            self.close()
            raise ConnectionClosed(f"stream from {self.peer or 'peer'} ended") from exc
        except grpc.RpcError as exc:
            self.close()
            code = exc.code() if hasattr(exc, "code") else None
            details = exc.details() if hasattr(exc, "details") else str(exc)
            raise ConnectionClosed(
                f"stream from {self.peer or 'peer'} failed: {code}: {details}"
            ) from exc
        except Exception as exc:  # grpcio raises other types on cancelled or broken streams
            if self._closed.is_set():
                raise ConnectionClosed("stream closed") from exc
            self.close()
            raise MalformedMessage(f"stream from {self.peer or 'peer'} failed: {exc!r}") from exc
        if type(msg) is Undecodable:
            self.malformed = f"not a ChaincodeMessage: {msg.error}"
            self.close()
            raise MalformedMessage(self.malformed)
        return msg

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._outbox.put(_CLOSE)
        if self._call is not None:
            self._call.cancel()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()


def dial(
    address: str,
    *,
    service: str = "ChaincodeSupport",
    max_message_size: int = DEFAULT_MAX_MESSAGE,
    credentials: grpc.ChannelCredentials | None = None,
    timeout: float = 10.0,
    options: list[tuple[str, Any]] | None = None,
) -> tuple[GrpcStream, grpc.Channel]:
    """Open a stream to ``address``: ``ChaincodeSupport/Register`` (a shim dialling a peer) or
    ``Chaincode/Connect`` (a peer dialling a chaincode service). Raises ConnectionClosed when
    the server cannot be reached within ``timeout``."""
    # grpcio keeps the first of two channel args with one key: the caller's options go first
    # so that they override the defaults (e.g. a longer keepalive).
    opts = list(options or []) + client_options(max_message_size)
    if credentials is None:
        channel = grpc.insecure_channel(address, options=opts)
    else:
        channel = grpc.secure_channel(address, credentials, options=opts)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError as exc:
        channel.close()
        raise ConnectionClosed(f"cannot reach {address} within {timeout:g}s") from exc
    method = {"ChaincodeSupport": REGISTER, "Chaincode": CONNECT}.get(service)
    if method is None:
        channel.close()
        raise ValueError(f"unknown service {service!r}")
    stream = GrpcStream(address)
    call = channel.stream_stream(method, request_serializer=encode, response_deserializer=decode)(
        stream.outgoing()
    )
    stream.attach(call, call)
    return stream, channel
