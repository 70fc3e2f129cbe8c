"""Rich queries end to end: the kv chaincode in a system-runtime child process asks the peer
GET_QUERY_RESULT (plain, batched with QUERY_STATE_NEXT, and paginated with bookmarks) and gets
Fabric's answers, read set and errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from actors.config import ChaincodeDefinition, Config
from actors.errors import TransactionFailed
from actors.ledger import ValidationCode
from actors.support import ChaincodeSupport
from actors.txcontexts import ExecuteResult

pytestmark = pytest.mark.timeout(90)

CHANNEL = "mychannel"
WAIT = 30.0
KV = ChaincodeDefinition("kv", target="examples.kv:KVChaincode")
INDEX = "META-INF/statedb/couchdb/indexes/indexSize.json"


@pytest.fixture
def support() -> Iterator[ChaincodeSupport]:
    support = ChaincodeSupport(Config(chaincodes=(KV,), execute_timeout=20.0))
    try:
        yield support
    finally:
        support.shutdown()


def run(support: ChaincodeSupport, *args: str) -> ExecuteResult:
    return support.execute_async(CHANNEL, None, "kv", list(args)).result(WAIT)


def payload(result: ExecuteResult) -> Any:
    assert result.response.status == 200, result.response
    return json.loads(result.response.payload)


def test_rich_queries_through_the_system_runtime(support: ChaincodeSupport) -> None:
    ledger = support.ledgers.get(CHANNEL)
    sim = ledger.new_simulator("preload")
    for i in range(250):  # more than one 100-result batch: QUERY_STATE_NEXT is needed
        doc = {"docType": "asset", "owner": f"o{i % 2}", "size": 1000 - i}
        sim.put_state("kv", f"a{i:03d}", json.dumps(doc).encode())
    sim.put_state("kv", "binary", b"\x00\x01 not JSON")
    sim.done()
    assert ledger.commit("preload", sim.get_results()) is ValidationCode.VALID
    index = {"index": {"fields": ["size"]}, "ddoc": "indexSizeDoc", "name": "indexSize"}
    ledger.rich_queries.install_indexes(
        "kv", {INDEX: json.dumps({**index, "type": "json"}).encode()}
    )

    everything = run(support, "query", json.dumps({"selector": {"docType": "asset"}}))
    assert payload(everything) == [f"a{i:03d}" for i in range(250)]  # _id order, no binary
    assert everything.results is not None
    assert len(everything.results.reads("kv")) == 250  # each returned key is a read
    assert everything.results.range_queries("kv") == []  # and no phantom protection

    query = json.dumps({"selector": {"owner": "o1", "size": {"$gt": 800}}, "sort": ["size"]})
    expected = [f"a{i:03d}" for i in range(199, 0, -2)]  # odd i, size 801..999 ascending
    assert payload(run(support, "query", query)) == expected

    seen, bookmark = [], ""
    while True:
        page = payload(run(support, "querypage", query, "30", bookmark))
        assert page["count"] == len(page["keys"]) <= 30
        seen += page["keys"]
        if page["count"] < 30:
            break
        bookmark = page["bookmark"]
    assert seen == expected

    with pytest.raises(
        TransactionFailed, match=r"GET_QUERY_RESULT failed.*Invalid operator: \$bad"
    ):
        run(support, "query", '{"selector": {"size": {"$bad": 1}}}')
    with pytest.raises(TransactionFailed, match="no_usable_index"):
        run(support, "query", '{"selector": {}, "sort": ["owner"]}')
    with pytest.raises(TransactionFailed, match="Invalid bookmark value"):
        run(support, "querypage", query, "10", "not-a-bookmark")
