"""Signed proposals as Fabric's endorser unpacks and checks them.

Fabric counterparts: ``core/endorser/msgvalidation.go`` (``UnpackProposal``,
``ValidateProposal``), ``protoutil/txutils.go`` (``ComputeTxID``) and
``protoutil/proputils.go`` (the proposal hash). Unpacking reads each layer of a
``SignedProposal`` once and keeps the bytes that are later hashed or signed exactly as received:
re-encoding them would change hashes that real clients and peers compute.

Every failure is a :class:`ProposalError` carrying Fabric's message, so the Endorser and the
Gateway can answer with Fabric's status and text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from actors.msp.msp import Identity, MSPError, MSPManager
from actors.msp.signatures import SignatureError
from protos.common.common_pb2 import (
    CONFIG,
    ENDORSER_TRANSACTION,
    ChannelHeader,
    Header,
    HeaderType,
    SignatureHeader,
)
from protos.peer.chaincode_pb2 import ChaincodeInvocationSpec, ChaincodeSpec
from protos.peer.proposal_pb2 import (
    ChaincodeHeaderExtension,
    ChaincodeProposalPayload,
    Proposal,
    SignedProposal,
)


class ProposalError(ValueError):
    """A proposal that Fabric's endorser would refuse; ``str()`` is Fabric's text."""


def compute_txid(nonce: bytes, creator: bytes) -> str:
    """Fabric's transaction id: hex SHA-256 of nonce ‖ creator."""
    return hashlib.sha256(nonce + creator).hexdigest()


def _parse(cls: type, data: bytes, what: str | None = None):  # type: ignore[no-untyped-def]
    try:
        return cls.FromString(data)
    except DecodeError as exc:
        raise ProposalError(f"error unmarshalling {what or cls.__name__}: {exc}") from None


@dataclass(frozen=True)
class UnpackedProposal:
    """The layers of a signed proposal, and the raw bytes that hashes are taken over."""

    signed: SignedProposal
    proposal: Proposal
    header: Header
    channel_header: ChannelHeader
    signature_header: SignatureHeader
    extension: ChaincodeHeaderExtension
    payload: ChaincodeProposalPayload
    spec: ChaincodeSpec

    @property
    def channel_id(self) -> str:
        return self.channel_header.channel_id

    @property
    def txid(self) -> str:
        return self.channel_header.tx_id

    @property
    def chaincode_name(self) -> str:
        """The chaincode invoked: the header extension's, as Fabric's endorser decides."""
        return self.extension.chaincode_id.name

    @property
    def creator(self) -> bytes:
        return self.signature_header.creator

    @property
    def args(self) -> list[bytes]:
        return list(self.spec.input.args)

    @property
    def is_init(self) -> bool:
        return self.spec.input.is_init

    @property
    def transient(self) -> dict[str, bytes]:
        return dict(self.payload.TransientMap)

    @property
    def payload_without_transient(self) -> bytes:
        """``ChaincodeProposalPayload{input}`` re-encoded without the transient map: what the
        proposal hash and the transaction carry (the transient map never leaves the peer)."""
        return ChaincodeProposalPayload(input=self.payload.input).SerializeToString()

    @property
    def proposal_hash(self) -> bytes:
        """SHA-256(channel header bytes ‖ signature header bytes ‖ payload without transient)."""
        return hashlib.sha256(
            self.header.channel_header
            + self.header.signature_header
            + self.payload_without_transient
        ).digest()


def unpack(signed: SignedProposal) -> UnpackedProposal:
    """Fabric's ``UnpackProposal``: every layer decoded, the chaincode name and input present."""
    proposal = _parse(Proposal, signed.proposal_bytes)
    header = _parse(Header, proposal.header)
    channel_header = _parse(ChannelHeader, header.channel_header)
    signature_header = _parse(SignatureHeader, header.signature_header)
    extension = _parse(ChaincodeHeaderExtension, channel_header.extension)
    if not extension.HasField("chaincode_id"):
        raise ProposalError("ChaincodeHeaderExtension.ChaincodeId is nil")
    if not extension.chaincode_id.name:
        raise ProposalError("ChaincodeHeaderExtension.ChaincodeId.Name is empty")
    payload = _parse(ChaincodeProposalPayload, proposal.payload)
    invocation = _parse(ChaincodeInvocationSpec, payload.input)
    if not invocation.HasField("chaincode_spec"):
        raise ProposalError("chaincode invocation spec did not contain chaincode spec")
    if not invocation.chaincode_spec.HasField("input"):
        raise ProposalError("chaincode input did not contain any input")
    return UnpackedProposal(
        signed=signed,
        proposal=proposal,
        header=header,
        channel_header=channel_header,
        signature_header=signature_header,
        extension=extension,
        payload=payload,
        spec=invocation.chaincode_spec,
    )


def validate(unpacked: UnpackedProposal, msps: MSPManager) -> Identity:
    """Fabric's ``ValidateProposal`` (text prefixed as the endorser does): header type, epoch,
    nonce, creator, txid, then the creator is a valid member of the channel that signed these
    bytes. Returns the creator's identity."""
    ch = unpacked.channel_header
    try:
        if ch.type not in (ENDORSER_TRANSACTION, CONFIG):
            name = HeaderType.Name(ch.type) if ch.type in HeaderType.values() else str(ch.type)
            raise ProposalError(f"invalid header type {name}")
        if ch.epoch != 0:
            raise ProposalError("epoch is non-zero")
        sh = unpacked.signature_header
        if not sh.nonce:
            raise ProposalError("nonce is empty")
        if not sh.creator:
            raise ProposalError("creator is empty")
        expected = compute_txid(sh.nonce, sh.creator)
        if ch.tx_id != expected:
            raise ProposalError(f"incorrectly computed txid '{ch.tx_id}' -- expected '{expected}'")
        if not unpacked.signed.proposal_bytes:
            raise ProposalError("empty proposal bytes")
        if not unpacked.signed.signature:
            raise ProposalError("empty signature bytes")
        try:
            identity, msp = msps.deserialize(sh.creator)
        except MSPError:
            raise ProposalError(
                f"access denied: channel [{ch.channel_id}] creator org unknown, creator is "
                "malformed"
            ) from None
        try:
            msp.validate(identity)
            identity.verify(unpacked.signed.proposal_bytes, unpacked.signed.signature)
        except (MSPError, SignatureError):
            raise ProposalError(
                f"access denied: channel [{ch.channel_id}] creator org [{identity.msp_id}]"
            ) from None
    except ProposalError as exc:
        raise ProposalError(f"error validating proposal: {exc}") from None
    return identity
