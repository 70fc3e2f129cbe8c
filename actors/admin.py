"""The admin gRPC service of ``ccactors serve``, and its client.

Not a Fabric API: a peer's clients normally talk to its endorser. This small service lets the
CLI (and tests, and tools) invoke, query, list, launch and stop chaincodes, and follow
lifecycle events, on a long-running peer. Errors travel as gRPC status codes chosen by error
type, with the peer's message as the details, and come back as the same typed errors.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from cryptography.hazmat.primitives import serialization

from actors import errors
from actors.events import LifecycleEvent
from actors.lifecycle.definitions import Definition
from actors.msp.msp import MSP, MSPError
from actors.tls import explain_unavailable
from actors.transports.grpc import ThreadPerCall, bind, exclusive
from protos.admin import admin_pb2, admin_pb2_grpc

if TYPE_CHECKING:
    from actors.config import Config
    from actors.support import ChaincodeSupport

# Typed errors <-> gRPC codes. The order matters: subclasses before their bases.
_CODES: list[tuple[type[errors.ChaincodeError], grpc.StatusCode]] = [
    (errors.StartupTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.ExecuteTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.UnknownChaincode, grpc.StatusCode.NOT_FOUND),
    (errors.UnknownChannel, grpc.StatusCode.NOT_FOUND),
    (errors.DuplicateTransaction, grpc.StatusCode.ALREADY_EXISTS),
    (errors.LifecycleError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InvalidInvocation, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.TransactionFailed, grpc.StatusCode.ABORTED),
    (errors.ChaincodeStreamTerminated, grpc.StatusCode.UNAVAILABLE),
    (errors.ChaincodeFailed, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ChaincodeRestarting, grpc.StatusCode.UNAVAILABLE),
    (errors.LaunchError, grpc.StatusCode.UNAVAILABLE),
    (errors.SupportShutdown, grpc.StatusCode.UNAVAILABLE),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
]
# Details carry "<ErrorType>: <message>" so the client can rebuild the exact type.
_BY_NAME = {cls.__name__: cls for cls, _ in _CODES} | {"ChaincodeError": errors.ChaincodeError}


MAX_LOG_LINES = 1000  # what one Logs reply may carry
# The largest request the service takes: an install carries a whole package file. (gRPC's
# default, 4 MiB, is too small for a Node package with its dependencies.)
MAX_ADMIN_MESSAGE = 32 * 1024 * 1024
MAX_INSTALLS = 2  # install requests the peer reads and holds at once


def _code_for(exc: errors.ChaincodeError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(
        self, support: ChaincodeSupport, *, max_subscribers: int = 16, backlog: int = 1024
    ) -> None:
        self.support = support
        self.max_subscribers = max_subscribers  # Events streams open at once
        self.backlog = backlog  # events one subscriber may leave unread
        self._subscribers = 0
        self._lock = threading.Lock()

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

    def _require_known(self, name: str, context: Any) -> None:
        # Launch and Stop act only on what the peer was told to run: a chaincode of its
        # configuration, an installed package, or one that registered itself (dev mode). The
        # name is a key, never a command: what runs is what that definition names.
        if name not in self.support.definitions and name not in self.support.status():
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"UnknownChaincode: chaincode definition for '{name}' not found",
            )

    def Launch(self, request: Any, context: Any) -> Any:
        self._require_known(request.name, context)
        started = time.perf_counter()
        try:
            self.support.launch(request.name)
        except errors.ChaincodeError as exc:
            context.abort(_code_for(exc), f"{type(exc).__name__}: {exc}")
        return admin_pb2.LaunchReply(seconds=time.perf_counter() - started)

    def Stop(self, request: Any, context: Any) -> Any:
        self._require_known(request.name, context)
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
        # A dropped subscriber still reading hears why; one that reads nothing at all holds
        # its call (and a thread) in a write that never completes: cancel it after a while.
        subscription = _Subscription(
            self.backlog, lambda: self.support.scheduler.call_later(5.0, context.cancel)
        )
        with self._lock:
            full = self._subscribers >= self.max_subscribers
            if not full:
                self._subscribers += 1
        if full:
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"ChaincodeError: {self.max_subscribers} event streams are open already",
            )
        unsubscribe = self.support.subscribe(subscription.offer)
        context.add_callback(subscription.close)
        try:
            while context.is_active():
                event = subscription.take()
                if event is None:
                    break
                if request.chaincode and event.chaincode != request.chaincode:
                    continue
                yield _event_message(event)
        finally:
            unsubscribe()
            with self._lock:
                self._subscribers -= 1
        if subscription.dropped:
            # A subscriber that falls this far behind would make the peer hold every event
            # for it; it is dropped, and told why if it is still reading.
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"ChaincodeError: event stream dropped: more than {self.backlog} events "
                "were waiting for this subscriber to read them",
            )

    # -- the chaincode lifecycle (Fabric's verbs) --------------------------------------------

    def _lifecycle(self, context: Any, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except errors.ChaincodeError as exc:
            context.abort(_code_for(exc), f"{type(exc).__name__}: {exc}")

    def Install(self, request: Any, context: Any) -> Any:
        installed = self._lifecycle(context, lambda: self.support.install(request.package))
        return admin_pb2.InstalledChaincode(
            package_id=installed.package_id, label=installed.label, type=installed.type
        )

    def QueryInstalled(self, request: Any, context: Any) -> Any:
        lifecycle = self.support.lifecycle
        found = self._lifecycle(
            context, lambda: lifecycle.query_installed(request.package_id or None)
        )
        reply = admin_pb2.InstalledChaincodes()
        for info in found:
            entry = reply.installed_chaincodes.add(
                package_id=info.package.package_id, label=info.package.label, type=info.package.type
            )
            for channel, definitions in info.references.items():
                refs = entry.references[channel]
                for definition in definitions:
                    refs.chaincodes.add(name=definition.name, version=definition.version)
        return reply

    def Define(self, request: Any, context: Any) -> Any:
        definition = definition_from_message(request)
        defined = self._lifecycle(
            context, lambda: self.support.lifecycle.define(request.channel, definition)
        )
        return definition_message(request.channel, defined)

    def QueryCommitted(self, request: Any, context: Any) -> Any:
        found = self._lifecycle(
            context, lambda: self.support.lifecycle.query_committed(request.channel, request.name)
        )
        return admin_pb2.ChaincodeDefinitions(
            chaincode_definitions=[definition_message(request.channel, d) for d in found]
        )

    def JoinChannel(self, request: Any, context: Any) -> Any:
        joined = self._lifecycle(context, lambda: self.support.lifecycle.join(request.name))
        return admin_pb2.JoinReply(joined=joined)

    def ListChannels(self, request: Any, context: Any) -> Any:
        return admin_pb2.ChannelList(channels=self.support.lifecycle.channels.names())


def definition_message(channel: str, definition: Definition) -> admin_pb2.ChaincodeDefinition:
    return admin_pb2.ChaincodeDefinition(
        channel=channel,
        **{f.name: getattr(definition, f.name) for f in dataclasses.fields(definition)},
    )


def definition_from_message(message: admin_pb2.ChaincodeDefinition) -> Definition:
    fields = {f.name: getattr(message, f.name) for f in dataclasses.fields(Definition)}
    # Empty plugins mean Fabric's defaults, as its CLI fills them.
    fields["endorsement_plugin"] = fields["endorsement_plugin"] or "escc"
    fields["validation_plugin"] = fields["validation_plugin"] or "vscc"
    return Definition(**fields)


def _event_message(event: LifecycleEvent) -> admin_pb2.LifecycleEvent:
    return admin_pb2.LifecycleEvent(
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


class _Subscription:
    """The events waiting for one Events stream: at most ``limit``, then it is dropped."""

    def __init__(self, limit: int, on_drop: Callable[[], object]) -> None:
        self._limit = limit
        self._on_drop = on_drop
        self._events: deque[LifecycleEvent] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = False

    def offer(self, event: LifecycleEvent) -> None:
        """Publisher's thread: queue ``event``, or drop the subscriber that is too far behind."""
        with self._cond:
            if self._closed:
                return
            if len(self._events) >= self._limit:
                self.dropped = self._closed = True
                self._events.clear()
                self._on_drop()
            else:
                self._events.append(event)
            self._cond.notify()

    def take(self) -> LifecycleEvent | None:
        """The next event; None once closed or dropped."""
        with self._cond:
            while not self._events and not self._closed:
                self._cond.wait()
            return self._events.popleft() if self._events else None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()


@dataclass(frozen=True)
class AdminTLS:
    """TLS of the admin API: the peer's TLS key pair, and the MSP of the peer's organisation
    whose admins alone may call it. ``client_roots`` (PEM) are the CAs the TLS handshake
    accepts client certificates from; the MSP then decides."""

    key_pem: bytes
    cert_pem: bytes
    msp: MSP
    client_roots: bytes

    @classmethod
    def from_config(cls, config: Config) -> AdminTLS | None:
        """The admin API's TLS under ``config``: on with the Gateway's (see
        :func:`actors.tls.service_tls_enabled`) once ``peer.tls.cert.file`` is set; None for
        plaintext (``peer.tls.enabled = true`` alone is the chaincode listener's TLS, which
        needs no files). Raises ConfigError for an unusable file or MSP folder."""
        from actors.config import ConfigError
        from actors.tls import service_key_pair, service_tls_enabled

        if not service_tls_enabled(config) or config.tls_cert_file is None:
            return None
        if config.msp_config_path is None:
            raise ConfigError(
                "peer.mspConfigPath: the admin API over TLS takes only admins of the peer's "
                "organisation, and needs its MSP folder to know them"
            )
        try:
            key_pem, cert_pem = service_key_pair(config)
            msp = MSP.from_dir(config.msp_config_path, config.msp_id)
            # Every member organisation's CAs pass the handshake, so that their identities are
            # refused by the MSP check with a clear PERMISSION_DENIED, not a TLS alert.
            others = {
                (o.mspid, o.msp_dir)
                for o in config.organizations
                + tuple(o for _, orgs in config.channel_members for o in orgs)
            }
            members = [msp] + [MSP.from_dir(d, mspid) for mspid, d in sorted(others)]
            extra = [Path(f).read_bytes() for f in config.tls_client_root_files]
        except OSError as exc:
            raise ConfigError(f"peer.tls: {exc}") from None
        except MSPError as exc:
            raise ConfigError(f"peer.mspConfigPath: {exc}") from None
        roots = b"".join(
            cert.public_bytes(serialization.Encoding.PEM)
            for member in members
            for cert in member.roots + member.intermediates
        )
        return cls(key_pem, cert_pem, msp, roots + b"".join(extra))

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key_pem, self.cert_pem)],
            root_certificates=self.client_roots,
            require_client_auth=True,
        )


class AdminGuard(grpc.ServerInterceptor):
    """Every admin call, whatever its method, runs only for a client certificate that is a
    valid admin identity of the peer's organisation (NodeOU admin, or listed in admincerts);
    others get PERMISSION_DENIED saying why. Fabric counterpart: the peer's admin ACL
    (``peer/Admin*``: admins of the local MSP).

    The caller is checked before its request is read: every method takes its request as a
    stream (the same bytes on the wire), so a refused caller never makes the peer read and hold
    an install's tens of MiB (Fabric's endorser reads the proposal first, then applies the
    ACL). Installs, the large requests, are bounded once admitted too: ``installs`` at a time,
    more refused with RESOURCE_EXHAUSTED. Without ``msp`` (the plaintext admin API) only that
    bound applies.

    Verdicts are cached per certificate (the last ``CACHED_VERDICTS``), each until the
    certificate's NotAfter, so a call does not re-verify the chain; the MSP is fixed for the
    peer's life, so nothing else can change a verdict."""

    CACHED_VERDICTS = 256

    def __init__(
        self,
        msp: MSP | None,
        *,
        installs: int = MAX_INSTALLS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._msp = msp
        self._clock = clock
        self._installs = installs
        self._install_slots = threading.BoundedSemaphore(installs)
        self._verdicts: OrderedDict[bytes, tuple[str | None, float]] = OrderedDict()
        self._verdicts_lock = threading.Lock()

    def refusal(self, pem: bytes | None) -> str | None:
        """Why the client with certificate ``pem`` may not call the admin API (None: it may)."""
        if not pem:
            return (
                "admin API: no client certificate: an admin of the peer's organisation must call it"
            )
        now = self._clock()
        with self._verdicts_lock:
            cached = self._verdicts.get(pem)
            if cached is not None and now <= cached[1]:
                self._verdicts.move_to_end(pem)
                return cached[0]
        verdict, until = self._judge(pem, now)
        with self._verdicts_lock:
            self._verdicts[pem] = (verdict, until)
            self._verdicts.move_to_end(pem)
            while len(self._verdicts) > self.CACHED_VERDICTS:
                self._verdicts.popitem(last=False)
        return verdict

    def _judge(self, pem: bytes, now: float) -> tuple[str | None, float]:
        """The verdict on ``pem`` and until when it holds (its NotAfter; past it, "expired")."""
        assert self._msp is not None
        try:
            identity = self._msp.identity(pem)
            self._msp.validate(identity)
        except MSPError as exc:
            reason = f"admin API: the client certificate is not an identity of {self._msp.msp_id}"
            return f"{reason}: {exc}", math.inf
        who = identity.cert.subject.rfc4514_string()
        if identity.expired(dt.datetime.fromtimestamp(now, dt.UTC)):
            return f"admin API: the client certificate of {who} has expired", math.inf
        until = identity.cert.not_valid_after_utc.timestamp()
        if not self._msp.is_admin(identity):
            return (
                f"admin API: {who} is not an admin of {self._msp.msp_id} (the client certificate "
                "must carry the admin NodeOU or be listed in admincerts)"
            ), until
        return None, until

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        install = handler_call_details.method.endswith("/Install")
        if handler.request_streaming:
            behavior, take = handler.stream_unary or handler.stream_stream, _stream
        else:
            behavior, take = handler.unary_unary or handler.unary_stream, _single

        def admit(context: Any) -> bool:
            """Refuses (aborts) the call, or admits it; True: it holds an install slot."""
            if self._msp is not None:
                certs = context.auth_context().get("x509_pem_cert") or [None]
                problem = self.refusal(certs[0])
                if problem is not None:
                    context.abort(grpc.StatusCode.PERMISSION_DENIED, f"PermissionDenied: {problem}")
            if not install:
                return False
            if not self._install_slots.acquire(blocking=False):
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"ChaincodeError: {self._installs} installs are in progress already; "
                    "try again when one has finished",
                )
            return True

        def unary(requests: Iterator[Any], context: Any) -> Any:
            held = admit(context)
            try:
                return behavior(take(requests, context), context)
            finally:
                if held:
                    self._install_slots.release()

        def streaming(requests: Iterator[Any], context: Any) -> Iterator[Any]:
            admit(context)  # no streaming method installs
            yield from behavior(take(requests, context), context)

        if handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                streaming,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_unary_rpc_method_handler(
            unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _stream(requests: Iterator[Any], context: Any) -> Iterator[Any]:
    """The requests of a streaming method, as they come."""
    return requests


def _single(requests: Iterator[Any], context: Any) -> Any:
    """The one request of a unary method, read from its stream only now. (A client gone
    meanwhile makes ``next`` raise the RpcError grpcio expects and does not log.)"""
    request = next(requests, None)
    if request is None:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ChaincodeError: no request was sent")
    return request


def serve_admin(
    support: ChaincodeSupport,
    address: str,
    max_workers: int = 64,
    event_backlog: int = 1024,
    *,
    tls: AdminTLS | None = None,
) -> tuple[grpc.Server, str]:
    """Start the admin server; returns it and the bound address (port 0 picks one).

    With ``tls``, it speaks TLS and takes only calls from admin identities of the peer's
    organisation (see :class:`AdminGuard`).

    Raises :class:`~actors.transports.grpc.ListenError` when the address is taken or bad.
    At most ``max_workers`` calls run at once, each on its own thread (gone when it returns);
    gRPC refuses more with RESOURCE_EXHAUSTED instead of queueing them. Event streams may
    take only ``max_event_subscribers`` of those, so that they never block list or query,
    and one that leaves ``event_backlog`` events unread is dropped.
    """
    subscribers = min(support.config.max_event_subscribers, max(1, max_workers // 2))
    server = grpc.server(
        ThreadPerCall("ccactors-admin"),
        options=exclusive(
            [
                # Notice a client that went away without closing its event stream.
                ("grpc.keepalive_time_ms", 60_000),
                ("grpc.keepalive_timeout_ms", 20_000),
                ("grpc.max_receive_message_length", MAX_ADMIN_MESSAGE),
            ]
        ),
        maximum_concurrent_rpcs=max_workers,
        interceptors=[AdminGuard(tls.msp if tls is not None else None)],
    )
    admin_pb2_grpc.add_AdminServicer_to_server(
        AdminServicer(support, max_subscribers=subscribers, backlog=event_backlog), server
    )
    bound = bind(server, address, credentials=tls.credentials() if tls is not None else None)
    server.start()
    return server, bound


@dataclass(frozen=True)
class AdminClient:
    """Blocking client of the admin service; raises the peer's typed errors."""

    address: str
    timeout: float = 60.0
    # TLS (see actors.tls.client_credentials): the peer's root CA, and for a peer whose admin
    # API speaks TLS, an admin's certificate and key
    credentials: grpc.ChannelCredentials | None = None
    options: tuple[tuple[str, Any], ...] = ()
    # for the message when the peer cannot be reached: whether a client certificate is
    # presented (None: unknown) and where the TLS root CA came from (a flag or a variable)
    client_cert: bool | None = None
    root_source: str = "--tls-root-cert"

    def _stub(self) -> tuple[grpc.Channel, admin_pb2_grpc.AdminStub]:
        if self.credentials is not None:
            channel = grpc.secure_channel(self.address, self.credentials, list(self.options))
        else:
            channel = grpc.insecure_channel(self.address, list(self.options))
        return channel, admin_pb2_grpc.AdminStub(channel)

    def _call(self, method: str, request: Any) -> Any:
        channel, stub = self._stub()
        try:
            return getattr(stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        finally:
            channel.close()

    def _error(self, exc: grpc.RpcError) -> errors.ChaincodeError:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            # every admin method exists on a ccactors peer: this is some other gRPC server
            return errors.PeerMismatch(
                f"{self.address} answers gRPC but is not a ccactors admin API (is it the "
                "--gateway address? use --gateway ADDR for Fabric's Gateway path, or --peer "
                "with the admin address)"
            )
        if (
            exc.code() == grpc.StatusCode.UNAVAILABLE
            and (exc.details() or "").partition(": ")[0] not in _BY_NAME
        ):
            why = explain_unavailable(
                exc.details() or "",
                address=self.address,
                tls=self.credentials is not None,
                client_cert=self.client_cert,
                root_source=self.root_source,
            )
            return (errors.PeerMismatch if why.final else errors.PeerUnavailable)(why.message)
        return _to_error(exc)

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
        is_init: bool = False,
    ) -> admin_pb2.InvokeReply:
        request = admin_pb2.InvokeRequest(
            channel=channel,
            chaincode=chaincode,
            args=list(args),
            txid=txid,
            timeout=timeout,
            transient=transient or {},
            is_init=is_init,
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

    def install(self, package: bytes) -> admin_pb2.InstalledChaincode:
        if len(package) > MAX_ADMIN_MESSAGE - 1024:
            raise errors.LifecycleError(
                f"the package is {len(package)} bytes; the admin API takes packages of at most "
                f"{MAX_ADMIN_MESSAGE - 1024} bytes"
            )
        return self._call("Install", admin_pb2.InstallRequest(package=package))

    def query_installed(self, package_id: str = "") -> admin_pb2.InstalledChaincodes:
        return self._call("QueryInstalled", admin_pb2.QueryInstalledRequest(package_id=package_id))

    def define(self, channel: str, definition: Definition) -> Definition:
        return definition_from_message(
            self._call("Define", definition_message(channel, definition))
        )

    def query_committed(self, channel: str, name: str = "") -> list[Definition]:
        request = admin_pb2.QueryCommittedRequest(channel=channel, name=name)
        reply = self._call("QueryCommitted", request)
        return [definition_from_message(d) for d in reply.chaincode_definitions]

    def join_channel(self, name: str) -> bool:
        return self._call("JoinChannel", admin_pb2.ChannelRef(name=name)).joined

    def channels(self) -> list[str]:
        return list(self._call("ListChannels", admin_pb2.ListRequest()).channels)

    def events(self, chaincode: str = "") -> Iterator[admin_pb2.LifecycleEvent]:
        channel, stub = self._stub()
        try:
            yield from stub.Events(admin_pb2.EventsRequest(chaincode=chaincode))
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise self._error(exc) from None
        finally:
            channel.close()


def _to_error(exc: grpc.RpcError) -> errors.ChaincodeError:
    details = exc.details() or ""
    name, _, message = details.partition(": ")
    cls = _BY_NAME.get(name)
    if cls is None:
        return errors.ChaincodeError(f"{exc.code().name}: {details}")
    return cls(message)
