"""The chaincode side of the peer<->chaincode stream: handshake FSM, dispatch, reply routing.

Fabric counterpart: fabric-chaincode-go ``shim/handler.go`` (``Handler``) plus the receive loop
of ``shim/shim.go`` (``chatWithPeer``). Transport-agnostic: it only needs a
:class:`~actors.transports.base.MessageStream`, so the same chaincode runs over a pipe or gRPC.

States follow the Go shim: ``created`` accepts only REGISTERED, ``established`` only READY,
``ready`` accepts RESPONSE/ERROR (replies to stub requests), INIT and TRANSACTION. KEEPALIVE is
echoed in every state. Anything else is a protocol error: the handler sends ERROR and ends the
stream. Transactions run on a thread pool so many are in flight at once; each may have one
request outstanding, whose reply is routed back by ``(channel_id, txid)``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from google.protobuf.message import DecodeError

from actors.shim.chaincode import ERROR, Chaincode, ChaincodeRequestError
from actors.shim.stub import ChaincodeStub
from actors.transports.base import ConnectionClosed, MalformedMessage, MessageStream
from protos.peer.chaincode_pb2 import ChaincodeAdditionalParams, ChaincodeID, ChaincodeInput
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage
from protos.peer.proposal_response_pb2 import Response

log = logging.getLogger(__name__)

CREATED = "created"
ESTABLISHED = "established"
READY = "ready"

CONNECTION_LOST = "connection to peer lost"

_Type = ChaincodeMessage.Type


def _short(txid: str) -> str:
    return txid[:8]


class _ReplySlot:
    """Where the reader thread drops the reply to one outstanding request."""

    __slots__ = ("_latch", "error", "reply")

    def __init__(self) -> None:
        # A lock acquired up front is a one-shot latch: the waiter blocks on acquire until the
        # reader releases it. It is CPython's cheapest blocking primitive (Event adds a
        # Condition), and it costs nothing if the reply arrives before the waiter waits.
        self._latch = threading.Lock()
        self._latch.acquire()
        self.reply: ChaincodeMessage | None = None
        self.error = ""

    def deliver(self, reply: ChaincodeMessage) -> None:
        self.reply = reply
        self._latch.release()

    def fail(self, error: str) -> None:
        self.error = error
        self._latch.release()

    def wait(self) -> ChaincodeMessage:
        self._latch.acquire()
        if self.reply is None:
            raise ChaincodeRequestError(self.error)
        return self.reply


class ShimHandler:
    """Runs one chaincode over one stream; :meth:`run` blocks until the stream ends."""

    def __init__(
        self, stream: MessageStream, chaincode: Chaincode, name: str, max_workers: int = 64
    ) -> None:
        self._stream = stream
        self._chaincode = chaincode
        self.name = name
        self._max_workers = max_workers
        self.state: str = CREATED
        self.error: str | None = None
        """Why :meth:`run` ended, if not a clean close (a protocol error or malformed frame)."""
        self.ready_params: ChaincodeAdditionalParams | None = None
        """READY's payload (Fabric 3.1+), kept for inspection; we never use the batch messages
        it may offer, which every peer must accept not being used."""
        self._slots: dict[tuple[str, str], _ReplySlot] = {}
        self._slots_lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> None:
        """Register, then serve the peer until the stream closes or a protocol error occurs."""
        pool = ThreadPoolExecutor(self._max_workers, thread_name_prefix=f"shim-{self.name}")
        try:
            register = ChaincodeMessage(
                type=ChaincodeMessage.REGISTER,
                payload=ChaincodeID(name=self.name).SerializeToString(),
            )
            self._stream.send(register)
            while self._handle(self._stream.recv(), pool):
                pass
        except ConnectionClosed:
            log.debug("shim %s: stream closed", self.name)
        except MalformedMessage as exc:
            self._protocol_error(f"malformed message from peer: {exc}", "")
        finally:
            self._shut_down()
            # cancel_futures: queued transactions could only fail now that the peer is gone.
            pool.shutdown(wait=True, cancel_futures=True)

    def stop(self) -> None:
        """Close the stream; :meth:`run` then returns and waiting stub calls fail."""
        self._stream.close()

    def _shut_down(self) -> None:
        with self._slots_lock:
            self._closed = True
            slots = list(self._slots.values())
            self._slots.clear()
        for slot in slots:
            slot.fail(CONNECTION_LOST)
        self._stream.close()

    def _protocol_error(self, text: str, txid: str) -> None:
        """Tell the peer why we give up (Go sends ERROR with txid only), then end the stream."""
        log.error("shim %s: %s", self.name, text)
        self.error = text
        with contextlib.suppress(ConnectionClosed, MalformedMessage):
            self._stream.send(
                ChaincodeMessage(type=ChaincodeMessage.ERROR, payload=text.encode(), txid=txid)
            )

    # ------------------------------------------------------------------ receive side

    def _handle(self, msg: ChaincodeMessage, pool: ThreadPoolExecutor) -> bool:
        """Process one message from the peer; False ends the stream."""
        mtype = msg.type
        if mtype == ChaincodeMessage.KEEPALIVE:
            self._stream.send(msg)
            return True
        state = self.state
        if state == READY:
            if mtype in (ChaincodeMessage.RESPONSE, ChaincodeMessage.ERROR):
                return self._route_reply(msg)
            if mtype in (ChaincodeMessage.TRANSACTION, ChaincodeMessage.INIT):
                pool.submit(self._serve_transaction, msg)
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

    def _route_reply(self, msg: ChaincodeMessage) -> bool:
        with self._slots_lock:
            slot = self._slots.pop((msg.channel_id, msg.txid), None)
        if slot is None:
            # The Go shim treats a reply nobody waits for as fatal; a peer that sends one has
            # lost track of the transaction, so we do the same rather than guess.
            self._protocol_error(
                f"[{msg.txid}] no request is waiting for this "
                f"{_Type.Name(msg.type)} (channel {msg.channel_id!r})",
                msg.txid,
            )
            return False
        slot.deliver(msg)
        return True

    # ------------------------------------------------------------------ transactions

    def _serve_transaction(self, msg: ChaincodeMessage) -> None:
        reply = self._execute(msg)
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

    def _execute(self, msg: ChaincodeMessage) -> ChaincodeMessage:
        """Run Init/Invoke for one INIT/TRANSACTION and build the COMPLETED/ERROR reply."""
        chaincode_input = ChaincodeInput()
        try:
            chaincode_input.ParseFromString(msg.payload)
        except DecodeError as exc:
            return self._error_reply(msg, f"failed to unmarshal input: {exc}")
        proposal = msg.proposal if msg.HasField("proposal") else None
        try:
            stub = ChaincodeStub(self, msg.channel_id, msg.txid, chaincode_input, proposal)
        except ValueError as exc:
            return self._error_reply(msg, f"failed to create new ChaincodeStub: {exc}")

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

    # ------------------------------------------------------------------ requests (stub side)

    def exchange(self, msg: ChaincodeMessage) -> ChaincodeMessage:
        """Send a request for ``(msg.channel_id, msg.txid)`` and return the RESPONSE or ERROR.

        Raises :class:`ChaincodeRequestError` if that transaction already has a request
        outstanding or the stream is (or becomes) closed.
        """
        key = (msg.channel_id, msg.txid)
        slot = _ReplySlot()
        with self._slots_lock:
            if self._closed:
                raise ChaincodeRequestError(CONNECTION_LOST)
            if key in self._slots:
                raise ChaincodeRequestError(
                    f"[{_short(msg.txid)}] another request of this transaction is still "
                    f"waiting for the peer; requests must not overlap"
                )
            self._slots[key] = slot
        try:
            self._stream.send(msg)
        except (ConnectionClosed, MalformedMessage) as exc:
            with self._slots_lock:
                if self._slots.get(key) is slot:
                    del self._slots[key]
            if isinstance(exc, ConnectionClosed):
                raise ChaincodeRequestError(CONNECTION_LOST) from exc
            raise ChaincodeRequestError(
                f"[{_short(msg.txid)}] error sending {_Type.Name(msg.type)}: {exc}"
            ) from exc
        return slot.wait()

    def request(self, msg: ChaincodeMessage) -> bytes:
        """Like :meth:`exchange` but returns the RESPONSE payload; an ERROR reply raises
        :class:`ChaincodeRequestError` with the peer's text."""
        reply = self.exchange(msg)
        if reply.type == ChaincodeMessage.ERROR:
            raise ChaincodeRequestError(reply.payload.decode("utf-8", "replace"))
        return reply.payload
