"""Private data and rich queries from real, unmodified Fabric Node chaincode
(``tests/interop/node/privdata.js`` on fabric-contract-api / fabric-shim 2.5.8): transient
input, putPrivateData / getPrivateData / getPrivateDataHash / purgePrivateData, a memberOnlyRead
collection, private range and rich queries, getQueryResult and getQueryResultWithPagination.

The chaincode runs as a process of our process runtime and dials our gRPC chaincode listener,
as it would dial a Fabric peer. Its definition carries the collections config, defined through
the lifecycle (the configured chaincode is its package).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from actors.lifecycle.definitions import Definition
from actors.proposals import build_signed_proposal, local_identity
from actors.support import InvokeResult
from tests.interop.test_node import CONTRACT, Peer, contract_definition, node_ready

pytestmark = pytest.mark.timeout(180)
__all__ = ["node_ready"]  # the fixture, shared with test_node

COLLECTIONS = json.dumps(
    [
        {"name": "shared", "policy": "OR('Org1MSP.member','Org2MSP.member')"},
        {
            "name": "org1only",
            "policy": "OR('Org1MSP.member')",
            "memberOnlyRead": True,
            "memberOnlyWrite": True,
        },
        {"name": "org2only", "policy": "OR('Org2MSP.member')", "blockToLive": 0},
    ]
)
CHANNEL = "pvtnode"


@pytest.fixture(scope="module")
def peer(node_ready: None) -> Iterator[Peer]:
    peer = Peer(contract_definition())
    try:
        lifecycle = peer.support.lifecycle
        lifecycle.channels.join(CHANNEL)
        lifecycle.definitions.define(
            CHANNEL,
            Definition(CONTRACT, "1", 1, package_id=CONTRACT, collections=COLLECTIONS),
        )
        yield peer
    finally:
        peer.shutdown()


def invoke(
    peer: Peer, *args: str, value: bytes | None = None, msp: str | None = None
) -> InvokeResult:
    transient = {"value": value} if value is not None else None
    if msp is None:
        return peer.support.invoke(CHANNEL, None, CONTRACT, list(args), transient=transient)
    proposal = build_signed_proposal(
        local_identity(msp),
        CHANNEL,
        uuid.uuid4().hex,
        CONTRACT,
        [a.encode() for a in args],
        transient,
    )
    return peer.support.invoke(CHANNEL, None, CONTRACT, list(args), proposal=proposal)


def ok(peer: Peer, *args: str, **kw: Any) -> Any:
    result = invoke(peer, *args, **kw)
    assert result.response.status == 200, (args, result.response.message, peer.tail())
    assert result.validation is not None and result.validation.name == "VALID"
    return json.loads(result.response.payload)


def fails(peer: Peer, *args: str, **kw: Any) -> str:
    result = invoke(peer, *args, **kw)
    assert result.response.status == 500, (args, result.response.payload)
    assert result.validation is None  # not committed
    return result.response.message


def test_transient_put_get_hash_verify_purge(peer: Peer) -> None:
    assert ok(peer, "pvt:put", "shared", "k1", value=b"s3cret") == {"written": "k1"}
    assert ok(peer, "pvt:get", "shared", "k1") == {"value": "s3cret"}
    assert ok(peer, "pvt:hash", "shared", "k1") == {"hash": hashlib.sha256(b"s3cret").hexdigest()}
    assert ok(peer, "pvt:verify", "shared", "k1", value=b"s3cret") == {"matches": True}
    assert ok(peer, "pvt:verify", "shared", "k1", value=b"guess") == {"matches": False}
    # the value is neither in public state nor in the public read/write set
    result = invoke(peer, "pvt:put", "shared", "k2", value=b"hidden-value")
    assert result.result.results is not None
    assert b"hidden-value" not in result.result.results.to_bytes()
    assert peer.support.ledgers.get(CHANNEL).get_state(CONTRACT, "k2") is None
    assert ok(peer, "pvt:purge", "shared", "k1") == {"purged": "k1"}
    assert ok(peer, "pvt:get", "shared", "k1") == {"value": None}
    assert ok(peer, "pvt:hash", "shared", "k1") == {"hash": ""}
    ok(peer, "pvt:remove", "shared", "k2")
    assert ok(peer, "pvt:get", "shared", "k2") == {"value": None}


def test_member_only_read_and_write(peer: Peer) -> None:
    ok(peer, "pvt:put", "org1only", "m1", value=b"org1 eyes only")
    assert ok(peer, "pvt:get", "org1only", "m1") == {"value": "org1 eyes only"}
    refused = fails(peer, "pvt:get", "org1only", "m1", msp="Org2MSP")
    assert (
        "tx creator does not have read access permission on privatedata in "
        "chaincodeName:nodecc collectionName: org1only"
    ) in refused
    refused = fails(peer, "pvt:put", "org1only", "m2", value=b"x", msp="Org2MSP")
    assert "tx creator does not have write access permission on privatedata" in refused
    # the hash needs no membership
    digest = ok(peer, "pvt:hash", "org1only", "m1", msp="Org2MSP")
    assert digest == {"hash": hashlib.sha256(b"org1 eyes only").hexdigest()}


def test_a_collection_this_peer_is_not_a_member_of(peer: Peer) -> None:
    ok(peer, "pvt:put", "org2only", "o1", value=b"theirs")
    assert ok(peer, "pvt:hash", "org2only", "o1") == {"hash": hashlib.sha256(b"theirs").hexdigest()}
    message = fails(peer, "pvt:get", "org2only", "o1")
    assert "private data matching public hash version is not available" in message
    assert ok(peer, "pvt:get", "org2only", "never") == {"value": None}
    assert ok(peer, "pvt:privateRange", "org2only", "", "") == []


def test_private_range_and_rich_queries(peer: Peer) -> None:
    for i, colour in enumerate(["red", "blue", "red"]):
        doc = json.dumps({"colour": colour, "n": i}).encode()
        ok(peer, "pvt:put", "shared", f"doc{i}", value=doc)
    found = ok(peer, "pvt:privateQuery", "shared", '{"selector":{"colour":"red"}}')
    assert [r["key"] for r in found] == ["doc0", "doc2"]
    ranged = ok(peer, "pvt:privateRange", "shared", "doc0", "doc2")
    assert [r["key"] for r in ranged] == ["doc0", "doc1"]
    message = fails(peer, "pvt:writeThenPrivateQuery", "shared")
    assert "Queries on pvt data is supported only in a read-only transaction" in message


def test_public_rich_queries_with_pagination(peer: Peer) -> None:
    for i in range(5):
        ok(peer, "pvt:putPublic", f"pub{i}", json.dumps({"kind": "pub", "i": i}))
    everything = ok(peer, "pvt:query", '{"selector":{"kind":"pub"}}')
    assert [r["key"] for r in everything] == [f"pub{i}" for i in range(5)]
    page = ok(peer, "pvt:queryPage", '{"selector":{"kind":"pub"}}', "2", "")
    assert [r["key"] for r in page["results"]] == ["pub0", "pub1"] and page["fetched"] == 2
    keys = [r["key"] for r in page["results"]]
    while page["fetched"] == 2:
        page = ok(peer, "pvt:queryPage", '{"selector":{"kind":"pub"}}', "2", page["bookmark"])
        keys += [r["key"] for r in page["results"]]
    assert keys == [f"pub{i}" for i in range(5)]
    message = fails(peer, "pvt:query", "not json")
    assert "GET_QUERY_RESULT failed" in message


def test_unknown_collection_is_refused(peer: Peer) -> None:
    message = fails(peer, "pvt:put", "nope", "k", value=b"v")
    assert f"collection {CHANNEL}/nodecc/nope could not be found" in message
