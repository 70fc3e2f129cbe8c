"""Endorsements and prepared transactions, byte for byte as Fabric builds them.

Fabric counterparts: ``core/endorser/endorser.go`` (the ``ProposalResponse`` by chaincode
status), ``core/handlers/endorsement/builtin`` (the default ESCC: sign payload ‖ endorser),
``internal/pkg/gateway/api.go`` ``prepareTransaction`` and ``protoutil.CreateSignedTx`` (the
transaction envelope a client signs and submits).
"""

from __future__ import annotations

from collections.abc import Sequence

from actors.gateway.proposal import UnpackedProposal
from actors.msp.msp import SigningIdentity
from protos.common.common_pb2 import Envelope, Payload
from protos.peer.chaincode_event_pb2 import ChaincodeEvent
from protos.peer.chaincode_pb2 import ChaincodeID
from protos.peer.proposal_pb2 import ChaincodeAction
from protos.peer.proposal_response_pb2 import (
    Endorsement,
    ProposalResponse,
    ProposalResponsePayload,
    Response,
)
from protos.peer.transaction_pb2 import (
    ChaincodeActionPayload,
    ChaincodeEndorsedAction,
    Transaction,
    TransactionAction,
)

ERROR_THRESHOLD = 400  # shim.ERRORTHRESHOLD: below it a response is endorsed
ERROR = 500


def response_payload(
    unpacked: UnpackedProposal,
    *,
    response: Response,
    results: bytes,
    event: ChaincodeEvent | None,
    version: str,
) -> bytes:
    """``ProposalResponsePayload`` bytes: the proposal hash and the ``ChaincodeAction``. The
    event's chaincode id and txid are overwritten with the invoked chaincode and txid, as the
    endorser does."""
    events = b""
    if event is not None:
        stamped = ChaincodeEvent()
        stamped.CopyFrom(event)
        stamped.chaincode_id = unpacked.chaincode_name
        stamped.tx_id = unpacked.txid
        events = stamped.SerializeToString()
    action = ChaincodeAction(
        results=results,
        events=events,
        response=response,
        chaincode_id=ChaincodeID(name=unpacked.chaincode_name, version=version),
    )
    return ProposalResponsePayload(
        proposal_hash=unpacked.proposal_hash, extension=action.SerializeToString()
    ).SerializeToString()


def endorse(payload: bytes, signer: SigningIdentity) -> Endorsement:
    """The default ESCC: the peer signs payload ‖ its serialized identity."""
    endorser = signer.serialized
    return Endorsement(endorser=endorser, signature=signer.sign(payload + endorser))


def proposal_response(
    unpacked: UnpackedProposal,
    *,
    response: Response,
    results: bytes,
    event: ChaincodeEvent | None,
    version: str,
    signer: SigningIdentity,
) -> ProposalResponse:
    """The endorser's reply by chaincode status: < 400 endorsed (version 1, payload,
    endorsement); 400..499 the response only; >= 500 response and payload, not endorsed."""
    if ERROR_THRESHOLD <= response.status < ERROR:
        return ProposalResponse(response=response)
    payload = response_payload(
        unpacked, response=response, results=results, event=event, version=version
    )
    if response.status >= ERROR:
        return ProposalResponse(response=response, payload=payload)
    return ProposalResponse(
        version=1, response=response, payload=payload, endorsement=endorse(payload, signer)
    )


class AssemblyError(ValueError):
    """Endorsements that cannot make one transaction (Fabric: failed to assemble transaction)."""


def chaincode_action(payload: Payload) -> ChaincodeAction:
    """The ``ChaincodeAction`` inside a transaction's payload (its first action), the way the
    committer, the events stream and the clients read a result; raises DecodeError or
    IndexError for a payload that has none."""
    action = Transaction.FromString(payload.data).actions[0]
    cap = ChaincodeActionPayload.FromString(action.payload)
    prp = ProposalResponsePayload.FromString(cap.action.proposal_response_payload)
    return ChaincodeAction.FromString(prp.extension)


def prepare_transaction(
    unpacked: UnpackedProposal, responses: Sequence[ProposalResponse]
) -> Envelope:
    """The unsigned transaction envelope the Gateway's Endorse returns: one action carrying
    the proposal response payload and every distinct endorsement."""
    if not responses:
        raise AssemblyError("at least one proposal response is required")
    payload = responses[0].payload
    endorsements: list[Endorsement] = []
    seen: set[bytes] = set()
    for r in responses:
        if not 200 <= r.response.status < ERROR_THRESHOLD:
            raise AssemblyError(
                f"proposal response was not successful, error code {r.response.status}, "
                f"msg {r.response.message}"
            )
        if r.payload != payload:
            raise AssemblyError("ProposalResponsePayloads do not match")
        if not r.HasField("endorsement"):
            raise AssemblyError("proposal response has no endorsement")
        if r.endorsement.endorser not in seen:
            seen.add(r.endorsement.endorser)
            endorsements.append(r.endorsement)
    action_payload = ChaincodeActionPayload(
        chaincode_proposal_payload=unpacked.payload_without_transient,
        action=ChaincodeEndorsedAction(
            proposal_response_payload=payload, endorsements=endorsements
        ),
    )
    transaction = Transaction(
        actions=[
            TransactionAction(
                header=unpacked.header.signature_header,
                payload=action_payload.SerializeToString(),
            )
        ]
    )
    envelope_payload = Payload(header=unpacked.header, data=transaction.SerializeToString())
    return Envelope(payload=envelope_payload.SerializeToString())
