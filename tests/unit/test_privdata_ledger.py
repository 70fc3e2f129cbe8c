"""Private data in the ledger: hashed and private rwsets, commit, MVCC on hashes, expiry,
purge, the transient store and restart (actors.ledger.privdata, simulator, validation)."""

from __future__ import annotations

import hashlib

import pytest

from actors.ledger import Ledger, LedgerError, ReadOnlyViolation, SimulationResults, ValidationCode
from protos.ledger.rwset.kvrwset import kv_rwset_pb2
from protos.ledger.rwset.rwset_pb2 import TxPvtReadWriteSet

CC, COLL = "cc", "secret"


def h(data: bytes | str) -> bytes:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).digest()


def put(ledger: Ledger, txid: str, key: str, value: bytes, coll: str = COLL) -> ValidationCode:
    with ledger.new_simulator(txid) as sim:
        sim.put_private_data(CC, coll, key, value)
        results = sim.get_results()
    return ledger.commit(txid, results)


def read(ledger: Ledger, key: str, coll: str = COLL) -> bytes | None:
    with ledger.new_simulator("r-" + key) as sim:
        return sim.get_private_data(CC, coll, key)


def test_rwsets_hash_keys_and_values_and_keep_private_apart() -> None:
    ledger = Ledger("ch")
    with ledger.new_simulator("t1") as sim:
        sim.put_private_data(CC, COLL, "b", b"two")
        sim.put_private_data(CC, COLL, "a", b"one")
        sim.delete_private_data(CC, COLL, "c")
        results = sim.get_results()
    tx = results.to_proto()
    assert [ns.namespace for ns in tx.ns_rwset] == [CC]
    (coll,) = tx.ns_rwset[0].collection_hashed_rwset
    assert coll.collection_name == COLL
    hashed = kv_rwset_pb2.HashedRWSet.FromString(coll.hashed_rwset)
    # sorted by plain key, not by hash
    assert [w.key_hash for w in hashed.hashed_writes] == [h("a"), h("b"), h("c")]
    assert [w.value_hash for w in hashed.hashed_writes] == [h(b"one"), h(b"two"), b""]
    assert [w.is_delete for w in hashed.hashed_writes] == [False, False, True]
    pvt = results.pvt_to_proto()
    assert isinstance(pvt, TxPvtReadWriteSet)
    rwset = pvt.ns_pvt_rwset[0].collection_pvt_rwset[0].rwset
    assert coll.pvt_rwset_hash == h(rwset)
    kv = kv_rwset_pb2.KVRWSet.FromString(rwset)
    assert [(w.key, w.value, w.is_delete) for w in kv.writes] == [
        ("a", b"one", False),
        ("b", b"two", False),
        ("c", b"", True),
    ]
    # the public bytes carry no private value
    assert b"one" not in results.to_bytes()
    assert SimulationResults.from_bytes(results.to_bytes()).namespace(CC).collections == (
        results.namespace(CC).collections
    )


def test_commit_member_keeps_values_non_member_only_hashes() -> None:
    member, other = Ledger("ch"), Ledger("ch")
    other.collection_rules = lambda ns, coll: (False, 0)
    with member.new_simulator("t1") as sim:
        sim.put_private_data(CC, COLL, "k", b"v")
        results = sim.get_results()
    assert member.commit("t1", results) is ValidationCode.VALID
    # the non-member gets only the public set (with hashes)
    public = SimulationResults.from_bytes(results.to_bytes())
    assert other.commit("t1", public) is ValidationCode.VALID
    assert read(member, "k") == b"v"
    with other.new_simulator("r") as sim:
        assert sim.get_private_data_hash(CC, COLL, "k") == h(b"v")
        with pytest.raises(LedgerError, match="private data matching public hash version is not"):
            sim.get_private_data(CC, COLL, "k")
        assert sim.get_private_data(CC, COLL, "missing") is None
        assert list(sim.get_private_data_range_scan_iterator(CC, COLL, "", "")) == []


def test_transient_store_feeds_commit_and_survives_restart(tmp_path) -> None:
    path = str(tmp_path / "ch.sqlite")
    ledger = Ledger("ch", path=path)
    with ledger.new_simulator("t1") as sim:
        sim.put_private_data(CC, COLL, "k", b"v")
        results = sim.get_results()
    ledger.persist_private("t1", results)
    ledger.close()
    ledger = Ledger("ch", path=path)
    public = SimulationResults.from_bytes(results.to_bytes())
    assert ledger.commit("t1", public) is ValidationCode.VALID
    assert read(ledger, "k") == b"v"
    assert ledger._storage.transient_get("t1") == []  # purged at commit
    ledger.close()
    ledger = Ledger("ch", path=path)
    assert read(ledger, "k") == b"v"
    with ledger.new_simulator("r") as sim:
        assert sim.get_private_data_hash(CC, COLL, "k") == h(b"v")
    ledger.close()


def test_tampered_private_set_is_not_stored() -> None:
    ledger = Ledger("ch")
    with ledger.new_simulator("t1") as sim:
        sim.put_private_data(CC, COLL, "k", b"v")
        results = sim.get_results()
    (pvt,) = results.private
    forged = results.with_private([pvt._replace(rwset=pvt.rwset.replace(b"v", b"x"))])
    assert ledger.commit("t1", forged) is ValidationCode.VALID
    with ledger.new_simulator("r") as sim:
        assert sim.get_private_data_hash(CC, COLL, "k") == h(b"v")
        with pytest.raises(LedgerError, match="not available"):
            sim.get_private_data(CC, COLL, "k")


def test_hashed_reads_are_mvcc_checked() -> None:
    ledger = Ledger("ch")
    put(ledger, "t0", "k", b"v0")
    sim = ledger.new_simulator("t1")
    assert sim.get_private_data(CC, COLL, "k") == b"v0"
    sim.put_state(CC, "out", b"x")
    stale = sim.get_results()
    sim.done()
    put(ledger, "t2", "k", b"v1")
    assert ledger.commit("t1", stale) is ValidationCode.MVCC_READ_CONFLICT
    # a hash read conflicts just the same (non-member peers validate identically)
    sim = ledger.new_simulator("t3")
    sim.get_private_data_hash(CC, COLL, "k")
    sim.put_state(CC, "out", b"y")
    results = sim.get_results()
    sim.done()
    put(ledger, "t4", "k", b"v2")
    assert ledger.commit("t3", results) is ValidationCode.MVCC_READ_CONFLICT


def test_block_to_live_expires_value_and_hash() -> None:
    ledger = Ledger("ch")
    ledger.collection_rules = lambda ns, coll: (True, 2)
    put(ledger, "t0", "k", b"v")  # block 0: readable until block 2 commits, gone at block 3
    for i in range(1, 3):
        put(ledger, f"f{i}", f"filler{i}", b"x", coll="other")
        assert read(ledger, "k") == b"v"
    put(ledger, "f3", "filler3", b"x", coll="other")
    assert read(ledger, "k") is None
    with ledger.new_simulator("r") as sim:
        assert sim.get_private_data_hash(CC, COLL, "k") is None


def test_block_to_live_rewrite_postpones_expiry() -> None:
    ledger = Ledger("ch")
    ledger.collection_rules = lambda ns, coll: (True, 1)
    put(ledger, "t0", "k", b"v")  # expires at block 2
    put(ledger, "t1", "k", b"w")  # block 1 rewrites: expires at block 3
    put(ledger, "t2", "x", b"x", coll="other")
    assert read(ledger, "k") == b"w"
    put(ledger, "t3", "x", b"y", coll="other")
    assert read(ledger, "k") is None


def test_purge_removes_value_and_hash() -> None:
    ledger = Ledger("ch")
    put(ledger, "t0", "k", b"v")
    with ledger.new_simulator("t1") as sim:
        sim.purge_private_data(CC, COLL, "k")
        results = sim.get_results()
    (coll,) = results.to_proto().ns_rwset[0].collection_hashed_rwset
    (write,) = kv_rwset_pb2.HashedRWSet.FromString(coll.hashed_rwset).hashed_writes
    assert write.is_purge and write.is_delete
    assert ledger.commit("t1", results) is ValidationCode.VALID
    assert read(ledger, "k") is None
    with ledger.new_simulator("r") as sim:
        assert sim.get_private_data_hash(CC, COLL, "k") is None


def test_private_metadata_is_on_the_hashed_key() -> None:
    ledger = Ledger("ch")
    put(ledger, "t0", "k", b"v")
    with ledger.new_simulator("t1") as sim:
        sim.set_private_data_metadata(CC, COLL, "k", {"VALIDATION_PARAMETER": b"p"})
        results = sim.get_results()
    assert ledger.commit("t1", results) is ValidationCode.VALID
    with ledger.new_simulator("r") as sim:
        assert sim.get_private_data_metadata(CC, COLL, "k") == {"VALIDATION_PARAMETER": b"p"}
        assert sim.get_private_data(CC, COLL, "k") == b"v"  # the value followed the version


def test_private_queries_only_in_read_only_transactions() -> None:
    ledger = Ledger("ch")
    put(ledger, "t0", "a", b'{"n":1}')
    put(ledger, "t1", "b", b'{"n":2}')
    with ledger.new_simulator("q") as sim:
        kvs = list(sim.get_private_data_range_scan_iterator(CC, COLL, "", ""))
        assert [(kv.namespace, kv.key) for kv in kvs] == [
            (f"{CC}$$p{COLL}", "a"),
            (
                f"{CC}$$p{COLL}",
                "b",
            ),
        ]
        rows = list(sim.execute_query_on_private_data(CC, COLL, '{"selector":{"n":2}}'))
        assert [(kv.namespace, kv.key) for kv in rows] == [(CC, "b")]
        with pytest.raises(ReadOnlyViolation, match="already performed queries on pvt data"):
            sim.put_state(CC, "x", b"1")
        assert sim.get_results().ns_results == ()  # queries on private data record nothing
    with ledger.new_simulator("w") as sim:
        sim.put_private_data(CC, COLL, "c", b"3")
        with pytest.raises(ReadOnlyViolation, match="Queries on pvt data is supported only"):
            sim.get_private_data_range_scan_iterator(CC, COLL, "", "")
