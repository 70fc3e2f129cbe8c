"""Private data collection configs (actors.privdata.collections) against Fabric's rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actors.msp import cryptogen
from actors.msp.msp import MSP, MSPManager, load_signing_identity
from actors.msp.policies import SignedData
from actors.privdata import collections as pc

ASSET = {
    "name": "assetCollection",
    "policy": "OR('Org1MSP.member', 'Org2MSP.member')",
    "requiredPeerCount": 0,
    "maxPeerCount": 3,
    "blockToLive": 1000000,
    "memberOnlyRead": True,
    "memberOnlyWrite": True,
}
ORG1 = {
    "name": "Org1MSPPrivateCollection",
    "policy": "OR('Org1MSP.member')",
    "requiredPeerCount": 0,
    "maxPeerCount": 1,
    "blockToLive": 3,
    "memberOnlyRead": True,
    "memberOnlyWrite": False,
    "endorsementPolicy": {"signaturePolicy": "OR('Org1MSP.member')"},
}


def parse(*entries: dict) -> pc.CollectionConfigPackage:
    return pc.parse_config(json.dumps(list(entries)))


def test_the_fabric_samples_config_parses_with_fabrics_defaults() -> None:
    package = parse(ASSET, ORG1, {"Name": "third", "POLICY": "OR('Org2MSP.peer')"})
    a, b, c = (x.static_collection_config for x in package.config)
    assert (a.name, a.maximum_peer_count, a.block_to_live, a.member_only_read) == (
        "assetCollection", 3, 1000000, True,
    )  # fmt: skip
    assert pc.member_orgs(a) == {"Org1MSP", "Org2MSP"}
    assert b.endorsement_policy.WhichOneof("Type") == "signature_policy"
    assert (c.name, c.maximum_peer_count, c.member_only_write) == ("third", 1, False)  # defaults
    assert pc.to_json(package)[1]["endorsementPolicy"] == {
        "signaturePolicy": "OR('Org1MSP.member')"
    }
    pc.validate(package, channel_orgs=["Org1MSP", "Org2MSP"])


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{", "could not parse the collection configuration"),
        ('{"name": "x"}', "expected a JSON array"),
        ('[{"name": "x", "policy": "AND(Org1MSP.member)"}]', "invalid policy AND"),
        (
            '[{"name": "x", "policy": "OR(\'A.member\')", "maxPeerCount": 1.5}]',
            "maxPeerCount must be",
        ),
        (
            '[{"name": "x", "policy": "OR(\'A.member\')", "memberOnlyRead": "yes"}]',
            "memberOnlyRead",
        ),
        (
            '[{"name": "x", "policy": "OR(\'A.member\')", "endorsementPolicy": '
            '{"signaturePolicy": "OR(\'A.peer\')", "channelConfigPolicy": "/Channel/x"}}]',
            "cannot specify both",
        ),
        ("[" * 100000 + "]" * 100000, "could not parse"),
    ],
)
def test_malformed_configs_get_clear_errors(text: str, error: str) -> None:
    with pytest.raises(pc.CollectionError, match=error.replace("(", r"\(").replace(")", r"\)")):
        pc.parse_config(text)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"name": "_private"}, "invalid collection name '_private'"),
        ({"name": "bad name"}, "invalid collection name"),
        ({"maxPeerCount": 0, "requiredPeerCount": 1}, "maximum peer count (0) cannot be less"),
        ({"requiredPeerCount": -1, "maxPeerCount": -2}, "maximum peer count"),
        ({"requiredPeerCount": -1}, "requiredPeerCount (-1) cannot be less than zero"),
        (
            {"policy": "AND('Org1MSP.member', 'Org2MSP.member')"},
            "not an OR concatenation, NOutOf 2",
        ),
        (
            {"policy": "OR('Org3MSP.member')"},
            "collection member 'Org3MSP' is not part of the channel",
        ),
    ],
)
def test_validation_follows_fabrics_order_and_texts(change: dict, error: str) -> None:
    package = parse({**ASSET, **change})
    with pytest.raises(pc.CollectionError) as raised:
        pc.validate(package, channel_orgs=["Org1MSP", "Org2MSP"])
    assert error in str(raised.value)


def test_collections_can_be_added_but_not_removed_or_their_block_to_live_changed() -> None:
    orgs = ["Org1MSP", "Org2MSP"]
    old = parse(ASSET)
    pc.validate(parse(ASSET, ORG1), channel_orgs=orgs, previous=old)
    with pytest.raises(
        pc.CollectionError, match="existing collection \\[assetCollection\\] missing"
    ):
        pc.validate(parse(ORG1), channel_orgs=orgs, previous=old)
    with pytest.raises(pc.CollectionError, match="does not contain previously defined"):
        pc.validate(parse(), channel_orgs=orgs, previous=old)
    with pytest.raises(pc.CollectionError, match="BlockToLive in an existing collection"):
        pc.validate(parse({**ASSET, "blockToLive": 5}), channel_orgs=orgs, previous=old)
    with pytest.raises(pc.CollectionError, match="found duplicate"):
        pc.validate(parse(ASSET, ASSET), channel_orgs=orgs)


def test_implicit_collections_and_access(tmp_path: Path) -> None:
    cryptogen.main(["--orgs", "Org1MSP,Org2MSP", "--out", str(tmp_path)])
    base = tmp_path / "peerOrganizations"
    msps = MSPManager(MSP.from_dir(base / f"org{n}.example.com/msp", f"Org{n}MSP") for n in (1, 2))
    org1_user = load_signing_identity(
        base / "org1.example.com/users/User1@org1.example.com/msp", "Org1MSP"
    )
    org2_user = load_signing_identity(
        base / "org2.example.com/users/User1@org2.example.com/msp", "Org2MSP"
    )

    def creator(who):  # type: ignore[no-untyped-def]
        return SignedData(b"proposal", who.serialized, who.sign(b"proposal"))

    package = parse(ASSET, ORG1)
    org1_only = pc.find(
        package,
        "Org1MSPPrivateCollection",
        channel_orgs=["Org1MSP", "Org2MSP"],
        local_msp_id="Org1MSP",
    )
    assert org1_only is not None
    assert pc.client_access(org1_only, creator(org1_user), msps) == pc.Access(True, True)
    # memberOnlyRead for a non-member; memberOnlyWrite is false, so it may still write
    assert pc.client_access(org1_only, creator(org2_user), msps) == pc.Access(False, True)
    forged = SignedData(b"proposal", org1_user.serialized, org2_user.sign(b"proposal"))
    assert pc.client_access(org1_only, forged, msps) == pc.Access(False, True)
    implicit = pc.find(
        package,
        "_implicit_org_Org2MSP",
        channel_orgs=["Org1MSP", "Org2MSP"],
        local_msp_id="Org1MSP",
    )
    assert implicit is not None and pc.member_orgs(implicit) == {"Org2MSP"}
    assert (implicit.maximum_peer_count, implicit.member_only_read) == (0, False)
    assert pc.client_access(implicit, creator(org1_user), msps) == pc.Access(True, True)
    assert not pc.peer_is_member(implicit, "Org1MSP") and pc.peer_is_member(org1_only, "Org1MSP")
    assert (
        pc.find(package, "_implicit_org_Org9MSP", channel_orgs=["Org1MSP"], local_msp_id="Org1MSP")
        is None
    )
    assert pc.find(package, "nope", channel_orgs=["Org1MSP"], local_msp_id="Org1MSP") is None
