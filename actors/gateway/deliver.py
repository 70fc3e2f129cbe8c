"""The peer's Deliver service: blocks, filtered blocks and blocks with private data, streamed.

Fabric counterparts: ``common/deliver/deliver.go`` (the handler: envelope checks, seek
semantics, per-block access control), ``common/deliver/acl.go`` (the session's access control:
identity expiry before every block, the channel's Readers policy), and
``core/peer/deliverevents.go`` (the three ``protos.Deliver`` methods and ``toFilteredBlock``).
The official ``@hyperledger/fabric-gateway`` client uses it for ``getBlockEvents``,
``getFilteredBlockEvents`` and ``getBlockAndPrivateDataEvents``.

Each request on a stream is a ``common.Envelope`` whose payload carries an
``orderer.SeekInfo``; the answer is the blocks asked for, then one ``DeliverResponse`` status;
a status other than SUCCESS ends the stream, as Fabric's handler does. Refusals are statuses,
not gRPC errors: BAD_REQUEST (malformed envelope or seek, timestamp outside the time window,
TLS binding), NOT_FOUND (unknown channel, start beyond the chain, FAIL_IF_NOT_READY past the
end), FORBIDDEN (Readers policy, expired identity).

Private data: this peer's ledger keeps no committed private write sets by block number (Fabric's
pvtdata store), so ``DeliverWithPrivateData`` sends each block with an empty private data map.

Bounds: a fixed number of concurrent streams (more get RESOURCE_EXHAUSTED, as Fabric's
``peer.limits.concurrency.deliverService``); each stream holds one server worker while it waits
(grpcio's synchronous server), waking on the block store's commit condition; a response is sent
only once the previous one was written, so a slow reader makes the peer hold one block, not a
backlog.

A stream takes its slot only once its first request is admitted (signed by a reader of the
channel), and a stream that sends no request within ``first_request_timeout`` seconds is ended
with DEADLINE_EXCEEDED. Fabric's handler takes the slot when the stream opens
(``grpc_limiters.go``) and waits for the first envelope as long as the connection lives (its
keepalive only finds dead connections), so idle connections from anyone who can reach the port
lock readers out; here they hold a server thread for a bounded time and never a reader's slot.
Streams waiting for their first request have a bound of their own, as many as the readers'
slots, taken when the stream opens and given back at admission or when it ends (more are
refused with RESOURCE_EXHAUSTED at once): the server's threads are sized for both
(``ConcurrencyLimits.workers``), so idle streams from anyone never take the threads the
Gateway and Endorser services are admitted to.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from google.protobuf.message import DecodeError

from actors.gateway.blocks import transactions_filter
from actors.gateway.blockstore import BlockStore
from actors.gateway.orderer import CallLater
from actors.gateway.validator import channel_policy
from actors.msp.msp import MSPError, MSPManager
from actors.msp.policies import PolicyError, SignedData
from actors.transports.grpc import end_call
from protos.common.common_pb2 import (
    BAD_REQUEST,
    ENDORSER_TRANSACTION,
    FORBIDDEN,
    NOT_FOUND,
    SUCCESS,
    Block,
    ChannelHeader,
    Envelope,
    Payload,
    SignatureHeader,
)
from protos.msp.identities_pb2 import SerializedIdentity
from protos.orderer.ab_pb2 import SeekInfo
from protos.peer import events_pb2_grpc
from protos.peer.chaincode_event_pb2 import ChaincodeEvent
from protos.peer.events_pb2 import (
    BlockAndPrivateData,
    DeliverResponse,
    FilteredBlock,
    FilteredTransaction,
)
from protos.peer.proposal_pb2 import ChaincodeAction
from protos.peer.proposal_response_pb2 import ProposalResponsePayload
from protos.peer.transaction_pb2 import NOT_VALIDATED, ChaincodeActionPayload, Transaction

log = logging.getLogger(__name__)

DEFAULT_TIME_WINDOW = 15 * 60.0  # peer.authentication.timewindow
FIRST_REQUEST_TIMEOUT = 10.0  # seconds a new stream may take to send its first request
READERS = "/Channel/Application/Readers"  # the default ACL of event/Block and event/FilteredBlock


class _Refused(Exception):
    """A request answered with a non-SUCCESS status (the reason goes to the log, as Fabric's)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


# --- seek semantics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeekRange:
    """Where a seek starts and stops on a chain of ``height`` blocks.

    ``found`` False is Fabric's ``NotFoundErrorIterator``: the first read answers NOT_FOUND.
    The stream stops after block ``stop``; a ``stop`` below ``start`` is never reached, so the
    stream goes on with every new block (Fabric's unsigned stop number wraps the same way)."""

    start: int
    stop: int
    found: bool = True


def seek_range(info: SeekInfo, height: int) -> SeekRange:
    """Fabric's ``FileLedger.Iterator`` for the start and ``deliverBlocks`` for the stop.
    Raises :class:`_Refused` (BAD_REQUEST) for a specified stop before the start."""
    kind = info.start.WhichOneof("Type")
    found = True
    if kind == "oldest":
        start = 0
    elif kind == "newest":
        start = max(height - 1, 0)  # a Fabric channel always has its genesis block
    elif kind == "specified":
        start = info.start.specified.number
        if start > height:
            start, found = 0, False
    elif kind == "next_commit":
        start = height
    else:
        start, found = 0, False
    stop_kind = info.stop.WhichOneof("Type")
    if stop_kind == "oldest":
        stop = start
    elif stop_kind == "newest":
        # newest to newest is one block, even if another commits meanwhile
        stop = start if info.start == info.stop else height - 1
    elif stop_kind == "specified":
        stop = info.stop.specified.number
        if stop < start:
            raise _Refused(BAD_REQUEST, f"start number {start} greater than stop number {stop}")
    else:
        stop = 0
    return SeekRange(start, stop, found)


# --- filtered blocks -----------------------------------------------------------------------------


class FilterError(ValueError):
    """A transaction of the block cannot be filtered (Fabric answers BAD_REQUEST for it)."""


def filtered_block(block: Block) -> FilteredBlock:
    """Fabric's ``toFilteredBlock``: per transaction its id, header type and validation code,
    and for an endorser transaction its chaincode events without their payloads."""
    out = FilteredBlock(number=block.header.number)
    codes = transactions_filter(block)
    for index, raw in enumerate(block.data.data):
        if not raw:
            continue
        try:
            envelope = Envelope.FromString(raw)
        except DecodeError:
            continue  # Fabric logs and skips an envelope it cannot read
        try:
            payload = Payload.FromString(envelope.payload)
        except DecodeError as exc:
            raise FilterError(f"could not extract payload from envelope: {exc}") from None
        if not payload.HasField("header"):
            continue
        try:
            header = ChannelHeader.FromString(payload.header.channel_header)
        except DecodeError as exc:
            raise FilterError(str(exc)) from None
        out.channel_id = header.channel_id
        tx = FilteredTransaction(
            txid=header.tx_id,
            type=header.type,
            tx_validation_code=codes[index] if index < len(codes) else NOT_VALIDATED,
        )
        if header.type == ENDORSER_TRANSACTION:
            tx.transaction_actions.SetInParent()
            for event in _events(payload.data):
                tx.transaction_actions.chaincode_actions.add().chaincode_event.CopyFrom(event)
        out.filtered_transactions.append(tx)
    return out


def _events(data: bytes) -> Iterator[ChaincodeEvent]:
    try:
        transaction = Transaction.FromString(data)
    except DecodeError as exc:
        raise FilterError(f"error unmarshal transaction payload for block event: {exc}") from None
    for action in transaction.actions:
        try:
            cap = ChaincodeActionPayload.FromString(action.payload)
            if not cap.HasField("action"):
                continue
            prp = ProposalResponsePayload.FromString(cap.action.proposal_response_payload)
            event = ChaincodeEvent.FromString(ChaincodeAction.FromString(prp.extension).events)
        except DecodeError as exc:
            raise FilterError(f"error unmarshal chaincode event for block event: {exc}") from None
        if event.chaincode_id:
            yield ChaincodeEvent(
                tx_id=event.tx_id, chaincode_id=event.chaincode_id, event_name=event.event_name
            )


# --- responses per method ------------------------------------------------------------------------

Sender = Callable[[Block], DeliverResponse]


def _full(block: Block) -> DeliverResponse:
    return DeliverResponse(block=block)


def _filtered(block: Block) -> DeliverResponse:
    try:
        return DeliverResponse(filtered_block=filtered_block(block))
    except FilterError as exc:
        log.warning("failed to generate filtered block: %s", exc)
        return DeliverResponse(status=BAD_REQUEST)  # and the stream goes on, as Fabric's


def _with_private_data(block: Block) -> DeliverResponse:
    return DeliverResponse(block_and_private_data=BlockAndPrivateData(block=block))


def _header_only(block: Block) -> Block:
    """SeekInfo HEADER_WITH_SIG: the block without its transactions (this peer writes no
    config blocks, the one kind Fabric sends whole)."""
    out = Block()
    out.header.CopyFrom(block.header)
    out.metadata.CopyFrom(block.metadata)
    return out


# --- the service ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Session:
    """Fabric's ``SessionAccessControl``: the policy is checked once (this peer's channel
    config never changes), the identity's expiry before every block."""

    expires: dt.datetime | None

    def check(self) -> None:
        if self.expires is not None and dt.datetime.now(dt.UTC) > self.expires:
            raise _Refused(FORBIDDEN, f"deliver client identity expired at {self.expires}")


def _expires_at(creator: bytes) -> dt.datetime | None:
    """Fabric's ``crypto.ExpiresAt``: the certificate's NotAfter, None if it has none."""
    try:
        cert = x509.load_pem_x509_certificate(SerializedIdentity.FromString(creator).id_bytes)
    except (DecodeError, ValueError):
        return None
    return cert.not_valid_after_utc


class DeliverService(events_pb2_grpc.DeliverServicer):
    def __init__(
        self,
        *,
        msps: Callable[[str], MSPManager | None],
        stores: Callable[[str], BlockStore | None],
        max_streams: int,
        call_later: CallLater,
        time_window: float = DEFAULT_TIME_WINDOW,
        mutual_tls: bool = False,
        first_request_timeout: float = FIRST_REQUEST_TIMEOUT,
    ) -> None:
        self._msps = msps
        self._stores = stores
        self._streams = threading.BoundedSemaphore(max_streams)
        # streams opened that have sent no admitted request yet: a bound of their own
        self._opening = threading.BoundedSemaphore(max_streams)
        self._max_streams = max_streams
        self._time_window = time_window
        self._mutual_tls = mutual_tls
        self._call_later = call_later
        self._first_request_timeout = first_request_timeout

    def Deliver(
        self, request_iterator: Iterable[Envelope], context: grpc.ServicerContext
    ) -> Iterator[DeliverResponse]:
        yield from self._handle(request_iterator, context, _full, "Deliver")

    def DeliverFiltered(
        self, request_iterator: Iterable[Envelope], context: grpc.ServicerContext
    ) -> Iterator[DeliverResponse]:
        yield from self._handle(request_iterator, context, _filtered, "DeliverFiltered")

    def DeliverWithPrivateData(
        self, request_iterator: Iterable[Envelope], context: grpc.ServicerContext
    ) -> Iterator[DeliverResponse]:
        yield from self._handle(
            request_iterator, context, _with_private_data, "DeliverWithPrivateData"
        )

    def _handle(
        self,
        requests: Iterable[Envelope],
        context: grpc.ServicerContext,
        send: Sender,
        method: str,
    ) -> Iterator[DeliverResponse]:
        """Fabric's ``Handler.Handle``: one seek after another until the client closes its
        side or a seek ends with a status other than SUCCESS."""
        refusal = (
            f"too many requests for /protos.Deliver/{method}, exceeding concurrency limit "
            f"({self._max_streams})"
        )
        if not self._opening.acquire(blocking=False):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
        opening = True
        wait = self._first_request_timeout
        try:
            deadline = self._call_later(
                wait,
                lambda: end_call(
                    context,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"no deliver request within {wait:g}s of opening the stream",
                ),
            )
        except RuntimeError:  # the scheduler stopped: the peer is shutting down
            self._opening.release()
            context.abort(grpc.StatusCode.UNAVAILABLE, "the peer is stopping")
        admitted = False
        try:
            stop = threading.Event()
            context.add_callback(stop.set)
            envelopes = iter(requests)
            while True:
                try:
                    envelope = next(envelopes)
                except (StopIteration, grpc.RpcError):
                    return  # the client closed its side, or went away (or its time ran out)
                deadline.cancel()
                try:
                    admission = self._admit(envelope, context)
                except _Refused as refused:
                    log.warning("deliver request refused (%d): %s", refused.status, refused)
                    yield DeliverResponse(status=refused.status)
                    return
                if not admitted:
                    # The slot is taken only now: an unauthenticated stream never holds one.
                    if not self._streams.acquire(blocking=False):
                        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
                    admitted = True
                    self._opening.release()
                    opening = False
                    context.send_initial_metadata(())  # the client sees the stream admitted
                status = yield from self._deliver(admission, send, stop)
                if status is None:
                    return  # the client went away or the peer is stopping: no status to send
                yield DeliverResponse(status=status)
                if status != SUCCESS:
                    return
        finally:
            deadline.cancel()
            if opening:
                self._opening.release()
            if admitted:
                self._streams.release()

    def _deliver(
        self,
        admission: tuple[BlockStore, SeekInfo, _Session],
        send: Sender,
        stop: threading.Event,
    ) -> Generator[DeliverResponse, None, int | None]:
        """Fabric's ``deliverBlocks``; returns the status to end the seek with (None: none)."""
        store, info, session = admission
        try:
            seek = seek_range(info, store.height)
        except _Refused as refused:
            log.warning("deliver request refused (%d): %s", refused.status, refused)
            return refused.status
        number = seek.start
        blocks = store.blocks_from(seek.start, stop=stop)
        while True:
            if info.behavior == SeekInfo.FAIL_IF_NOT_READY and number > store.height - 1:
                log.warning("block %d not found, beyond the chain", number)
                return NOT_FOUND
            if not seek.found:
                return NOT_FOUND
            block = next(blocks, None)
            if block is None:
                return None
            number += 1
            try:
                session.check()
            except _Refused as refused:
                log.warning("deliver client authorization revoked: %s", refused)
                return refused.status
            if info.content_type == SeekInfo.HEADER_WITH_SIG:
                block = _header_only(block)
            yield send(block)
            if block.header.number == seek.stop:
                return SUCCESS

    def _admit(
        self, envelope: Envelope, context: grpc.ServicerContext
    ) -> tuple[BlockStore, SeekInfo, _Session]:
        """The checks before the first block, in Fabric's order."""
        try:
            payload = Payload.FromString(envelope.payload)
            if not payload.HasField("header"):
                raise _Refused(BAD_REQUEST, "envelope has no header")
            header = ChannelHeader.FromString(payload.header.channel_header)
            signature_header = SignatureHeader.FromString(payload.header.signature_header)
        except DecodeError as exc:
            raise _Refused(BAD_REQUEST, f"error parsing envelope: {exc}") from None
        self._check_channel_header(header, context)
        store = self._stores(header.channel_id)
        msps = self._msps(header.channel_id)
        if store is None or msps is None:
            raise _Refused(NOT_FOUND, f"channel {header.channel_id} not found")
        try:
            info = SeekInfo.FromString(payload.data)
        except DecodeError as exc:
            raise _Refused(BAD_REQUEST, f"malformed seekInfo payload: {exc}") from None
        session = _Session(_expires_at(signature_header.creator))
        session.check()
        try:
            channel_policy(
                READERS,
                [SignedData(envelope.payload, signature_header.creator, envelope.signature)],
                msps,
            )
        except (PolicyError, MSPError) as exc:
            raise _Refused(FORBIDDEN, f"client is not authorized: {exc}") from None
        if not info.HasField("start") or not info.HasField("stop"):
            raise _Refused(BAD_REQUEST, "seekInfo with missing start or stop")
        return store, info, session

    def _check_channel_header(self, header: ChannelHeader, context: grpc.ServicerContext) -> None:
        """Fabric's ``validateChannelHeader``: a timestamp within the time window, and with
        mutual TLS the TLS certificate hash bound to the client's certificate."""
        if not header.HasField("timestamp"):
            raise _Refused(BAD_REQUEST, "channel header in envelope must contain timestamp")
        stamp = header.timestamp.seconds + header.timestamp.nanos / 1e9
        if abs(time.time() - stamp) > self._time_window:
            raise _Refused(
                BAD_REQUEST,
                f"envelope timestamp {stamp} is more than {self._time_window}s apart from the "
                "current server time",
            )
        if not self._mutual_tls:
            return
        if not header.tls_cert_hash:
            raise _Refused(BAD_REQUEST, "client didn't include its TLS cert hash")
        pems = (context.auth_context() or {}).get("x509_pem_cert") or []
        if not pems:
            raise _Refused(BAD_REQUEST, "client didn't send a TLS certificate")
        actual = hashlib.sha256(
            x509.load_pem_x509_certificate(pems[0]).public_bytes(serialization.Encoding.DER)
        ).digest()
        if actual != header.tls_cert_hash:
            raise _Refused(
                BAD_REQUEST,
                f"claimed TLS cert hash is {header.tls_cert_hash.hex()} but actual TLS cert "
                f"hash is {actual.hex()}",
            )
