"""Private data requests served as Fabric's handler serves them: access by the creator's
MSP against memberOnlyRead/Write, the collection-name check, Init, read-only private queries,
results naming the chaincode (actors.requests with actors.privdata.access)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from actors import requests
from actors.ledger import LedgerManager, ReadOnlyViolation
from actors.privdata.access import CollectionStore
from actors.proposals import Identity, build_signed_proposal, local_identity
from actors.requests import Limits, RequestError
from actors.txcontexts import TXContext
from protos.ledger.queryresult import kv_query_result_pb2 as queryresult
from protos.peer import chaincode_shim_pb2 as shim

CM = shim.ChaincodeMessage
NS, CH = "cc", "ch"
CONFIG = """[
 {"name": "open", "policy": "OR('Org1MSP.member')", "requiredPeerCount": 0,
  "maxPeerCount": 1, "blockToLive": 0},
 {"name": "readers", "policy": "OR('Org1MSP.member')", "memberOnlyRead": true},
 {"name": "writers", "policy": "OR('Org1MSP.member')", "memberOnlyWrite": true}
]"""


@pytest.fixture
def ledgers() -> Iterator[LedgerManager]:
    manager = LedgerManager(None)
    yield manager
    manager.close()


def store(config: str | None = CONFIG, local: str = "Org1MSP") -> CollectionStore:
    return CollectionStore(
        definition_collections=lambda channel, chaincode: config,
        channel_orgs=lambda channel: ("Org1MSP", "Org2MSP"),
        local_msp_id=local,
        local_identity=local_identity(local),  # the peer's own proposals (see context())
    )


def context(
    ledgers: LedgerManager, msp: str = "Org1MSP", txid: str = "tx1", **kw: Any
) -> TXContext:
    proposal = build_signed_proposal(local_identity(msp), CH, txid, NS, [b"f"])
    kw.setdefault("collections", store())
    return TXContext(NS, CH, txid, ledgers.get(CH).new_simulator(txid), proposal, **kw)


def serve(kind: int, payload: Any, ctx: TXContext) -> bytes:
    msg = CM(type=kind, payload=payload.SerializeToString(), txid=ctx.txid, channel_id=CH)
    return requests.SERVERS[kind](msg, ctx, Limits())


def commit(ledgers: LedgerManager, ctx: TXContext) -> None:
    results = ctx.simulator.get_results()
    ctx.simulator.done()
    assert ledgers.get(CH).commit(ctx.txid, results).name == "VALID"


def seed(ledgers: LedgerManager, coll: str, **values: bytes) -> None:
    ctx = context(ledgers, txid=f"seed-{coll}")
    for key, value in values.items():
        serve(CM.PUT_STATE, shim.PutState(key=key, value=value, collection=coll), ctx)
    commit(ledgers, ctx)


def test_put_get_hash_delete(ledgers: LedgerManager) -> None:
    seed(ledgers, "open", k=b"v")
    ctx = context(ledgers, txid="t2")
    assert serve(CM.GET_STATE, shim.GetState(key="k", collection="open"), ctx) == b"v"
    digest = serve(CM.GET_PRIVATE_DATA_HASH, shim.GetState(key="k", collection="open"), ctx)
    assert digest == hashlib.sha256(b"v").digest()
    serve(CM.DEL_STATE, shim.DelState(key="k", collection="open"), ctx)
    commit(ledgers, ctx)
    ctx = context(ledgers, txid="t3")
    assert serve(CM.GET_STATE, shim.GetState(key="k", collection="open"), ctx) == b""


def test_member_only_read_refuses_other_orgs_but_lets_them_write(ledgers: LedgerManager) -> None:
    seed(ledgers, "readers", k=b"v")
    ctx = context(ledgers, msp="Org2MSP")
    with pytest.raises(RequestError) as err:
        serve(CM.GET_STATE, shim.GetState(key="k", collection="readers"), ctx)
    assert str(err.value) == (
        "tx creator does not have read access permission on privatedata in "
        "chaincodeName:cc collectionName: readers"
    )
    serve(CM.PUT_STATE, shim.PutState(key="j", value=b"w", collection="readers"), ctx)
    # the hash needs no access
    digest = serve(CM.GET_PRIVATE_DATA_HASH, shim.GetState(key="k", collection="readers"), ctx)
    assert digest == hashlib.sha256(b"v").digest()


def test_member_only_write_refuses_a_non_member_and_nothing_is_written(
    ledgers: LedgerManager,
) -> None:
    ctx = context(ledgers, msp="Org2MSP")
    with pytest.raises(RequestError, match="does not have write access permission on privatedata"):
        serve(CM.PUT_STATE, shim.PutState(key="k", value=b"v", collection="writers"), ctx)
    with pytest.raises(RequestError, match="does not have write access"):
        serve(CM.PURGE_PRIVATE_DATA, shim.DelState(key="k", collection="writers"), ctx)
    assert serve(CM.GET_STATE, shim.GetState(key="k", collection="writers"), ctx) == b""
    assert not ctx.simulator.get_results().has_writes()
    member = context(ledgers, txid="t2")
    serve(CM.PUT_STATE, shim.PutState(key="k", value=b"v", collection="writers"), member)


def test_only_the_peers_own_signature_makes_its_org_a_member(ledgers: LedgerManager) -> None:
    """With no channel MSPs nobody's membership can be established but the peer's own
    proposals': its certificate with another key, or unsigned, claims Org1MSP in vain."""
    seed(ledgers, "readers", k=b"v")
    own = local_identity("Org1MSP")
    copied = Identity("Org1MSP", own.cert_pem, ec.generate_private_key(ec.SECP256R1()))
    for n, (identity, sign) in enumerate(((copied, True), (own, False))):
        txid = f"forged{n}"
        proposal = build_signed_proposal(identity, CH, txid, NS, [b"f"], sign=sign)
        simulator = ledgers.get(CH).new_simulator(txid)
        ctx = TXContext(NS, CH, txid, simulator, proposal, collections=store())
        with pytest.raises(RequestError, match="does not have read access"):
            serve(CM.GET_STATE, shim.GetState(key="k", collection="readers"), ctx)
    own_read = serve(CM.GET_STATE, shim.GetState(key="k", collection="readers"), context(ledgers))
    assert own_read == b"v"


def test_unknown_collections(ledgers: LedgerManager) -> None:
    ctx = context(ledgers)
    with pytest.raises(RequestError, match=r"^collection ch/cc/nope could not be found$"):
        serve(CM.PUT_STATE, shim.PutState(key="k", value=b"v", collection="nope"), ctx)
    with pytest.raises(
        RequestError,
        match=r"^collection \[nope\] not defined in the collection config for chaincode \[cc\]$",
    ):
        serve(CM.GET_PRIVATE_DATA_HASH, shim.GetState(key="k", collection="nope"), ctx)
    # implicit collections: only for the channel's orgs
    serve(CM.PUT_STATE, shim.PutState(key="k", value=b"v", collection="_implicit_org_Org2MSP"), ctx)
    with pytest.raises(RequestError, match=r"collection \[_implicit_org_Org9MSP\] not defined"):
        serve(CM.GET_STATE, shim.GetState(key="k", collection="_implicit_org_Org9MSP"), ctx)
    # without a definition only the implicit collections exist
    bare = context(ledgers, txid="t2", collections=store(None))
    with pytest.raises(RequestError, match="could not be found"):
        serve(CM.GET_STATE, shim.GetState(key="k", collection="open"), bare)


def test_no_private_data_in_init_or_in_a_callee_on_another_channel(ledgers: LedgerManager) -> None:
    ctx = context(ledgers, is_init=True)
    with pytest.raises(RequestError, match=r"not allowed in chaincode Init\(\)"):
        serve(CM.GET_STATE, shim.GetState(key="k", collection="open"), ctx)
    callee = context(ledgers, txid="t2", isolated=True)
    with pytest.raises(RequestError, match="call to another channel commits nothing"):
        serve(CM.PUT_STATE, shim.PutState(key="k", value=b"v", collection="open"), callee)
    assert serve(CM.GET_STATE, shim.GetState(key="k", collection="open"), callee) == b""


def test_private_range_and_rich_queries_name_the_chaincode_and_are_read_only(
    ledgers: LedgerManager,
) -> None:
    seed(ledgers, "open", a=b'{"n":1}', b=b'{"n":2}', c=b"not json")
    ctx = context(ledgers, txid="q")
    reply = shim.QueryResponse.FromString(
        serve(CM.GET_STATE_BY_RANGE, shim.GetStateByRange(startKey="a", collection="open"), ctx)
    )
    kvs = [queryresult.KV.FromString(r.resultBytes) for r in reply.results]
    assert [(kv.namespace, kv.key) for kv in kvs] == [("cc", "a"), ("cc", "b"), ("cc", "c")]
    query = shim.GetQueryResult(query='{"selector":{"n":{"$gt":1}}}', collection="open")
    reply = shim.QueryResponse.FromString(serve(CM.GET_QUERY_RESULT, query, ctx))
    kvs = [queryresult.KV.FromString(r.resultBytes) for r in reply.results]
    assert [(kv.namespace, kv.key, kv.value) for kv in kvs] == [("cc", "b", b'{"n":2}')]
    with pytest.raises(ReadOnlyViolation, match="already performed queries on pvt data"):
        serve(CM.PUT_STATE, shim.PutState(key="x", value=b"1"), ctx)
    writer = context(ledgers, txid="w")
    serve(CM.PUT_STATE, shim.PutState(key="x", value=b"1"), writer)
    with pytest.raises(ReadOnlyViolation, match="Queries on pvt data is supported only in a"):
        serve(CM.GET_QUERY_RESULT, query, writer)
    bad = shim.GetQueryResult(query="not json", collection="open")
    with pytest.raises(Exception, match="invalid query JSON"):
        serve(CM.GET_QUERY_RESULT, bad, context(ledgers, txid="q2"))


def test_private_metadata(ledgers: LedgerManager) -> None:
    seed(ledgers, "open", k=b"v")
    ctx = context(ledgers, txid="m")
    entry = shim.StateMetadata(metakey="VALIDATION_PARAMETER", value=b"policy")
    serve(
        CM.PUT_STATE_METADATA,
        shim.PutStateMetadata(key="k", collection="open", metadata=entry),
        ctx,
    )
    commit(ledgers, ctx)
    ctx = context(ledgers, txid="m2")
    got = shim.StateMetadataResult.FromString(
        serve(CM.GET_STATE_METADATA, shim.GetStateMetadata(key="k", collection="open"), ctx)
    )
    assert [(e.metakey, e.value) for e in got.entries] == [("VALIDATION_PARAMETER", b"policy")]


def test_a_non_member_peer_stores_only_hashes(ledgers: LedgerManager) -> None:
    ledgers.set_collection_rules(store(local="Org2MSP").rules)
    seed(ledgers, "open", k=b"v")
    ctx = context(ledgers, txid="r")
    with pytest.raises(Exception, match="private data matching public hash version is not"):
        serve(CM.GET_STATE, shim.GetState(key="k", collection="open"), ctx)
    digest = serve(CM.GET_PRIVATE_DATA_HASH, shim.GetState(key="k", collection="open"), ctx)
    assert digest == hashlib.sha256(b"v").digest()
    # implicit collection of this peer's org: kept
    seed(ledgers, "_implicit_org_Org2MSP", j=b"w")
    ctx = context(ledgers, txid="r2")
    assert (
        serve(CM.GET_STATE, shim.GetState(key="j", collection="_implicit_org_Org2MSP"), ctx) == b"w"
    )


def test_private_partial_composite_key_query(ledgers: LedgerManager) -> None:
    keys = {"\x00color\x00red\x001\x00": b"a", "\x00color\x00red\x002\x00": b"b"}
    keys["\x00color\x00blue\x001\x00"] = b"c"
    ctx = context(ledgers, txid="seed-ck")
    for key, value in keys.items():
        serve(CM.PUT_STATE, shim.PutState(key=key, value=value, collection="open"), ctx)
    commit(ledgers, ctx)
    ctx = context(ledgers, txid="ck")
    start = "\x00color\x00red\x00"
    request = shim.GetStateByRange(startKey=start, endKey=start + "\U0010ffff", collection="open")
    reply = shim.QueryResponse.FromString(serve(CM.GET_STATE_BY_RANGE, request, ctx))
    found = [queryresult.KV.FromString(r.resultBytes) for r in reply.results]
    assert [(kv.namespace, kv.value) for kv in found] == [("cc", b"a"), ("cc", b"b")]
