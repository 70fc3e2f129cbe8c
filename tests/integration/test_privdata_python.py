"""Private data from our Python shim (``examples/private_data.py`` in a system-runtime child
process) through the direct commit path (``ChaincodeSupport.invoke``): the same flows as the
Node interop test, a callee on another channel, and a restart on the sqlite ledger."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.config import ChaincodeDefinition, Config
from actors.errors import TransactionFailed
from actors.lifecycle.definitions import Definition
from actors.proposals import build_signed_proposal, local_identity
from actors.support import ChaincodeSupport, InvokeResult

pytestmark = pytest.mark.timeout(120)

CHANNEL, OTHER = "mychannel", "otherchannel"
PVT = ChaincodeDefinition("pvt", target="examples.private_data:PrivateData")
KV = ChaincodeDefinition("kv", target="examples.kv:KVChaincode")
COLLECTIONS = json.dumps(
    [
        {"name": "shared", "policy": "OR('Org1MSP.member','Org2MSP.member')", "blockToLive": 3},
        {"name": "org1only", "policy": "OR('Org1MSP.member')", "memberOnlyRead": True},
        {"name": "org2only", "policy": "OR('Org2MSP.member')", "memberOnlyWrite": True},
    ]
)


def start(ledger_dir: Path | None = None) -> ChaincodeSupport:
    support = ChaincodeSupport(
        Config(
            chaincodes=(PVT, KV),
            msp_id="Org1MSP",
            execute_timeout=20.0,
            channels=(CHANNEL, OTHER),
            ledger_path=None if ledger_dir is None else str(ledger_dir),
        )
    )
    for channel in (CHANNEL, OTHER):
        if support.lifecycle.definitions.get(channel, "pvt") is None:
            support.lifecycle.definitions.define(
                channel, Definition("pvt", "1", 1, package_id="pvt", collections=COLLECTIONS)
            )
    return support


@pytest.fixture
def support() -> Iterator[ChaincodeSupport]:
    support = start()
    try:
        yield support
    finally:
        support.shutdown()


def invoke(
    support: ChaincodeSupport,
    *args: str,
    value: bytes | None = None,
    msp: str | None = None,
    chaincode: str = "pvt",
) -> InvokeResult:
    transient = {"value": value} if value is not None else None
    if msp is None:
        return support.invoke(CHANNEL, None, chaincode, list(args), transient=transient)
    proposal = build_signed_proposal(
        local_identity(msp),
        CHANNEL,
        uuid.uuid4().hex,
        chaincode,
        [a.encode() for a in args],
        transient,
    )
    return support.invoke(CHANNEL, None, chaincode, list(args), proposal=proposal)


def ok(support: ChaincodeSupport, *args: str, **kw: Any) -> bytes:
    result = invoke(support, *args, **kw)
    assert result.response.status == 200, (args, result.response.message)
    assert result.committed, result.validation
    return result.response.payload


def fails(support: ChaincodeSupport, *args: str, **kw: Any) -> str:
    """The error text: the chaincode's error response, or (a shim request that failed raises
    in our shim) the transaction's failure; either way nothing is committed."""
    try:
        result = invoke(support, *args, **kw)
    except TransactionFailed as exc:
        return str(exc)
    assert result.response.status >= 400, (args, result.response)
    assert result.validation is None
    return result.response.message


def test_python_shim_private_data_flows(support: ChaincodeSupport) -> None:
    ok(support, "put", "shared", "k", value=b"s3cret")
    assert ok(support, "get", "shared", "k") == b"s3cret"
    assert ok(support, "hash", "shared", "k") == hashlib.sha256(b"s3cret").hexdigest().encode()
    # memberOnlyRead: an Org2 client cannot read, can see the hash
    assert "does not have read access" in fails(support, "get", "org1only", "x", msp="Org2MSP")
    # memberOnlyWrite of a collection of another org: this peer's client is refused
    assert "does not have write access" in fails(support, "put", "org2only", "y", value=b"v")
    # a proposal merely claiming Org2MSP (this peer has no channel MSPs to check it) is no
    # member either; real members: tests/integration/test_privdata_access.py
    assert "does not have write access" in fails(
        support, "put", "org2only", "y", value=b"v", msp="Org2MSP"
    )
    for i in range(3):
        ok(support, "put", "shared", f"doc{i}", value=json.dumps({"n": i}).encode())
    assert json.loads(ok(support, "query", "shared", '{"selector":{"n":{"$gte":1}}}')) == [
        "doc1",
        "doc2",
    ]
    assert list(json.loads(ok(support, "range", "shared", "doc", "doc9"))) == [
        "doc0",
        "doc1",
        "doc2",
    ]
    ok(support, "purge", "shared", "k")
    assert ok(support, "hash", "shared", "k") == b""
    assert "could not be found" in fails(support, "put", "nope", "k", value=b"v")


def test_key_level_endorsement_parameter_on_private_data(support: ChaincodeSupport) -> None:
    ok(support, "put", "shared", "ep", value=b"v")
    ok(support, "setep", "shared", "ep", b"policy-bytes".hex())
    assert ok(support, "getep", "shared", "ep") == b"policy-bytes".hex().encode()
    assert ok(support, "get", "shared", "ep") == b"v"


def test_block_to_live_through_the_peer(support: ChaincodeSupport) -> None:
    def read() -> int:  # a query: commits no block
        return support.execute(CHANNEL, None, "pvt", ["get", "shared", "short"]).response.status

    ok(support, "put", "shared", "short", value=b"lived")  # block b
    for i in range(3):  # blockToLive 3: readable until block b + 3 commits, gone at b + 4
        assert read() == 200
        ok(support, "putpublic", f"tick{i}", "x")
    assert read() == 200
    ok(support, "putpublic", "tick3", "x")
    assert read() == 404
    assert ok(support, "hash", "shared", "short") == b""  # the hash expired too


def test_no_private_writes_in_a_call_to_another_channel(support: ChaincodeSupport) -> None:
    message = fails(
        support, "call", f"pvt/{OTHER}", "put", "shared", "k", chaincode="kv", value=b"v"
    )
    assert "call to another channel commits nothing" in message


def test_private_data_survives_a_restart(tmp_path: Path) -> None:
    support = start(tmp_path)
    try:
        ok(support, "put", "org1only", "durable", value=b"kept")
    finally:
        support.shutdown()
    support = start(tmp_path)
    try:
        assert ok(support, "get", "org1only", "durable") == b"kept"
        assert ok(support, "hash", "org1only", "durable") == (
            hashlib.sha256(b"kept").hexdigest().encode()
        )
    finally:
        support.shutdown()
