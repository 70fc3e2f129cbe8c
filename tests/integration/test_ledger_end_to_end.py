"""Ledger behaviour seen through the whole peer: a real chaincode's requests, then commit."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors.config import ChaincodeDefinition, Config
from actors.errors import TransactionFailed
from actors.ledger import ValidationCode
from actors.proposals import build_signed_proposal
from actors.support import ChaincodeSupport

pytestmark = pytest.mark.timeout(120)

CHANNEL = "mychannel"
CHAINCODES = (
    ChaincodeDefinition("kv", runtime="system", target="examples.kv:KVChaincode"),
    ChaincodeDefinition(
        "writer", runtime="system", target="tests.integration.ledger_chaincodes:Writer"
    ),
    ChaincodeDefinition(
        "batchwriter", runtime="system", target="tests.integration.ledger_chaincodes:BatchWriter"
    ),
)


@pytest.fixture
def make_support() -> Iterator[Callable[..., ChaincodeSupport]]:
    made: list[ChaincodeSupport] = []

    def make(**config: Any) -> ChaincodeSupport:
        support = ChaincodeSupport(Config(chaincodes=CHAINCODES, **config))
        made.append(support)
        return support

    yield make
    for support in made:
        support.shutdown()


def test_range_query_stopped_by_total_query_limit_is_no_phantom(
    make_support: Callable[..., ChaincodeSupport],
) -> None:
    support = make_support(total_query_limit=3)
    for n in range(6):
        assert support.invoke(CHANNEL, None, "kv", ["put", f"k{n}", "v"]).validation is (
            ValidationCode.VALID
        )
    scan = support.execute(CHANNEL, None, "kv", ["range", "k", "l"])
    assert sorted(json.loads(scan.response.payload)) == ["k0", "k1", "k2"]
    # The key the query stopped before changes; the scan never saw it.
    changed = support.invoke(CHANNEL, None, "kv", ["put", "k3", "changed"])
    assert changed.validation is ValidationCode.VALID
    assert support.commit(CHANNEL, scan) is ValidationCode.VALID
    # A key it did return changing is still a phantom read.
    scan = support.execute(CHANNEL, None, "kv", ["range", "k", "l"])
    support.invoke(CHANNEL, None, "kv", ["put", "k2", "changed"])
    assert support.commit(CHANNEL, scan) is ValidationCode.PHANTOM_READ_CONFLICT


def test_history_timestamp_is_the_transactions_channel_header_time(
    make_support: Callable[..., ChaincodeSupport],
) -> None:
    support = make_support()
    stamp = 1_600_000_000.25
    proposal = build_signed_proposal(
        support.identity, CHANNEL, "tx-stamped", "kv", [b"put", b"k", b"v"], timestamp=stamp
    )
    result = support.invoke(CHANNEL, "tx-stamped", "kv", ["put", "k", "v"], proposal=proposal)
    assert result.validation is ValidationCode.VALID
    unstamped = support.invoke(CHANNEL, None, "kv", ["put", "k", "w"])
    assert unstamped.validation is ValidationCode.VALID
    history = support.ledgers.get(CHANNEL).get_history_for_key("kv", "k")
    assert [(m.tx_id, m.timestamp) for m in history][1:] == [("tx-stamped", stamp)]
    # Without a caller's proposal, the one the peer builds carries the time it is recorded by.
    assert history[0].tx_id == unstamped.result.txid
    assert history[0].timestamp == unstamped.result.timestamp is not None


def test_write_set_over_the_limit_fails_the_transaction(
    make_support: Callable[..., ChaincodeSupport],
) -> None:
    support = make_support(max_write_set_size=10_000)
    ledger = support.ledgers.get(CHANNEL)
    with pytest.raises(TransactionFailed, match=r"PUT_STATE failed.*would exceed 10000 bytes"):
        support.invoke(CHANNEL, None, "writer", ["bulk", "3", "4000"])
    # A chaincode that ignores the refused write and claims success still fails.
    with pytest.raises(TransactionFailed, match="simulation results: the write set would exceed"):
        support.invoke(CHANNEL, None, "writer", ["bulk_ignoring_errors", "3", "4000"])
    # Batched, the writes are refused when the batch arrives with the COMPLETED.
    for function in ("bulk", "bulk_ignoring_errors"):
        with pytest.raises(
            TransactionFailed, match=r"WRITE_BATCH_STATE failed.*would exceed 10000 bytes"
        ):
            support.invoke(CHANNEL, None, "batchwriter", [function, "3", "4000"])
    assert ledger.height == 0 and ledger.get_state("writer", "bulk0") is None
    ok = support.invoke(CHANNEL, None, "writer", ["bulk", "2", "4000"])
    assert ok.validation is ValidationCode.VALID and ledger.height == 1
