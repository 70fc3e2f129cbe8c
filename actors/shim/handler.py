"""The chaincode side of the peer<->chaincode stream: handshake FSM, dispatch, reply routing.

Fabric counterpart: fabric-chaincode-go ``shim/handler.go`` (``Handler``) plus the receive loop
of ``shim/shim.go`` (``chatWithPeer``). Transport-agnostic: it only needs a
:class:`~actors.transports.base.MessageStream`, so the same chaincode runs over a pipe or gRPC.

States follow the Go shim: ``created`` accepts only REGISTERED, ``established`` only READY,
``ready`` accepts RESPONSE/ERROR (replies to stub requests), INIT and TRANSACTION. KEEPALIVE is
echoed in every state. Anything else is a protocol error: the handler sends ERROR and ends the
stream. Many transactions are in flight at once; each may have one request outstanding, whose
reply is routed back by ``(channel_id, txid)``.

How transactions run and how a stub request waits for its reply is a strategy, an
:class:`_Engine` chosen by ``Chaincode.concurrency``; :class:`ShimHandler` itself keeps the FSM,
the dispatch of each message and the running of one transaction.

*auto* (:class:`_AutoEngine`, the default over a pipe when the ``greenlet`` package is there,
else *threads*): greenlets as below, plus a watchdog thread that hands reading to a new thread
when a transaction keeps the reading thread in user code, after which every transaction runs
on a pool thread of its own; see the class.

*threads* (:class:`_ThreadEngine`): transactions run on a thread pool. Reading
is leader/follower, to save thread hand-offs (each wake-up of a sleeping thread costs
~10 us of GIL-held time, and with a dedicated reader thread every reply was one). Whoever holds
the *read token* reads the next message and dispatches it as before: KEEPALIVE is echoed, a
TRANSACTION/INIT goes to the pool, a reply is delivered to its waiting slot. Who holds it:

* a worker that has sent a request takes the token if it is free and reads until its own reply
  arrives (no hand-off for that reply); otherwise it sleeps on its slot, where the reader either
  delivers its reply or, when giving the token up, promotes it to be the next reader. So a
  reader that got its reply passes the token to a waiter (one wake-up, which that waiter needed
  anyway) and only *parks* it (leaves it free) when nobody waits;
* a worker that has sent its transaction's reply takes a parked token and reads until it has
  handed work to someone; a TRANSACTION/INIT it reads it runs itself, after giving the token
  up, instead of waking a pool thread (with one client in flight, no hand-off at all);
* :meth:`run`'s thread reads at start and takes the token when it has stayed parked for a whole
  grace period (e.g. the only running transaction is busy in user code), so KEEPALIVE, new
  transactions and a closing stream are never left unread for longer than that. Between the
  last transaction and the next it stops polling and waits to be woken by the next park.

Exactly one thread is in ``recv`` at a time, and a thread running user code never holds the
token. Whoever reads the end of the stream (or a protocol error) shuts down: every waiting slot
fails with "connection to peer lost".

*greenlets* (:class:`_GreenletEngine`): the chaincode runs on one thread; every transaction is a
greenlet of :meth:`run`'s loop, a stub request switches back to the loop, and the loop switches
into the transaction its reply is for. No thread hand-off, no GIL contention (at 64 transactions
in flight a third of the CPU per transaction that threads need; over a pipe, what the
transactions of one frame send goes back as one frame), but, as in the Node shim's event loop,
user code that blocks outside the stub (``time.sleep``, I/O) stalls every transaction of the
chaincode.

*Write batches.* When READY offers them (Fabric 3.x ``ChaincodeAdditionalParams``) and
``Chaincode.write_batch`` is on, a transaction's writes wait in its stub (see
:mod:`actors.shim.stub`) and go out as WRITE_BATCH_STATEs of at most ``max_size_write_batch``
records (at least 100, as in Go) when it ends: Go's shim sends each and waits for its RESPONSE,
then sends COMPLETED; a failed batch becomes the transaction's ERROR, "failed send batch:
failed send batch: <the peer's ERROR>". Over a stream that can send several messages as one
frame (``send_together``: the pipe) the last batch and the COMPLETED go together and nothing
waits for the batch's RESPONSE, which the peer then does not send (the peer's side of this is
described in :mod:`actors.handler`); if they do not fit in one frame, the batch goes alone and
is waited for. A failed Init (status >= 500) sends no batch, as in Go.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from google.protobuf.message import DecodeError

from actors.shim.chaincode import ERROR, Chaincode, ChaincodeRequestError
from actors.shim.stub import ChaincodeStub
from actors.transports.base import ConnectionClosed, MalformedMessage, MessageStream
from protos.peer.chaincode_pb2 import ChaincodeAdditionalParams, ChaincodeID, ChaincodeInput
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage, WriteBatchState, WriteRecord
from protos.peer.proposal_response_pb2 import Response

log = logging.getLogger(__name__)

CREATED = "created"
ESTABLISHED = "established"
READY = "ready"

CONNECTION_LOST = "connection to peer lost"

_Type = ChaincodeMessage.Type

_GRACE = 0.001
"""Seconds the read token may stay parked before :meth:`ShimHandler.run`'s thread reads."""
_LINGER = 2
"""Grace periods without a park after which :meth:`ShimHandler.run`'s thread stops polling.
Short, because every chaincode process polls: at 50, 100 live chaincodes cost 58% more CPU per
transaction than at 2 (bench scaling section)."""
_MIN_BATCH = 100
"""Go's shim raises a smaller announced ``max_size_write_batch``/``max_size_get_multiple_keys``
to this."""
_TRANSACTIONS = frozenset((ChaincodeMessage.TRANSACTION, ChaincodeMessage.INIT))
_REPLIES = frozenset((ChaincodeMessage.RESPONSE, ChaincodeMessage.ERROR))
CONCURRENCY = ("auto", "threads", "greenlets")
"""How a chaincode's transactions run: ``Chaincode.concurrency`` picks one."""
_HANDS_OFF_WORK = frozenset(
    (
        ChaincodeMessage.TRANSACTION,
        ChaincodeMessage.INIT,
        ChaincodeMessage.RESPONSE,
        ChaincodeMessage.ERROR,
    )
)
"""Message types whose handling wakes someone: an idle reader gives the token up after one."""


def _short(txid: str) -> str:
    return txid[:8]


def _send_failed(
    msg: ChaincodeMessage, exc: ConnectionClosed | MalformedMessage
) -> ChaincodeRequestError:
    if isinstance(exc, ConnectionClosed):
        return ChaincodeRequestError(CONNECTION_LOST)
    return ChaincodeRequestError(
        f"[{_short(msg.txid)}] error sending {_Type.Name(msg.type)}: {exc}"
    )


def _overlapping(msg: ChaincodeMessage) -> ChaincodeRequestError:
    return ChaincodeRequestError(
        f"[{_short(msg.txid)}] another request of this transaction is still waiting for the "
        "peer; requests must not overlap"
    )


class _ReplySlot:
    """Where the reader drops the reply to one outstanding request.

    The latch is released once: by :meth:`deliver`, :meth:`fail` or :meth:`promote` (the
    waiter is handed the read token). ``promoted`` is only changed under the engine's
    ``_slots_lock``, which is also where :meth:`fail` is decided, so the latch is never
    released twice.
    """

    __slots__ = ("_latch", "error", "promoted", "reply")

    def __init__(self) -> None:
        # A lock acquired up front is a one-shot latch: the waiter blocks on acquire until the
        # reader releases it. It is CPython's cheapest blocking primitive (Event adds a
        # Condition), and it costs nothing if the reply arrives before the waiter waits.
        self._latch = threading.Lock()
        self._latch.acquire()
        self.reply: ChaincodeMessage | None = None
        self.error = ""
        self.promoted = False

    @property
    def done(self) -> bool:
        return self.reply is not None or bool(self.error)

    def deliver(self, reply: ChaincodeMessage) -> None:
        self.reply = reply
        self._latch.release()

    def fail(self, error: str) -> None:
        self.error = error
        if not self.promoted:  # a promoted waiter is awake already and sees the error
            self._latch.release()

    def promote(self) -> None:
        self._latch.release()

    def wait(self) -> None:
        """Block until :meth:`deliver`, :meth:`fail` or :meth:`promote`."""
        self._latch.acquire()

    def result(self) -> ChaincodeMessage:
        if self.reply is None:
            raise ChaincodeRequestError(self.error)
        return self.reply


class _GreenletSlot:
    """Where the loop puts the reply to one request of a greenlet transaction."""

    __slots__ = ("error", "greenlet", "reply")

    def __init__(self, waiter: Any) -> None:
        self.greenlet = waiter
        self.reply: ChaincodeMessage | None = None
        self.error = ""

    def result(self) -> ChaincodeMessage:
        if self.reply is None:
            raise ChaincodeRequestError(self.error)
        return self.reply


class _Engine(Protocol):
    """How a :class:`ShimHandler` runs transactions and waits for replies to stub requests."""

    def run(self) -> None:
        """Send REGISTER, then read and dispatch until the stream ends."""

    def start(self, msg: ChaincodeMessage) -> None:
        """Run a TRANSACTION or INIT (the handler is ready) and send its reply."""

    def deliver(self, msg: ChaincodeMessage) -> bool:
        """Hand a RESPONSE or ERROR to the request waiting for it; False if none is."""

    def exchange(self, msg: ChaincodeMessage) -> ChaincodeMessage:
        """Send a stub request and return the peer's reply (see :meth:`ShimHandler.exchange`)."""


class ShimHandler:
    """Runs one chaincode over one stream; :meth:`run` blocks until the stream ends."""

    def __init__(
        self, stream: MessageStream, chaincode: Chaincode, name: str, max_workers: int = 64
    ) -> None:
        concurrency = getattr(chaincode, "concurrency", "auto")
        if concurrency not in CONCURRENCY:
            raise ValueError(
                f"{type(chaincode).__name__}.concurrency must be one of {CONCURRENCY}, "
                f"not {concurrency!r}"
            )
        self._stream = stream
        self._chaincode = chaincode
        self.name = name
        self.state: str = CREATED
        self.error: str | None = None
        """Why :meth:`run` ended, if not a clean close (a protocol error or malformed frame)."""
        self.ready_params: ChaincodeAdditionalParams | None = None
        """READY's payload (Fabric 3.1+): what the peer offers besides single requests."""
        self.write_batch_size = 0
        """Records per WRITE_BATCH_STATE; 0 while the peer offers no write batches."""
        self.get_multiple_size = 0
        """Keys per GET_STATE_MULTIPLE; 0 while the peer offers none (one GET_STATE a key)."""
        self.batch_writes = False
        """Every transaction's stub batches its writes (offered, and ``write_batch`` on)."""
        self._wants_batches = bool(getattr(chaincode, "write_batch", True))
        self._engine: _Engine
        greenlet: Any = None
        if concurrency != "threads":
            try:
                import greenlet  # only chaincode that asks for it needs the package
            except ImportError as exc:
                if concurrency == "greenlets":
                    raise ValueError(
                        "concurrency='greenlets' needs the greenlet package, which is not "
                        "installed here (the Docker base image does not have it)"
                    ) from exc
        if concurrency == "greenlets":
            self._engine = _GreenletEngine(self, greenlet)
        elif greenlet is not None and hasattr(stream, "recv_batch") and hasattr(stream, "cork"):
            self._engine = _AutoEngine(self, greenlet, max_workers)
        else:  # auto without the greenlet package, or over a stream that does not batch
            self._engine = _ThreadEngine(self, max_workers)

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> None:
        """Register, then serve the peer until the stream closes or a protocol error occurs."""
        self._engine.run()

    def stop(self) -> None:
        """Close the stream; :meth:`run` then returns and waiting stub calls fail."""
        self._stream.close()

    def _register_message(self) -> ChaincodeMessage:
        return ChaincodeMessage(
            type=ChaincodeMessage.REGISTER,
            payload=ChaincodeID(name=self.name).SerializeToString(),
        )

    def _stream_ended(self, exc: ConnectionClosed | MalformedMessage) -> None:
        if isinstance(exc, MalformedMessage):
            self._protocol_error(f"malformed message from peer: {exc}", "")
        else:
            log.debug("shim %s: stream closed", self.name)

    def _protocol_error(self, text: str, txid: str) -> None:
        """Tell the peer why we give up (Go sends ERROR with txid only), then end the stream."""
        log.error("shim %s: %s", self.name, text)
        self.error = text
        with contextlib.suppress(ConnectionClosed, MalformedMessage):
            self._stream.send(
                ChaincodeMessage(type=ChaincodeMessage.ERROR, payload=text.encode(), txid=txid)
            )

    # ------------------------------------------------------------------ receive side

    def _handle(self, msg: ChaincodeMessage) -> bool:
        """Process one message from the peer; False ends the stream."""
        mtype = msg.type
        if mtype == ChaincodeMessage.KEEPALIVE:
            self._stream.send(msg)
            return True
        state = self.state
        if state == READY:
            if mtype in _REPLIES:
                if self._engine.deliver(msg):
                    return True
                # The Go shim treats a reply nobody waits for as fatal; a peer that sends one
                # has lost track of the transaction, so we do the same rather than guess.
                self._protocol_error(
                    f"[{msg.txid}] no request is waiting for this "
                    f"{_Type.Name(msg.type)} (channel {msg.channel_id!r})",
                    msg.txid,
                )
                return False
            if mtype in _TRANSACTIONS:
                self._engine.start(msg)
                return True
        elif state == ESTABLISHED and mtype == ChaincodeMessage.READY:
            self.state = READY
            self._note_ready_params(msg.payload)
            return True
        elif state == CREATED and mtype == ChaincodeMessage.REGISTERED:
            self.state = ESTABLISHED
            return True
        self._protocol_error(
            f"[{msg.txid}] Chaincode handler cannot handle message "
            f"({_Type.Name(mtype) if mtype in _Type.values() else mtype}) "
            f"while in state: {state}",
            msg.txid,
        )
        return False

    def _note_ready_params(self, payload: bytes) -> None:
        if not payload:
            return
        params = ChaincodeAdditionalParams()
        try:
            params.ParseFromString(payload)
        except DecodeError:
            return  # like Go: an unreadable READY payload is ignored
        self.ready_params = params
        if params.use_write_batch:
            self.write_batch_size = max(params.max_size_write_batch, _MIN_BATCH)
            self.batch_writes = self._wants_batches
        if params.use_get_multiple_keys:
            self.get_multiple_size = max(params.max_size_get_multiple_keys, _MIN_BATCH)

    # ------------------------------------------------------------------ transactions

    def _serve_one(self, msg: ChaincodeMessage) -> None:
        reply, writes = self._execute(msg)
        if writes:
            sent = self._finish_batch(msg, reply, writes)
            if sent is None:
                return
            reply = sent
        try:
            self._stream.send(reply)
        except ConnectionClosed:
            log.debug("shim %s: [%s] peer gone before the reply", self.name, _short(msg.txid))
        except MalformedMessage as exc:  # e.g. a response over the frame limit
            with contextlib.suppress(ConnectionClosed, MalformedMessage):
                self._stream.send(self._error_reply(msg, f"failed to send reply: {exc}"))

    @staticmethod
    def _error_reply(msg: ChaincodeMessage, text: str) -> ChaincodeMessage:
        return ChaincodeMessage(
            type=ChaincodeMessage.ERROR,
            payload=text.encode(),
            txid=msg.txid,
            channel_id=msg.channel_id,
        )

    def _execute(self, msg: ChaincodeMessage) -> tuple[ChaincodeMessage, list[WriteRecord]]:
        """Run Init/Invoke for one INIT/TRANSACTION: the COMPLETED/ERROR reply, and the writes
        its stub kept for a batch, to be sent before a COMPLETED."""
        chaincode_input = ChaincodeInput()
        try:
            chaincode_input.ParseFromString(msg.payload)
        except DecodeError as exc:
            return self._error_reply(msg, f"failed to unmarshal input: {exc}"), []
        proposal = msg.proposal if msg.HasField("proposal") else None
        try:
            stub = ChaincodeStub(self, msg.channel_id, msg.txid, chaincode_input, proposal)
        except ValueError as exc:
            return self._error_reply(msg, f"failed to create new ChaincodeStub: {exc}"), []
        reply = self._run(msg, stub)
        writes = stub.take_write_batch()
        return reply, writes if reply.type == ChaincodeMessage.COMPLETED else []

    def _run(self, msg: ChaincodeMessage, stub: ChaincodeStub) -> ChaincodeMessage:
        """Call the chaincode's init or invoke with ``stub``; the COMPLETED/ERROR reply."""
        is_init = msg.type == ChaincodeMessage.INIT
        try:
            response = self._chaincode.init(stub) if is_init else self._chaincode.invoke(stub)
        except BaseException as exc:
            # BaseException: the pool would swallow e.g. SystemExit silently and the peer would
            # wait for this transaction until its execute timeout.
            log.warning(
                "shim %s: [%s] chaincode raised", self.name, _short(msg.txid), exc_info=True
            )
            return self._error_reply(msg, f"{type(exc).__name__}: {exc}")
        if not isinstance(response, Response):
            method = "init" if is_init else "invoke"
            return self._error_reply(
                msg, f"chaincode {method} returned {type(response).__name__}, not a Response"
            )

        reply = ChaincodeMessage(txid=msg.txid, channel_id=msg.channel_id)
        if is_init and response.status >= ERROR:
            # Go shim: a failed Init is an ERROR carrying the message; a failed Invoke is still
            # COMPLETED and the endorser reads the status.
            reply.type = ChaincodeMessage.ERROR
            reply.payload = response.message.encode()
        else:
            reply.type = ChaincodeMessage.COMPLETED
            reply.payload = response.SerializeToString()
        if stub.chaincode_event is not None:
            reply.chaincode_event.CopyFrom(stub.chaincode_event)
        return reply

    def _finish_batch(
        self, msg: ChaincodeMessage, reply: ChaincodeMessage, writes: list[WriteRecord]
    ) -> ChaincodeMessage | None:
        """Send a finished transaction's kept writes (module doc): the reply still to send
        (the COMPLETED, or the ERROR of a failed batch), or None if it went with the batch."""
        size = self.write_batch_size
        chunks = [writes[start : start + size] for start in range(0, len(writes), size)]
        together = getattr(self._stream, "send_together", None)
        last = chunks.pop() if together is not None else None
        try:
            for chunk in chunks:
                self.send_write_batch(msg.channel_id, msg.txid, chunk)
            if last is None or together is None:
                return reply
            try:
                together([self._batch_message(msg.channel_id, msg.txid, last), reply])
                return None
            except MalformedMessage:  # too big for one frame: the batch alone, waited for
                self.send_write_batch(msg.channel_id, msg.txid, last)
                return reply
            except ConnectionClosed:
                log.debug("shim %s: [%s] peer gone before the reply", self.name, _short(msg.txid))
                return None
        except ChaincodeRequestError as exc:
            return self._error_reply(msg, f"failed send batch: {exc}")

    @staticmethod
    def _batch_message(channel_id: str, txid: str, records: list[WriteRecord]) -> ChaincodeMessage:
        return ChaincodeMessage(
            type=ChaincodeMessage.WRITE_BATCH_STATE,
            payload=WriteBatchState(rec=records).SerializeToString(),
            txid=txid,
            channel_id=channel_id,
        )

    def send_write_batch(self, channel_id: str, txid: str, records: list[WriteRecord]) -> None:
        """Send ``records`` as WRITE_BATCH_STATEs of at most ``write_batch_size`` and wait
        for each RESPONSE (Go's ``sendBatch``); a refusal raises
        :class:`ChaincodeRequestError` "failed send batch: <the peer's text>"."""
        size = self.write_batch_size or len(records)
        for start in range(0, len(records), size):
            message = self._batch_message(channel_id, txid, records[start : start + size])
            try:
                self.request(message)
            except ChaincodeRequestError as exc:
                raise ChaincodeRequestError(f"failed send batch: {exc}") from exc

    # ------------------------------------------------------------------ requests (stub side)

    def exchange(self, msg: ChaincodeMessage) -> ChaincodeMessage:
        """Send a request for ``(msg.channel_id, msg.txid)`` and return the RESPONSE or ERROR.

        Raises :class:`ChaincodeRequestError` if that transaction already has a request
        outstanding or the stream is (or becomes) closed.
        """
        return self._engine.exchange(msg)

    def request(self, msg: ChaincodeMessage) -> bytes:
        """Like :meth:`exchange` but returns the RESPONSE payload; an ERROR reply raises
        :class:`ChaincodeRequestError` with the peer's text."""
        reply = self.exchange(msg)
        if reply.type == ChaincodeMessage.ERROR:
            raise ChaincodeRequestError(reply.payload.decode("utf-8", "replace"))
        return reply.payload


class _ThreadEngine:
    """Transactions on a thread pool; the read token passed between threads (module doc)."""

    def __init__(self, handler: ShimHandler, max_workers: int) -> None:
        self._handler = handler
        self._stream = handler._stream
        self._max_workers = max_workers
        self._slots: dict[tuple[str, str], _ReplySlot] = {}
        self._slots_lock = threading.Lock()
        self._closed = False
        self._pool: ThreadPoolExecutor | None = None
        self._token = threading.Lock()
        """The read token: held by the one thread that may call ``recv`` (see module doc)."""
        self._parks = 0  # times the token was parked; run()'s thread watches it change
        self._watcher_asleep = False
        self._wake_watcher = threading.Event()
        # Messages of a batch frame are waiting: reading one more does not block.
        self._buffered: Any = getattr(self._stream, "buffered", lambda: False)

    def run(self) -> None:
        handler = self._handler
        pool = ThreadPoolExecutor(self._max_workers, thread_name_prefix=f"shim-{handler.name}")
        self._pool = pool
        try:
            self._token.acquire()
            try:
                self._stream.send(handler._register_message())
            except BaseException:
                self._token.release()
                raise
            while True:
                self._read_until_handoff()
                self._release_token()
                if self._closed or not self._take_parked_token():
                    break
        except (ConnectionClosed, MalformedMessage) as exc:
            handler._stream_ended(exc)
        finally:
            self._shut_down()
            # cancel_futures: queued transactions could only fail now that the peer is gone.
            pool.shutdown(wait=True, cancel_futures=True)

    def _shut_down(self) -> None:
        with self._slots_lock:
            self._closed = True
            slots = list(self._slots.values())
            self._slots.clear()
            for slot in slots:
                slot.fail(CONNECTION_LOST)
        self._stream.close()
        self._wake_watcher.set()

    def start(self, msg: ChaincodeMessage) -> None:
        assert self._pool is not None
        self._pool.submit(self._serve_transaction, msg)

    def deliver(self, msg: ChaincodeMessage) -> bool:
        with self._slots_lock:
            slot = self._slots.pop((msg.channel_id, msg.txid), None)
        if slot is None:
            return False
        slot.deliver(msg)
        return True

    def _read_one(self, claim: bool = False) -> int | ChaincodeMessage | None:
        """Read and handle one message (token held); its type, or None if the stream ended.

        With ``claim``, a TRANSACTION/INIT is returned unhandled for the caller to run.
        """
        try:
            msg = self._stream.recv()
        except (ConnectionClosed, MalformedMessage) as exc:
            self._handler._stream_ended(exc)
            self._shut_down()
            return None
        if (
            claim
            and msg.type in _TRANSACTIONS
            and self._handler.state == READY
            and not self._buffered()
        ):
            return msg
        try:
            handled = self._handler._handle(msg)
        except BaseException:
            self._shut_down()  # as if run() had died: nobody may wait for a reader any more
            raise
        if not handled:
            self._shut_down()
            return None
        return msg.type

    def _read_until_handoff(self, claim: bool = False) -> ChaincodeMessage | None:
        """Read (token held) until a message gave someone work or the stream ended; with
        ``claim``, return a TRANSACTION/INIT for the caller to run instead of submitting it."""
        while not self._closed:
            got = self._read_one(claim)
            if isinstance(got, ChaincodeMessage):
                return got
            if got is None or (got in _HANDS_OFF_WORK and not self._buffered()):
                return None
        return None

    def _release_token(self) -> None:
        """Give the token up: promote a waiting requester to reader, else park it."""
        with self._slots_lock:
            for slot in self._slots.values():
                if not slot.promoted:
                    if self._closed:
                        break
                    slot.promoted = True
                    slot.promote()
                    return
        self._parks += 1  # before the release: only the token holder counts
        self._token.release()
        if self._watcher_asleep:
            self._watcher_asleep = False
            self._wake_watcher.set()

    def _take_parked_token(self) -> bool:
        """run()'s thread: wait until the token has stayed parked a grace period, take it.

        Polls every ``_GRACE`` while transactions come and go; after ``_LINGER`` periods with
        the token held (e.g. by an idle worker blocked in ``recv``) it sleeps until the next
        park wakes it. False once the handler is closed.
        """
        seen = self._parks
        quiet = 0
        while not self._closed:
            if quiet < _LINGER:
                time.sleep(_GRACE)
            else:
                self._wake_watcher.clear()
                self._watcher_asleep = True
                if self._parks == seen and self._token.locked() and not self._closed:
                    self._wake_watcher.wait()
                self._watcher_asleep = False
                quiet = 0
            parks = self._parks
            if parks == seen and self._token.acquire(blocking=False):
                if self._closed:
                    self._token.release()
                    return False
                return True
            quiet = quiet + 1 if parks == seen else 0
            seen = parks
        return False

    def _serve_transaction(self, msg: ChaincodeMessage | None) -> None:
        """Run transactions on this pool thread: the submitted one, then any this thread
        reads while idle (it runs it itself rather than waking another pool thread)."""
        while msg is not None:
            self._handler._serve_one(msg)
            msg = None
            # Now idle: if nobody is reading, read until the next piece of work turns up.
            if not self._closed and self._token.acquire(blocking=False):
                msg = self._read_until_handoff(claim=True)
                self._release_token()

    def exchange(self, msg: ChaincodeMessage) -> ChaincodeMessage:
        key = (msg.channel_id, msg.txid)
        slot = _ReplySlot()
        with self._slots_lock:
            if self._closed:
                raise ChaincodeRequestError(CONNECTION_LOST)
            if key in self._slots:
                raise _overlapping(msg)
            self._slots[key] = slot
        try:
            self._stream.send(msg)
        except (ConnectionClosed, MalformedMessage) as exc:
            with self._slots_lock:
                if self._slots.get(key) is slot:
                    del self._slots[key]
                promoted = slot.promoted and not slot.done
            if promoted:  # we were handed the token meanwhile: pass it on
                slot.wait()
                self._release_token()
            raise _send_failed(msg, exc) from exc
        reading = self._token.acquire(blocking=False)
        if not reading:
            slot.wait()
            reading = not slot.done  # woken without a reply: promoted to reader
        if reading:
            try:
                # The rest of a batch is read too: a parked token would leave it waiting.
                while (not slot.done or self._buffered()) and self._read_one() is not None:
                    pass
            finally:
                self._release_token()
        return slot.result()


class _GreenletEngine:
    """Every transaction a greenlet of :meth:`run`'s loop, which is the only reader (module
    doc): a stub request switches back to the loop, a reply switches into its transaction."""

    def __init__(self, handler: ShimHandler, greenlet: Any) -> None:
        self._handler = handler
        self._stream = handler._stream
        self._greenlet = greenlet  # the module
        self._hub: Any = None
        """The greenlet running :meth:`run`'s loop."""
        self._slots: dict[tuple[str, str], _GreenletSlot] = {}
        self._closed = False
        # Workers park between transactions: making a greenlet costs 10 us, a switch 0.5.
        self._idle: list[Any] = []

    def run(self) -> None:
        handler, stream, slots = self._handler, self._stream, self._slots
        self._hub = self._greenlet.getcurrent()
        try:
            stream.send(handler._register_message())
            recv_batch = getattr(stream, "recv_batch", None)  # pipes: frames of several
            running = True
            while running:
                msgs = recv_batch() if recv_batch is not None else [stream.recv()]
                if len(msgs) == 1:
                    running = handler._handle(msgs[0])
                    continue
                # What the transactions of a batch send goes back as one frame.
                stream.cork()  # type: ignore[attr-defined]
                try:
                    for msg in msgs:
                        if not handler._handle(msg):
                            running = False
                            break
                finally:
                    stream.uncork()  # type: ignore[attr-defined]
        except (ConnectionClosed, MalformedMessage) as exc:
            handler._stream_ended(exc)
        finally:
            self._closed = True
            stream.close()
            # Let every waiting transaction see the error and finish (its reply is dropped).
            while slots:
                _, slot = slots.popitem()
                slot.error = CONNECTION_LOST
                slot.greenlet.switch()
            for parked in self._idle:
                parked.throw()  # GreenletExit: ends its loop here, not in a later collection

    def _worker(self, msg: ChaincodeMessage) -> None:
        serve, idle, current, hub = (
            self._handler._serve_one,
            self._idle,
            self._greenlet.getcurrent,
            self._hub,
        )
        while True:
            serve(msg)
            idle.append(current())
            msg = hub.switch()

    def start(self, msg: ChaincodeMessage) -> None:
        idle = self._idle
        worker = idle.pop() if idle else self._greenlet.greenlet(self._worker, parent=self._hub)
        worker.switch(msg)

    def deliver(self, msg: ChaincodeMessage) -> bool:
        slot = self._slots.pop((msg.channel_id, msg.txid), None)
        if slot is None:
            return False
        slot.reply = msg
        slot.greenlet.switch()
        return True

    def exchange(self, msg: ChaincodeMessage) -> ChaincodeMessage:
        current = self._greenlet.getcurrent()
        if current.parent is not self._hub:
            raise ChaincodeRequestError(
                f"[{_short(msg.txid)}] a greenlets chaincode may use its stub only on the "
                "transaction's own greenlet, not on another thread or greenlet"
            )
        key = (msg.channel_id, msg.txid)
        if self._closed:
            raise ChaincodeRequestError(CONNECTION_LOST)
        if key in self._slots:
            raise _overlapping(msg)
        try:
            self._stream.send(msg)
        except (ConnectionClosed, MalformedMessage) as exc:
            raise _send_failed(msg, exc) from exc
        slot = self._slots[key] = _GreenletSlot(current)
        self._hub.switch()
        return slot.result()


_STALL = 0.05
"""Seconds (at most twice this; a descheduled thread gets :data:`_PATIENCE` looks more, see
:meth:`_AutoEngine._stalled`) a transaction may run user code on the reading thread of an
``"auto"`` chaincode before another thread takes over reading."""

_PATIENCE = 4
"""Looks in a row that may find the reading lane runnable but without CPU (descheduled) before
the watchdog treats it as stalled anyway. The kernel gives every runnable thread a turn within
its scheduling period (tens of ms even with ~10 runnable threads on 2 cores), so a lane that
got no real CPU for four whole looks (0.2 s) is starved or spins on something: hand over then,
so no dispatch keeps the reader for much longer than 0.3 s."""

ThreadProbe = Callable[[int, int], tuple[str, float]]
"""``probe(native_id, cpu_clock) -> (state, cpu_seconds)`` of a thread, given its
``threading.get_native_id()`` and the id of its CPU clock: its Linux state letter (``R``
running or runnable, ``S``/``D`` asleep in the kernel, ...) and the CPU time it has used.
Raises :class:`OSError` where it cannot tell (or the thread has ended)."""


def _proc_probe(native_id: int, cpu_clock: int) -> tuple[str, float]:
    """The :data:`ThreadProbe` of Linux: the thread's CPU clock and /proc/self/task/*/stat.

    A thread that waits for the GIL sleeps (state S). The caller holds the GIL, but ``open``
    and ``read`` let it go, and a thread running Python code shows R (measured)."""
    cpu = time.clock_gettime(cpu_clock)
    with open(f"/proc/self/task/{native_id}/stat", "rb") as f:
        stat = f.read()
    return chr(stat[stat.rindex(b")") + 2]), cpu  # the name in (...) may hold spaces


_DEFAULT_PROBE: ThreadProbe | None = (
    _proc_probe
    if hasattr(time, "pthread_getcpuclockid") and os.path.isdir("/proc/self/task")
    else None
)


class _Lane:
    """A thread of an :class:`_AutoEngine`: a hub greenlet and the transactions started on it."""

    __slots__ = (
        "busy",
        "clock",
        "cond",
        "corked",
        "hub",
        "idle",
        "inbox",
        "native_id",
        "running",
        "ticks",
    )

    def __init__(self) -> None:
        self.hub: Any = None  # the greenlet running the lane's loop, once it runs
        self.running = 0  # transactions started on this lane and not finished
        self.idle: list[Any] = []  # parked workers (see _GreenletEngine)
        self.inbox: deque[_AutoSlot] = deque()  # replies for it, once it no longer reads
        self.cond = threading.Condition(threading.Lock())
        self.busy = False  # in a dispatch: user code of a transaction may be running
        self.ticks = 0  # dispatches begun: the watchdog sees a lane stuck in one
        self.corked = False  # it corked the stream for a batch and must uncork it
        # Its thread's, once it runs, for the watchdog's probe. The clock id is taken on the
        # thread itself: for an ended thread clock_gettime fails cleanly, while
        # pthread_getcpuclockid on the ident of one is undefined behaviour.
        self.native_id = self.clock = 0


class _AutoSlot:
    """Where the reply to one request waits: a greenlet of a lane, or (a stub used from some
    other thread) a latch as in the threads engine."""

    __slots__ = ("error", "greenlet", "lane", "latch", "reply")

    def __init__(self, lane: _Lane | None, waiter: Any) -> None:
        self.lane = lane
        self.greenlet = waiter
        self.latch: threading.Lock | None = None
        if lane is None:
            self.latch = threading.Lock()
            self.latch.acquire()
        self.reply: ChaincodeMessage | None = None
        self.error = ""

    def result(self) -> ChaincodeMessage:
        if self.reply is None:
            raise ChaincodeRequestError(self.error or CONNECTION_LOST)
        return self.reply


class _AutoEngine:
    """Greenlets until a transaction blocks, then a thread per transaction (the default).

    Transactions run as in :class:`_GreenletEngine`, as greenlets of the reading thread's loop
    (its *lane*). A watchdog thread looks every ``_STALL`` seconds while the reader dispatches:
    if the reading lane has been in the same dispatch since its last look and its thread either
    sleeps in the kernel (user code that blocks outside the stub) or used half that interval of
    CPU or more (computes for long), a new lane takes over reading; a lane that was merely
    descheduled (runnable, little CPU: a loaded machine) is looked at again, up to
    ``_PATIENCE`` times (see :meth:`_stalled`; where the OS cannot tell, as on non-Linux,
    the same dispatch at two looks is enough). From then on every transaction runs on a pool
    thread of its own (as a greenlet of that thread, its replies posted to it by the reader), so
    that no later one can stall the reader or its neighbours. The stuck lane finishes its own
    transactions, their replies posted to it too, and ends; those that were in flight on it
    (greenlets cannot move between threads) resume only when it lets go of the thread. The stub
    may be used from another thread too; that thread then waits for the reply as in the threads
    engine.
    """

    def __init__(
        self,
        handler: ShimHandler,
        greenlet: Any,
        max_lanes: int,
        *,
        probe: ThreadProbe | None = _DEFAULT_PROBE,
    ) -> None:
        self._handler = handler
        self._probe = probe  # None: every look that finds the same dispatch hands over
        self._seen_cpu = 0.0  # the reading lane's CPU time at the watchdog's last look
        self._descheduled = 0  # looks in a row that found it runnable without CPU
        self._stream = handler._stream
        self._greenlet = greenlet
        self._max_lanes = max_lanes
        self._lock = threading.Lock()
        self._slots: dict[tuple[str, str], _AutoSlot] = {}
        self._pending: deque[ChaincodeMessage] = deque()  # read, not yet dispatched
        self._reader: _Lane | None = None
        self._lanes = 0
        self._closed = False
        self._ended = threading.Event()
        self._local = threading.local()  # .lane: the lane of this thread
        self._watch_asleep = False  # the watchdog waits for the next dispatch (lock held)
        self._wake_watch = threading.Event()
        self._failure: BaseException | None = None
        self._pool: ThreadPoolExecutor | None = None  # once a transaction blocked (class doc)

    # -- lanes -------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._stream.send(self._handler._register_message())
        except (ConnectionClosed, MalformedMessage) as exc:
            self._handler._stream_ended(exc)
            self._shut_down()
            return
        lane = self._new_lane()
        with self._lock:
            self._reader = lane
        threading.Thread(target=self._watch, name="shim-watchdog", daemon=True).start()
        self._run_lane(lane)
        self._ended.wait()
        if self._failure is not None:
            raise self._failure

    def _new_lane(self) -> _Lane:
        self._lanes += 1
        return _Lane()

    def _lane_thread(self, lane: _Lane) -> None:
        try:
            self._run_lane(lane)
        except BaseException as exc:  # run() re-raises it
            if self._failure is None:
                self._failure = exc
            self._shut_down()

    def _run_lane(self, lane: _Lane) -> None:
        lane.hub = self._greenlet.getcurrent()
        lane.native_id = threading.get_native_id()
        if hasattr(time, "pthread_getcpuclockid"):
            lane.clock = time.pthread_getcpuclockid(threading.get_ident())
        self._local.lane = lane
        try:
            self._read_while_reader(lane)
            self._follow(lane)
        finally:
            with self._lock:
                self._lanes -= 1
            for parked in lane.idle:
                parked.throw()  # GreenletExit: ends its loop here, on its own thread

    def _read_while_reader(self, lane: _Lane) -> None:
        stream, handle, lock = self._stream, self._handler._handle, self._lock
        pending = self._pending
        while True:
            with lock:
                if self._reader is not lane or self._closed:
                    return
                msg = pending.popleft() if pending else None
                if msg is None and lane.corked:  # a batch is done: its replies go as one
                    lane.corked = False
                    stream.uncork()  # type: ignore[attr-defined]
                lane.busy = msg is not None
                lane.ticks += 1
                if msg is not None and self._watch_asleep:
                    self._watch_asleep = False
                    self._wake_watch.set()
            if msg is None:
                try:
                    msgs = stream.recv_batch()  # type: ignore[attr-defined]
                except (ConnectionClosed, MalformedMessage) as exc:
                    self._handler._stream_ended(exc)
                    self._shut_down()
                    return
                with lock:
                    pending.extend(msgs)
                    if len(msgs) > 1 and not lane.corked:
                        lane.corked = True
                        stream.cork()  # type: ignore[attr-defined]
                continue
            try:
                handled = handle(msg)
            except BaseException as exc:  # as if run() had died: end everything
                if self._failure is None:
                    self._failure = exc  # before the shutdown: run() re-raises it
                self._shut_down()
                raise
            lane.busy = False
            if not handled:
                self._shut_down()
                return

    def _follow(self, lane: _Lane) -> None:
        """No longer the reader: resume this lane's transactions as their replies come."""
        cond, inbox = lane.cond, lane.inbox
        while True:
            with cond:
                while not inbox and lane.running:
                    cond.wait()
                if not inbox:
                    return
                slot = inbox.popleft()
            slot.greenlet.switch()

    def _watch(self) -> None:
        """Give reading to a new lane when the reader stays in one dispatch (class doc).

        Looks every ``_STALL`` seconds while the reader dispatches; after a few looks that
        found it idle in ``recv`` it sleeps until the next dispatch wakes it."""
        seen_lane: _Lane | None = None
        seen_ticks, quiet = -1, 0
        while not self._closed:
            if quiet < 4:
                self._wake_watch.wait(_STALL)
            else:
                with self._lock:
                    lane = self._reader
                    self._wake_watch.clear()
                    self._watch_asleep = lane is not None and not lane.busy
                    asleep = self._watch_asleep and lane is seen_lane and lane.ticks == seen_ticks
                if asleep and not self._closed:
                    self._wake_watch.wait()
                    # Set once, by the dispatch that woke us: the timed waits must wait again.
                    self._wake_watch.clear()
                quiet = 0
            with self._lock:
                self._watch_asleep = False
                lane = self._reader
                if lane is None or self._closed:
                    continue
                same = lane is seen_lane and lane.ticks == seen_ticks
                quiet = quiet + 1 if same and not lane.busy else 0
                seen_lane, seen_ticks = lane, lane.ticks
                if not lane.busy:
                    continue
            # Not under the lock: a lane sending a request meanwhile would sleep on it (S).
            why = self._stalled(lane, same)
            if not why:
                continue
            with self._lock:
                if (
                    self._reader is not lane
                    or lane.ticks != seen_ticks
                    or not lane.busy
                    or self._closed
                    or self._lanes >= self._max_lanes
                ):
                    continue
                quiet = 0
                reader = self._reader = self._new_lane()
                if self._pool is None:
                    log.info(
                        "shim %s: a transaction blocks (%s); a thread per transaction from now on",
                        self._handler.name,
                        why,
                    )
                    self._pool = ThreadPoolExecutor(
                        self._max_lanes, thread_name_prefix=f"shim-{self._handler.name}"
                    )
                if lane.corked:  # the stuck lane's batch: what it sent goes now
                    lane.corked = False
                    self._stream.uncork()  # type: ignore[attr-defined]
            threading.Thread(
                target=self._lane_thread, args=(reader,), name="shim-lane", daemon=True
            ).start()

    def _stalled(self, lane: _Lane, same: bool) -> str:
        """Why the reading lane, busy at this look, is stuck in its dispatch, or ``""`` if it
        is not (class doc).

        ``same``: in the dispatch it was in at the last look. It is stuck if its thread sleeps
        in the kernel (blocks) or used at least half an interval of CPU since then (computes);
        if it was merely runnable without CPU (descheduled on a loaded machine) it gets
        :data:`_PATIENCE` more looks. Without a probe, or when it fails: stuck, as ``same``."""
        if self._probe is None:
            return "in one dispatch at two looks" if same else ""
        try:
            state, cpu = self._probe(lane.native_id, lane.clock)
        except OSError as exc:
            return f"in one dispatch at two looks ({exc})" if same else ""
        progress, self._seen_cpu = cpu - self._seen_cpu, cpu
        if not same:
            self._descheduled = 0
            return ""
        why = f"state {state}, {progress * 1e3:.1f} ms CPU since the last look"
        if state != "R" or progress >= _STALL / 2:
            return why
        self._descheduled += 1
        return (
            f"{why}, after {_PATIENCE} looks without CPU" if self._descheduled > _PATIENCE else ""
        )

    def _shut_down(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            slots = list(self._slots.values())
            self._slots.clear()
            lane = getattr(self._local, "lane", None)
            if lane is not None and lane.corked:
                lane.corked = False
                with contextlib.suppress(ConnectionClosed, MalformedMessage):
                    self._stream.uncork()  # type: ignore[attr-defined]
        self._stream.close()
        self._wake_watch.set()
        for slot in slots:
            slot.error = CONNECTION_LOST
            self._hand_over(slot)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._ended.set()

    # -- transactions and replies ------------------------------------------------------------

    def _hand_over(self, slot: _AutoSlot) -> None:
        """Resume the waiter of a filled slot: switch to it if it is a greenlet of this
        thread, else post it to its lane or release its latch."""
        lane = slot.lane
        if lane is None:
            assert slot.latch is not None
            slot.latch.release()
        elif lane is getattr(self._local, "lane", None):
            slot.greenlet.switch()
        else:
            with lane.cond:
                lane.inbox.append(slot)
                lane.cond.notify()

    def _worker(self, msg: ChaincodeMessage) -> None:
        lane: _Lane = self._local.lane
        serve, idle, current, hub = (
            self._handler._serve_one,
            lane.idle,
            self._greenlet.getcurrent,
            lane.hub,
        )
        while True:
            try:
                serve(msg)
            finally:
                with lane.cond:
                    lane.running -= 1
                    if not lane.running:
                        lane.cond.notify()
            idle.append(current())
            msg = hub.switch()

    def start(self, msg: ChaincodeMessage) -> None:
        pool = self._pool
        if pool is not None:
            try:
                pool.submit(self._run_pooled, msg)
            except RuntimeError:  # shut down meanwhile: the peer is gone
                log.debug("shim %s: [%s] not started: closing", self._handler.name, msg.txid)
            return
        lane: _Lane = self._local.lane
        with lane.cond:
            lane.running += 1
        idle = lane.idle
        worker = idle.pop() if idle else self._greenlet.greenlet(self._worker, parent=lane.hub)
        worker.switch(msg)

    def _run_pooled(self, msg: ChaincodeMessage) -> None:
        """A pool thread: run one transaction as a greenlet of its own, resuming it as the
        reader posts its replies."""
        lane = getattr(self._local, "lane", None)
        if lane is None:
            lane = self._local.lane = _Lane()
            lane.hub = self._greenlet.getcurrent()
        with lane.cond:
            lane.running += 1

        def serve() -> None:
            try:
                self._handler._serve_one(msg)
            finally:
                with lane.cond:
                    lane.running -= 1

        self._greenlet.greenlet(serve, parent=lane.hub).switch()
        self._follow(lane)

    def deliver(self, msg: ChaincodeMessage) -> bool:
        with self._lock:
            slot = self._slots.pop((msg.channel_id, msg.txid), None)
        if slot is None:
            return False
        slot.reply = msg
        self._hand_over(slot)
        return True

    def exchange(self, msg: ChaincodeMessage) -> ChaincodeMessage:
        current = self._greenlet.getcurrent()
        lane: _Lane | None = getattr(self._local, "lane", None)
        if lane is not None and current.parent is not lane.hub:
            lane = None  # a hub or a greenlet of the user's own: wait on a latch
        slot = _AutoSlot(lane, current)
        key = (msg.channel_id, msg.txid)
        with self._lock:
            if self._closed:
                raise ChaincodeRequestError(CONNECTION_LOST)
            if key in self._slots:
                raise _overlapping(msg)
            self._slots[key] = slot  # before the send: the reply may come on another thread
        try:
            self._stream.send(msg)
        except (ConnectionClosed, MalformedMessage) as exc:
            with self._lock:
                if self._slots.get(key) is slot:
                    del self._slots[key]
                    raise _send_failed(msg, exc) from exc
            # Taken meanwhile: a reply or the shutdown is on its way to us.
        if lane is None:
            assert slot.latch is not None
            slot.latch.acquire()
        else:
            lane.hub.switch()
        return slot.result()
