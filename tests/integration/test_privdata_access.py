"""Who is a member of a collection (``actors.privdata.access``) on a served peer whose channel
has MSPs (peer.mspConfigPath, Org2's folder, the Gateway started): a creator is a member only
when the channel's MSPs validate it and its signature, as in Fabric, whatever MSP id it claims;
the peer's own proposals (embedding API, admin API) act as a client of its org because they
are signed with its local key, never because of what a creator says."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from actors.config import ChaincodeDefinition, Config, Organization
from actors.errors import TransactionFailed
from actors.gateway.client import GatewayClient, signed_proposal
from actors.gateway.command import error_details
from actors.lifecycle.definitions import Definition
from actors.msp.msp import SigningIdentity
from actors.proposals import Identity, build_signed_proposal
from actors.support import ChaincodeSupport, InvokeResult
from protos.msp.identities_pb2 import SerializedIdentity
from protos.peer.proposal_pb2 import SignedProposal
from tests.gateway_peer import ident, make_crypto, member_dir

pytestmark = pytest.mark.timeout(120)

CHANNEL = "mychannel"
COLLECTIONS = (
    '[{"name": "org1only", "policy": "OR(\'Org1MSP.member\')", "memberOnlyRead": true,'
    ' "memberOnlyWrite": true},'
    ' {"name": "org2only", "policy": "OR(\'Org2MSP.member\')", "memberOnlyWrite": true}]'
)
READ_REFUSED = "tx creator does not have read access permission on privatedata"
WRITE_REFUSED = "tx creator does not have write access permission on privatedata"


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_crypto(tmp_path_factory.mktemp("crypto"))


@pytest.fixture(scope="module")
def served(crypto: Path) -> Iterator[tuple[ChaincodeSupport, str]]:
    config = Config(
        chaincodes=(ChaincodeDefinition("pvt", target="examples.private_data:PrivateData"),),
        channels=(CHANNEL,),
        msp_id="Org1MSP",
        msp_config_path=str(member_dir(crypto, 1, "peer0") / "msp"),
        organizations=(
            Organization("Org2MSP", str(crypto / "peerOrganizations/org2.example.com/msp")),
        ),
        tls_enabled=False,
        execute_timeout=20.0,
    )
    with ChaincodeSupport(config) as support:
        support.lifecycle.definitions.define(
            CHANNEL, Definition("pvt", "1", 1, package_id="pvt", collections=COLLECTIONS)
        )
        address = support.peer.start_gateway("127.0.0.1:0")
        assert support.peer.gateway is not None  # the collection store sees the channel MSPs
        yield support, address


@dataclasses.dataclass(frozen=True)
class Forged:
    """A creator as an attacker writes it: any bytes, signed with the attacker's own key."""

    serialized: bytes
    key: ec.EllipticCurvePrivateKey = dataclasses.field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def sign(self, data: bytes) -> bytes:
        return Identity("", b"", self.key).sign(data)


def claim(msp_id: str, id_bytes: bytes) -> Forged:
    return Forged(SerializedIdentity(mspid=msp_id, id_bytes=id_bytes).SerializeToString())


def invoke(
    support: ChaincodeSupport,
    *args: str,
    proposal: SignedProposal | None = None,
    value: bytes | None = None,
) -> InvokeResult:
    transient = {"value": value} if value is not None else None
    return support.invoke(CHANNEL, None, "pvt", list(args), proposal=proposal, transient=transient)


def ok(support: ChaincodeSupport, *args: str, **kw: Any) -> bytes:
    result = invoke(support, *args, **kw)
    assert result.response.status == 200 and result.committed, result.response.message
    return result.response.payload


def refused(support: ChaincodeSupport, *args: str, **kw: Any) -> str:
    """The failure's text (our shim raises on a refused request: the transaction fails)."""
    with pytest.raises(TransactionFailed) as caught:
        invoke(support, *args, **kw)
    return str(caught.value)


def as_client(
    identity: SigningIdentity | Forged, *args: str, value: bytes | None = None
) -> SignedProposal:
    transient = {"value": value} if value is not None else None
    _, proposal = signed_proposal(
        identity,  # type: ignore[arg-type]  # a Forged one signs and serializes the same way
        CHANNEL,
        "pvt",
        [a.encode() for a in args],
        transient=transient,
    )
    return proposal


def test_the_peers_own_proposals_act_as_its_orgs_client(
    served: tuple[ChaincodeSupport, str],
) -> None:
    support, _ = served
    # the local identity is self-signed: the channel's Org1 MSP would not validate it
    ok(support, "put", "org1only", "own", value=b"mine")
    assert ok(support, "get", "org1only", "own") == b"mine"
    # and it is Org1's client only: Org2's memberOnlyWrite collection refuses it
    assert WRITE_REFUSED in refused(support, "put", "org2only", "own", value=b"x")


def test_real_members_and_non_members(served: tuple[ChaincodeSupport, str], crypto: Path) -> None:
    support, _ = served
    org1, org2 = ident(crypto, 1, "User1@"), ident(crypto, 2, "User1@")
    put, get = ("put", "org1only", "k"), ("get", "org1only", "k")
    ok(support, *put, proposal=as_client(org1, *put, value=b"v"))
    assert ok(support, *get, proposal=as_client(org1, *get)) == b"v"
    assert READ_REFUSED in refused(support, *get, proposal=as_client(org2, *get))
    put = ("put", "org2only", "k")
    ok(support, *put, proposal=as_client(org2, *put, value=b"theirs"))
    # this peer (Org1) keeps only the hash of Org2's collection
    get = ("get", "org2only", "k")
    message = refused(support, *get, proposal=as_client(org2, *get))
    assert "private data matching public hash version is not available" in message


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda crypto: claim("Org1MSP", b"not a certificate"), id="undeserializable"),
        pytest.param(lambda crypto: claim("Org9MSP", b""), id="unknown-msp"),
        pytest.param(
            lambda crypto: dataclasses.replace(ident(crypto, 2, "User1@"), msp_id="Org1MSP"),
            id="org2-cert-claiming-org1",
        ),
    ],
)
def test_a_forged_creator_is_no_member(
    served: tuple[ChaincodeSupport, str], crypto: Path, forge: object
) -> None:
    """Handed to the embedding API (no Gateway checks before the collection store)."""
    support, _ = served
    forged = forge(crypto)  # type: ignore[operator]
    get, put = ("get", "org1only", "k"), ("put", "org1only", "f")
    member = ident(crypto, 1, "User1@")
    ok(support, *put, proposal=as_client(member, *put, value=b"secret"))
    assert READ_REFUSED in refused(support, *get, proposal=as_client(forged, *get))
    assert WRITE_REFUSED in refused(support, *put, proposal=as_client(forged, *put, value=b"x"))


def test_the_peers_certificate_without_its_key_is_no_member(
    served: tuple[ChaincodeSupport, str],
) -> None:
    support, _ = served
    own = support.peer.identity
    copied = Forged(own.serialized)  # the certificate is public: it is in every block
    get = ("get", "org1only", "own")
    assert READ_REFUSED in refused(support, *get, proposal=as_client(copied, *get))
    # unsigned, the peer's own bytes prove nothing either
    unsigned = build_signed_proposal(
        own, CHANNEL, uuid.uuid4().hex, "pvt", [a.encode() for a in get], sign=False
    )
    assert READ_REFUSED in refused(support, *get, proposal=unsigned)


def test_a_forged_creator_through_the_gateway_is_refused(
    served: tuple[ChaincodeSupport, str], crypto: Path
) -> None:
    support, address = served
    org2 = ident(crypto, 2, "User1@")
    forgeries = {
        "undeserializable": claim("Org1MSP", b"not a certificate"),
        "org2 cert claiming org1": dataclasses.replace(org2, msp_id="Org1MSP"),
        "the peer's certificate": Forged(support.peer.identity.serialized),
    }
    for what, forged in forgeries.items():
        with (
            GatewayClient(address, forged) as client,  # type: ignore[arg-type]
            pytest.raises(grpc.RpcError) as caught,
        ):
            client.evaluate(CHANNEL, "pvt", [b"get", b"org1only", b"own"])
        messages = " ".join(d["message"] for d in error_details(caught.value))
        assert "access denied: channel [mychannel] creator org" in messages, (what, messages)
    # a real Org1 client reads what the peer's own proposal wrote; Org2's is refused
    ok(support, "put", "org1only", "gw", value=b"seen")
    with GatewayClient(address, ident(crypto, 1, "User1@")) as client:
        assert client.evaluate(CHANNEL, "pvt", [b"get", b"org1only", b"gw"]) == b"seen"
    with GatewayClient(address, org2) as client, pytest.raises(grpc.RpcError) as caught:
        client.evaluate(CHANNEL, "pvt", [b"get", b"org1only", b"gw"])
    assert READ_REFUSED in " ".join(d["message"] for d in error_details(caught.value))
