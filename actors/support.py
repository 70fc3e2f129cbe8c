"""ChaincodeSupport: the facade a peer embeds (launch, execute, invoke, stop, shutdown).

Fabric counterpart: ``core/chaincode/chaincode_support.go``. It wires the actors together and
runs the caller's side of a transaction without blocking any actor: build the message and
context on the caller's thread, look the chaincode's Handler up in the launcher's directory (a
dict read), tell the TXContext registry, and hand back the context's future. The execute
timeout is a deadline on a shared timer thread; whichever of COMPLETED, ERROR, timeout or
connection loss comes first resolves the future, once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka
from google.protobuf.message import DecodeError

from actors.config import ChaincodeDefinition, Config
from actors.errors import (
    ChaincodeError,
    ExecuteTimeout,
    InvalidRequest,
    LaunchError,
    SupportShutdown,
)
from actors.events import EventBus, Subscriber
from actors.handler import (
    Handler,
    HandlerDeps,
    ReportContexts,
    TransactionExpired,
    last_log_lines,
)
from actors.launcher import Launch, RuntimeLauncher, Status, Stop
from actors.ledger import Ledger, LedgerManager, TxSimulator, ValidationCode
from actors.mailbox import SupervisedRef, tell_quietly
from actors.metrics import Metrics
from actors.proposals import build_signed_proposal, compute_txid, local_identity, new_nonce
from actors.runtimes import Instance, Runtime
from actors.runtimes.docker import DockerRuntime
from actors.runtimes.external import ExternalRuntime
from actors.runtimes.process import ProcessRuntime
from actors.runtimes.system import SystemRuntime
from actors.scheduler import Scheduler
from actors.supervisor import (
    Acquire,
    ChaincodeSupervisor,
    Escalate,
    RootSupervisor,
    ShuttingDown,
    StopChaincode,
    Supervise,
    Watcher,
)
from actors.tls import ChaincodeTLS, ClientTLS
from actors.transports import MessageStream
from actors.txcontexts import (
    CreateContext,
    ExecuteResult,
    TXContext,
    TXContextRegistry,
)
from actors.vmcontroller import GetInstance, Handover, ListInstances, StopAll, VMController
from protos.common.common_pb2 import ChannelHeader, Header
from protos.peer.chaincode_pb2 import ChaincodeInput
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage
from protos.peer.proposal_pb2 import Proposal, SignedProposal

if TYPE_CHECKING:
    from actors.listener import ChaincodeListener

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InvokeResult:
    """An execution and what committing its read/write set gave (None: not committed because
    the chaincode's status was >= 400, Fabric's endorsement threshold)."""

    result: ExecuteResult
    validation: ValidationCode | None

    @property
    def committed(self) -> bool:
        return self.validation is ValidationCode.VALID

    @property
    def response(self) -> Any:
        return self.result.response


def _as_args(args: Sequence[bytes | str]) -> list[bytes]:
    if type(args) is not list and (isinstance(args, str | bytes) or not isinstance(args, Sequence)):
        raise InvalidRequest(f"args must be a list of bytes or str, got {type(args).__name__}")
    out = []
    for i, arg in enumerate(args):
        if isinstance(arg, bytes):
            out.append(arg)
        elif isinstance(arg, str):
            out.append(arg.encode())
        else:
            raise InvalidRequest(f"args[{i}] must be bytes or str, got {type(arg).__name__}")
    return out


def _proposal_txid(proposal: SignedProposal) -> str:
    """The tx_id in a caller's proposal (its ChannelHeader), which must then be the txid."""
    try:
        header = Header.FromString(Proposal.FromString(proposal.proposal_bytes).header)
        txid = ChannelHeader.FromString(header.channel_header).tx_id
    except DecodeError as exc:
        raise InvalidRequest(f"cannot read the txid from the proposal: {exc}") from exc
    if not txid:
        raise InvalidRequest("the proposal's channel header has no tx_id; pass txid")
    return txid


def _require_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{what} must be a non-empty string, got {value!r}")
    return value


class ChaincodeSupport:
    """Launches chaincode and executes transactions against it.

    Thread-safe: call ``execute``/``execute_async`` from as many threads as you like.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        ledgers: LedgerManager | None = None,
        runtimes: Mapping[str, Runtime] | None = None,
    ) -> None:
        self.config = config = config or Config()
        self.metrics = Metrics()
        self.ledgers = ledgers or LedgerManager(config.ledger_path, history=config.history)
        self.scheduler = Scheduler()
        self.identity = local_identity(config.msp_id)
        self.definitions: dict[str, ChaincodeDefinition] = {d.name: d for d in config.chaincodes}
        self._listener: ChaincodeListener | None = None
        self.tls = ChaincodeTLS() if config.tls_enabled else None
        self.runtimes: dict[str, Runtime] = dict(
            runtimes
            or {
                "system": SystemRuntime(max_frame=config.max_message_size),
                "process": ProcessRuntime(self.peer_address, tls=self.client_tls),
                # Connects to the engine on first use, so a peer without Docker still starts.
                "docker": DockerRuntime(
                    self.peer_address,
                    config.docker_endpoint,
                    config.base_image,
                    msp_id=config.msp_id,
                    tls=self.client_tls,
                ),
                "external": ExternalRuntime(max_message_size=config.max_message_size),
            }
        )
        self._directory: dict[str, pykka.ActorRef[Any]] = {}
        self._handlers: set[pykka.ActorRef[Any]] = set()
        self._handlers_lock = threading.Lock()
        self._closed = False
        self.events = EventBus()
        # The supervision tree: the root, its three peer actors, one supervisor per defined
        # chaincode. Everyone holds SupervisedRefs, which follow an actor to its replacement.
        self.root = RootSupervisor.start(self.events.publish)
        self._supervisors: dict[str, SupervisedRef] = {}  # written under _supervisors_lock
        self._supervisors_lock = threading.Lock()
        self._supervisor_states: dict[str, str] = {}  # {chaincode: restarting | failed ...}
        self.registry: SupervisedRef = self.root.ask(
            Supervise(
                "registry",
                lambda watcher, _: TXContextRegistry.start(watcher=watcher),
                rebuild=self._reindex_contexts,
            )
        )
        self.vmcontroller: SupervisedRef = self.root.ask(
            Supervise("vmcontroller", self._start_vmcontroller)
        )
        self.launcher: SupervisedRef = self.root.ask(Supervise("launcher", self._start_launcher))
        for name in self.definitions:
            self._supervise(name)
        self._deps = HandlerDeps(
            config=config,
            metrics=self.metrics,
            launcher=self.launcher,
            registry=self.registry,
            ledgers=self.ledgers,
            scheduler=self.scheduler,
            execute=self.execute_async,
        )

    # -- supervision -------------------------------------------------------------------------

    def _start_vmcontroller(self, watcher: Watcher, handover: Handover | None) -> Any:
        return VMController.start(
            self.runtimes,
            self._connect_instance,
            lambda: self.vmcontroller,
            handover=handover,
            watcher=watcher,
        )

    def _start_launcher(self, watcher: Watcher, _: Any) -> Any:
        return RuntimeLauncher.start(
            self.config,
            self.definitions,
            self.vmcontroller,
            self.scheduler,
            self.metrics,
            self._directory,
            self.events.publish,
            self._supervisors.get,
            lambda: self.launcher,
            watcher=watcher,
        )

    def _supervise(self, name: str) -> None:
        with self._supervisors_lock:
            if name in self._supervisors:
                return
            root = self.root

            def start(watcher: Watcher, _: Any) -> Any:
                return ChaincodeSupervisor.start(
                    name,
                    lambda: self.config.restart_policy(self.definitions.get(name)),
                    self.launcher,
                    self.scheduler,
                    self.events.publish,
                    self.config.startup_timeout,
                    self._supervisor_states,
                    lambda chaincode, reason: tell_quietly(root, Escalate(chaincode, reason)),
                    watcher=watcher,
                )

            self._supervisors[name] = root.ask(Supervise(f"chaincode:{name}", start))

    def _reindex_contexts(self) -> None:
        """A new registry learns the transactions in flight from the live handlers."""
        with self._handlers_lock:
            handlers = [h for h in self._handlers if h.is_alive()]
        for handler in handlers:
            tell_quietly(handler, ReportContexts())

    def handler_for(self, chaincode: str) -> pykka.ActorRef[Any] | None:
        """The Handler serving ``chaincode`` now, if it is ready (for tools and fault
        injection; transactions find it themselves)."""
        handler = self._directory.get(chaincode)
        return handler if handler is not None and handler.is_alive() else None

    def instance_of(self, chaincode: str) -> Instance | None:
        """The running instance of ``chaincode`` (pid, container, ...), or None."""
        self._check_open()
        return self.vmcontroller.ask(GetInstance(chaincode), timeout=10)

    # -- definitions and lifecycle -----------------------------------------------------------

    def define(self, definition: ChaincodeDefinition) -> None:
        """Make a chaincode known (the config's ``chaincodes`` are defined at start)."""
        self._check_open()
        if definition.runtime not in self.runtimes:
            raise InvalidRequest(
                f"chaincode {definition.name}: runtime {definition.runtime!r} is not available "
                f"(have {sorted(self.runtimes)})"
            )
        self.definitions[definition.name] = definition
        self._supervise(definition.name)

    def launch(self, chaincode: str, timeout: float | None = None) -> None:
        """Start ``chaincode`` if needed and wait until it is READY."""
        self._check_open()
        self._launch_future(_require_name(chaincode, "chaincode"), explicit=True).result(
            timeout if timeout is not None else self.config.startup_timeout + 5
        )

    def stop(self, chaincode: str, timeout: float = 10.0) -> None:
        """Stop a chaincode's handler and instance; in-flight transactions fail."""
        self._check_open()
        done: Future[bool] = Future()
        supervisor = self._supervisors.get(chaincode)
        if supervisor is not None:
            supervisor.tell(StopChaincode(done))
        else:
            self.launcher.tell(Stop(chaincode, done))
        done.result(timeout)

    def listen(self, address: str | None = None, **kwargs: Any) -> ChaincodeListener:
        """Start the gRPC chaincode listener (``peer.chaincodeListenAddress``); chaincode
        processes and containers dial it. Port 0 picks a free port."""
        from actors.listener import ChaincodeListener

        self._check_open()
        if self._listener is not None:
            raise InvalidRequest(f"already listening on {self._listener.address}")
        self._listener = ChaincodeListener(
            self, address or self.config.listen_address, tls=self.tls, **kwargs
        )
        return self._listener.start()

    def client_tls(self, ccid: str) -> ClientTLS | None:
        """TLS material for a chaincode being launched as ``ccid`` (None without TLS)."""
        return self.tls.client_for(ccid) if self.tls is not None else None

    def peer_address(self) -> str | None:
        """The address chaincode should dial, or None when not listening."""
        return self._listener.dial_address() if self._listener is not None else None

    def status(self) -> dict[str, str]:
        """{chaincode: "ready" | "launching" | "building" | "restarting" | "failed"}."""
        self._check_open()
        status = self.launcher.ask(Status(), timeout=10)
        for name, state in list(self._supervisor_states.items()):
            status.setdefault(name, "failed" if state == "failed" else "restarting")
        return status

    def instances(self) -> dict[str, str]:
        """{chaincode: description of its running instance}."""
        self._check_open()
        return self.vmcontroller.ask(ListInstances(), timeout=10)

    def logs(self, chaincode: str, lines: int = 20) -> list[str]:
        """The last lines the chaincode's running instance printed (empty when the runtime
        captures no output, as for system chaincodes, whose output is the peer's)."""
        return list(last_log_lines(self.instance_of(chaincode), lines))

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` with every :class:`~actors.events.LifecycleEvent`
        (launches, exits, crashes, restarts). The callback runs on the publishing actor's
        thread: keep it quick. Returns a function that unsubscribes."""
        return self.events.subscribe(callback)

    def serve_stream(
        self, stream: MessageStream, *, expected: str | None = None
    ) -> pykka.ActorRef[Any]:
        """Attach a new chaincode connection to a fresh Handler actor (the chaincode is
        expected to send REGISTER, as ``expected`` when given). Used by runtimes and by the
        gRPC listener."""
        self._check_open()
        ref = Handler.start(stream, self._deps, expected=expected)
        with self._handlers_lock:
            self._handlers = {h for h in self._handlers if h.is_alive()}
            self._handlers.add(ref)
        return ref

    def _connect_instance(self, stream: MessageStream, instance: Instance) -> None:
        self.serve_stream(stream, expected=instance.chaincode)

    # -- transactions ------------------------------------------------------------------------

    def execute_async(
        self,
        channel: str,
        txid: str | None,
        chaincode: str,
        args: Sequence[bytes | str],
        *,
        timeout: float | None = None,
        proposal: SignedProposal | None = None,
        transient: Mapping[str, bytes] | None = None,
        is_init: bool = False,
        simulator: TxSimulator | None = None,
    ) -> Future[ExecuteResult]:
        """Start executing a transaction; the future gives an :class:`ExecuteResult` or raises a
        :class:`~actors.errors.ChaincodeError`.

        ``txid`` None makes one the way Fabric does (hash of nonce and creator), or takes it
        from the caller's ``proposal``. ``simulator`` is for chaincode-to-chaincode calls on
        one channel: the callee shares it.
        """
        self._check_open()
        channel = _require_name(channel, "channel")
        chaincode = _require_name(chaincode, "chaincode")
        arg_list = _as_args(args)
        if txid is not None:
            _require_name(txid, "txid")
        definition = self.definitions.get(chaincode)
        if timeout is None:
            timeout = (definition and definition.execute_timeout) or self.config.execute_timeout
        if timeout <= 0:
            raise InvalidRequest(f"timeout must be positive, got {timeout}")
        if proposal is None:
            nonce = new_nonce()
            if txid is None:
                txid = compute_txid(nonce, self.identity.serialized)
            proposal = build_signed_proposal(
                self.identity,
                channel,
                txid,
                chaincode,
                arg_list,
                transient,
                nonce=nonce,
                is_init=is_init,
                sign=self.config.sign_proposals,
            )
        else:
            if transient:
                raise InvalidRequest("transient data goes inside the proposal you pass")
            if txid is None:
                txid = _proposal_txid(proposal)
        ledger: Ledger = self.ledgers.get(channel)
        owns = simulator is None
        if simulator is None:
            simulator = ledger.new_simulator(txid)
        ctx = TXContext(
            chaincode,
            channel,
            txid,
            simulator,
            ledger,
            proposal,
            is_init=is_init,
            owns_simulator=owns,
        )
        msg = ChaincodeMessage(
            type=ChaincodeMessage.INIT if is_init else ChaincodeMessage.TRANSACTION,
            payload=ChaincodeInput(args=arg_list, is_init=is_init).SerializeToString(),
            txid=txid,
            channel_id=channel,
            proposal=proposal,
        )
        handler = self._directory.get(chaincode)
        if handler is not None and handler.is_alive():
            self._dispatch(ctx, handler, msg, timeout)
        else:
            launched = self._launch_future(chaincode)
            launched.add_done_callback(lambda f: self._launched(f, ctx, msg, timeout))
        return ctx.future

    def execute(
        self,
        channel: str,
        txid: str | None,
        chaincode: str,
        args: Sequence[bytes | str],
        **kwargs: Any,
    ) -> ExecuteResult:
        """Blocking :meth:`execute_async` (Fabric's ``Execute``): simulate, do not commit."""
        return self.execute_async(channel, txid, chaincode, args, **kwargs).result()

    query = execute

    def invoke(
        self,
        channel: str,
        txid: str | None,
        chaincode: str,
        args: Sequence[bytes | str],
        **kwargs: Any,
    ) -> InvokeResult:
        """Execute, then commit the read/write set as a block of one (Fabric's submit)."""
        result = self.execute(channel, txid, chaincode, args, **kwargs)
        if result.response.status >= 400 or result.results is None:
            return InvokeResult(result, None)
        return InvokeResult(result, self.commit(channel, result))

    def commit(self, channel: str, result: ExecuteResult) -> ValidationCode:
        """MVCC-validate and commit one execution's read/write set."""
        if result.results is None:
            raise InvalidRequest("this result has no read/write set of its own (cc2cc callee)")
        return self.ledgers.get(channel).commit(result.txid, result.results)

    def _launch_future(self, chaincode: str, explicit: bool = False) -> Future[pykka.ActorRef[Any]]:
        launched: Future[pykka.ActorRef[Any]] = Future()
        supervisor = self._supervisors.get(chaincode)
        try:
            if supervisor is not None:
                supervisor.tell(Acquire(launched, explicit))
            else:  # not defined: a dev-mode registration, or unknown (the launcher says)
                self.launcher.tell(Launch(chaincode, launched))
        except pykka.ActorDeadError as exc:
            launched.set_exception(LaunchError(f"chaincode support is not running: {exc}"))
        return launched

    def _launched(
        self, launched: Future[Any], ctx: TXContext, msg: ChaincodeMessage, timeout: float
    ) -> None:
        error = launched.exception()
        if error is not None:
            if ctx.owns_simulator:
                ctx.simulator.done()
            if not isinstance(error, ChaincodeError):
                error = LaunchError(str(error))
            ctx.resolve(error=error)
            return
        self._dispatch(ctx, launched.result(), msg, timeout)

    def _dispatch(
        self, ctx: TXContext, handler: pykka.ActorRef[Any], msg: ChaincodeMessage, timeout: float
    ) -> None:
        # The execute timeout starts once the chaincode is running, as in Fabric, where
        # Launch (with its own startup timeout) precedes Execute.
        ctx.deadline = self.scheduler.call_later(timeout, lambda: self._expire(ctx, handler))
        try:
            self.registry.tell(CreateContext(ctx, handler, msg))
        except pykka.ActorDeadError:
            ctx.resolve(error=SupportShutdown("transaction context registry is not running"))

    def _expire(self, ctx: TXContext, handler: pykka.ActorRef[Any]) -> None:
        if self._closed:  # run early by shutdown: nothing is left to answer this transaction
            ctx.resolve(error=SupportShutdown("chaincode support shut down during the transaction"))
            return
        if not ctx.resolve(error=ExecuteTimeout("timeout expired while executing transaction")):
            return
        self.metrics.execute_timeouts.labels(ctx.chaincode).inc()
        tell_quietly(handler, TransactionExpired(ctx))

    # -- shutdown ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SupportShutdown("chaincode support has been shut down")

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every chaincode, actor, process and thread this object started. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.root.ask(ShuttingDown(), timeout=timeout)
        with self._supervisors_lock:
            supervisors = list(self._supervisors.values())
        for supervisor in supervisors:
            supervisor.stop(timeout=timeout)
        self.launcher.stop(timeout=timeout)
        if self._listener is not None:
            self._listener.stop()
        with self._handlers_lock:
            handlers, self._handlers = list(self._handlers), set()
        for handler in handlers:
            handler.stop(block=False)
        for handler in handlers:
            try:
                handler.stop(timeout=timeout)
            except pykka.Timeout:
                log.warning("handler did not stop within %ss", timeout)
        try:
            stopped: Future[int] = Future()
            self.vmcontroller.tell(StopAll(stopped))
            stopped.result(timeout + 10)
        finally:
            self.vmcontroller.stop(timeout=timeout)
            self.registry.stop(timeout=timeout)
            self.root.stop(timeout=timeout)
            self.scheduler.stop(run_pending=True)
            for runtime in self.runtimes.values():
                runtime.close()
            self.ledgers.close()

    def __enter__(self) -> ChaincodeSupport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
