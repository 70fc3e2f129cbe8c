"""The Gateway service end to end in one process: a real chaincode (system runtime), the
embedded orderer and committer, clients with cryptogen identities over gRPC."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import status_pb2

from actors.gateway.blocks import header_hash
from actors.gateway.client import GatewayClient, signed_proposal
from actors.msp import cryptogen
from actors.msp.msp import SigningIdentity, load_signing_identity
from protos.gateway import gateway_pb2, gateway_pb2_grpc
from tests.gateway_peer import CHANNEL, GatewayPeer, ident, make_crypto, member_dir


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_crypto(tmp_path_factory.mktemp("crypto"))


@pytest.fixture(scope="module")
def peer(crypto: Path) -> Iterator[GatewayPeer]:
    p = GatewayPeer(crypto)
    yield p
    p.close()


@pytest.fixture
def client(peer: GatewayPeer, crypto: Path) -> Iterator[GatewayClient]:
    with GatewayClient(peer.address, ident(crypto, 1, "User1@")) as c:
        yield c


def details(error: grpc.RpcError) -> list[gateway_pb2.ErrorDetail]:
    out = []
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for any_detail in status_pb2.Status.FromString(value).details:
                detail = gateway_pb2.ErrorDetail()
                any_detail.Unpack(detail)
                out.append(detail)
    return out


def test_submit_commits_and_evaluate_reads_it(client: GatewayClient) -> None:
    done = client.submit(CHANNEL, "kv", [b"put", b"colour", b"blue"])
    assert (done.code_name, done.result) == ("VALID", b"")
    assert client.evaluate(CHANNEL, "kv", [b"get", b"colour"]) == b"blue"
    again = client.submit(CHANNEL, "kv", [b"getput", b"colour", b"green"])
    assert again.code_name == "VALID" and again.block > done.block
    assert client.evaluate(CHANNEL, "kv", [b"get", b"colour"]) == b"green"


def test_concurrent_conflicting_submits_see_mvcc_read_conflict(client: GatewayClient) -> None:
    client.submit(CHANNEL, "kv", [b"put", b"counter", b"0"])
    codes: list[str] = []

    def incr() -> None:
        codes.append(client.submit(CHANNEL, "kv", [b"incr", b"counter"]).code_name)

    threads = [threading.Thread(target=incr) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = int(client.evaluate(CHANNEL, "kv", [b"get", b"counter"]))
    assert codes.count("VALID") == final  # every VALID increment landed, none other did
    assert set(codes) <= {"VALID", "MVCC_READ_CONFLICT"}
    assert "MVCC_READ_CONFLICT" in codes  # six concurrent readers of one key within 50 ms


def test_endorsement_policy_failure_is_the_commit_status(
    peer: GatewayPeer, client: GatewayClient
) -> None:
    peer.policies["kv"] = "AND('Org1MSP.peer', 'Org2MSP.peer')"  # this peer alone cannot
    try:
        done = client.submit(CHANNEL, "kv", [b"put", b"k", b"v"])
    finally:
        peer.policies["kv"] = "OR('Org1MSP.peer')"
    assert done.code_name == "ENDORSEMENT_POLICY_FAILURE"
    with pytest.raises(grpc.RpcError) as missing:  # nothing was written
        client.evaluate(CHANNEL, "kv", [b"get", b"k"])
    assert missing.value.code() is grpc.StatusCode.UNKNOWN
    assert "chaincode response 404" in missing.value.details()


def test_errors_carry_fabrics_codes_and_details(
    peer: GatewayPeer, client: GatewayClient, crypto: Path
) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        client.evaluate(CHANNEL, "kv", [b"fail", b"boom"])
    assert failed.value.code() is grpc.StatusCode.UNKNOWN
    assert (
        failed.value.details()
        == "evaluate call to endorser returned error: chaincode response 500, boom"
    )
    [detail] = details(failed.value)
    assert (detail.msp_id, detail.address, detail.message) == (
        "Org1MSP",
        peer.address,
        "chaincode response 500, boom",
    )
    with pytest.raises(grpc.RpcError) as undefined:
        client.evaluate(CHANNEL, "nosuchcc", [b"x"])
    assert undefined.value.code() is grpc.StatusCode.ABORTED
    assert (
        "has been successfully defined on channel mychannel" in details(undefined.value)[0].message
    )
    with pytest.raises(grpc.RpcError) as channel:
        client.evaluate("otherchannel", "kv", [b"get", b"x"])
    assert channel.value.code() is grpc.StatusCode.UNAVAILABLE
    # an identity the channel does not trust
    with (
        GatewayClient(peer.address, _stranger(crypto)) as stranger,
        pytest.raises(grpc.RpcError) as denied,
    ):
        stranger.evaluate(CHANNEL, "kv", [b"get", b"colour"])
    assert denied.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "creator org unknown" in denied.value.details()


def _stranger(crypto: Path) -> SigningIdentity:
    out = crypto.parent / "stranger"
    if not out.exists():
        assert cryptogen.main(["--orgs", "Org9MSP", "--out", str(out)]) == 0
    return load_signing_identity(
        out / "peerOrganizations/org9.example.com/users/User1@org9.example.com/msp", "Org9MSP"
    )


def test_replays_forgeries_and_unsigned_submits_are_refused(
    peer: GatewayPeer, client: GatewayClient
) -> None:
    stub = gateway_pb2_grpc.GatewayStub(grpc.insecure_channel(peer.address))
    txid, proposal = signed_proposal(client.identity, CHANNEL, "kv", [b"put", b"r", b"1"])
    endorsed = stub.Endorse(
        gateway_pb2.EndorseRequest(
            transaction_id=txid, channel_id=CHANNEL, proposed_transaction=proposal
        )
    )
    envelope = endorsed.prepared_transaction
    with pytest.raises(grpc.RpcError) as unsigned:
        stub.Submit(
            gateway_pb2.SubmitRequest(
                transaction_id=txid, channel_id=CHANNEL, prepared_transaction=envelope
            )
        )
    assert unsigned.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    envelope.signature = client.identity.sign(b"something else")  # a forged envelope signature
    with pytest.raises(grpc.RpcError) as forged:
        stub.Submit(
            gateway_pb2.SubmitRequest(
                transaction_id=txid, channel_id=CHANNEL, prepared_transaction=envelope
            )
        )
    assert forged.value.code() is grpc.StatusCode.ABORTED
    assert "status=FORBIDDEN" in forged.value.details()
    envelope.signature = client.identity.sign(envelope.payload)
    stub.Submit(
        gateway_pb2.SubmitRequest(
            transaction_id=txid, channel_id=CHANNEL, prepared_transaction=envelope
        )
    )
    assert client.commit_status(CHANNEL, txid).result == 0
    # the same proposal again: the txid is on the ledger
    with pytest.raises(grpc.RpcError) as replay:
        stub.Endorse(
            gateway_pb2.EndorseRequest(
                transaction_id=txid, channel_id=CHANNEL, proposed_transaction=proposal
            )
        )
    assert replay.value.code() is grpc.StatusCode.ABORTED
    assert "duplicate transaction found" in details(replay.value)[0].message
    # the same envelope again is ordered, and committed as a duplicate
    stub.Submit(
        gateway_pb2.SubmitRequest(
            transaction_id=txid, channel_id=CHANNEL, prepared_transaction=envelope
        )
    )
    assert client.commit_status(CHANNEL, txid).result == 0  # first occurrence wins
    forged_proposal = type(proposal)()
    forged_proposal.CopyFrom(proposal)
    forged_proposal.signature = client.identity.sign(b"not the proposal")
    with pytest.raises(grpc.RpcError) as bad:
        stub.Evaluate(
            gateway_pb2.EvaluateRequest(channel_id=CHANNEL, proposed_transaction=forged_proposal)
        )
    assert "access denied: channel [mychannel] creator org [Org1MSP]" in bad.value.details()


def test_chaincode_events_live_and_replayed(peer: GatewayPeer, client: GatewayClient) -> None:
    start = peer.stack.store(CHANNEL).height
    live = client.events(CHANNEL, "asset", timeout=20)  # from the next commit
    client.submit(CHANNEL, "kv", [b"put", b"e1", b"v"])  # no event: nothing streamed
    client.submit(CHANNEL, "asset", [b"create", b"A1", b"alice", b"10"])
    moved = client.submit(CHANNEL, "asset", [b"transfer", b"A1", b"bob"])
    assert moved.code_name == "VALID"
    first = next(iter(live))
    assert first.block_number == moved.block
    [event] = first.events
    assert (event.chaincode_id, event.tx_id) == ("asset", moved.txid)
    live.cancel()
    # replayed from the ledger: the same event from a start block in the past
    replay = client.events(CHANNEL, "asset", start_block=start, timeout=20)
    again = next(iter(replay))
    replay.cancel()
    assert (again.block_number, again.events[0].tx_id) == (moved.block, moved.txid)
    assert again.events[0].payload == event.payload


def test_blocks_survive_a_restart(crypto: Path, tmp_path: Path) -> None:
    first = GatewayPeer(crypto, data_dir=tmp_path)
    try:
        with GatewayClient(first.address, ident(crypto, 1, "User1@")) as c:
            done = c.submit(CHANNEL, "kv", [b"put", b"x", b"1"])
        height = first.stack.store(CHANNEL).height
    finally:
        first.close()
    second = GatewayPeer(crypto, data_dir=tmp_path)
    try:
        assert second.stack.store(CHANNEL).height == height
        with GatewayClient(second.address, ident(crypto, 1, "User1@")) as c:
            status = c.commit_status(CHANNEL, done.txid, timeout=5)
            assert (status.result, status.block_number) == (0, done.block)
            later = c.submit(CHANNEL, "kv", [b"put", b"x", b"2"])
        assert later.block == height  # the chain continues where it was
        store = second.stack.store(CHANNEL)
        assert store.block(height).header.previous_hash == header_hash(
            store.block(height - 1).header
        )
    finally:
        second.close()


class Crash(Exception):
    """Stands for the process dying at one point of a commit."""


@pytest.mark.parametrize("where", ["before the state commit", "after the state commit"])
def test_a_crash_mid_commit_loses_nothing_and_applies_nothing_twice(
    crypto: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    from actors.gateway import blockstore, committer

    first = GatewayPeer(crypto, data_dir=tmp_path / "blocks", ledger_path=str(tmp_path / "state"))
    try:
        with GatewayClient(first.address, ident(crypto, 1, "User1@")) as c:
            c.submit(CHANNEL, "kv", [b"put", b"n", b"1"])
            if where == "before the state commit":
                monkeypatch.setattr(committer, "_apply", _crash)
            else:
                monkeypatch.setattr(blockstore.BlockStore, "finish", _crash)
            txid, proposal = signed_proposal(c.identity, CHANNEL, "kv", [b"incr", b"n"])
            stub = gateway_pb2_grpc.GatewayStub(grpc.insecure_channel(first.address))
            endorsed = stub.Endorse(
                gateway_pb2.EndorseRequest(channel_id=CHANNEL, proposed_transaction=proposal)
            ).prepared_transaction
            endorsed.signature = c.identity.sign(endorsed.payload)
            stub.Submit(
                gateway_pb2.SubmitRequest(channel_id=CHANNEL, prepared_transaction=endorsed)
            )
            with pytest.raises(grpc.RpcError) as waiting:  # the committer died mid-block
                c.commit_status(CHANNEL, txid, timeout=2)
            assert waiting.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        monkeypatch.undo()
        first.close()
    second = GatewayPeer(crypto, data_dir=tmp_path / "blocks", ledger_path=str(tmp_path / "state"))
    try:
        with GatewayClient(second.address, ident(crypto, 1, "User1@")) as c:
            assert c.commit_status(CHANNEL, txid, timeout=5).result == 0
            assert c.evaluate(CHANNEL, "kv", [b"get", b"n"]) == b"2"  # applied exactly once
            assert c.submit(CHANNEL, "kv", [b"incr", b"n"]).code_name == "VALID"
            assert c.evaluate(CHANNEL, "kv", [b"get", b"n"]) == b"3"
    finally:
        second.close()


def _crash(*args: object, **kwargs: object) -> None:
    raise Crash("simulated crash")


def test_the_cli_invokes_and_queries_through_the_gateway(peer: GatewayPeer, crypto: Path) -> None:
    import json
    import subprocess
    import sys

    user = member_dir(crypto, 1, "User1@") / "msp"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "actors.cli", *args, "--gateway", peer.address,
             "--msp-dir", str(user), "--msp-id", "Org1MSP", "--json"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    put = cli("invoke", "kv", "put", "cli-key", "cli-value")
    assert put.returncode == 0, put.stderr
    done = json.loads(put.stdout)
    assert done["validation"] == "VALID" and len(done["txid"]) == 64
    got = cli("query", "kv", "get", "cli-key")
    assert (got.returncode, json.loads(got.stdout)) == (0, {"payload": "cli-value"})
    missing = cli("query", "kv", "get", "nope")
    assert missing.returncode == 1
    failure = json.loads(missing.stdout)
    assert failure["error"] == "UNKNOWN" and "chaincode response 404" in failure["message"]
    assert failure["details"][0]["msp_id"] == "Org1MSP"
    no_identity = subprocess.run(
        [sys.executable, "-m", "actors.cli", "query", "kv", "get", "x", "--gateway", peer.address],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert no_identity.returncode == 2
    assert "needs --msp-dir and --msp-id" in no_identity.stderr


def _malformed_certificate() -> tuple[Any, bytes]:
    """A certificate whose BasicConstraints extension is garbage (cryptography parses it
    lazily, so reading its extensions raises ValueError)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtensionOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evil")])
    now = dt.datetime.now(dt.UTC)
    garbage = x509.UnrecognizedExtension(ExtensionOID.BASIC_CONSTRAINTS, b"\x04\x00garbage")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(garbage, critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


def test_a_malformed_certificate_cannot_stop_the_committer(
    peer: GatewayPeer, client: GatewayClient
) -> None:
    """Found in review: an endorsement with a malformed certificate killed the Committer and
    then the Orderer; no block committed after it."""
    from actors.msp.signatures import sign
    from protos.common.common_pb2 import Payload
    from protos.msp.identities_pb2 import SerializedIdentity
    from protos.peer.proposal_response_pb2 import Endorsement
    from protos.peer.transaction_pb2 import ChaincodeActionPayload, Transaction

    stub = gateway_pb2_grpc.GatewayStub(grpc.insecure_channel(peer.address))
    txid, proposal = signed_proposal(client.identity, CHANNEL, "kv", [b"put", b"evil", b"1"])
    envelope = stub.Endorse(
        gateway_pb2.EndorseRequest(channel_id=CHANNEL, proposed_transaction=proposal)
    ).prepared_transaction
    payload = Payload.FromString(envelope.payload)
    tx = Transaction.FromString(payload.data)
    cap = ChaincodeActionPayload.FromString(tx.actions[0].payload)
    key, pem = _malformed_certificate()
    endorser = SerializedIdentity(mspid="Org1MSP", id_bytes=pem).SerializeToString()
    prp = cap.action.proposal_response_payload
    honest = list(cap.action.endorsements)
    del cap.action.endorsements[:]
    cap.action.endorsements.extend(
        [Endorsement(endorser=endorser, signature=sign(key, prp + endorser)), *honest]
    )
    tx.actions[0].payload = cap.SerializeToString()
    payload.data = tx.SerializeToString()
    envelope.payload = payload.SerializeToString()
    envelope.signature = client.identity.sign(envelope.payload)
    stub.Submit(gateway_pb2.SubmitRequest(channel_id=CHANNEL, prepared_transaction=envelope))
    assert client.commit_status(CHANNEL, txid, timeout=10).result == 0  # the honest one counts
    assert client.submit(CHANNEL, "kv", [b"put", b"after", b"1"]).code_name == "VALID"
    # as a creator, the same certificate gets Fabric's refusal, not a traceback
    from actors.msp.msp import MSPError, parse_certificate

    with pytest.raises(MSPError, match="parseCertificate failed"):
        parse_certificate(pem)


def test_commit_status_without_a_deadline_waits_for_the_commit(
    peer: GatewayPeer, client: GatewayClient
) -> None:
    """Found in review: with no deadline the wait overflowed and left its listener behind."""
    import concurrent.futures

    stub = gateway_pb2_grpc.GatewayStub(grpc.insecure_channel(peer.address))
    txid, proposal = signed_proposal(client.identity, CHANNEL, "kv", [b"put", b"late", b"1"])
    request = gateway_pb2.CommitStatusRequest(
        transaction_id=txid, channel_id=CHANNEL, identity=client.identity.serialized
    ).SerializeToString()
    signed = gateway_pb2.SignedCommitStatusRequest(
        request=request, signature=client.identity.sign(request)
    )
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(stub.CommitStatus, signed)  # no timeout, as the clients default
        envelope = stub.Endorse(
            gateway_pb2.EndorseRequest(channel_id=CHANNEL, proposed_transaction=proposal)
        ).prepared_transaction
        envelope.signature = client.identity.sign(envelope.payload)
        stub.Submit(gateway_pb2.SubmitRequest(channel_id=CHANNEL, prepared_transaction=envelope))
        assert waiting.result(timeout=30).result == 0
    assert peer.stack.store(CHANNEL)._waiters == {}  # no listener left behind


def test_only_clients_and_admins_may_propose_as_fabrics_writers_policy_says(
    peer: GatewayPeer, crypto: Path
) -> None:
    with (
        GatewayClient(peer.address, ident(crypto, 1, "peer0")) as as_peer,
        pytest.raises(grpc.RpcError) as refused,
    ):
        as_peer.evaluate(CHANNEL, "kv", [b"get", b"colour"])
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "check policy [/Channel/Application/Writers]" in refused.value.details()
    with GatewayClient(peer.address, ident(crypto, 1, "Admin@")) as admin:
        assert admin.submit(CHANNEL, "kv", [b"put", b"by-admin", b"1"]).code_name == "VALID"
