"""The peer's chaincode listener: a gRPC server for ``protos.ChaincodeSupport/Register``.

Fabric counterpart: the chaincode server set up in ``internal/peer/node/start.go`` with
``ChaincodeSupport.Register`` as its handler. Every stream a chaincode opens gets its own
Handler actor through :meth:`ChaincodeSupport.serve_stream`; who may register is the
launcher's decision (``net`` mode: only ids being launched; ``dev``: anyone).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import grpc

from actors.transports.grpc import REGISTER, GrpcStream, server_options, stream_handler
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage

if TYPE_CHECKING:
    from actors.support import ChaincodeSupport
    from actors.tls import ChaincodeTLS

log = logging.getLogger(__name__)


class _ChaincodeSupportServicer:
    def __init__(self, support: ChaincodeSupport, tls: ChaincodeTLS | None) -> None:
        self.support = support
        self.tls = tls

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

    def Register(
        self, request_iterator: Iterator[ChaincodeMessage], context: grpc.ServicerContext
    ) -> Iterator[ChaincodeMessage]:
        expected = self._bound_chaincode(context)
        stream = GrpcStream(context.peer())
        stream.attach(request_iterator)
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
    """A gRPC server chaincode dials. ``address`` may end in ``:0`` to pick a free port."""

    def __init__(
        self,
        support: ChaincodeSupport,
        address: str,
        *,
        max_message_size: int | None = None,
        max_connections: int = 1024,
        tls: ChaincodeTLS | None = None,
    ) -> None:
        size = max_message_size or support.config.max_message_size
        # Each live chaincode stream holds one server thread for its outgoing side.
        self._server = grpc.server(
            ThreadPoolExecutor(max_connections, thread_name_prefix="ccactors-grpc"),
            options=server_options(size),
        )
        servicer = _ChaincodeSupportServicer(support, tls)
        self._server.add_generic_rpc_handlers((stream_handler(REGISTER, servicer.Register),))
        try:
            if tls is None:
                port = self._server.add_insecure_port(address)
            else:
                port = self._server.add_secure_port(address, tls.server_credentials())
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {address}: {exc}") from exc
        host = address.rsplit(":", 1)[0]
        self.address = f"{host}:{port}"
        self._started = False

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
