"""ChaincodeSupport: the transaction and lifecycle API a peer embeds (launch, execute,
invoke, stop, shutdown).

Fabric counterpart: ``core/chaincode/chaincode_support.go``. The actors and what they share
are built by :class:`~actors.peer.Peer` (the composition root); this object runs the caller's
side of a transaction without blocking any actor: build the message and context on the
caller's thread, look the chaincode's Handler up in the handler directory, tell it the
transaction (it refuses a duplicate txid and tells the TXContext registry), and hand back the
context's future. The execute timeout is a deadline on a shared
timer thread; whichever of COMPLETED, ERROR, timeout or connection loss comes first ends the
context (:meth:`~actors.txcontexts.TXContext.end`), once.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka
from google.protobuf.message import DecodeError

from actors.config import ChaincodeDefinition, Config
from actors.errors import (
    ChaincodeError,
    ChaincodeStreamTerminated,
    DuplicateTransaction,
    ExecuteTimeout,
    InvalidRequest,
    LaunchError,
    LifecycleError,
    SupportShutdown,
)
from actors.events import Subscriber
from actors.handler import TransactionExpired
from actors.launcher import Launch, Status, Stop
from actors.ledger import TxSimulator, ValidationCode
from actors.lifecycle.invocation import Invocations
from actors.lifecycle.lifecycle import index_files
from actors.lifecycle.packages import InstalledPackage
from actors.mailbox import tell_quietly
from actors.peer import Peer
from actors.proposals import build_signed_proposal, compute_txid, new_nonce
from actors.runtimes import Instance, last_log_lines
from actors.supervisor import Acquire, StopChaincode
from actors.tls import ClientTLS
from actors.transports import MessageStream
from actors.txcontexts import ExecuteResult, StartTransaction, TXContext
from actors.vmcontroller import GetInstance, ListInstances
from protos.common.common_pb2 import ChannelHeader, Header, SignatureHeader
from protos.peer.chaincode_pb2 import ChaincodeInput
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage
from protos.peer.proposal_pb2 import Proposal, SignedProposal

if TYPE_CHECKING:
    from actors.listener import ChaincodeListener


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


def _channel_header(proposal: SignedProposal) -> ChannelHeader:
    """The ChannelHeader of a caller's proposal (its tx_id and timestamp)."""
    try:
        header = Header.FromString(Proposal.FromString(proposal.proposal_bytes).header)
        return ChannelHeader.FromString(header.channel_header)
    except DecodeError as exc:
        raise InvalidRequest(f"cannot read the channel header of the proposal: {exc}") from exc


def _proposal_creator(proposal: SignedProposal) -> bytes:
    """The creator in a proposal's signature header (for Fabric's duplicate-txid message)."""
    try:
        header = Header.FromString(Proposal.FromString(proposal.proposal_bytes).header)
        return SignatureHeader.FromString(header.signature_header).creator
    except DecodeError:
        return b""


def _failed(error: BaseException) -> Future[ExecuteResult]:
    future: Future[ExecuteResult] = Future()
    future.set_exception(error)
    return future


def _require_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{what} must be a non-empty string, got {value!r}")
    return value


MAX_TIMEOUT = 365 * 24 * 3600.0
"""The longest timeout accepted (a year): longer ones are surely mistakes, and a deadline
that far out overflows the clocks it is waited on."""


def check_timeout(value: Any, what: str = "timeout") -> float:
    """``value`` as a timeout in seconds: a finite positive number up to :data:`MAX_TIMEOUT`,
    else InvalidRequest (a bad timeout must not reach the deadline thread)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{what} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise InvalidRequest(f"{what} must be positive and finite, got {value}")
    if value > MAX_TIMEOUT:
        raise InvalidRequest(f"{what} must be at most {MAX_TIMEOUT:.0f} s, got {value}")
    return float(value)


class ChaincodeSupport:
    """Launches chaincode and executes transactions against it.

    Thread-safe: call ``execute``/``execute_async`` from as many threads as you like.
    ``ChaincodeSupport(config, **parts)`` builds its :class:`~actors.peer.Peer` with ``parts``
    (``ledgers``, ``runtimes``, ``peer_address``, ``tls``, stores). To run custom runtimes that
    dial the peer, give them a :class:`~actors.peer.PeerAddress` and pass the same object as
    ``peer_address`` (with TLS, a :class:`~actors.tls.ChaincodeTLS` as ``tls`` and its
    ``client_for`` to the runtimes): the listener fills it when it starts.
    """

    def __init__(self, config: Config | None = None, **parts: Any) -> None:
        # ``parts`` are the Peer's keywords (ledgers, runtimes, peer_address, tls, stores):
        # a store added to the Peer is a keyword here too, with nothing to forward by hand.
        self.peer = peer = Peer(config, invoker=self, **parts)
        # What embedders, tools and tests reach through the support.
        self.config = peer.config
        self.metrics = peer.metrics
        self.ledgers = peer.ledgers
        self.scheduler = peer.scheduler
        self.identity = peer.identity
        self.definitions = peer.definitions
        self.lifecycle = peer.lifecycle
        self.tls = peer.tls
        self.runtimes = peer.runtimes
        self.events = peer.events
        self.root = peer.root
        self.registry = peer.registry
        self.vmcontroller = peer.vmcontroller
        self.launcher = peer.launcher
        self._closed = False

    def handler_for(self, chaincode: str) -> pykka.ActorRef[Any] | None:
        """The Handler serving ``chaincode`` now, if it is ready (for tools and fault
        injection; transactions find it themselves)."""
        return self.peer.directory.get(chaincode)

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
        self.peer.lifecycle.invocations.configure(definition.name)
        self.peer.supervise(definition.name)

    def install(self, package: bytes) -> InstalledPackage:
        """Install a Fabric 2.x chaincode package (Fabric's ``InstallChaincode``): stored
        under its package id, which a definition then names to run it."""
        self._check_open()
        lifecycle = self.peer.lifecycle
        installed = lifecycle.install(package)
        package_id = installed.package_id
        try:
            # Fabric checks a package's META-INF at install: a bad index refuses it.
            index_files(package_id, lifecycle.packages.load(package_id))
        except LifecycleError:
            lifecycle.packages.discard(package_id)
            raise
        try:
            runnable = self.peer.add_installed(installed)
        except ChaincodeError as exc:  # as Fabric: a package that cannot be built is not kept
            lifecycle.packages.discard(package_id)
            raise LifecycleError(f"could not build chaincode: {exc}") from None
        if runnable:
            self.peer.supervise(package_id)
        # Definitions committed before the install now have their package: its indexes.
        for channel, definitions in lifecycle.definitions.referencing(
            package_id, lifecycle.channels.names()
        ).items():
            for definition in definitions:
                self.peer.install_indexes(channel, definition)
        return installed

    def launch(self, chaincode: str, timeout: float | None = None) -> None:
        """Start ``chaincode`` if needed and wait until it is READY."""
        self._check_open()
        wait = self.config.startup_timeout + 5 if timeout is None else check_timeout(timeout)
        self._launch_future(_require_name(chaincode, "chaincode"), explicit=True).result(wait)

    def stop(self, chaincode: str, timeout: float = 10.0) -> None:
        """Stop a chaincode's handler and instance; in-flight transactions fail."""
        self._check_open()
        wait = check_timeout(timeout)
        done: Future[bool] = Future()
        supervisor = self.peer.supervisor_for(chaincode)
        if supervisor is not None:
            supervisor.tell(StopChaincode(done))
        else:
            self.launcher.tell(Stop(chaincode, done))
        done.result(wait)

    def listen(self, address: str | None = None, **kwargs: Any) -> ChaincodeListener:
        """Start the gRPC chaincode listener (``peer.chaincodeListenAddress``); chaincode
        processes and containers dial it. Port 0 picks a free port."""
        from actors.listener import ChaincodeListener

        self._check_open()
        if self.peer.listener is not None:
            raise InvalidRequest(f"already listening on {self.peer.listener.address}")
        listener = ChaincodeListener(
            self, address or self.config.listen_address, tls=self.tls, **kwargs
        ).start()
        self.peer.attach_listener(listener)
        return listener

    def client_tls(self, ccid: str) -> ClientTLS | None:
        """TLS material for a chaincode being launched as ``ccid`` (None without TLS)."""
        return self.peer.client_tls(ccid)

    def peer_address(self) -> str | None:
        """The address chaincode should dial, or None when not listening."""
        return self.peer.address()

    def status(self) -> dict[str, str]:
        """{chaincode: "ready" | "launching" | "building" | "restarting" | "failed"}."""
        self._check_open()
        status = self.launcher.ask(Status(), timeout=10)
        for name, state in self.peer.states.snapshot().items():
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
        return self.peer.serve_stream(stream, expected=expected)

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
        isolated: bool = False,
    ) -> Future[ExecuteResult]:
        """Start executing a transaction; the future gives an :class:`ExecuteResult` or raises a
        :class:`~actors.errors.ChaincodeError`.

        ``chaincode`` is a name defined on ``channel`` (``name:version`` is taken, the version
        ignored, as Fabric does); it runs in that name's namespace on the instance of its
        definition's package id. Refused through the future, with Fabric's texts: a channel
        the peer has not joined (UnknownChannel), an undefined name (UnknownChaincode), the
        init rules (InvalidInvocation), a txid already committed (DuplicateTransaction).

        ``txid`` None makes one the way Fabric does (hash of nonce and creator), or takes it
        from the caller's ``proposal``. ``simulator`` is for chaincode-to-chaincode calls on
        one channel: the callee shares it; ``isolated`` marks a callee on another channel
        than its caller's (its writes are discarded, so private writes are refused).
        """
        self._check_open()
        channel = _require_name(channel, "channel")
        chaincode = _require_name(chaincode, "chaincode")
        arg_list = _as_args(args)
        if txid is not None:
            _require_name(txid, "txid")
        try:
            # Fabric's ChaincodeEndorsementInfo: the name on this channel -> what runs it.
            target = self.peer.lifecycle.invocations.resolve(channel, chaincode)
        except ChaincodeError as exc:
            return _failed(exc)
        if timeout is None:
            definition = self.definitions.get(target.ccid)
            timeout = (definition and definition.execute_timeout) or self.config.execute_timeout
        timeout = check_timeout(timeout)
        timestamp = None
        header: ChannelHeader | None = None
        fresh_txid = txid is None and proposal is None  # made here: cannot be committed yet
        if proposal is None:
            timestamp = time.time()
            nonce = new_nonce()
            if txid is None:
                txid = compute_txid(nonce, self.identity.serialized)
            proposal = build_signed_proposal(
                self.identity,
                channel,
                txid,
                target.name,
                arg_list,
                transient,
                nonce=nonce,
                is_init=is_init,
                sign=self.config.sign_proposals,
                timestamp=timestamp,
            )
        else:
            if transient:
                raise InvalidRequest("transient data goes inside the proposal you pass")
            if txid is None:
                header = _channel_header(proposal)
                txid = header.tx_id
                if not txid:
                    raise InvalidRequest("the proposal's channel header has no tx_id; pass txid")
            elif simulator is None:  # (a cc2cc callee commits nothing: no timestamp needed)
                # With the txid given, the proposal may be opaque to us: then no timestamp.
                with contextlib.suppress(InvalidRequest):
                    header = _channel_header(proposal)
            if header is not None and header.HasField("timestamp"):
                stamp = header.timestamp.seconds + header.timestamp.nanos / 1e9
                timestamp = stamp if stamp >= 0 else None  # before 1970: not believable
        owns = simulator is None
        if simulator is None:
            ledger = self.ledgers.get(channel)
            if not fresh_txid and ledger.txid_exists(txid):  # as Fabric's endorser
                return _failed(
                    DuplicateTransaction(
                        f"duplicate transaction found [{txid}]. "
                        f"Creator [{_proposal_creator(proposal).hex()}]"
                    )
                )
            simulator = ledger.new_simulator(txid)
        try:
            Invocations.read_definition(target, simulator)
            is_init = Invocations.check_init(target, simulator, is_init)
        except ChaincodeError as exc:
            if owns:
                simulator.done()
            return _failed(exc)
        ctx = TXContext(
            target.name,
            channel,
            txid,
            simulator,
            proposal,
            owns_simulator=owns,
            timestamp=timestamp,
            collections=self.peer.collections,
            is_init=is_init,
            isolated=isolated,
        )
        msg = ChaincodeMessage(
            type=ChaincodeMessage.INIT if is_init else ChaincodeMessage.TRANSACTION,
            payload=ChaincodeInput(args=arg_list, is_init=is_init).SerializeToString(),
            txid=txid,
            channel_id=channel,
            proposal=proposal,
        )
        handler = self.peer.directory.get(target.ccid)
        if handler is not None:
            self._dispatch(ctx, handler, msg, timeout)
        else:
            launched = self._launch_future(target.ccid)
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
        return self.ledgers.get(channel).commit(result.txid, result.results, result.timestamp)

    def _launch_future(self, chaincode: str, explicit: bool = False) -> Future[pykka.ActorRef[Any]]:
        launched: Future[pykka.ActorRef[Any]] = Future()
        supervisor = self.peer.supervisor_for(chaincode)
        try:
            if supervisor is not None:
                supervisor.tell(Acquire(launched, explicit=explicit))
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
            if not isinstance(error, ChaincodeError):
                error = LaunchError(str(error))
            ctx.end(error=error)
            return
        self._dispatch(ctx, launched.result(), msg, timeout)

    def _dispatch(
        self, ctx: TXContext, handler: pykka.ActorRef[Any], msg: ChaincodeMessage, timeout: float
    ) -> None:
        # The execute timeout starts once the chaincode is running, as in Fabric, where
        # Launch (with its own startup timeout) precedes Execute.
        ctx.deadline = self.scheduler.call_later(timeout, lambda: self._expire(ctx, handler))
        try:
            handler.tell(StartTransaction(ctx, msg))
        except pykka.ActorDeadError:  # its connection ended since the directory gave it out
            ctx.end(
                error=ChaincodeStreamTerminated(
                    "chaincode stream terminated: it ended before the transaction was sent"
                )
            )

    def _expire(self, ctx: TXContext, handler: pykka.ActorRef[Any]) -> None:
        if self._closed:  # run early by shutdown: nothing is left to answer this transaction
            ctx.end(error=SupportShutdown("chaincode support shut down during the transaction"))
            return
        if not ctx.end(error=ExecuteTimeout("timeout expired while executing transaction")):
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
        self.peer.shutdown(timeout)

    def __enter__(self) -> ChaincodeSupport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
