"""Write batches end to end: a Python system chaincode in its own process sends its writes as
one WRITE_BATCH_STATE in the frame of its COMPLETED, and the peer applies them or fails the
transaction (actors.handler, actors.shim.handler)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors.config import ChaincodeDefinition, Config
from actors.errors import TransactionFailed
from actors.ledger import ValidationCode
from actors.support import ChaincodeSupport
from actors.txcontexts import ExecuteResult

pytestmark = pytest.mark.timeout(120)

CHANNEL = "mychannel"
WAIT = 30.0
CHAINCODES = (
    ChaincodeDefinition("batcher", target="tests.integration.chaincodes:Batcher"),
    ChaincodeDefinition("unbatched", target="tests.integration.chaincodes:UnbatchedBatcher"),
    ChaincodeDefinition("kv", target="examples.kv:KVChaincode"),
)
FAILED_BATCH = (
    "transaction returned with failure: failed send batch: failed send batch: "
    "WRITE_BATCH_STATE failed: transaction ID: {txid}: "
)


@pytest.fixture
def make_support() -> Iterator[Callable[..., ChaincodeSupport]]:
    made: list[ChaincodeSupport] = []

    def make(**config: Any) -> ChaincodeSupport:
        support = ChaincodeSupport(Config(chaincodes=CHAINCODES, channels=(CHANNEL,), **config))
        made.append(support)
        return support

    yield make
    for support in made:
        support.shutdown()


@pytest.fixture
def support(make_support: Callable[..., ChaincodeSupport]) -> ChaincodeSupport:
    return make_support()


def run(support: ChaincodeSupport, chaincode: str, *args: str, txid: str | None = None) -> Any:
    return support.execute_async(CHANNEL, txid, chaincode, list(args)).result(WAIT)


def failure(support: ChaincodeSupport, chaincode: str, *args: str) -> tuple[str, str]:
    """(txid, error text) of a transaction that must fail."""
    txid = f"tx-{chaincode}-{args[0]}"
    with pytest.raises(TransactionFailed) as info:
        run(support, chaincode, *args, txid=txid)
    return txid, str(info.value)


def writes(result: ExecuteResult, namespace: str) -> dict[str, bytes | None]:
    assert result.results is not None
    return result.results.writes(namespace)


def test_writes_land_and_reads_never_see_them(support: ChaincodeSupport) -> None:
    result = run(support, "batcher", "write", "a", "1", "b", "2", "a", "3")
    assert result.response.status == 200
    assert writes(result, "batcher") == {"a": b"3", "b": b"2"}
    assert support.commit(CHANNEL, result) is ValidationCode.VALID
    result = run(support, "batcher", "readwrite", "a", "4")
    assert json.loads(result.response.payload) == ["3", "3"]
    assert writes(result, "batcher") == {"a": b"4"}
    assert result.results is not None
    assert result.results.metadata_writes("batcher") == {"a": {"VALIDATION_PARAMETER": b"policy"}}
    assert support.commit(CHANNEL, result) is ValidationCode.VALID
    ledger = support.ledgers.get(CHANNEL)
    assert (ledger.get_state("batcher", "a"), ledger.get_state("batcher", "b")) == (b"4", b"2")
    # A transaction without writes sends no batch and commits nothing.
    assert writes(run(support, "kv", "get", "missing"), "kv") == {}


def test_a_refused_write_fails_the_transaction_with_the_batchs_error(
    support: ChaincodeSupport,
) -> None:
    txid, text = failure(support, "batcher", "delete", "")
    assert text == FAILED_BATCH.format(txid=txid) + "key must not be an empty string"
    txid, text = failure(support, "batcher", "private", "nowhere", "k", "v")
    assert text.startswith(FAILED_BATCH.format(txid=txid)), text
    assert "nowhere" in text
    # Unbatched, the same write is refused at the call: the chaincode raises there.
    _, text = failure(support, "unbatched", "delete", "")
    assert "ChaincodeRequestError: DEL_STATE failed" in text, text
    assert "key must not be an empty string" in text
    # The connection is fine afterwards.
    assert run(support, "batcher", "write", "k", "v").response.status == 200


def test_chaincode_to_chaincode_batches_on_both_sides(support: ChaincodeSupport) -> None:
    result = run(support, "batcher", "call", "kv", "put", "theirs", "v")
    assert json.loads(result.response.payload) == [200, ""]
    assert writes(result, "batcher") == {"caller": b"before the call", "caller-after": b"200"}
    assert writes(result, "kv") == {"theirs": b"v"}
    assert support.commit(CHANNEL, result) is ValidationCode.VALID
    # The callee's batch fails: the caller gets the callee's error as a 500 and carries on.
    result = run(support, "batcher", "call", "kv", "del", "")
    status, message = json.loads(result.response.payload)
    assert status == 500 and "key must not be an empty string" in message, message
    assert "WRITE_BATCH_STATE failed" in message
    assert writes(result, "kv") == {}
    assert writes(result, "batcher")["caller-after"] == b"500"


def test_batches_off_in_the_peer_config(make_support: Callable[..., ChaincodeSupport]) -> None:
    support = make_support(use_write_batch=False)
    _, text = failure(support, "batcher", "delete", "")
    assert "ChaincodeRequestError: DEL_STATE failed" in text, text
    result = run(support, "batcher", "write", "a", "1")
    assert writes(result, "batcher") == {"a": b"1"}
