"""Built proposals have Fabric's shape, which real contract chaincode relies on."""

from __future__ import annotations

import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from actors.proposals import build_signed_proposal, compute_txid, local_identity, new_nonce
from protos.common import common_pb2
from protos.msp import identities_pb2
from protos.peer import chaincode_pb2, proposal_pb2


def test_signed_proposal_has_fabric_shape_and_valid_signature() -> None:
    identity = local_identity("Org1MSP")
    signed = build_signed_proposal(
        identity, "ch1", "tx1", "kv", [b"put", b"a"], {"secret": b"s"}, nonce=b"n" * 24
    )
    proposal = proposal_pb2.Proposal.FromString(signed.proposal_bytes)
    header = common_pb2.Header.FromString(proposal.header)
    channel_header = common_pb2.ChannelHeader.FromString(header.channel_header)
    assert channel_header.type == common_pb2.ENDORSER_TRANSACTION
    assert (channel_header.channel_id, channel_header.tx_id) == ("ch1", "tx1")
    assert channel_header.timestamp.seconds > 1_700_000_000
    extension = proposal_pb2.ChaincodeHeaderExtension.FromString(channel_header.extension)
    assert extension.chaincode_id.name == "kv"
    signature_header = common_pb2.SignatureHeader.FromString(header.signature_header)
    assert signature_header.nonce == b"n" * 24
    creator = identities_pb2.SerializedIdentity.FromString(signature_header.creator)
    assert creator.mspid == "Org1MSP"
    cert = x509.load_pem_x509_certificate(creator.id_bytes)
    assert proposal.payload  # the Node shim refuses an empty payload
    payload = proposal_pb2.ChaincodeProposalPayload.FromString(proposal.payload)
    assert dict(payload.TransientMap) == {"secret": b"s"}
    invocation = chaincode_pb2.ChaincodeInvocationSpec.FromString(payload.input)
    assert list(invocation.chaincode_spec.input.args) == [b"put", b"a"]
    cert.public_key().verify(signed.signature, signed.proposal_bytes, ec.ECDSA(hashes.SHA256()))


def test_identity_is_made_once_and_txid_is_fabrics() -> None:
    assert local_identity("OrgX") is local_identity("OrgX")
    assert local_identity("OrgX") is not local_identity("OrgY")
    # hex(SHA-256(nonce || creator)), Fabric's protoutil.ComputeTxID
    assert compute_txid(b"a", b"b") == (
        "fb8e20fc2e4c3f248c60c39bd652f3c1347298bb977b8b4d5903b85055620603"
    )


def test_unsigned_proposals_when_signing_is_off() -> None:
    signed = build_signed_proposal(local_identity(), "c", "t", "kv", [], sign=False)
    assert signed.signature == b""
    assert signed.proposal_bytes


def test_nonces_are_distinct_across_buffer_refills_and_forks() -> None:
    nonces = [new_nonce() for _ in range(1000)]  # several 4 KiB draws
    assert all(len(n) == 24 for n in nonces)
    assert len(set(nonces)) == len(nonces)
    new_nonce()  # the buffer now holds unused nonces a forked child must not repeat
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next nonce and leave at once
        os.write(write, new_nonce())
        os._exit(0)
    os.close(write)
    child = os.read(read, 24)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 24
    assert child != new_nonce()
