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

from actors.transports.grpc import GrpcStream, server_options
from protos.peer import chaincode_shim_pb2_grpc
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage

if TYPE_CHECKING:
    from actors.support import ChaincodeSupport

log = logging.getLogger(__name__)


class _ChaincodeSupportServicer(chaincode_shim_pb2_grpc.ChaincodeSupportServicer):
    def __init__(self, support: ChaincodeSupport) -> None:
        self.support = support

    def Register(
        self, request_iterator: Iterator[ChaincodeMessage], context: grpc.ServicerContext
    ) -> Iterator[ChaincodeMessage]:
        stream = GrpcStream(context.peer())
        stream.attach(request_iterator)
        # The chaincode hanging up ends the RPC; the Handler must hear of it.
        context.add_callback(stream.close)
        try:
            self.support.serve_stream(stream)
        except Exception as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"peer is not accepting chaincode: {exc}")
        yield from stream.outgoing()


class ChaincodeListener:
    """A gRPC server chaincode dials. ``address`` may end in ``:0`` to pick a free port."""

    def __init__(
        self,
        support: ChaincodeSupport,
        address: str,
        *,
        max_message_size: int | None = None,
        max_connections: int = 1024,
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        size = max_message_size or support.config.max_message_size
        # Each live chaincode stream holds one server thread for its outgoing side.
        self._server = grpc.server(
            ThreadPoolExecutor(max_connections, thread_name_prefix="ccactors-grpc"),
            options=server_options(size),
        )
        chaincode_shim_pb2_grpc.add_ChaincodeSupportServicer_to_server(
            _ChaincodeSupportServicer(support), self._server
        )
        try:
            if credentials is None:
                port = self._server.add_insecure_port(address)
            else:
                port = self._server.add_secure_port(address, credentials)
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
