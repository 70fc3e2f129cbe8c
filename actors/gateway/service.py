"""The Gateway and Endorser gRPC services, as Fabric 2.5's peer answers them.

Fabric counterparts: ``internal/pkg/gateway/api.go`` (Evaluate, Endorse, Submit, CommitStatus,
ChaincodeEvents) and ``core/endorser`` behind ``protos.Endorser/ProcessProposal``. This is a
single-peer gateway: the local endorser is the only one, so there is no discovery and no
endorsement plan; the committer decides whether the endorsements satisfy the policy, as
Fabric's validator would. Error codes and texts, with ``gateway.ErrorDetail`` entries in a
``google.rpc.Status``, are Fabric's, because the official clients read them.

Bounds: the gRPC server has a fixed worker pool, event streams take at most half of it, and
every wait (commit status, ordering) ends with the caller's deadline or the stream's end.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from grpc_status import rpc_status

from actors.gateway.blockstore import BlockStore
from actors.gateway.endorsement import AssemblyError, chaincode_action, prepare_transaction
from actors.gateway.endorser import ChannelNotFound, Endorser, EndorserError
from actors.gateway.orderer import Broadcast
from actors.gateway.proposal import ProposalError, UnpackedProposal, unpack
from actors.gateway.validator import channel_policy
from actors.msp.msp import MSPError, MSPManager, parse_certificate
from actors.msp.policies import PolicyError, SignedData
from protos.common.common_pb2 import (
    ENDORSER_TRANSACTION,
    SUCCESS,
    TRANSACTIONS_FILTER,
    Block,
    ChannelHeader,
    Envelope,
    Payload,
    Status,
)
from protos.gateway import gateway_pb2, gateway_pb2_grpc
from protos.msp.identities_pb2 import SerializedIdentity
from protos.peer import peer_pb2_grpc
from protos.peer.chaincode_event_pb2 import ChaincodeEvent
from protos.peer.proposal_pb2 import ChaincodeAction
from protos.peer.proposal_response_pb2 import ProposalResponse, ProposalResponsePayload
from protos.peer.transaction_pb2 import VALID

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewayOptions:
    """Fabric's ``peer.gateway`` settings (seconds)."""

    endorsement_timeout: float = 30.0
    broadcast_timeout: float = 30.0


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, details: list[Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []


def _abort(context: grpc.ServicerContext, error: _Abort) -> None:
    status = status_pb2.Status(code=error.code.value[0], message=error.message)
    for detail in error.details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    context.abort_with_status(rpc_status.to_status(status))


class GatewayService(gateway_pb2_grpc.GatewayServicer):
    def __init__(
        self,
        *,
        endorser: Endorser,
        orderer: Any,  # pykka ActorRef of actors.gateway.orderer.Orderer
        msps: Callable[[str], MSPManager | None],
        stores: Callable[[str], BlockStore | None],
        address: str,
        msp_id: str,
        options: GatewayOptions,
        event_streams: threading.BoundedSemaphore,
        commit_waits: threading.BoundedSemaphore | None = None,
    ) -> None:
        self._endorser = endorser
        self._orderer = orderer
        self._msps = msps
        self._stores = stores
        self._address = address
        self._msp_id = msp_id
        self._options = options
        self._event_streams = event_streams
        # a CommitStatus waits on a worker thread: bounded, so waits cannot take every worker
        self._commit_waits = commit_waits or threading.BoundedSemaphore(8)

    def _detail(self, message: str) -> gateway_pb2.ErrorDetail:
        return gateway_pb2.ErrorDetail(address=self._address, msp_id=self._msp_id, message=message)

    # --- Evaluate / Endorse --------------------------------------------------------------------

    def _endorse_locally(self, signed: Any, what: str) -> tuple[UnpackedProposal, ProposalResponse]:
        """Run the local endorser and classify its answer as Fabric's gateway does."""
        if not signed.proposal_bytes:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "failed to unpack transaction proposal: a signed proposal is required",
            )
        try:
            unpacked, creator, _ = self._endorser.preprocess(signed)
        except ChannelNotFound as missing:
            raise _Abort(
                grpc.StatusCode.UNAVAILABLE,
                f"failed to get config for channel [{missing.channel}]: channel not found",
            ) from None
        except EndorserError as exc:
            message = str(exc)
            if message.startswith("error unmarshalling") or "ChaincodeId" in message:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"failed to unpack transaction proposal: {message}",
                ) from None
            # the local endorser refused it (an error with a response, in Fabric's terms)
            raise self._failure(what, grpc.StatusCode.FAILED_PRECONDITION, message) from None
        response = self._endorser.endorse(unpacked, creator)
        status = response.response.status
        if 200 <= status < 400:
            return unpacked, response
        message = response.response.message
        if status == 500 and not response.payload:
            # no ProposalResponsePayload: the peer failed (chaincode undefined, unreachable,
            # crashed), not the chaincode; Fabric would retry another peer, and there is none
            raise self._failure(what, grpc.StatusCode.ABORTED, message, retryable=True)
        raise self._failure(
            what, grpc.StatusCode.UNKNOWN, f"chaincode response {status}, {message}"
        )

    def _failure(
        self, what: str, code: grpc.StatusCode, message: str, *, retryable: bool = False
    ) -> _Abort:
        """Fabric's gateway wording: Evaluate names a non-retryable endorser error itself;
        Endorse, and Evaluate once retries are exhausted, summarise and attach details."""
        details = [self._detail(message)]
        if what == "evaluate" and not retryable:
            return _Abort(code, f"evaluate call to endorser returned error: {message}", details)
        if what == "evaluate":
            summary = "failed to evaluate transaction, see attached details for more info"
            return _Abort(code, summary, details)
        summary = "failed to endorse transaction, see attached details for more info"
        return _Abort(grpc.StatusCode.ABORTED, summary, details)

    def Evaluate(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            _, response = self._endorse_locally(request.proposed_transaction, "evaluate")
        except _Abort as error:
            _abort(context, error)
            return None
        result = response.response
        try:
            action = ChaincodeAction.FromString(
                ProposalResponsePayload.FromString(response.payload).extension
            )
            result.payload = action.response.payload
        except DecodeError:
            pass
        return gateway_pb2.EvaluateResponse(result=result)

    def Endorse(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            if not request.HasField("proposed_transaction") or not (
                request.proposed_transaction.proposal_bytes
            ):
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "the proposed transaction must contain a signed proposal",
                )
            others = [o for o in request.endorsing_organizations if o != self._msp_id]
            if others:
                raise _Abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"failed to find any endorsing peers for org(s): {', '.join(others)}",
                )
            unpacked, response = self._endorse_locally(request.proposed_transaction, "endorse")
            response.response.payload = b""  # not part of the signed payload
            try:
                envelope = prepare_transaction(unpacked, [response])
            except AssemblyError as exc:
                raise _Abort(
                    grpc.StatusCode.ABORTED, f"failed to assemble transaction: {exc}"
                ) from None
        except _Abort as error:
            _abort(context, error)
            return None
        return gateway_pb2.EndorseResponse(prepared_transaction=envelope)

    # --- Submit ----------------------------------------------------------------------------

    def Submit(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            if not request.HasField("prepared_transaction"):
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "a prepared transaction is required")
            if not request.prepared_transaction.signature:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "prepared transaction must be signed"
                )
            reply: Future = Future()
            self._orderer.tell(Broadcast(request.prepared_transaction.SerializeToString(), reply))
            try:
                status, info = reply.result(
                    timeout=self._remaining(context, self._options.broadcast_timeout)
                )
            except concurrent.futures.TimeoutError:
                raise _Abort(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    "submit timeout expired while broadcasting to ordering service",
                ) from None
            if status == SUCCESS:
                return gateway_pb2.SubmitResponse()
            if 400 <= status < 500:
                name = Status.Name(status) if status in Status.values() else str(status)
                raise _Abort(
                    grpc.StatusCode.ABORTED,
                    f"received unsuccessful response from orderer: status={name}, info={info}",
                )
            raise _Abort(
                grpc.StatusCode.UNAVAILABLE, "no orderers could successfully process transaction"
            )
        except _Abort as error:
            _abort(context, error)
            return None

    @staticmethod
    def _remaining(context: grpc.ServicerContext, default: float) -> float:
        left = context.time_remaining()
        return default if left is None else max(0.0, min(default, left))

    # --- CommitStatus --------------------------------------------------------------------------

    def _signed_by_reader(
        self, channel: str, request: bytes, identity: bytes, signature: bytes
    ) -> BlockStore:
        msps = self._msps(channel)
        store = self._stores(channel)
        if msps is None or store is None:
            raise _Abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"Failed to get policy manager for channel [{channel}]",
            )
        try:
            channel_policy(
                "/Channel/Application/Readers", [SignedData(request, identity, signature)], msps
            )
        except (PolicyError, MSPError) as exc:
            raise _Abort(grpc.StatusCode.PERMISSION_DENIED, str(exc)) from None
        return store

    def CommitStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            if not request.request:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "a commit status request is required"
                )
            try:
                inner = gateway_pb2.CommitStatusRequest.FromString(request.request)
            except DecodeError as exc:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"invalid status request: {exc}"
                ) from None
            store = self._signed_by_reader(
                inner.channel_id, request.request, inner.identity, request.signature
            )
            if not self._commit_waits.acquire(blocking=False):
                raise _Abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED, "too many commit status requests waiting"
                )
            try:
                code, block = self._wait_commit(store, inner.transaction_id, context)
            finally:
                self._commit_waits.release()
        except _Abort as error:
            _abort(context, error)
            return None
        return gateway_pb2.CommitStatusResponse(result=code, block_number=block)

    @staticmethod
    def _wait_commit(
        store: BlockStore, txid: str, context: grpc.ServicerContext
    ) -> tuple[int, int]:
        """Wait for ``txid``'s commit until the caller's deadline or cancellation (no
        deadline: as long as the caller stays), in bounded slices; the listener always goes."""
        done: Future = Future()

        def committed(code: int, block: int) -> None:
            if not done.done():  # the caller may have gone meanwhile
                done.set_result((code, block))

        cancel = store.on_commit(txid, committed)
        try:
            while True:
                left = context.time_remaining()
                if left is not None and left <= 0:
                    raise _Abort(grpc.StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")
                if not context.is_active():
                    raise _Abort(grpc.StatusCode.CANCELLED, "context canceled")
                try:
                    return done.result(timeout=1.0 if left is None else min(1.0, left))
                except concurrent.futures.TimeoutError:
                    continue
        finally:
            cancel()

    # --- ChaincodeEvents -----------------------------------------------------------------------

    def ChaincodeEvents(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        if not self._event_streams.acquire(blocking=False):
            _abort(
                context,
                _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many chaincode event streams"),
            )
            return
        try:
            yield from self._events(request, context)
        except _Abort as error:
            _abort(context, error)
        finally:
            self._event_streams.release()

    def _events(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        if not request.request:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "a chaincode events request is required")
        try:
            inner = gateway_pb2.ChaincodeEventsRequest.FromString(request.request)
        except DecodeError as exc:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"invalid chaincode events request: {exc}"
            ) from None
        store = self._signed_by_reader(
            inner.channel_id, request.request, inner.identity, request.signature
        )
        position = inner.start_position.WhichOneof("Type")
        start = store.height
        after = inner.after_transaction_id
        if after and (status := store.status(after)) is not None:
            start = status.block
        elif position == "specified":
            start = inner.start_position.specified.number
        elif position in ("newest", "oldest"):
            kind = "Newest" if position == "newest" else "Oldest"
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"invalid start position type: *orderer.SeekPosition_{kind}",
            )
        stop = threading.Event()
        context.add_callback(stop.set)
        yield from chaincode_events(
            store.blocks_from(start, stop=stop), inner.chaincode_id, inner.after_transaction_id
        )


def chaincode_events(
    blocks: Iterable[Block], chaincode: str, after: str = ""
) -> Iterator[gateway_pb2.ChaincodeEventsResponse]:
    """One response per block that holds events of ``chaincode`` (Fabric's
    ``ChaincodeEvents``). With ``after``, events are skipped up to and including the first
    event whose transaction id is ``after`` -- among the events of every chaincode, as Fabric's
    matcher sees them, so a client may resume after a transaction of another chaincode."""
    passed = not after
    for block in blocks:
        events = []
        for event in _block_events(block):
            if not passed:
                passed = event.tx_id == after
            elif event.chaincode_id == chaincode:
                events.append(event)
        if events:
            yield gateway_pb2.ChaincodeEventsResponse(
                events=events, block_number=block.header.number
            )


def _block_events(block: Block) -> Iterator[ChaincodeEvent]:
    """The well-formed events (chaincode id, name and tx id set) of the block's valid
    transactions, in block order."""
    codes = (
        block.metadata.metadata[TRANSACTIONS_FILTER] if len(block.metadata.metadata) > 2 else b""
    )
    for i, raw in enumerate(block.data.data):
        if i >= len(codes) or codes[i] != VALID:
            continue
        try:
            payload = Payload.FromString(Envelope.FromString(raw).payload)
            if ChannelHeader.FromString(payload.header.channel_header).type != ENDORSER_TRANSACTION:
                continue
            cc_action = chaincode_action(payload)
            if not cc_action.events:
                continue
            event = ChaincodeEvent.FromString(cc_action.events)
        except (DecodeError, IndexError):
            continue
        if event.chaincode_id and event.event_name and event.tx_id:
            yield event


class EndorserService(peer_pb2_grpc.EndorserServicer):
    """``protos.Endorser/ProcessProposal``, with Fabric's expiration auth filter."""

    def __init__(self, *, endorser: Endorser, msps: Callable[[str], MSPManager | None]) -> None:
        self._endorser = endorser
        self._msps = msps

    def ProcessProposal(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            creator = unpack(request).creator
            identity = parse_certificate(SerializedIdentity.FromString(creator).id_bytes)
        except (ProposalError, MSPError, DecodeError):
            identity = None  # the endorser reports what is wrong with the proposal
        if identity is not None and identity.not_valid_after_utc < dt.datetime.now(dt.UTC):
            context.abort(grpc.StatusCode.UNKNOWN, "proposal client identity expired")
        try:
            return self._endorser.process(request)
        except EndorserError as exc:
            context.abort(grpc.StatusCode.UNKNOWN, str(exc))
