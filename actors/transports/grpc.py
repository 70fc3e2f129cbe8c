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
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
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


def stream_handler(method: str, serve: Any, *, raw: bool = False) -> grpc.GenericRpcHandler:
    """A server's handler for one bidi ChaincodeMessage method (``REGISTER`` or
    ``CONNECT``), served by ``serve(request_iterator, context)`` with the lenient decoder.
    ``raw``: the iterator yields undecoded bytes, so that the server can look at a message's
    size before paying for its decoding (see :func:`decoded`)."""
    service, _, name = method.strip("/").partition("/")
    handler = grpc.stream_stream_rpc_method_handler(
        serve, request_deserializer=None if raw else decode, response_serializer=encode
    )
    return grpc.method_handlers_generic_handler(service, {name: handler})


def decoded(raw: Iterator[bytes]) -> Iterator[ChaincodeMessage | Undecodable]:
    """The messages of a ``raw`` request iterator, decoded as the reader pulls them (in the
    reader's thread, where grpcio would have decoded them too)."""
    return map(decode, raw)


class ListenError(OSError):
    """A server cannot listen on its address: taken by another process, or not a valid
    ``host:port``. ``reason`` says which, for a one-line message naming the setting."""

    def __init__(self, address: str, reason: str = "address already in use") -> None:
        super().__init__(f"cannot listen on {address}: {reason}")
        self.address = address
        self.reason = reason


def bind(server: grpc.Server, address: str, credentials: Any = None) -> str:
    """Bind ``server`` to ``address`` and return the bound address (``:0`` picks a port).

    The server must have been made with :func:`exclusive` options: gRPC otherwise sets
    SO_REUSEPORT, and a second server on a taken port starts silently and shares the traffic.
    """
    check_free(address)
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise ListenError(address, _bind_reason(str(exc))) from exc
    if not port:  # older grpcio reports a failed bind as port 0
        raise ListenError(address)
    return f"{address.rsplit(':', 1)[0]}:{port}"


def check_free(address: str) -> None:
    """Raise :class:`ListenError` if ``address`` (``host:port``) cannot be bound now.

    A plain socket tries first so that the common mistake gets one clear line instead of
    gRPC's core log; the server's own bind still decides (the port may go meanwhile)."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ListenError(address, "expected HOST:PORT with a port from 0 to 65535")
    port = int(port_text)
    try:
        infos = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise ListenError(address, f"cannot resolve {host!r}: {exc.strerror or exc}") from exc
    if not port:
        return
    for family, kind, proto, _, sockaddr in infos[:1]:
        with socket.socket(family, kind, proto) as probe:
            # As gRPC does: a port whose old connections linger in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                raise ListenError(address, exc.strerror or str(exc)) from exc


def _bind_reason(text: str) -> str:
    return "address already in use" if "Failed to bind" in text or "in use" in text else text


def exclusive(options: list[tuple[str, Any]] | None = None) -> list[tuple[str, Any]]:
    """Server ``options`` with SO_REUSEPORT off, so that a taken port is refused."""
    return [("grpc.so_reuseport", 0), *(options or [])]


class ThreadPerCall(Executor):
    """The executor of a synchronous gRPC server: one thread per call, gone when it returns.

    A ThreadPoolExecutor keeps every thread it ever made, so a burst of connections (say, a
    thousand idle streams) leaves its threads and their memory behind for good. Servers using
    this bound concurrent calls with ``maximum_concurrent_rpcs`` instead: gRPC refuses the
    call beyond that with RESOURCE_EXHAUSTED rather than queue it behind the busy ones.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

        threading.Thread(target=run, name=self._name, daemon=True).start()
        return future


def server_options(max_message_size: int = DEFAULT_MAX_MESSAGE) -> list[tuple[str, Any]]:
    """Options for a server that chaincode dials.

    The Node shim pings every 110 s on an idle stream and the Go shim every 60 s; grpcio's
    defaults answer the fourth idle ping with GOAWAY, which makes the Node shim exit. Fabric
    enforces a 60 s minimum, and so do we.
    """
    return exclusive(
        [
            ("grpc.max_send_message_length", max_message_size),
            ("grpc.max_receive_message_length", max_message_size),
            ("grpc.http2.min_ping_interval_without_data_ms", 60_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_ping_strikes", 0),
            ("grpc.keepalive_time_ms", 7_200_000),  # Fabric's ServerInterval 2h
            ("grpc.keepalive_timeout_ms", 20_000),
        ]
    )


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


def end_call(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> None:
    """End a server call from another thread (a deadline's), the client seeing ``code`` and
    ``details``. ``context.abort`` works only in the call's own thread, and
    ``context.cancel`` tells the client a bare CANCELLED; grpcio's call object takes a status,
    so it is used where present."""
    call: Any = getattr(getattr(context, "_rpc_event", None), "call", None)
    try:
        call.cancel(code.value[0], details)
    except (AttributeError, TypeError):  # another grpcio: the client hears CANCELLED
        context.cancel()
