"""The official Fabric Gateway Node client (@hyperledger/fabric-gateway 1.12.1, from npm,
unmodified) against our Gateway service over TLS, with identities from MSP folders.

``tests/interop/gateway_client/scenario.js`` runs the steps it is given with the client's own
API (evaluateTransaction, submitTransaction, submitAsync + getStatus, getChaincodeEvents, the
block events of the peer's Deliver service with a checkpointer) and prints what the client
returned or threw. Behind the gateway: our Python chaincodes (system runtime) and a Node
contract chaincode (fabric-contract-api 2.5.8, process runtime).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from actors.config import ChaincodeDefinition
from tests.gateway_peer import CHANNEL, OURS, GatewayPeer, make_crypto, member_dir

pytestmark = pytest.mark.timeout(180)

CLIENT_DIR = Path(__file__).resolve().parent / "gateway_client"
NODE_CC_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = CLIENT_DIR / "scenario.js"
NODECC = ChaincodeDefinition(
    "nodecc",
    runtime="process",
    command=("node", "node_modules/fabric-shim/cli.js", "start", "--chaincode-id-name", "nodecc"),
    workdir=str(NODE_CC_DIR),
)


@pytest.fixture(scope="module")
def ready(skip_or_fail: Callable[[str], NoReturn]) -> None:
    if shutil.which("node") is None:
        skip_or_fail("node is not installed")
    for need in (
        CLIENT_DIR / "node_modules/@hyperledger/fabric-gateway/package.json",
        NODE_CC_DIR / "node_modules/fabric-contract-api/package.json",
    ):
        if not need.is_file():
            skip_or_fail(f"{need} is missing; run tools/ensure_node_interop.sh")
    version = json.loads(
        (CLIENT_DIR / "node_modules/@hyperledger/fabric-gateway/package.json").read_text()
    )
    assert version["version"] == "1.12.1"


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_crypto(tmp_path_factory.mktemp("crypto"))


@pytest.fixture(scope="module")
def peer(ready: None, crypto: Path) -> Iterator[GatewayPeer]:
    p = GatewayPeer(crypto, chaincodes=(*OURS, NODECC), tls=True, startup_timeout=30.0)
    yield p
    p.close()


def run(
    peer: GatewayPeer, crypto: Path, steps: list[dict[str, Any]], user: str = "User1@"
) -> list[dict]:
    msp = member_dir(crypto, 1, user) / "msp"
    spec = {
        "address": peer.address,
        "tlsRootCert": str(member_dir(crypto, 1, "peer0") / "tls" / "ca.crt"),
        "hostOverride": "peer0.org1.example.com",
        "mspId": "Org1MSP",
        "certPath": str(next((msp / "signcerts").iterdir())),
        "keyPath": str(msp / "keystore" / "priv_sk"),
        "channel": CHANNEL,
        "steps": steps,
    }
    done = subprocess.run(
        ["node", str(SCRIPT)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=CLIENT_DIR,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == len(steps), done.stdout + done.stderr
    return lines


def test_evaluate_submit_and_submit_async(peer: GatewayPeer, crypto: Path) -> None:
    put, get, put_async, get_again = run(
        peer,
        crypto,
        [
            {"op": "submit", "chaincode": "kv", "args": ["put", "colour", "blue"]},
            {"op": "evaluate", "chaincode": "kv", "args": ["get", "colour"]},
            {"op": "submitAsync", "chaincode": "kv", "args": ["getput", "colour", "green"]},
            {"op": "evaluate", "chaincode": "kv", "args": ["get", "colour"]},
        ],
    )
    assert put == {"ok": True, "result": ""}
    assert get == {"ok": True, "result": "blue"}
    assert put_async["ok"] and put_async["successful"] and put_async["code"] == 0
    assert put_async["result"] == "blue"  # getput returns the previous value
    assert len(put_async["transactionId"]) == 64
    assert get_again == {"ok": True, "result": "green"}


def test_a_node_contract_behind_the_gateway(peer: GatewayPeer, crypto: Path) -> None:
    created, read, missing = run(
        peer,
        crypto,
        [
            {"op": "submit", "chaincode": "nodecc", "args": ["assets:create", "N1", "carol", "7"]},
            {"op": "evaluate", "chaincode": "nodecc", "args": ["assets:read", "N1"]},
            {"op": "evaluate", "chaincode": "nodecc", "args": ["assets:read", "nope"]},
        ],
    )
    assert created["ok"], created
    assert json.loads(read["result"]) == {"id": "N1", "owner": "carol", "value": 7}
    assert not missing["ok"]
    assert missing["error"]["name"] == "GatewayError"
    assert missing["error"]["code"] == 2  # UNKNOWN: the chaincode's own error
    assert "asset nope does not exist" in missing["error"]["details"][0]["message"]
    assert missing["error"]["details"][0]["mspId"] == "Org1MSP"


def test_mvcc_conflict_and_policy_failure_as_commit_errors(peer: GatewayPeer, crypto: Path) -> None:
    _, conflict, final = run(
        peer,
        crypto,
        [
            {"op": "submit", "chaincode": "kv", "args": ["put", "n", "0"]},
            {"op": "conflict", "chaincode": "kv", "args": ["incr", "n"]},
            {"op": "evaluate", "chaincode": "kv", "args": ["get", "n"]},
        ],
    )
    assert conflict["statuses"] == [
        {"code": 0, "successful": True},
        {"code": 11, "successful": False},  # MVCC_READ_CONFLICT
    ]
    assert final["result"] == "1"
    peer.policies["kv"] = "AND('Org1MSP.peer', 'Org2MSP.peer')"
    try:
        [failed] = run(
            peer, crypto, [{"op": "submit", "chaincode": "kv", "args": ["put", "p", "1"]}]
        )
    finally:
        peer.policies["kv"] = "OR('Org1MSP.peer')"
    assert failed["error"]["name"] == "CommitError"
    assert failed["error"]["code"] == 10  # ENDORSEMENT_POLICY_FAILURE
    assert "ENDORSEMENT_POLICY_FAILURE" in failed["error"]["message"]


def test_chaincode_events_live_and_replayed(peer: GatewayPeer, crypto: Path) -> None:
    start = peer.stack.store(CHANNEL).height
    created, transferred = run(
        peer,
        crypto,
        [
            {"op": "submitAsync", "chaincode": "asset", "args": ["create", "A9", "alice", "3"]},
            {"op": "submitAsync", "chaincode": "asset", "args": ["transfer", "A9", "bob"]},
        ],
    )
    [replayed, live] = run(
        peer,
        crypto,
        [
            {"op": "events", "chaincode": "asset", "startBlock": start, "count": 1},
            {"op": "watch", "chaincode": "asset", "args": ["transfer", "A9", "carol"]},
        ],
    )
    [event] = replayed["events"]
    assert event["transactionId"] == transferred["transactionId"]
    assert event["blockNumber"] == transferred["blockNumber"]
    assert (event["chaincodeName"], event["eventName"]) == ("asset", "Transfer")
    assert json.loads(event["payload"]) == {"id": "A9", "from": "alice", "to": "bob"}
    assert created["successful"]
    [seen] = live["events"]
    assert seen["transactionId"] == live["transactionId"]
    assert json.loads(seen["payload"]) == {"id": "A9", "from": "bob", "to": "carol"}


def test_block_events_replayed_and_live(peer: GatewayPeer, crypto: Path) -> None:
    [moved] = run(
        peer,
        crypto,
        [{"op": "submitAsync", "chaincode": "asset", "args": ["create", "B1", "dave", "1"]}],
    )
    [moved] = run(
        peer,
        crypto,
        [{"op": "submitAsync", "chaincode": "asset", "args": ["transfer", "B1", "erin"]}],
    )
    number = moved["blockNumber"]
    store = peer.stack.store(CHANNEL)
    full, filtered, private = run(
        peer,
        crypto,
        [
            {
                "op": "blocks",
                "chaincode": "asset",
                "kind": kind,
                "startBlock": number - 1,
                "count": 2,
            }
            for kind in ("block", "filtered", "private")
        ],
    )
    # full blocks: the ledger's, in order from the start block
    assert [b["number"] for b in full["blocks"]] == [number - 1, number]
    for seen in full["blocks"]:
        block = store.block(seen["number"])
        assert seen["codes"] == list(block.metadata.metadata[2])
        assert len(seen["transactionIds"]) == len(block.data.data)
    assert moved["transactionId"] in full["blocks"][1]["transactionIds"]
    # filtered: ids, codes and the event without its payload
    last = filtered["blocks"][1]
    assert (last["number"], last["channel"]) == (number, CHANNEL)
    [tx] = [t for t in last["transactions"] if t["transactionId"] == moved["transactionId"]]
    assert tx["code"] == 0
    assert tx["events"] == [{"chaincodeName": "asset", "eventName": "Transfer", "payloadLength": 0}]
    # with private data: the same blocks, and no private data (none is kept by block)
    assert [b["number"] for b in private["blocks"]] == [number - 1, number]
    assert [b["privateDataCount"] for b in private["blocks"]] == [0, 0]
    assert private["blocks"][1]["transactionIds"] == full["blocks"][1]["transactionIds"]

    live_full, live_filtered = run(
        peer,
        crypto,
        [
            {"op": "watchBlocks", "chaincode": "kv", "kind": "block", "args": ["put", "w1", "v"]},
            {
                "op": "watchBlocks",
                "chaincode": "kv",
                "kind": "filtered",
                "args": ["put", "w2", "v"],
            },
        ],
    )
    assert live_full["transactionId"] in live_full["blocks"][0]["transactionIds"]
    [tx] = live_filtered["blocks"][0]["transactions"]
    assert (tx["transactionId"], tx["code"], tx["events"]) == (
        live_filtered["transactionId"],
        0,
        [],
    )
    assert live_filtered["blocks"][0]["number"] == live_full["blocks"][0]["number"] + 1


def test_block_events_resume_from_a_checkpoint(peer: GatewayPeer, crypto: Path) -> None:
    run(
        peer,
        crypto,
        [{"op": "submit", "chaincode": "kv", "args": ["put", f"c{i}", "v"]} for i in range(2)],
    )
    start = peer.stack.store(CHANNEL).height - 2
    full, filtered = run(
        peer,
        crypto,
        [
            {"op": "checkpointResume", "chaincode": "kv", "kind": kind, "startBlock": start}
            for kind in ("block", "filtered")
        ],
    )
    for resumed in (full, filtered):
        assert [b["number"] for b in resumed["before"]] == [start]
        assert [b["number"] for b in resumed["after"]] == [start + 1]
