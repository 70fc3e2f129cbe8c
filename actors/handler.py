"""Handler actor: the peer side of one chaincode connection.

Fabric counterpart: ``core/chaincode/handler.go``. One Handler per stream. It runs Fabric's FSM
(created -> established -> ready), registers the chaincode with the launcher, sends
INIT/TRANSACTION for the transactions its callers start (refusing a txid already in flight on
the connection, and telling the TXContext registry what it started), forgets those that
timed out (declaring a chaincode that stays silent hung), and ends the connection (failing what
is in flight) when it breaks.

The Handler keeps the FSM and the connection; serving a request is a function of the request and
the transaction's context (:mod:`actors.requests`). The peer's one pipe poller
(:mod:`actors.transports.poller`) receives for every pipe stream, a reader thread for any other
stream (gRPC); either hands each wake's messages to the stream's :class:`_Reader`, which serves
a batch's messages in one pass and sends the replies to them as one frame. Before READY
everything it reads goes through the mailbox, in order. Once READY it handles what belongs to a
transaction in flight itself, as Fabric's receive loop does (``Notify`` inline, each request in
a goroutine): it serves the shim's requests from the transaction's context and ends the context
on COMPLETED/ERROR, so a request costs no thread hand-off. INVOKE_CHAINCODE does not wait there
either: the callee's future sends the reply when it is done. Sends from these threads and the
actor's share the stream's send lock, as Fabric's ``serialSend`` does, and never block (a reader
blocked on a full pipe while the chaincode blocks writing to it would deadlock); the simulator's
lock keeps a transaction's requests and its cleanup (timeout, teardown) from running at once.

Write batches (Fabric 3.x): READY carries ``ChaincodeAdditionalParams`` from
``chaincode.runtimeParams``, so a shim may send a transaction's writes as WRITE_BATCH_STATEs
(served like any request, with a RESPONSE or ERROR) before its COMPLETED. Our Python shim goes
one step further on a pipe: it sends its last WRITE_BATCH_STATE and the COMPLETED *in one
frame* (:meth:`~actors.transports.pipe.PipeStream.send_together`) without waiting for the
batch's RESPONSE. The peer recognises that case by position alone: a WRITE_BATCH_STATE directly
followed, in the same frame, by the COMPLETED of the same transaction
(:class:`~actors.transports.pipe.Frames` says which messages shared a frame). A shim that waits
for the RESPONSE can never produce that pair (its COMPLETED is sent only after the RESPONSE,
which is sent only after the batch was read), and one that sends them as two frames gets its
RESPONSE, so no flag is needed and a waiting shim (Fabric's Go shim, ours over gRPC, where a
read is one message) is served as before. For the
pair the Handler applies the batch and sends nothing back: on success the COMPLETED ends the
transaction; on failure the transaction fails with the batch's error, worded as Fabric's Go
shim words the ERROR it sends for a failed batch, and the COMPLETED is ignored. Fabric's peer
serves every request in a goroutine of its own, so a COMPLETED right behind the batch could
overtake it there; it needs the shim to wait.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any

import pykka
from google.protobuf.message import DecodeError

from actors import requests
from actors.errors import ChaincodeStreamTerminated, DuplicateTransaction, TransactionFailed
from actors.ledger import LedgerError
from actors.mailbox import SupervisedRef, ThreadingActor, drain_mailbox, tell_quietly
from actors.requests import Invoker, Limits, RequestError
from actors.runtimes import describe_end
from actors.transports import ConnectionClosed, MalformedMessage, MessageStream
from actors.transports.pipe import Frames, PipeStream
from actors.transports.poller import PipePoller
from actors.txcontexts import (
    AdoptContexts,
    ContextsStarted,
    ExecuteResult,
    StartTransaction,
    TXContext,
)
from protos.peer import chaincode_pb2
from protos.peer import chaincode_shim_pb2 as shim
from protos.peer.proposal_response_pb2 import Response

if TYPE_CHECKING:
    from actors.config import Config
    from actors.ledger import LedgerManager
    from actors.metrics import Metrics
    from actors.scheduler import Deadline, Scheduler

log = logging.getLogger(__name__)

CM = shim.ChaincodeMessage
TYPE_NAMES: dict[int, str] = {v.number: v.name for v in CM.Type.DESCRIPTOR.values}

CREATED, ESTABLISHED, READY = "created", "established", "ready"

RECORD_AFTER = 0.1
"""Seconds a started transaction may stay unknown to the TXContext registry (it serves
counts and a crashed registry's replacement, never a transaction's way to its chaincode)."""


@dataclass(frozen=True)
class ConnectionLost:
    """From the reader thread: the stream ended or delivered garbage. ``closed_by_peer``: the
    other side hung up, so its instance may have died and can be asked why."""

    reason: str
    _: KW_ONLY
    closed_by_peer: bool = False


@dataclass(frozen=True)
class TransactionExpired:
    """From a deadline: the transaction was resolved with a timeout; forget its context."""

    context: TXContext


@dataclass(frozen=True)
class ServingFailed:
    """Handling a message off the actor thread (reader, callee callback) raised: a bug. The
    actor re-raises it, so the Handler crashes as if it had happened on its own thread."""

    error: BaseException


@dataclass(frozen=True)
class SendKeepalive:
    """Periodic tick: send KEEPALIVE (only when ``chaincode.keepalive`` > 0)."""


@dataclass(frozen=True)
class RecordStarted:
    """Periodic tick while transactions are being started: tell the registry those of them
    still in flight (see :meth:`Handler._batch_sent`)."""


@dataclass(frozen=True)
class ReportContexts:
    """From the root supervisor: a new TXContext registry needs this handler's live contexts."""


@dataclass(frozen=True)
class Describe:
    """Ask: a snapshot of the handler's state."""


@dataclass(frozen=True)
class HandlerInfo:
    chaincode: str | None
    state: str
    in_flight: int


@dataclass(frozen=True)
class RegisterHandler:
    """Ask the launcher: may ``handler`` register as ``chaincode``? Reply: None or a refusal."""

    chaincode: str
    handler: pykka.ActorRef[Any]


@dataclass(frozen=True)
class HandlerReady:
    """To the launcher: READY was sent; the chaincode can take transactions."""

    chaincode: str
    handler: pykka.ActorRef[Any]


@dataclass(frozen=True)
class RegistrationRefused:
    """To the launcher: the stream started for launching ``chaincode`` registered wrongly."""

    chaincode: str
    reason: str


@dataclass(frozen=True)
class HandlerGone:
    """To the launcher: this handler's connection is over."""

    chaincode: str | None
    handler: pykka.ActorRef[Any]
    reason: str
    _: KW_ONLY
    crashed: bool = False  # the Handler died of an exception
    hung: bool = False  # the chaincode was declared hung: kill it, do not ask it to stop
    closed_by_peer: bool = False  # the chaincode hung up (else the peer closed it: an error)


@dataclass(frozen=True)
class HandlerDeps:
    """What every Handler needs from the peer around it."""

    config: Config
    metrics: Metrics
    launcher: SupervisedRef
    registry: SupervisedRef
    ledgers: LedgerManager
    scheduler: Scheduler
    invoker: Invoker  # for INVOKE_CHAINCODE (ChaincodeSupport)
    poller: PipePoller | None = None  # reads pipe connections; else a reader thread each


class Handler(ThreadingActor):
    """Peer side of one chaincode connection (Fabric's ``Handler``)."""

    def __init__(
        self,
        stream: MessageStream,
        deps: HandlerDeps,
        *,
        expected: str | None = None,
    ) -> None:
        super().__init__()
        self.stream = stream
        self.deps = deps
        self.state = CREATED
        self.chaincode: str | None = None
        # Set when the connection belongs to a launch of a known id (pipe runtimes): a REGISTER
        # naming another id is refused, like Fabric's TLS binding of certificate to name.
        self.expected = expected
        self._txs: dict[tuple[str, str], TXContext] = {}
        self._closed = False
        self._ended = ""  # why the connection ended, once it has
        self._keepalive = None
        # When the chaincode last sent anything (written by the reader thread), and what it
        # was at the last silent timeout: timeouts count only while it stays the same.
        self._heard = time.monotonic()
        self._heard_when_silent = self._heard
        self._silent_timeouts = 0
        config = deps.config
        self._limits = Limits(config.query_batch_size, config.total_query_limit)
        self._can_cork = hasattr(stream, "cork")  # pipes batch (actors.transports.pipe)
        self._corked = False
        # Sent in this batch, and in the one before, not yet told to the registry.
        self._started: list[TXContext] = []
        self._unrecorded: list[TXContext] = []
        self._record_timer: Deadline | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def on_start(self) -> None:
        config, stream, poller = self.deps.config, self.stream, self.deps.poller
        reader = _Reader(
            stream,
            self.actor_ref,
            self._from_reader,
            self._batch_then_completed,
            config.max_inbound_backlog,
            config.max_inbound_rate,
        )
        if poller is not None and isinstance(stream, PipeStream):
            poller.add(stream, reader.feed)
            return
        threading.Thread(
            target=_read_loop,
            args=(stream, reader),
            name=f"ccactors-reader-{id(self):x}",
            daemon=True,
        ).start()

    def on_stop(self) -> None:
        self._teardown("handler stopped")
        self._drain_inbox()

    def on_failure(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        # pykka skips on_stop when a tell raises; the connection must still end cleanly.
        log.error("handler for %s crashed: %r", self.chaincode, exc_value)
        self._teardown(f"handler crashed: {exc_value!r}", crashed=True)
        self._drain_inbox()

    def _drain_inbox(self) -> None:
        """End what is still queued. pykka drops queued tells when an actor stops; a
        transaction among them would otherwise wait for its timeout. Senders see the actor
        dead from here on (pykka marks it stopped before calling on_stop/on_failure)."""
        reason = self._ended or "handler stopped"
        for message in drain_mailbox(self):
            if type(message) is StartTransaction:
                message.context.end(error=self._stream_terminated(reason))

    def _teardown(
        self, reason: str, *, probe_exit: bool = False, crashed: bool = False, hung: bool = False
    ) -> None:
        if self._closed:
            return
        self._closed = True
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._record_timer is not None:
            self._record_timer.cancel()
        self.stream.close()
        # Leave the launcher's directory (an ask: it must be done) before failing the
        # in-flight transactions, so a caller retrying at once launches a new instance instead
        # of reaching this handler, whose mailbox is dropped when it stops. The launcher
        # answers with the chaincode's instance, if it knows one.
        instance = None
        with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
            instance = self.deps.launcher.ask(
                HandlerGone(
                    self.chaincode,
                    self.actor_ref,
                    reason,
                    crashed=crashed,
                    hung=hung,
                    closed_by_peer=probe_exit,
                ),
                timeout=5,
            )
        if probe_exit and instance is not None:
            reason = describe_end(instance, reason)
        log.info("chaincode %s disconnected: %s", self.chaincode, reason)
        self._ended = reason
        for ctx in list(self._txs.values()):
            ctx.end(error=self._stream_terminated(reason))
        self._txs.clear()

    @staticmethod
    def _stream_terminated(reason: str) -> ChaincodeStreamTerminated:
        # One exception per caller: an instance raised in several threads collects all their
        # tracebacks.
        return ChaincodeStreamTerminated(f"chaincode stream terminated: {reason}")

    # -- mailbox -----------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        try:
            return self._on_receive(message)
        finally:
            if (self._corked or self._started) and self.actor_inbox.empty():
                if self._corked:
                    self._uncork()
                if self._started:
                    self._batch_sent()

    def _batch_sent(self) -> None:
        """The TRANSACTIONs of a batch went out: tell the registry about those of the batch
        before that are still in flight, and keep this one's for the next. Most transactions
        have ended by then (at 1 client, all), so the registry is not woken for them at all,
        and never before a send. A tick every :data:`RECORD_AFTER` seconds records what a
        quiet connection still holds. Not through the SupervisedRef, which would wait here
        for a replacement of a crashed registry: that one asks every Handler for its contexts
        anyway (:class:`ReportContexts`)."""
        self._record(self._unrecorded)
        self._unrecorded, self._started = self._started, []
        if self._record_timer is None:
            ref = self.actor_ref
            self._record_timer = self.deps.scheduler.call_later(
                RECORD_AFTER, lambda: tell_quietly(ref, RecordStarted())
            )

    def _record(self, contexts: list[TXContext]) -> None:
        live = tuple(ctx for ctx in contexts if not ctx.done)
        if live:
            tell_quietly(self.deps.registry.actor_ref, ContextsStarted(live))

    def _record_tick(self) -> None:
        self._record_timer = None
        self._record(self._unrecorded)
        self._unrecorded = []  # (the end of the next batch arms the tick again)

    def _uncork(self) -> None:
        """Send the TRANSACTIONs queued while more messages waited in the mailbox."""
        self._corked = False
        if self._closed:
            return
        try:
            self.stream.uncork()  # type: ignore[attr-defined]
        except ConnectionClosed as exc:
            self._connection_lost(f"send failed: {exc}", probe_exit=True)

    def _on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is CM:
            if not self._closed:  # after a teardown, what is still queued is moot
                self._heard = time.monotonic()
                self._inbound(message)
        elif kind is StartTransaction:
            self._start_transaction(message.context, message.message)
        elif kind is TransactionExpired:
            ctx = message.context
            key = (ctx.channel_id, ctx.txid)
            if self._txs.get(key) is ctx:  # else COMPLETED won the race on the reader
                self._txs.pop(key, None)
                self._check_hung(ctx)
        elif kind is ReportContexts:
            with contextlib.suppress(pykka.ActorDeadError):
                self.deps.registry.tell(AdoptContexts(tuple(self._txs.values())))
        elif kind is ConnectionLost:
            self._connection_lost(message.reason, probe_exit=message.closed_by_peer)
        elif kind is RecordStarted:
            self._record_tick()
        elif kind is SendKeepalive:
            self._send_keepalive()
        elif kind is Describe:
            return HandlerInfo(self.chaincode, self.state, len(self._txs))
        elif kind is ServingFailed:
            raise message.error
        else:
            raise TypeError(f"Handler: unexpected message {message!r}")
        return None

    def _inbound(self, msg: CM) -> None:
        mtype = msg.type
        if mtype == CM.KEEPALIVE:  # ignored in every state, as in Fabric
            return
        if self.state == READY:
            if self._transaction_message(msg):
                return
        elif self.state == CREATED and mtype == CM.REGISTER:
            self._register(msg)
            return
        if self.state == ESTABLISHED:
            self._protocol_error(
                f"handle message: invalid state established for transaction {msg.txid}"
            )
        else:
            self._protocol_error(
                f"[{msg.txid[:8]}] Fabric side handler cannot handle message "
                f"({TYPE_NAMES.get(mtype, mtype)}) while in {self.state} state"
            )

    def _from_reader(self, msg: CM) -> bool:
        """Reader thread: handle ``msg`` here if it belongs to a transaction in flight; False
        sends it through the mailbox (registration, KEEPALIVE, protocol errors)."""
        if self.state != READY or self._closed:
            return False
        self._heard = time.monotonic()
        return self._transaction_message(msg)

    def _transaction_message(self, msg: CM) -> bool:
        """COMPLETED/ERROR or a shim request (READY state, any thread); False if neither."""
        mtype = msg.type
        if mtype == CM.COMPLETED or mtype == CM.ERROR:
            self._notify(msg)
            return True
        if mtype == CM.INVOKE_CHAINCODE:
            self._handle_request(msg, self._invoke_chaincode)
            return True
        serve = requests.SERVERS.get(mtype)
        if serve is None:
            return False
        self._handle_request(msg, serve)
        return True

    def _check_hung(self, ctx: TXContext) -> None:
        """Liveness: a chaincode that sent nothing at all while ``hung_after`` transactions
        in a row timed out is declared hung, so that its supervisor replaces it (Fabric
        waits on it forever, one execute timeout at a time)."""
        limit = self.deps.config.hung_after
        if not limit or self._closed:
            return
        if self._heard >= ctx.sent_at:
            self._silent_timeouts = 0
            return
        if self._heard != self._heard_when_silent:  # it spoke since the last one: not in a row
            self._silent_timeouts = 0
            self._heard_when_silent = self._heard
        self._silent_timeouts += 1
        if self._silent_timeouts >= limit:
            self._connection_lost(
                f"chaincode hung: it sent nothing while {self._silent_timeouts} transactions "
                "in a row timed out",
                hung=True,
            )

    def _protocol_error(self, text: str) -> None:
        log.warning("chaincode %s: %s; closing the stream", self.chaincode, text)
        self._connection_lost(text)

    def _connection_lost(
        self, reason: str, *, probe_exit: bool = False, hung: bool = False
    ) -> None:
        self._teardown(reason, probe_exit=probe_exit, hung=hung)
        self.actor_ref.stop(block=False)

    def _send(self, msg: CM) -> bool:
        try:
            self.stream.send(msg)
            return True
        except ConnectionClosed as exc:  # the chaincode hung up: its exit status says why
            self._connection_lost(f"send failed: {exc}", probe_exit=True)
        except MalformedMessage as exc:
            self._connection_lost(f"send failed: {exc}")
        return False

    def _send_off_actor(self, msg: CM) -> None:
        """Send from the reader thread or a callee's callback: a failure ends the connection
        through the mailbox, since only the actor tears it down."""
        try:
            self.stream.send(msg)
        except ConnectionClosed as exc:
            tell_quietly(self.actor_ref, ConnectionLost(f"send failed: {exc}", closed_by_peer=True))
        except MalformedMessage as exc:
            tell_quietly(self.actor_ref, ConnectionLost(f"send failed: {exc}"))

    # -- registration ------------------------------------------------------------------------

    def _register(self, msg: CM) -> None:
        try:
            ccid = chaincode_pb2.ChaincodeID.FromString(msg.payload)
        except DecodeError as exc:
            self._protocol_error(f"error unmarshalling REGISTER payload: {exc}")
            return
        name = ccid.name
        refusal = None
        if not name:
            refusal = "error in received REGISTER message: chaincode name is empty"
        elif self.expected is not None and name != self.expected:
            refusal = f"chaincode registered as {name!r} but was launched as {self.expected!r}"
        else:
            try:
                refusal = self.deps.launcher.ask(RegisterHandler(name, self.actor_ref), timeout=10)
            except Exception as exc:  # launcher dead or hung: refuse rather than hang
                refusal = f"launcher unavailable: {exc!r}"
        if refusal is not None:
            # Fabric sends nothing and leaves the shim waiting forever; a clear ERROR and a
            # closed stream tell the chaincode what happened.
            log.warning("refusing registration of %r: %s", name, refusal)
            if self.expected is not None:  # this stream belongs to a launch: fail it now
                tell_quietly(self.deps.launcher, RegistrationRefused(self.expected, refusal))
            self._send(CM(type=CM.ERROR, payload=refusal.encode()))
            self._connection_lost(f"registration refused: {refusal}")
            return
        self.chaincode = name
        if not self._send(CM(type=CM.REGISTERED)):
            return
        self.state = ESTABLISHED
        if not self._send(CM(type=CM.READY, payload=_ready_params(self.deps.config))):
            return
        self.state = READY
        self.deps.launcher.tell(HandlerReady(name, self.actor_ref))
        if self.deps.config.keepalive > 0:
            self._arm_keepalive()

    def _arm_keepalive(self) -> None:
        ref = self.actor_ref
        self._keepalive = self.deps.scheduler.call_later(
            self.deps.config.keepalive, lambda: tell_quietly(ref, SendKeepalive())
        )

    def _send_keepalive(self) -> None:
        if self.state == READY and not self._closed and self._send(CM(type=CM.KEEPALIVE)):
            self._arm_keepalive()

    # -- transactions ------------------------------------------------------------------------

    def _start_transaction(self, ctx: TXContext, msg: CM) -> None:
        if ctx.done:
            return
        if self.state != READY or self._closed:
            # Arrived after the teardown (or, oddly, before READY): fail it with the same cause.
            ctx.end(error=self._stream_terminated(self._ended or "not ready"))
            return
        key = (ctx.channel_id, ctx.txid)
        previous = self._txs.get(key)
        # Fabric's TransactionContexts.Create, per handler: a txid in flight on this
        # connection is refused before anything is sent. One that has ended (its entry not
        # dropped yet) is replaced: its caller may reuse the txid at once.
        if previous is not None and not previous.done:
            ctx.end(error=DuplicateTransaction(f"txid: {ctx.txid}({ctx.channel_id}) exists"))
            return
        self._txs[key] = ctx
        self._started.append(ctx)
        ctx.sent_at = time.monotonic()
        if not self._corked and self._can_cork and not self.actor_inbox.empty():
            # More is waiting (under load, more transactions): send them all as one frame
            # when the mailbox is empty. A lone transaction goes out at once.
            self.stream.cork()  # type: ignore[attr-defined]
            self._corked = True
        self._send(msg)

    def _notify(self, msg: CM) -> None:
        ctx = self._txs.pop((msg.channel_id, msg.txid), None)
        if ctx is None:  # late reply after a timeout, or a txid we never sent: Fabric ignores
            log.debug(
                "chaincode %s: %s for unknown tx %s ignored", self.chaincode, msg.type, msg.txid
            )
            return
        if msg.type == CM.ERROR:
            text = msg.payload.decode("utf-8", "replace")
            ctx.end(error=TransactionFailed(f"transaction returned with failure: {text}"))
            return
        try:
            response = Response.FromString(msg.payload)
        except DecodeError as exc:
            ctx.end(error=TransactionFailed(f"failed to unmarshal response: {exc}"))
            return
        event = None
        if msg.HasField("chaincode_event"):
            event = msg.chaincode_event
            event.chaincode_id = ctx.chaincode
            event.tx_id = ctx.txid
        results = None
        if ctx.owns_simulator:
            with ctx.simulator.lock:
                try:
                    results = ctx.simulator.get_results()
                except LedgerError as exc:  # e.g. a write went over the write set limit
                    failed = TransactionFailed(f"failed to obtain simulation results: {exc}")
                else:
                    failed = None
            if failed is not None:
                ctx.end(error=failed)
                return
        ctx.end(ExecuteResult(response, results, event, ctx.txid, ctx.timestamp))

    def _batch_then_completed(self, batch: CM, completed: CM) -> bool:
        """Reader: a WRITE_BATCH_STATE with its transaction's COMPLETED right behind it (the
        module doc): apply the batch, reply nothing, end the transaction. False: not READY."""
        if self.state != READY or self._closed:
            return False
        self._heard = time.monotonic()
        started = time.perf_counter()
        done = self.deps.metrics.shim_request(
            TYPE_NAMES[batch.type], batch.channel_id, self.chaincode or ""
        )
        key = (batch.channel_id, batch.txid)
        ctx = self._txs.get(key)
        error = requests.no_context(batch)
        if ctx is not None:
            with ctx.simulator.lock:
                _, error = self._serve_locked(batch, ctx, requests.write_batch)
        done(error is None, time.perf_counter() - started)
        if error is None:
            self._notify(completed)
            return True
        ctx = self._txs.pop(key, None)  # None: over already (timed out); nothing to say
        if ctx is not None:
            ctx.end(error=TransactionFailed(requests.failed_batch_text(batch, error)))
        return True

    # -- shim requests -----------------------------------------------------------------------

    def _handle_request(self, msg: CM, serve: Callable[[CM, TXContext, Limits], Any]) -> None:
        started = time.perf_counter()
        done = self.deps.metrics.shim_request(
            TYPE_NAMES[msg.type], msg.channel_id, self.chaincode or ""
        )
        ctx = self._txs.get((msg.channel_id, msg.txid))
        if ctx is None:
            payload, error = None, requests.no_context(msg)
        else:
            with ctx.simulator.lock:
                payload, error = self._serve_locked(msg, ctx, serve)
        if type(payload) is Future:  # INVOKE_CHAINCODE: answered when the callee ends

            def callee_done(outcome: Future[ExecuteResult]) -> None:
                try:
                    self._callee_done(msg, ctx, outcome, started, done)
                except Exception as exc:  # concurrent.futures would only log it
                    tell_quietly(self.actor_ref, ServingFailed(exc))

            payload.add_done_callback(callee_done)
            return
        self._reply(msg, payload, error)
        done(error is None, time.perf_counter() - started)

    def _serve_locked(
        self, msg: CM, ctx: TXContext, serve: Callable[[CM, TXContext, Limits], Any]
    ) -> tuple[Any, str | None]:
        """(payload, None) or (None, error text); the simulator's lock is held."""
        if ctx.done:
            return None, requests.no_context(msg)
        if ctx.pending_request:
            # Fabric silently drops a second concurrent request of one tx (the shim then waits
            # forever); an ERROR says what went wrong.
            return None, "another request is pending for this transaction"
        try:
            payload = serve(msg, ctx, self._limits)
        except (RequestError, LedgerError, DecodeError, ValueError, TypeError) as exc:
            return None, str(exc) or type(exc).__name__
        except Exception as exc:  # Fabric turns panics into ERROR too
            log.exception("chaincode %s: %s failed", self.chaincode, TYPE_NAMES[msg.type])
            return None, f"unexpected error: {exc!r}"
        if type(payload) is Future:
            ctx.pending_request = True
        return payload, None

    def _reply(self, msg: CM, payload: bytes | None, error: str | None) -> None:
        if error is None:
            self._send_off_actor(
                CM(type=CM.RESPONSE, payload=payload, txid=msg.txid, channel_id=msg.channel_id)
            )
        else:
            text = f"{TYPE_NAMES[msg.type]} failed: transaction ID: {msg.txid}: {error}"
            self._send_off_actor(
                CM(type=CM.ERROR, payload=text.encode(), txid=msg.txid, channel_id=msg.channel_id)
            )

    # -- chaincode to chaincode --------------------------------------------------------------

    def _invoke_chaincode(self, msg: CM, ctx: TXContext, limits: Limits) -> Future[ExecuteResult]:
        return requests.invoke_chaincode(msg, ctx, self.deps.invoker, self.deps.ledgers)

    def _callee_done(
        self,
        msg: CM,
        ctx: TXContext,
        outcome: Future[ExecuteResult],
        started: float,
        metric_done: Callable[[bool, float], None],
    ) -> None:
        """The callee of ``msg`` ended (on whichever thread ended it): reply to the caller."""
        with ctx.simulator.lock:
            ctx.pending_request = False
            caller_gone = ctx.done
        if caller_gone:  # the caller timed out or its connection ended meanwhile: no reply
            metric_done(False, time.perf_counter() - started)
            return
        payload, error = requests.callee_reply(msg, ctx, outcome)
        self._reply(msg, payload, error)
        metric_done(error is None, time.perf_counter() - started)


class _Reader:
    """Serves what the chaincode sends, off the actor thread: ``handle`` what it can here (see
    the module doc), tell the rest to the Handler in arrival order. Fed by a reader thread
    (:func:`_read_loop`) or by the peer's :class:`~actors.transports.poller.PipePoller`.

    Two guards against a flooding chaincode, each closing only its connection: more than
    ``backlog_limit`` messages waiting in the mailbox (memory), and more messages than a token
    bucket of ``rate_limit`` per second, one second deep, allows (0: off).
    """

    def __init__(
        self,
        stream: MessageStream,
        ref: pykka.ActorRef[Any],
        handle: Callable[[CM], bool],
        handle_pair: Callable[[CM, CM], bool],
        backlog_limit: int,
        rate_limit: float,
    ) -> None:
        self._stream = stream
        self._ref = ref
        self._handle = handle
        self._handle_pair = handle_pair  # a WRITE_BATCH_STATE and its COMPLETED (module doc)
        self._backlog_limit = backlog_limit
        self._rate_limit = rate_limit
        self._tokens, self._last = rate_limit, time.monotonic()

    def feed(self, got: list[CM] | ConnectionClosed | MalformedMessage) -> bool:
        """Serve the messages of one wake, or the end of the stream; False: stop reading."""
        ref = self._ref
        if isinstance(got, ConnectionClosed):
            tell_quietly(ref, ConnectionLost(str(got), closed_by_peer=True))
            return False
        if isinstance(got, MalformedMessage):
            tell_quietly(ref, ConnectionLost(f"malformed message: {got}"))
            return False
        stream, handle, tell = self._stream, self._handle, ref.tell
        batch = len(got) > 1
        try:
            if batch:  # the replies to a batch go back as one (see actors.transports.pipe)
                stream.cork()  # type: ignore[attr-defined]
            try:
                index, count = 0, len(got)
                while index < count:
                    msg = got[index]
                    index += 1
                    try:
                        if (
                            msg.type == CM.WRITE_BATCH_STATE
                            and index < count
                            and _completes(msg, got[index])
                            and isinstance(got, Frames)
                            and got.same_frame(index - 1, index)
                        ):
                            index += 1
                            if not self._handle_pair(msg, got[index - 1]):
                                tell(msg)
                                tell(got[index - 1])
                            continue
                        handled = handle(msg)
                    except Exception as exc:
                        tell_quietly(ref, ServingFailed(exc))
                        return False
                    if not handled:
                        tell(msg)
            finally:
                if batch:
                    stream.uncork()  # type: ignore[attr-defined]
        except ConnectionClosed as exc:
            tell_quietly(ref, ConnectionLost(str(exc), closed_by_peer=True))
            return False
        except pykka.ActorDeadError:
            stream.close()
            return False
        flood = None
        rate_limit = self._rate_limit
        if rate_limit:
            now = time.monotonic()
            self._tokens = min(rate_limit, self._tokens + (now - self._last) * rate_limit) - len(
                got
            )
            self._last = now
            if self._tokens < 0:
                flood = f"more than {rate_limit:g} messages per second from the chaincode"
        if flood is None and ref.actor_inbox.qsize() > self._backlog_limit:
            flood = f"more than {self._backlog_limit} messages from the chaincode waiting"
        if flood is not None:
            # Stop reading; the Handler serves what is queued (bounded), then closes.
            tell_quietly(ref, ConnectionLost(f"flooded: {flood}"))
            return False
        return True


def _completes(batch: CM, msg: CM) -> bool:
    """``msg`` is the COMPLETED of ``batch``'s transaction."""
    return (
        msg.type == CM.COMPLETED and msg.txid == batch.txid and msg.channel_id == batch.channel_id
    )


def _ready_params(config: Config) -> bytes:
    """READY's payload: Fabric 3.x's ``sendReady`` announces ``chaincode.runtimeParams``."""
    return chaincode_pb2.ChaincodeAdditionalParams(
        use_write_batch=config.use_write_batch,
        max_size_write_batch=config.max_size_write_batch or 1000,
        use_get_multiple_keys=config.use_get_multiple_keys,
        max_size_get_multiple_keys=config.max_size_get_multiple_keys or 1000,
    ).SerializeToString()


def _read_loop(stream: MessageStream, reader: _Reader) -> None:
    """Reader thread (streams no poller reads, e.g. gRPC)."""
    recv_batch = getattr(stream, "recv_batch", None)  # pipes: a frame may carry several
    while True:
        try:
            msgs = recv_batch() if recv_batch is not None else [stream.recv()]
        except (ConnectionClosed, MalformedMessage) as exc:
            reader.feed(exc)
            return
        if not reader.feed(msgs):
            return
