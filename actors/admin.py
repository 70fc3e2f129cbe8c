"""The admin gRPC service of ``ccactors serve``, and its client.

Not a Fabric API: a peer's clients normally talk to its endorser. This small service lets the
CLI (and tests, and tools) invoke, query, list, launch and stop chaincodes, and follow
lifecycle events, on a long-running peer. Errors travel as gRPC status codes chosen by error
type, with the peer's message as the details, and come back as the same typed errors.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from actors import errors
from protos.admin import admin_pb2, admin_pb2_grpc

if TYPE_CHECKING:
    from actors.events import LifecycleEvent
    from actors.support import ChaincodeSupport

# Typed errors <-> gRPC codes. The order matters: subclasses before their bases.
_CODES: list[tuple[type[errors.ChaincodeError], grpc.StatusCode]] = [
    (errors.StartupTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.ExecuteTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.UnknownChaincode, grpc.StatusCode.NOT_FOUND),
    (errors.DuplicateTransaction, grpc.StatusCode.ALREADY_EXISTS),
    (errors.InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.TransactionFailed, grpc.StatusCode.ABORTED),
    (errors.ChaincodeStreamTerminated, grpc.StatusCode.UNAVAILABLE),
    (errors.ChaincodeFailed, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ChaincodeRestarting, grpc.StatusCode.UNAVAILABLE),
    (errors.LaunchError, grpc.StatusCode.UNAVAILABLE),
    (errors.SupportShutdown, grpc.StatusCode.UNAVAILABLE),
]
# Details carry "<ErrorType>: <message>" so the client can rebuild the exact type.
_BY_NAME = {cls.__name__: cls for cls, _ in _CODES} | {"ChaincodeError": errors.ChaincodeError}


MAX_LOG_LINES = 1000  # what one Logs reply may carry


def _code_for(exc: errors.ChaincodeError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(self, support: ChaincodeSupport) -> None:
        self.support = support

    def _execute(self, request: admin_pb2.InvokeRequest, context: Any, commit: bool) -> Any:
        kwargs: dict[str, Any] = {"is_init": request.is_init}
        if request.timeout > 0:
            kwargs["timeout"] = request.timeout
        if request.transient:
            kwargs["transient"] = dict(request.transient)
        txid = request.txid or None
        args = list(request.args)
        try:
            if commit:
                outcome = self.support.invoke(
                    request.channel, txid, request.chaincode, args, **kwargs
                )
                result = outcome.result
                validation = outcome.validation.name if outcome.validation else "NOT_COMMITTED"
            else:
                result = self.support.execute(
                    request.channel, txid, request.chaincode, args, **kwargs
                )
                validation = ""
        except errors.ChaincodeError as exc:
            context.abort(_code_for(exc), f"{type(exc).__name__}: {exc}")
        reply = admin_pb2.InvokeReply(
            txid=result.txid, response=result.response, validation=validation
        )
        if result.event is not None:
            reply.event.CopyFrom(result.event)
        if result.results is not None:
            reply.rwset = result.results.to_bytes()
        return reply

    def Invoke(self, request: Any, context: Any) -> Any:
        return self._execute(request, context, commit=True)

    def Query(self, request: Any, context: Any) -> Any:
        return self._execute(request, context, commit=False)

    def ListChaincodes(self, request: Any, context: Any) -> Any:
        status = self.support.status()
        instances = self.support.instances()
        names = sorted(set(self.support.definitions) | set(status))
        reply = admin_pb2.ChaincodeList()
        for name in names:
            definition = self.support.definitions.get(name)
            reply.chaincodes.add(
                name=name,
                runtime=definition.runtime if definition else "registered",
                status=status.get(name, "defined"),
                instance=instances.get(name, ""),
            )
        return reply

    def Launch(self, request: Any, context: Any) -> Any:
        started = time.perf_counter()
        try:
            self.support.launch(request.name)
        except errors.ChaincodeError as exc:
            context.abort(_code_for(exc), f"{type(exc).__name__}: {exc}")
        return admin_pb2.LaunchReply(seconds=time.perf_counter() - started)

    def Stop(self, request: Any, context: Any) -> Any:
        self.support.stop(request.name)
        return admin_pb2.StopReply()

    def Logs(self, request: Any, context: Any) -> Any:
        name = request.name
        try:
            if name not in self.support.definitions and name not in self.support.status():
                raise errors.UnknownChaincode(f"chaincode definition for '{name}' not found")
            lines = self.support.logs(name, min(request.lines or 20, MAX_LOG_LINES))
        except errors.ChaincodeError as exc:
            context.abort(_code_for(exc), f"{type(exc).__name__}: {exc}")
        return admin_pb2.LogsReply(lines=lines)

    def Events(self, request: Any, context: Any) -> Iterator[admin_pb2.LifecycleEvent]:
        events: queue.SimpleQueue[LifecycleEvent | None] = queue.SimpleQueue()
        unsubscribe = self.support.subscribe(events.put)
        context.add_callback(lambda: events.put(None))
        try:
            while context.is_active():
                event = events.get()
                if event is None:
                    return
                if request.chaincode and event.chaincode != request.chaincode:
                    continue
                yield admin_pb2.LifecycleEvent(
                    chaincode=event.chaincode,
                    kind=event.kind,
                    detail=event.detail,
                    timestamp=event.timestamp,
                    instance=event.instance,
                    exit_code=event.exit_code,
                    signal=event.signal,
                    delay=event.delay,
                    last_lines=event.last_lines,
                    actor=event.actor,
                )
        finally:
            unsubscribe()


def serve_admin(
    support: ChaincodeSupport, address: str, max_workers: int = 64
) -> tuple[grpc.Server, str]:
    """Start the admin server; returns it and the bound address (port 0 picks one)."""
    server = grpc.server(ThreadPoolExecutor(max_workers, thread_name_prefix="ccactors-admin"))
    admin_pb2_grpc.add_AdminServicer_to_server(AdminServicer(support), server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {address}: {exc}") from exc
    server.start()
    return server, f"{address.rsplit(':', 1)[0]}:{port}"


@dataclass(frozen=True)
class AdminClient:
    """Blocking client of the admin service; raises the peer's typed errors."""

    address: str
    timeout: float = 60.0

    def _stub(self) -> tuple[grpc.Channel, admin_pb2_grpc.AdminStub]:
        channel = grpc.insecure_channel(self.address)
        return channel, admin_pb2_grpc.AdminStub(channel)

    def _call(self, method: str, request: Any) -> Any:
        channel, stub = self._stub()
        try:
            return getattr(stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _to_error(exc) from None
        finally:
            channel.close()

    def invoke(
        self,
        channel: str,
        chaincode: str,
        args: Sequence[bytes],
        *,
        commit: bool = True,
        txid: str = "",
        timeout: float = 0.0,
        transient: dict[str, bytes] | None = None,
    ) -> admin_pb2.InvokeReply:
        request = admin_pb2.InvokeRequest(
            channel=channel,
            chaincode=chaincode,
            args=list(args),
            txid=txid,
            timeout=timeout,
            transient=transient or {},
        )
        return self._call("Invoke" if commit else "Query", request)

    def list(self) -> admin_pb2.ChaincodeList:
        return self._call("ListChaincodes", admin_pb2.ListRequest())

    def launch(self, name: str) -> float:
        return self._call("Launch", admin_pb2.ChaincodeRef(name=name)).seconds

    def stop(self, name: str) -> None:
        self._call("Stop", admin_pb2.ChaincodeRef(name=name))

    def logs(self, name: str, lines: int = 0) -> list[str]:
        return list(self._call("Logs", admin_pb2.LogsRequest(name=name, lines=lines)).lines)

    def events(self, chaincode: str = "") -> Iterator[admin_pb2.LifecycleEvent]:
        channel, stub = self._stub()
        try:
            yield from stub.Events(admin_pb2.EventsRequest(chaincode=chaincode))
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise _to_error(exc) from None
        finally:
            channel.close()


def _to_error(exc: grpc.RpcError) -> errors.ChaincodeError:
    details = exc.details() or ""
    name, _, message = details.partition(": ")
    cls = _BY_NAME.get(name)
    if cls is None:
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            return errors.ChaincodeError(f"peer unavailable: {details}")
        return errors.ChaincodeError(f"{exc.code().name}: {details}")
    return cls(message)
