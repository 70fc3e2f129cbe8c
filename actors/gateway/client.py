"""A Gateway client with an MSP identity: what ``ccactors invoke --msp-dir`` uses.

Fabric counterpart: the official ``fabric-gateway`` clients (``ProposalBuilder``,
``Proposal.evaluate``/``endorse``, ``Transaction.submit``, ``Commit.getStatus``). It builds and
signs proposals exactly as they do (24-byte nonce, txid = hex SHA-256(nonce ‖ creator),
ChaincodeHeaderExtension with the chaincode name, ChaincodeSpec type NODE), so the peer sees a
client's bytes either way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from actors.gateway.proposal import compute_txid
from actors.msp.msp import SigningIdentity
from protos.common.common_pb2 import ENDORSER_TRANSACTION, ChannelHeader, Header, SignatureHeader
from protos.gateway import gateway_pb2, gateway_pb2_grpc
from protos.peer.chaincode_pb2 import ChaincodeInvocationSpec
from protos.peer.proposal_pb2 import (
    ChaincodeHeaderExtension,
    ChaincodeProposalPayload,
    Proposal,
    SignedProposal,
)
from protos.peer.transaction_pb2 import TxValidationCode


def signed_proposal(
    identity: SigningIdentity,
    channel: str,
    chaincode: str,
    args: Sequence[bytes],
    *,
    transient: Mapping[str, bytes] | None = None,
    is_init: bool = False,
    nonce: bytes | None = None,
) -> tuple[str, SignedProposal]:
    """(txid, SignedProposal) as fabric-gateway's ProposalBuilder makes them."""
    nonce = os.urandom(24) if nonce is None else nonce
    creator = identity.serialized
    txid = compute_txid(nonce, creator)
    channel_header = ChannelHeader(
        type=ENDORSER_TRANSACTION,
        channel_id=channel,
        tx_id=txid,
        extension=ChaincodeHeaderExtension(chaincode_id={"name": chaincode}).SerializeToString(),
    )
    channel_header.timestamp.GetCurrentTime()
    header = Header(
        channel_header=channel_header.SerializeToString(),
        signature_header=SignatureHeader(creator=creator, nonce=nonce).SerializeToString(),
    )
    spec = ChaincodeInvocationSpec()
    spec.chaincode_spec.type = 2  # NODE, as the official clients send
    spec.chaincode_spec.chaincode_id.name = chaincode
    spec.chaincode_spec.input.args.extend(args)
    spec.chaincode_spec.input.is_init = is_init
    payload = ChaincodeProposalPayload(
        input=spec.SerializeToString(), TransientMap=dict(transient or {})
    )
    proposal_bytes = Proposal(
        header=header.SerializeToString(), payload=payload.SerializeToString()
    ).SerializeToString()
    return txid, SignedProposal(
        proposal_bytes=proposal_bytes, signature=identity.sign(proposal_bytes)
    )


@dataclass(frozen=True)
class Submitted:
    txid: str
    result: bytes
    code: int
    block: int

    @property
    def code_name(self) -> str:
        return TxValidationCode.Name(self.code)


class GatewayClient:
    def __init__(
        self,
        address: str,
        identity: SigningIdentity,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, object]] = (),
    ) -> None:
        self.identity = identity
        self._channel = (
            grpc.secure_channel(address, credentials, options=list(options))
            if credentials is not None
            else grpc.insecure_channel(address, options=list(options))
        )
        self._stub = gateway_pb2_grpc.GatewayStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def evaluate(
        self, channel: str, chaincode: str, args: Sequence[bytes], *, timeout: float = 30.0, **kw
    ) -> bytes:
        txid, proposal = signed_proposal(self.identity, channel, chaincode, args, **kw)
        reply = self._stub.Evaluate(
            gateway_pb2.EvaluateRequest(
                transaction_id=txid, channel_id=channel, proposed_transaction=proposal
            ),
            timeout=timeout,
        )
        return reply.result.payload

    def submit(
        self,
        channel: str,
        chaincode: str,
        args: Sequence[bytes],
        *,
        timeout: float = 30.0,
        commit_timeout: float | None = None,
        **kw: Any,
    ) -> Submitted:
        """Endorse, sign, submit, and wait for the commit status (``contract.submit``) at most
        ``commit_timeout`` (default ``timeout``: Fabric CLI's --waitForEventTimeout)."""
        txid, proposal = signed_proposal(self.identity, channel, chaincode, args, **kw)
        endorsed = self._stub.Endorse(
            gateway_pb2.EndorseRequest(
                transaction_id=txid, channel_id=channel, proposed_transaction=proposal
            ),
            timeout=timeout,
        )
        envelope = endorsed.prepared_transaction
        envelope.signature = self.identity.sign(envelope.payload)
        self._stub.Submit(
            gateway_pb2.SubmitRequest(
                transaction_id=txid, channel_id=channel, prepared_transaction=envelope
            ),
            timeout=timeout,
        )
        status = self.commit_status(channel, txid, timeout=commit_timeout or timeout)
        return Submitted(txid, _result_of(envelope.payload), status.result, status.block_number)

    def commit_status(self, channel: str, txid: str, *, timeout: float = 30.0):  # type: ignore[no-untyped-def]
        request = gateway_pb2.CommitStatusRequest(
            transaction_id=txid, channel_id=channel, identity=self.identity.serialized
        ).SerializeToString()
        return self._stub.CommitStatus(
            gateway_pb2.SignedCommitStatusRequest(
                request=request, signature=self.identity.sign(request)
            ),
            timeout=timeout,
        )

    def events(
        self,
        channel: str,
        chaincode: str,
        *,
        start_block: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[gateway_pb2.ChaincodeEventsResponse]:
        inner = gateway_pb2.ChaincodeEventsRequest(
            channel_id=channel, chaincode_id=chaincode, identity=self.identity.serialized
        )
        if start_block is not None:
            inner.start_position.specified.number = start_block
        else:
            inner.start_position.next_commit.SetInParent()
        request = inner.SerializeToString()
        return self._stub.ChaincodeEvents(
            gateway_pb2.SignedChaincodeEventsRequest(
                request=request, signature=self.identity.sign(request)
            ),
            timeout=timeout,
        )


def _result_of(payload: bytes) -> bytes:
    """The transaction result inside a prepared transaction, read as the clients read it."""
    from actors.gateway.endorsement import chaincode_action
    from protos.common.common_pb2 import Payload

    return chaincode_action(Payload.FromString(payload)).response.payload
