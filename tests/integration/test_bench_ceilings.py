"""The bare invokes carry what their workloads carry: the records of a range or rich query in
the first response, a result as long as the chaincode's (bench/ceilings.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bench.ceilings import BARE_INVOKES, Shape
from bench.workloads import CHANNEL, RANGE_KEYS, WORKLOADS, Peer


@pytest.mark.parametrize("transport", sorted(BARE_INVOKES))
def test_a_bare_invoke_carries_its_shape(transport: str) -> None:
    bare = BARE_INVOKES[transport]()
    try:
        records = (("ns", "k1", b"v" * 300), ("ns", "k2", b""))
        for shape in (Shape(1), Shape(3), Shape(2, records, 4321), WORKLOADS["range"].bare):
            futures = [bare.issue(shape) for _ in range(5)]  # in flight together
            for fut in futures:
                assert fut.result(timeout=30) == b"r" * shape.result
    finally:
        bare.close()


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    with Peer(["system"], [("bench-system", "system")]) as peer:
        peer.support.launch("bench-system", timeout=60)
        peer.preload(["bench-system"])
        yield peer


def test_the_range_ceiling_carries_what_the_range_workload_reads(peer: Peer) -> None:
    shape = WORKLOADS["range"].bare
    sim = peer.support.ledgers.get(CHANNEL).new_simulator("check-range")
    try:
        scanned = [tuple(kv) for kv in sim.get_state_range_scan_iterator("bench-system", "r", "s")]
    finally:
        sim.done()
    assert len(scanned) == RANGE_KEYS and list(shape.records) == scanned
    result = peer.support.execute(CHANNEL, None, "bench-system", WORKLOADS["range"].args(0, ""))
    assert len(json.loads(result.response.payload)) == RANGE_KEYS
    assert shape.result == len(result.response.payload)


def test_the_richquery_ceiling_carries_the_documents_one_client_matches(peer: Peer) -> None:
    shape = WORKLOADS["richquery"].bare
    args = WORKLOADS["richquery"].args(0, "")
    sim = peer.support.ledgers.get(CHANNEL).new_simulator("check-query")
    try:
        matched = [tuple(kv) for kv in sim.execute_query("bench-system", args[1])]
    finally:
        sim.done()
    assert len(matched) == 10 and sorted(shape.records) == sorted(matched)
    result = peer.support.execute(CHANNEL, None, "bench-system", args)
    assert shape.result == len(result.response.payload)
    assert sorted(json.loads(result.response.payload)) == sorted(k for _, k, _ in shape.records)
