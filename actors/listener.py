"""The peer's chaincode listener: a gRPC server for ``protos.ChaincodeSupport/Register``.

Fabric counterpart: the chaincode server set up in ``internal/peer/node/start.go`` with
``ChaincodeSupport.Register`` as its handler. Every stream a chaincode opens gets its own
Handler actor through :meth:`ChaincodeSupport.serve_stream`; who may register is the
launcher's decision (``net`` mode: only ids being launched; ``dev``: anyone).

Until a stream has sent REGISTER nobody knows who is on it, so until then it costs the peer
one thread and nothing else, and only within limits (Fabric has none): a stream must
REGISTER within ``registration_timeout``, its messages before that may not exceed
``unregistered_message_size``, and at most ``max_unregistered`` such streams, and
``max_unregistered_per_host`` from one address, may wait at a time. Beyond that the stream
is refused with RESOURCE_EXHAUSTED, so that idle connections cannot starve a real launch. A
stream presenting a client certificate this peer issued for a launch (TLS, the default in net
mode) is not anonymous and does not count against those two limits.

The server is grpcio's synchronous one, with a thread per call that ends with the call (not a
pool, which would keep every thread a burst of connections ever made). grpc.aio would make a
waiting stream cost no thread at all; with the limits above, the threads a client can hold are
few, and the Handler's blocking MessageStream stays as it is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

import grpc

from actors.transports.grpc import (
    REGISTER,
    GrpcStream,
    ThreadPerCall,
    bind,
    decode,
    decoded,
    server_options,
    stream_handler,
)
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage

if TYPE_CHECKING:
    from actors.config import Config
    from actors.scheduler import Scheduler
    from actors.support import ChaincodeSupport
    from actors.tls import ChaincodeTLS

log = logging.getLogger(__name__)

WARNING_INTERVAL = 10.0  # seconds between two warnings about refused streams


@dataclass(frozen=True)
class StreamLimits:
    """What a stream that has not registered yet may hold (see the module doc)."""

    registration_timeout: float = 10.0
    unregistered_message_size: int = 64 * 1024
    max_unregistered: int = 64
    max_unregistered_per_host: int = 16
    max_streams: int = 1024  # all streams, registered or not (one thread each)

    @classmethod
    def from_config(cls, config: Config) -> StreamLimits:
        return cls(
            registration_timeout=config.registration_timeout,
            unregistered_message_size=config.unregistered_message_size,
            max_unregistered=config.max_unregistered_streams,
            max_unregistered_per_host=config.max_unregistered_per_host,
        )


def peer_host(peer: str) -> str:
    """The address part of gRPC's ``ipv4:1.2.3.4:5678`` / ``ipv6:[::1]:5678``."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return rest.rpartition(":")[0].strip("[]")
    return peer  # unix sockets and the like: one "host" per path


class _Admission:
    """Counts the streams waiting to REGISTER, in all and per peer host."""

    def __init__(self, limits: StreamLimits) -> None:
        self._limits = limits
        self._lock = threading.Lock()
        self._waiting = 0
        self._by_host: dict[str, int] = {}
        self._refused = 0  # since the last warning
        self._next_warning = 0.0

    def enter(self, host: str) -> str | None:
        """Take a place for a stream from ``host``; None, or why there is none."""
        limits = self._limits
        with self._lock:
            if self._waiting >= limits.max_unregistered:
                refusal = f"{limits.max_unregistered} streams are already waiting to register"
            elif self._by_host.get(host, 0) >= limits.max_unregistered_per_host:
                refusal = (
                    f"{limits.max_unregistered_per_host} streams from {host} are already "
                    "waiting to register"
                )
            else:
                self._waiting += 1
                self._by_host[host] = self._by_host.get(host, 0) + 1
                return None
            self._refused += 1
            now = time.monotonic()
            # One warning per interval, so that a client looping connects cannot flood the log.
            if now >= self._next_warning:
                self._next_warning = now + WARNING_INTERVAL
                log.warning(
                    "refused %d chaincode stream(s), the last from %s: %s",
                    self._refused,
                    host,
                    refusal,
                )
                self._refused = 0
        return refusal

    def leave(self, host: str) -> None:
        with self._lock:
            self._waiting -= 1
            left = self._by_host[host] - 1
            if left:
                self._by_host[host] = left
            else:
                del self._by_host[host]

    @property
    def waiting(self) -> int:
        return self._waiting


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class _ChaincodeSupportServicer:
    def __init__(
        self,
        support: ChaincodeSupport,
        tls: ChaincodeTLS | None,
        limits: StreamLimits,
        scheduler: Scheduler,
    ) -> None:
        self.support = support
        self.tls = tls
        self.limits = limits
        self.scheduler = scheduler
        self.admission = _Admission(limits)

    def _bound_chaincode(self, context: grpc.ServicerContext) -> str | None:
        """With TLS, the chaincode id the client certificate was issued for (else abort)."""
        if self.tls is None:
            return None
        certs = context.auth_context().get("x509_pem_cert") or []
        ccid = self.tls.chaincode_for(certs[0]) if certs else None
        if ccid is None:
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "client certificate was not issued by this peer for a chaincode launch",
            )
        return ccid

    def _until_register(self, raw: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        """The stream's first message other than KEEPALIVE (normally its REGISTER), read
        within the registration timeout and the size allowed before registration."""
        limits = self.limits
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            context.cancel()

        timer = self.scheduler.call_later(limits.registration_timeout, expire)
        try:
            for data in raw:
                if len(data) > limits.unregistered_message_size:
                    raise _Refused(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"a message of {len(data)} bytes before REGISTER; at most "
                        f"{limits.unregistered_message_size} bytes are accepted until then",
                    )
                msg = decode(data)
                if type(msg) is not ChaincodeMessage or msg.type != ChaincodeMessage.KEEPALIVE:
                    return data
        except grpc.RpcError:
            pass  # cancelled by the timer, or the client went away
        finally:
            timer.cancel()
        if expired.is_set():
            raise _Refused(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"no REGISTER within {limits.registration_timeout:g}s",
            )
        raise _Refused(grpc.StatusCode.CANCELLED, "")  # the client hung up first

    def Register(
        self, request_iterator: Iterator[bytes], context: grpc.ServicerContext
    ) -> Iterator[ChaincodeMessage]:
        expected = self._bound_chaincode(context)
        host = peer_host(context.peer())
        # A stream with a certificate this peer issued for a launch is not anonymous: it
        # does not queue behind (or count against) the anonymous ones.
        anonymous = expected is None
        refusal = self.admission.enter(host) if anonymous else None
        if refusal is not None:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"peer is busy: {refusal}")
        try:
            first = self._until_register(request_iterator, context)
        except _Refused as exc:
            if exc.details:
                log.warning("closing a chaincode stream from %s: %s", host, exc.details)
            context.abort(exc.code, exc.details)
        finally:
            if anonymous:
                self.admission.leave(host)
        stream = GrpcStream(context.peer())
        stream.attach(decoded(chain((first,), request_iterator)))
        # The chaincode hanging up ends the RPC; the Handler must hear of it.
        context.add_callback(stream.close)
        try:
            # Bound to a certificate, the stream may only REGISTER as that chaincode.
            self.support.serve_stream(stream, expected=expected)
        except Exception as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"peer is not accepting chaincode: {exc}")
        yield from stream.outgoing()
        if stream.malformed is not None:
            context.set_code(grpc.StatusCode.INVALID_ARGUMENT)
            context.set_details(stream.malformed)


class ChaincodeListener:
    """A gRPC server chaincode dials. ``address`` may end in ``:0`` to pick a free port.

    Raises :class:`~actors.transports.grpc.ListenError` when the address is taken or bad.
    """

    def __init__(
        self,
        support: ChaincodeSupport,
        address: str,
        *,
        max_message_size: int | None = None,
        limits: StreamLimits | None = None,
        tls: ChaincodeTLS | None = None,
    ) -> None:
        size = max_message_size or support.config.max_message_size
        self.limits = limits = limits or StreamLimits.from_config(support.config)
        # Each live stream holds one thread (its outgoing side), released when it ends.
        options = server_options(size)
        # A TLS handshake that never completes holds a connection: give it as long as a
        # stream gets to REGISTER (gRPC's default is 120 s).
        timeout_ms = int(limits.registration_timeout * 1000)
        options.append(("grpc.server_handshake_timeout_ms", timeout_ms))
        self._server = grpc.server(
            ThreadPerCall("ccactors-grpc"),
            options=options,
            maximum_concurrent_rpcs=limits.max_streams,
        )
        self._servicer = _ChaincodeSupportServicer(support, tls, limits, support.scheduler)
        self._server.add_generic_rpc_handlers(
            (stream_handler(REGISTER, self._servicer.Register, raw=True),)
        )
        self.address = bind(
            self._server, address, None if tls is None else tls.server_credentials()
        )
        self._started = False
        if tls is None and support.config.mode == "net":
            log.warning(
                "chaincode listener %s runs without TLS (insecure): any process that reaches "
                "it can register as a chaincode the peer is launching",
                self.address,
            )

    @property
    def unregistered(self) -> int:
        """Streams open now that have not sent REGISTER yet."""
        return self._servicer.admission.waiting

    def start(self) -> ChaincodeListener:
        self._server.start()
        self._started = True
        log.info("chaincode listener on %s", self.address)
        return self

    def stop(self, grace: float = 1.0) -> None:
        if self._started:
            self._server.stop(grace).wait(grace + 5)
            self._started = False

    def dial_address(self) -> str:
        """The address a local chaincode should dial (0.0.0.0 is not dialable)."""
        host, port = self.address.rsplit(":", 1)
        return f"127.0.0.1:{port}" if host in ("0.0.0.0", "[::]", "") else self.address

    def __enter__(self) -> ChaincodeListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
