"""Private data through the Gateway: endorsement keeps the private write set in the transient
store and sends only hashes, the committer takes it from there (hash checked) and keeps values
only for collections this peer's org is a member of; collection writes are validated against
the collection's endorsement policy (an implicit collection's: a member of its org)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import status_pb2

from actors.config import ChaincodeDefinition, Organization
from actors.gateway.client import GatewayClient
from actors.gateway.endorsement import chaincode_action
from actors.lifecycle.definitions import Definition
from protos.common.common_pb2 import Envelope, Payload
from protos.gateway import gateway_pb2
from tests.gateway_peer import CHANNEL, GatewayPeer, ident, make_crypto

OWN, OTHER = "_implicit_org_Org1MSP", "_implicit_org_Org2MSP"


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_crypto(tmp_path_factory.mktemp("crypto"))


@pytest.fixture(scope="module")
def peer(crypto: Path) -> Iterator[GatewayPeer]:
    p = GatewayPeer(
        crypto,
        chaincodes=(ChaincodeDefinition("pvt", target="examples.private_data:PrivateData"),),
        organizations=(
            Organization("Org2MSP", str(crypto / "peerOrganizations/org2.example.com/msp")),
        ),
    )
    collections = '[{"name": "org2only", "policy": "OR(\'Org2MSP.member\')"}]'
    p.support.lifecycle.definitions.define(
        CHANNEL, Definition("pvt", "1", 1, package_id="pvt", collections=collections)
    )
    yield p
    p.close()


@pytest.fixture
def client(peer: GatewayPeer, crypto: Path) -> Iterator[GatewayClient]:
    with GatewayClient(peer.address, ident(crypto, 1, "User1@")) as c:
        yield c


def details(error: grpc.RpcError) -> str:
    """The Gateway's ErrorDetail messages of a failed call, joined."""
    out = []
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for any_detail in status_pb2.Status.FromString(value).details:
                detail = gateway_pb2.ErrorDetail()
                any_detail.Unpack(detail)
                out.append(detail.message)
    return "\n".join(out)


def block_payloads(peer: GatewayPeer, number: int) -> list[bytes]:
    block = peer.stack.store(CHANNEL).block(number)
    return [Envelope.FromString(raw).payload for raw in block.data.data]


def test_private_write_commits_values_apart_from_the_block(
    peer: GatewayPeer, client: GatewayClient
) -> None:
    done = client.submit(
        CHANNEL, "pvt", [b"put", OWN.encode(), b"k1"], transient={"value": b"top-secret"}
    )
    assert done.code_name == "VALID"
    assert client.evaluate(CHANNEL, "pvt", [b"get", OWN.encode(), b"k1"]) == b"top-secret"
    digest = client.evaluate(CHANNEL, "pvt", [b"hash", OWN.encode(), b"k1"])
    assert digest == hashlib.sha256(b"top-secret").hexdigest().encode()
    # the block holds the hashes, neither the value (transient map stripped) nor the rwset
    (payload,) = block_payloads(peer, done.block)
    assert b"top-secret" not in payload
    results = chaincode_action(Payload.FromString(payload)).results
    assert hashlib.sha256(b"top-secret").digest() in results
    # the transient store forgot it once committed
    ledger = peer.support.ledgers.get(CHANNEL)
    assert ledger._storage.transient_get(done.txid) == []


def test_another_orgs_collection_keeps_only_the_hash_here(client: GatewayClient) -> None:
    done = client.submit(CHANNEL, "pvt", [b"put", b"org2only", b"k2"], transient={"value": b"t"})
    assert done.code_name == "VALID"
    digest = client.evaluate(CHANNEL, "pvt", [b"hash", b"org2only", b"k2"])
    assert digest == hashlib.sha256(b"t").hexdigest().encode()
    with pytest.raises(grpc.RpcError) as err:
        client.evaluate(CHANNEL, "pvt", [b"get", b"org2only", b"k2"])
    assert "private data matching public hash version is not available" in details(err.value)


def test_another_orgs_implicit_collection_needs_its_endorsement(
    peer: GatewayPeer, client: GatewayClient
) -> None:
    done = client.submit(
        CHANNEL, "pvt", [b"put", OTHER.encode(), b"k2"], transient={"value": b"theirs"}
    )
    assert done.code_name == "ENDORSEMENT_POLICY_FAILURE"  # Org1's peer alone endorsed it
    assert client.evaluate(CHANNEL, "pvt", [b"hash", OTHER.encode(), b"k2"]) == b""
    assert peer.support.ledgers.get(CHANNEL)._storage.transient_get(done.txid) == []


def test_stale_private_read_is_an_mvcc_conflict_and_purge_removes(
    peer: GatewayPeer, client: GatewayClient
) -> None:
    client.submit(CHANNEL, "pvt", [b"put", OWN.encode(), b"k3"], transient={"value": b"a"})
    # read then write in one tx, racing a concurrent overwrite of the same key
    ledger = peer.support.ledgers.get(CHANNEL)
    sim = ledger.new_simulator("stale")
    assert sim.get_private_data("pvt", OWN, "k3") == b"a"
    sim.put_state("pvt", "marker", b"1")
    stale = sim.get_results()
    sim.done()
    client.submit(CHANNEL, "pvt", [b"put", OWN.encode(), b"k3"], transient={"value": b"b"})
    assert ledger.commit("stale", stale).name == "MVCC_READ_CONFLICT"
    assert client.submit(CHANNEL, "pvt", [b"purge", OWN.encode(), b"k3"]).code_name == "VALID"
    assert client.evaluate(CHANNEL, "pvt", [b"hash", OWN.encode(), b"k3"]) == b""


def test_unknown_collection_is_refused_and_nothing_committed(client: GatewayClient) -> None:
    with pytest.raises(grpc.RpcError) as err:
        client.submit(CHANNEL, "pvt", [b"put", b"nope", b"k"], transient={"value": b"v"})
    assert "collection mychannel/pvt/nope could not be found" in details(err.value)
    assert client.evaluate(CHANNEL, "pvt", [b"hash", OWN.encode(), b"k"]) == b""
