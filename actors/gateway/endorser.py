"""The local endorser: check a signed proposal, simulate it, sign the result.

Fabric counterpart: ``core/endorser/endorser.go`` (``ProcessProposal``: unpack, channel lookup,
validation, duplicate check, simulation, endorsement by status). It answers as Fabric does:
problems with the proposal itself are errors (:class:`EndorserError`, which the public Endorser
service turns into gRPC UNKNOWN and the Gateway into FAILED_PRECONDITION); problems running the
chaincode are a ``ProposalResponse`` with status 500 and no error.

The peer side comes in through :class:`EndorserBackend`, so the endorser is tested with fakes.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from actors.gateway.endorsement import proposal_response
from actors.gateway.proposal import ProposalError, UnpackedProposal, unpack, validate
from actors.gateway.validator import channel_policy
from actors.msp.msp import Identity, MSPManager, SigningIdentity
from actors.msp.policies import PolicyError, SignedData
from protos.peer.chaincode_event_pb2 import ChaincodeEvent
from protos.peer.proposal_pb2 import SignedProposal
from protos.peer.proposal_response_pb2 import ProposalResponse, Response


class EndorserError(Exception):
    """A proposal the endorser refuses outright (Fabric returns an error with it)."""


@dataclass(frozen=True)
class Simulation:
    """What running the chaincode gave: its response, read/write set bytes, event."""

    response: Response
    results: bytes
    event: ChaincodeEvent | None


class SimulationFailed(Exception):
    """The chaincode could not be run or failed (Fabric: ``error in simulation: ...``)."""


class EndorserBackend(Protocol):
    """The peer as the endorser sees it (consumer-defined)."""

    signer: SigningIdentity

    def channel_msps(self, channel: str) -> MSPManager | None:
        """The channel's members, None for a channel this peer does not have."""
        ...

    def txid_known(self, channel: str, txid: str) -> bool: ...

    def chaincode_version(self, channel: str, chaincode: str) -> str | None:
        """The version of the chaincode's definition on the channel, None if undefined."""
        ...

    def simulate(
        self, unpacked: UnpackedProposal, creator: Identity, timeout: float
    ) -> Future[Simulation]: ...


class Endorser:
    def __init__(self, *, backend: EndorserBackend, timeout: float = 30.0) -> None:
        self._backend = backend
        self._timeout = timeout

    def preprocess(self, signed: SignedProposal) -> tuple[UnpackedProposal, Identity, MSPManager]:
        """Unpack and validate; raises :class:`EndorserError` with Fabric's text."""
        try:
            unpacked = unpack(signed)
        except ProposalError as exc:
            raise EndorserError(str(exc)) from None
        msps = self._backend.channel_msps(unpacked.channel_id)
        if msps is None:
            raise ChannelNotFound(unpacked.channel_id)
        try:
            creator = validate(unpacked, msps)
        except ProposalError as exc:
            raise EndorserError(str(exc)) from None
        # the peer/Propose ACL: /Channel/Application/Writers on the signed proposal
        signed_data = SignedData(signed.proposal_bytes, unpacked.creator, signed.signature)
        try:
            channel_policy("/Channel/Application/Writers", [signed_data], msps)
        except PolicyError as exc:
            raise EndorserError(
                "access denied: failed evaluating policy on signed data during check policy "
                f"[/Channel/Application/Writers]: [{exc}]"
            ) from None
        if self._backend.txid_known(unpacked.channel_id, unpacked.txid):
            raise EndorserError(
                f"duplicate transaction found [{unpacked.txid}]. Creator [{unpacked.creator.hex()}]"
            )
        return unpacked, creator, msps

    def process(self, signed: SignedProposal) -> ProposalResponse:
        """Fabric's ``ProcessProposal``, minus the gRPC auth filters (the service adds them)."""
        try:
            unpacked, creator, _ = self.preprocess(signed)
        except ChannelNotFound as missing:
            return ProposalResponse(
                response=Response(status=500, message=f"channel '{missing.channel}' not found")
            )
        return self.endorse(unpacked, creator)

    def endorse(self, unpacked: UnpackedProposal, creator: Identity) -> ProposalResponse:
        channel, name = unpacked.channel_id, unpacked.chaincode_name
        version = self._backend.chaincode_version(channel, name)
        if version is None:
            return _failed(
                f"make sure the chaincode {name} has been successfully defined on channel "
                f"{channel} and try again: chaincode {name} not found"
            )
        try:
            simulation = self._backend.simulate(unpacked, creator, self._timeout).result()
        except SimulationFailed as exc:
            return _failed(f"error in simulation: {exc}")
        return proposal_response(
            unpacked,
            response=simulation.response,
            results=simulation.results,
            event=simulation.event,
            version=version,
            signer=self._backend.signer,
        )


class ChannelNotFound(EndorserError):
    """The proposal names a channel this peer has not joined: the Endorser service answers
    with a status 500 response, the Gateway with UNAVAILABLE (as Fabric's do)."""

    def __init__(self, channel: str) -> None:
        super().__init__(f"channel '{channel}' not found")
        self.channel = channel


def _failed(message: str) -> ProposalResponse:
    return ProposalResponse(response=Response(status=500, message=message))
