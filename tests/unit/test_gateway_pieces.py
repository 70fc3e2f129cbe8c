"""Proposal checks, endorsement, blocks, the block cutter and the committer's validation
(actors.gateway), each alone, with identities from actors.msp.cryptogen."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from actors.gateway import blocks
from actors.gateway.cutter import BatchConfig, BatchConfigError, BlockCutter
from actors.gateway.endorsement import AssemblyError, prepare_transaction, proposal_response
from actors.gateway.proposal import ProposalError, compute_txid, unpack, validate
from actors.gateway.validator import ChaincodeRules, validate_block
from actors.msp.msp import MSP, MSPManager, SigningIdentity
from actors.msp.policies import from_string
from protos.common.common_pb2 import (
    ENDORSER_TRANSACTION,
    MESSAGE,
    ChannelHeader,
    Envelope,
    Header,
    Payload,
    SignatureHeader,
)
from protos.ledger.rwset.kvrwset.kv_rwset_pb2 import KVRWSet
from protos.ledger.rwset.rwset_pb2 import TxReadWriteSet
from protos.peer import transaction_pb2 as tx_pb
from protos.peer.chaincode_event_pb2 import ChaincodeEvent
from protos.peer.chaincode_pb2 import ChaincodeInvocationSpec
from protos.peer.policy_pb2 import ApplicationPolicy
from protos.peer.proposal_pb2 import (
    ChaincodeHeaderExtension,
    ChaincodeProposalPayload,
    Proposal,
    SignedProposal,
)
from protos.peer.proposal_response_pb2 import Response
from tests.gateway_peer import ident, make_crypto

CHANNEL = "mychannel"


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_crypto(tmp_path_factory.mktemp("crypto"))


def msps(crypto: Path) -> MSPManager:
    return MSPManager(
        MSP.from_dir(crypto / "peerOrganizations" / f"org{n}.example.com" / "msp", f"Org{n}MSP")
        for n in (1, 2)
    )


def make_proposal(
    client: SigningIdentity,
    args: list[bytes],
    *,
    chaincode: str = "basic",
    transient: dict[str, bytes] | None = None,
    header_type: int = ENDORSER_TRANSACTION,
    txid: str | None = None,
) -> SignedProposal:
    """A proposal built as fabric-gateway's ProposalBuilder builds it."""
    nonce = os.urandom(24)
    creator = client.serialized
    ch = ChannelHeader(
        type=header_type,
        channel_id=CHANNEL,
        tx_id=txid or compute_txid(nonce, creator),
        extension=ChaincodeHeaderExtension(chaincode_id={"name": chaincode}).SerializeToString(),
    )
    ch.timestamp.GetCurrentTime()
    header = Header(
        channel_header=ch.SerializeToString(),
        signature_header=SignatureHeader(creator=creator, nonce=nonce).SerializeToString(),
    )
    spec = ChaincodeInvocationSpec()
    spec.chaincode_spec.type = 2
    spec.chaincode_spec.chaincode_id.name = chaincode
    spec.chaincode_spec.input.args.extend(args)
    payload = ChaincodeProposalPayload(input=spec.SerializeToString(), TransientMap=transient or {})
    proposal_bytes = Proposal(
        header=header.SerializeToString(), payload=payload.SerializeToString()
    ).SerializeToString()
    return SignedProposal(proposal_bytes=proposal_bytes, signature=client.sign(proposal_bytes))


# --- proposals -------------------------------------------------------------------------------


def test_a_clients_proposal_unpacks_and_validates(crypto: Path) -> None:
    user = ident(crypto, 1, "User1@")
    signed = make_proposal(user, [b"CreateAsset", b"a1"], transient={"secret": b"x"})
    unpacked = unpack(signed)
    assert (unpacked.channel_id, unpacked.chaincode_name, unpacked.args) == (
        CHANNEL,
        "basic",
        [b"CreateAsset", b"a1"],
    )
    assert unpacked.transient == {"secret": b"x"}
    assert validate(unpacked, msps(crypto)).id == user.id
    # the transient map never enters the proposal hash
    no_transient = ChaincodeProposalPayload(input=unpacked.payload.input).SerializeToString()
    assert (
        unpacked.proposal_hash
        == hashlib.sha256(
            unpacked.header.channel_header + unpacked.header.signature_header + no_transient
        ).digest()
    )


def test_proposal_rejections_carry_fabrics_texts(crypto: Path) -> None:
    user, mgr = ident(crypto, 1, "User1@"), msps(crypto)
    forged = make_proposal(user, [b"f"])
    forged.signature = user.sign(b"something else")
    cases = [
        (forged, "access denied: channel [mychannel] creator org [Org1MSP]"),
        (make_proposal(user, [b"f"], txid="ab" * 32), "incorrectly computed txid"),
        (make_proposal(user, [b"f"], header_type=MESSAGE), "invalid header type MESSAGE"),
    ]
    stranger = MSPManager(
        [MSP.from_dir(crypto / "peerOrganizations/org2.example.com/msp", "Org2MSP")]
    )
    for signed, text in cases:
        with pytest.raises(
            ProposalError,
            match=r"^error validating proposal: " + text.replace("[", r"\[").replace("]", r"\]"),
        ):
            validate(unpack(signed), mgr)
    with pytest.raises(ProposalError, match="creator org unknown"):
        validate(unpack(make_proposal(user, [b"f"])), stranger)
    with pytest.raises(ProposalError, match="error unmarshalling Proposal"):
        unpack(SignedProposal(proposal_bytes=b"\xff\xff"))
    with pytest.raises(ProposalError, match=r"ChaincodeId\.Name is empty"):
        unpack(make_proposal(user, [b"f"], chaincode=""))


# --- endorsement and validation --------------------------------------------------------------


def _rwset(
    namespace: str, writes: dict[str, bytes], metadata: dict[str, bytes] | None = None
) -> bytes:
    kv = KVRWSet()
    for k, v in writes.items():
        kv.writes.add(key=k, value=v)
    for k, policy in (metadata or {}).items():
        kv.metadata_writes.add(key=k).entries.add(name="VALIDATION_PARAMETER", value=policy)
    rw = TxReadWriteSet()
    rw.ns_rwset.add(namespace=namespace, rwset=kv.SerializeToString())
    return rw.SerializeToString()


def endorsed_envelope(
    crypto: Path,
    client: SigningIdentity,
    endorsers: list[SigningIdentity],
    *,
    writes: dict[str, bytes] | None = None,
    metadata: dict[str, bytes] | None = None,
    event: ChaincodeEvent | None = None,
    results: bytes | None = None,
) -> bytes:
    unpacked = unpack(make_proposal(client, [b"put"]))
    responses = [
        proposal_response(
            unpacked,
            response=Response(status=200, payload=b"ok"),
            results=results or _rwset("basic", writes or {"k": b"v"}, metadata),
            event=event,
            version="1.0",
            signer=e,
        )
        for e in endorsers
    ]
    envelope = prepare_transaction(unpacked, responses)
    envelope.signature = client.sign(envelope.payload)
    return envelope.SerializeToString()


@dataclass
class FakeChannel:
    msps: MSPManager
    policy: str = "OR('Org1MSP.peer')"
    channel_id: str = CHANNEL
    committed: set[str] = field(default_factory=set)
    key_policies: dict[tuple[str, str], bytes] = field(default_factory=dict)
    collection_policies: dict[str, str] = field(default_factory=dict)

    def collection_policy(self, chaincode: str, collection: str) -> bytes | None:
        policy = self.collection_policies.get(collection)
        if policy is None:
            return None
        return ApplicationPolicy(signature_policy=from_string(policy)).SerializeToString()

    def txid_committed(self, txid: str) -> bool:
        return txid in self.committed

    def definition(self, chaincode: str) -> ChaincodeRules | None:
        if chaincode != "basic":
            return None
        if not self.policy:
            return ChaincodeRules("1.0", b"")
        app = ApplicationPolicy(signature_policy=from_string(self.policy))
        return ChaincodeRules("1.0", app.SerializeToString())

    def key_policy(self, namespace: str, key: str) -> bytes | None:
        return self.key_policies.get((namespace, key))


def codes(envelopes: list[bytes], channel: FakeChannel) -> list[str]:
    return [tx_pb.TxValidationCode.Name(r.code) for r in validate_block(envelopes, channel)]


def test_endorsement_policies_decide_validity(crypto: Path) -> None:
    user = ident(crypto, 1, "User1@")
    p1, p2 = ident(crypto, 1, "peer0"), ident(crypto, 2, "peer0")
    channel = FakeChannel(msps(crypto))
    assert codes([endorsed_envelope(crypto, user, [p1])], channel) == ["VALID"]
    channel.policy = "AND('Org1MSP.peer', 'Org2MSP.peer')"
    one, both = endorsed_envelope(crypto, user, [p1]), endorsed_envelope(crypto, user, [p1, p2])
    assert codes([one, both], channel) == ["ENDORSEMENT_POLICY_FAILURE", "VALID"]
    channel.policy = ""  # the channel default: a MAJORITY of the orgs' peers (2 of 2 here)
    assert codes([one, both], channel) == ["ENDORSEMENT_POLICY_FAILURE", "VALID"]
    # a client's signature is no endorsement
    assert codes([endorsed_envelope(crypto, user, [user])], FakeChannel(msps(crypto))) == [
        "ENDORSEMENT_POLICY_FAILURE"
    ]


def test_key_level_policies_replace_the_chaincode_policy(crypto: Path) -> None:
    user = ident(crypto, 1, "User1@")
    p1, p2 = ident(crypto, 1, "peer0"), ident(crypto, 2, "peer0")
    channel = FakeChannel(msps(crypto))  # chaincode policy: Org1's peer
    sbe = from_string("OR('Org2MSP.peer')").SerializeToString()
    channel.key_policies[("basic", "k")] = sbe
    assert codes([endorsed_envelope(crypto, user, [p1])], channel) == ["ENDORSEMENT_POLICY_FAILURE"]
    assert codes([endorsed_envelope(crypto, user, [p2])], channel) == ["VALID"]
    # a key without SBE in the same transaction still needs the chaincode policy
    mixed = endorsed_envelope(crypto, user, [p2], writes={"k": b"1", "other": b"2"})
    assert codes([mixed], channel) == ["ENDORSEMENT_POLICY_FAILURE"]
    # a key's policy changed earlier in the block blocks later writers of that key
    changer = endorsed_envelope(crypto, user, [p2], writes={}, metadata={"k": sbe})
    later = endorsed_envelope(crypto, user, [p2])
    assert codes([changer, later], channel) == ["VALID", "ENDORSEMENT_POLICY_FAILURE"]


def test_collection_writes_need_the_collection_or_key_level_policy(crypto: Path) -> None:
    from actors.ledger import Ledger

    with Ledger("ch").new_simulator("t") as sim:
        sim.put_private_data("basic", "coll", "k", b"v")
        private_write = sim.get_results().to_bytes()
    user = ident(crypto, 1, "User1@")
    p1, p2 = ident(crypto, 1, "peer0"), ident(crypto, 2, "peer0")
    channel = FakeChannel(msps(crypto))  # chaincode policy: Org1's peer
    by_p1 = endorsed_envelope(crypto, user, [p1], results=private_write)
    by_p2 = endorsed_envelope(crypto, user, [p2], results=private_write)
    assert codes([by_p1, by_p2], channel) == ["VALID", "ENDORSEMENT_POLICY_FAILURE"]
    channel.collection_policies["coll"] = "OR('Org2MSP.peer')"  # replaces the chaincode's
    assert codes([by_p1, by_p2], channel) == ["ENDORSEMENT_POLICY_FAILURE", "VALID"]
    key_hash = hashlib.sha256(b"k").hexdigest()
    sbe = from_string("OR('Org1MSP.peer')").SerializeToString()
    channel.key_policies[("basic$$hcoll", key_hash)] = sbe  # and a key-level one replaces both
    assert codes([by_p1, by_p2], channel) == ["VALID", "ENDORSEMENT_POLICY_FAILURE"]


def test_transaction_level_rejections(crypto: Path) -> None:
    user, p1 = ident(crypto, 1, "User1@"), ident(crypto, 1, "peer0")
    channel = FakeChannel(msps(crypto))
    good = endorsed_envelope(crypto, user, [p1])
    bad_sig = Envelope.FromString(good)
    bad_sig.signature = user.sign(b"not the payload")
    other = Envelope.FromString(endorsed_envelope(crypto, user, [p1]))
    result = codes(
        [good, good, bad_sig.SerializeToString(), b"", other.SerializeToString()], channel
    )
    assert result == ["VALID", "DUPLICATE_TXID", "BAD_CREATOR_SIGNATURE", "NIL_ENVELOPE", "VALID"]
    channel.committed.add(validate_block([good], FakeChannel(msps(crypto)))[0].txid)
    assert codes([good], channel) == ["DUPLICATE_TXID"]
    wrong_event = ChaincodeEvent(chaincode_id="x", tx_id="y", event_name="e", payload=b"p")
    stamped = endorsed_envelope(crypto, user, [p1], event=wrong_event)
    results = validate_block([stamped], channel)
    assert results[0].code == tx_pb.VALID  # the endorser stamped the event with our name
    assert (results[0].event.chaincode_id, results[0].event.tx_id) == ("basic", results[0].txid)


def test_assembly_refuses_mismatched_or_failed_responses(crypto: Path) -> None:
    user, p1, p2 = ident(crypto, 1, "User1@"), ident(crypto, 1, "peer0"), ident(crypto, 2, "peer0")
    unpacked = unpack(make_proposal(user, [b"put"]))

    def respond(status: int, results: bytes, signer: SigningIdentity):  # type: ignore[no-untyped-def]
        return proposal_response(
            unpacked, response=Response(status=status), results=results, event=None,
            version="1.0", signer=signer,
        )  # fmt: skip

    a = respond(200, _rwset("basic", {"k": b"1"}), p1)
    b = respond(200, _rwset("basic", {"k": b"2"}), p2)
    with pytest.raises(AssemblyError, match="ProposalResponsePayloads do not match"):
        prepare_transaction(unpacked, [a, b])
    failed = respond(500, b"", p1)
    assert not failed.HasField("endorsement") and failed.payload  # >= 500: payload, no endorsement
    assert not respond(404, b"", p1).payload  # 400..499: the response only
    with pytest.raises(AssemblyError, match="error code 500"):
        prepare_transaction(unpacked, [failed])


# --- blocks -----------------------------------------------------------------------------------


def test_block_header_bytes_are_gos_asn1() -> None:
    header = blocks.new_block(0, b"", []).header
    header.data_hash = b""
    assert blocks.header_bytes(header).hex() == "3007020100040004" + "00"
    header.number = 128  # minimal two's complement needs a leading zero byte
    header.previous_hash = b"\x01" * 200  # a long-form length
    encoded = blocks.header_bytes(header)
    assert encoded[:2] == b"\x30\x81" and encoded[3:7] == bytes.fromhex("02020080")
    assert encoded[7:10] == bytes.fromhex("0481c8")


def test_blocks_chain_and_verify(crypto: Path) -> None:
    orderer = ident(crypto, 1, "peer0")
    genesis = blocks.new_block(0, b"", [b"a"])
    blocks.sign_block(genesis, orderer)
    blocks.verify_block(genesis, previous=None, orderers=[orderer])
    nxt = blocks.new_block(1, blocks.header_hash(genesis.header), [b"b", b"c"])
    assert nxt.header.data_hash == hashlib.sha256(b"bc").digest()
    blocks.sign_block(nxt, orderer)
    blocks.verify_block(nxt, previous=genesis.header, orderers=[orderer])
    with pytest.raises(blocks.BlockError, match="no valid orderer signature"):
        blocks.verify_block(nxt, previous=genesis.header, orderers=[ident(crypto, 2, "peer0")])
    tampered = type(nxt)()
    tampered.CopyFrom(nxt)
    tampered.data.data[0] = b"x"
    with pytest.raises(blocks.BlockError, match="data hash"):
        blocks.verify_block(tampered, previous=genesis.header, orderers=[orderer])
    with pytest.raises(blocks.BlockError, match="expected block 1"):
        blocks.verify_block(genesis, previous=genesis.header, orderers=[orderer])


# --- the block cutter ------------------------------------------------------------------------


def test_block_cutter_follows_fabrics_rules() -> None:
    cutter = BlockCutter(
        BatchConfig(max_message_count=3, preferred_max_bytes=10, absolute_max_bytes=20)
    )
    assert cutter.ordered(b"aa") == ([], True)
    assert cutter.ordered(b"bb") == ([], True)
    assert cutter.ordered(b"cc") == ([[b"aa", b"bb", b"cc"]], False)  # max count
    assert cutter.ordered(b"123456") == ([], True)
    assert cutter.ordered(b"7890x") == ([[b"123456"]], True)  # would overflow preferred bytes
    big = b"x" * 11
    assert cutter.ordered(big) == ([[b"7890x"], [big]], False)  # oversized: alone
    assert cutter.cut() == [] and cutter.pending == 0
    with pytest.raises(BatchConfigError):
        BatchConfig(preferred_max_bytes=30, absolute_max_bytes=20)
    with pytest.raises(BatchConfigError):
        BatchConfig(batch_timeout=float("inf"))


def test_a_failing_commit_listener_does_not_stop_the_others() -> None:
    """Found in review: a listener raising inside finish (on the committer's thread) killed
    the committer and left the other waiters of that txid waiting."""
    from actors.gateway.blockstore import BlockStore

    store = BlockStore("ch")
    heard: list[tuple[int, int]] = []
    txid = "ab" * 32
    store.on_commit(txid, lambda code, block: (_ for _ in ()).throw(RuntimeError("gone")))
    store.on_commit(txid, lambda code, block: heard.append((code, block)))
    ch = ChannelHeader(type=ENDORSER_TRANSACTION, channel_id="ch", tx_id=txid)
    header = Header(channel_header=ch.SerializeToString())
    envelope = Envelope(payload=Payload(header=header).SerializeToString()).SerializeToString()
    block = blocks.new_block(0, b"", [envelope])
    store.begin(block)
    store.finish(bytes([0]))
    assert heard == [(0, 0)]


def test_channel_policies_are_parsed_once_per_org_set(
    crypto: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actors.gateway import validator

    parsed: list[str] = []

    def counting(text: str):  # type: ignore[no-untyped-def]
        parsed.append(text)
        return from_string(text)

    validator._org_policies.cache_clear()
    monkeypatch.setattr(validator, "from_string", counting)
    user, p1 = ident(crypto, 1, "User1@"), ident(crypto, 1, "peer0")
    members = msps(crypto)

    def signed(who: SigningIdentity) -> list[validator.SignedData]:
        return [validator.SignedData(b"m", who.serialized, who.sign(b"m"))]

    for _ in range(3):
        validator.channel_policy("/Channel/Application/Writers", signed(user), members)
    assert parsed == [
        "OR('Org1MSP.admin', 'Org1MSP.client')",
        "OR('Org2MSP.admin', 'Org2MSP.client')",
    ]
    with pytest.raises(validator.PolicyError, match="requires 2 of the 'Endorsement'"):
        validator.channel_policy("/Channel/Application/Endorsement", signed(p1), members)
    assert len(parsed) == 4  # a new (org set, roles): parsed once more, then cached
    validator.channel_policy("/Channel/Application/Readers", signed(p1), members)
    validator.channel_policy("/Channel/Application/Readers", signed(p1), members)
    assert len(parsed) == 6


def test_chaincode_events_resume_after_a_transaction_of_any_chaincode(crypto: Path) -> None:
    """Fabric's ChaincodeEvents skips up to the after_transaction_id among the events of every
    chaincode in the block, not only those of the requested one."""
    from actors.gateway.service import chaincode_events

    user, p1 = ident(crypto, 1, "User1@"), ident(crypto, 1, "peer0")
    txids: list[str] = []

    def tx(chaincode: str) -> bytes:
        unpacked = unpack(make_proposal(user, [b"x"], chaincode=chaincode))
        txids.append(unpacked.txid)
        response = proposal_response(
            unpacked,
            response=Response(status=200),
            results=_rwset(chaincode, {"k": b"v"}),
            event=ChaincodeEvent(event_name="e", payload=b"p"),
            version="1.0",
            signer=p1,
        )
        envelope = prepare_transaction(unpacked, [response])
        envelope.signature = user.sign(envelope.payload)
        return envelope.SerializeToString()

    block = blocks.new_block(5, b"", [tx("basic"), tx("other"), tx("basic")])
    block.metadata.metadata[2] = bytes([tx_pb.VALID] * 3)
    t1, t2, t3 = txids

    def seen(chaincode: str, after: str = "") -> list[tuple[int, list[str]]]:
        return [
            (r.block_number, [e.tx_id for e in r.events])
            for r in chaincode_events([block], chaincode, after)
        ]

    assert seen("basic") == [(5, [t1, t3])]
    assert seen("other") == [(5, [t2])]
    assert seen("basic", after=t1) == [(5, [t3])]
    assert seen("basic", after=t2) == [(5, [t3])]  # t2 is another chaincode's
    assert seen("other", after=t2) == []
    assert seen("basic", after=t3) == []
    # an invalid transaction's event is not streamed
    block.metadata.metadata[2] = bytes([tx_pb.VALID, tx_pb.VALID, tx_pb.MVCC_READ_CONFLICT])
    assert seen("basic", after=t2) == []


def test_readers_do_not_wait_for_the_block_stores_disk_write(tmp_path: Path) -> None:
    """begin/finish write to sqlite (synchronous=FULL: an fsync) outside the lock readers
    take: a CommitStatus or duplicate check is answered while a block is being written."""
    import threading

    from actors.gateway.blockstore import BlockStore

    store = BlockStore("ch", path=tmp_path / "ch.sqlite")
    real = store._db
    assert real is not None
    in_write, release = threading.Event(), threading.Event()

    class SlowDisk:
        def execute(self, *args: object) -> object:
            in_write.set()
            release.wait(30)
            return real.execute(*args)

        def close(self) -> None:
            real.close()

    store._db = SlowDisk()  # type: ignore[assignment]
    txid = "cd" * 32
    ch = ChannelHeader(type=ENDORSER_TRANSACTION, channel_id="ch", tx_id=txid)
    payload = Payload(header=Header(channel_header=ch.SerializeToString()))
    block = blocks.new_block(
        0, b"", [Envelope(payload=payload.SerializeToString()).SerializeToString()]
    )

    def read(out: list[object]) -> None:
        out.extend([store.height, store.has_txid(txid), store.status(txid)])

    for step in (lambda: store.begin(block), lambda: store.finish(bytes([0]))):
        in_write.clear()
        release.clear()
        writer = threading.Thread(target=step)
        writer.start()
        assert in_write.wait(30)
        answers: list[object] = []
        reader = threading.Thread(target=read, args=(answers,))
        reader.start()
        reader.join(10)
        stuck = reader.is_alive()
        release.set()
        writer.join(30)
        reader.join(30)
        assert not stuck, "a reader waited for the disk write"
        assert answers == [0, False, None]  # the block is not visible until finish is done
    assert store.status(txid) is not None and store.height == 1
    store.close()
    again = BlockStore("ch", path=tmp_path / "ch.sqlite")  # what was written survives
    assert again.height == 1 and again.pending() is None
    again.close()
