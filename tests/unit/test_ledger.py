"""Tests for actors.ledger: simulation, rwsets, MVCC validation, history and persistence."""

from __future__ import annotations

import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import config
from actors.ledger import (
    KV,
    Height,
    KeyModification,
    Ledger,
    LedgerError,
    LedgerManager,
    ReadOnlyViolation,
    SimulationResults,
    TxSimulator,
    ValidationCode,
    WriteSetTooLarge,
    storage,
)
from protos.ledger.rwset import rwset_pb2
from protos.ledger.rwset.kvrwset import kv_rwset_pb2

NS = "mycc"


@pytest.fixture
def ledger() -> Ledger:
    return LedgerManager().get("testchannel")


def commit_writes(ledger: Ledger, txid: str, writes: dict[str, bytes], ns: str = NS) -> None:
    sim = ledger.new_simulator(txid)
    for key, value in writes.items():
        sim.put_state(ns, key, value)
    sim.done()
    assert ledger.commit(txid, sim.get_results()) is ValidationCode.VALID


def scan(sim: TxSimulator, start: str, end: str, ns: str = NS) -> list[str]:
    with sim.get_state_range_scan_iterator(ns, start, end) as iterator:
        return [kv.key for kv in iterator]


# -- simulation ---------------------------------------------------------------------------


def test_own_writes_are_invisible(ledger: Ledger) -> None:
    commit_writes(ledger, "t0", {"a": b"old"})
    sim = ledger.new_simulator("t1")
    sim.put_state(NS, "a", b"new")
    sim.put_state(NS, "b", b"fresh")
    assert sim.get_state(NS, "a") == b"old"
    assert sim.get_state(NS, "b") is None
    assert scan(sim, "", "") == ["a"]
    assert sim.get_results().writes(NS) == {"a": b"new", "b": b"fresh"}


def test_read_set_records_committed_versions_once(ledger: Ledger) -> None:
    commit_writes(ledger, "t0", {"a": b"1"})
    commit_writes(ledger, "t1", {"b": b"2"})
    sim = ledger.new_simulator("t2")
    assert sim.get_state(NS, "a") == b"1"
    assert sim.get_state(NS, "b") == b"2"
    assert sim.get_state(NS, "missing") is None
    # A commit between two reads of a key: the first read is the one recorded (and returned).
    commit_writes(ledger, "t3", {"a": b"changed"})
    assert sim.get_state(NS, "a") == b"1"
    assert sim.get_state_multiple(NS, ["b", "a", "missing", "c"]) == [b"2", b"1", None, None]
    reads = sim.get_results().reads(NS)
    assert reads == {"a": Height(0, 0), "b": Height(1, 0), "missing": None, "c": None}
    assert ledger.get_version(NS, "a") == Height(2, 0)
    assert sim.has_writes() is False


def test_empty_put_is_a_delete(ledger: Ledger) -> None:
    commit_writes(ledger, "t0", {"a": b"1", "b": b"2"})
    sim = ledger.new_simulator("t1")
    sim.put_state(NS, "a", b"")
    sim.delete_state(NS, "b")
    results = sim.get_results()
    assert results.writes(NS) == {"a": None, "b": None}
    kv = kv_rwset_pb2.KVRWSet.FromString(results.to_proto().ns_rwset[0].rwset)
    assert [(w.key, w.is_delete, w.value) for w in kv.writes] == [
        ("a", True, b""),
        ("b", True, b""),
    ]
    assert ledger.commit("t1", results) is ValidationCode.VALID
    assert ledger.get_state(NS, "a") is None
    assert ledger.get_version(NS, "b") is None
    assert scan(ledger.new_simulator("t2"), "", "") == []


def test_done_forbids_further_use_but_keeps_results(ledger: Ledger) -> None:
    sim = ledger.new_simulator("t1")
    sim.put_state(NS, "k", b"v")
    iterator = sim.get_state_range_scan_iterator(NS, "", "")
    sim.done()
    sim.done()  # idempotent
    assert iterator.closed
    assert list(iterator) == []
    with pytest.raises(LedgerError, match="after calling Done"):
        sim.get_state(NS, "k")
    with pytest.raises(LedgerError, match="after calling Done"):
        sim.put_state(NS, "k", b"v")
    first, second = sim.get_results(), sim.get_results()
    assert first == second
    assert first.to_bytes() == second.to_bytes()
    assert first.writes(NS) == {"k": b"v"}


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.get_state("", "k"), LedgerError),
        (lambda s: s.get_state(None, "k"), TypeError),
        (lambda s: s.get_state(NS, 5), TypeError),
        (lambda s: s.get_state(NS, ["k"]), TypeError),
        (lambda s: s.get_state(NS, "bad\udc80"), LedgerError),
        (lambda s: s.put_state(NS, "k", "text"), TypeError),
        (lambda s: s.put_state(NS, "k", None), TypeError),
        (lambda s: s.put_state(NS, "", b"v"), LedgerError),
        (lambda s: s.put_state(NS, b"k", b"v"), TypeError),
        (lambda s: s.put_state("", "k", b"v"), LedgerError),
        (lambda s: s.delete_state(NS, 3), TypeError),
        (lambda s: s.set_state_metadata(NS, "k", {"n": "str"}), TypeError),
        (lambda s: s.set_state_metadata(NS, "k", [("n", b"v")]), TypeError),
        (lambda s: s.get_state_multiple(NS, "ab"), TypeError),
        (lambda s: s.get_state_range_scan_iterator(NS, None, ""), TypeError),
        (lambda s: s.get_state_range_scan_iterator_with_pagination(NS, "", "", 1.5), TypeError),
    ],
)
def test_bad_input_is_rejected(ledger: Ledger, call, error) -> None:
    sim = ledger.new_simulator("t1")
    with pytest.raises(error):
        call(sim)
    assert sim.get_results().namespaces == []


def test_bad_ledger_input_is_rejected(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="txid"):
        ledger.new_simulator("")
    with pytest.raises(TypeError):
        ledger.commit("t1", {"writes": {}})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ledger.commit_block([("t1",)])  # type: ignore[list-item]
    with pytest.raises(LedgerError, match="channel"):
        LedgerManager().get("../etc")
    assert ledger.height == 0


def test_bytearray_and_memoryview_values_are_copied(ledger: Ledger) -> None:
    sim = ledger.new_simulator("t1")
    buf = bytearray(b"abc")
    sim.put_state(NS, "a", buf)
    sim.put_state(NS, "b", memoryview(b"xyz"))
    buf[0] = ord("z")
    assert sim.get_results().writes(NS) == {"a": b"abc", "b": b"xyz"}


# -- range queries ------------------------------------------------------------------------


def test_range_is_half_open_in_utf8_byte_order(ledger: Ledger) -> None:
    keys = ["b", "a", "\x00comp\x00x\x00", "ab", "\u00e9", "\U0001f600", "\uffff", "z", "c"]
    commit_writes(ledger, "t0", {key: key.encode() for key in keys})
    expected = sorted(keys, key=lambda key: key.encode())
    sim = ledger.new_simulator("t1")
    assert scan(sim, "", "") == expected
    assert scan(sim, "a", "c") == ["a", "ab", "b"]
    assert scan(sim, "b", "") == [k for k in expected if k.encode() >= b"b"]
    assert scan(sim, "\u00e9", "\U0001f600") == ["\u00e9", "\uffff"]
    assert scan(sim, "c", "a") == []
    # Composite-key style partial range: prefix .. prefix + U+10FFFF
    assert scan(sim, "\x00comp\x00", "\x00comp\x00\U0010ffff") == ["\x00comp\x00x\x00"]
    kvs = list(sim.get_state_range_scan_iterator(NS, "z", ""))
    assert kvs == [KV(NS, k, k.encode()) for k in ["z", "\u00e9", "\uffff", "\U0001f600"]]


def test_range_over_many_keys_records_reads(ledger: Ledger) -> None:
    keys = [f"k{i:04d}" for i in range(300)]
    commit_writes(ledger, "t0", dict.fromkeys(keys, b"v"))
    sim = ledger.new_simulator("t1")
    assert scan(sim, "k0050", "k0290") == keys[50:290]
    assert scan(sim, "", "") == keys
    queries = sim.get_results().range_queries(NS)
    assert [(q.start_key, q.end_key, q.itr_exhausted, len(q.reads)) for q in queries] == [
        ("k0050", "k0290", True, 240),
        ("", "", True, 300),
    ]
    assert queries[0].reads[0] == ("k0050", Height(0, 0))


def test_range_reads_equal_only_range_reads_so_hash_agrees() -> None:
    from actors.ledger.rwset import RangeReads, Read

    reads = [Read("a", Height(1, 0)), Read("b", None)]
    same = RangeReads.of(reads)
    assert same == RangeReads(["a", "b"], [Height(1, 0), None])
    assert hash(same) == hash(RangeReads(["a", "b"], [Height(1, 0), None]))
    assert same != reads and same != tuple(reads)  # equal objects would need equal hashes
    assert list(same) == reads


def test_partial_range_read_records_last_key_as_end(ledger: Ledger) -> None:
    commit_writes(ledger, "t0", {f"k{i}": b"v" for i in range(10)})
    sim = ledger.new_simulator("t1")
    iterator = sim.get_state_range_scan_iterator(NS, "k1", "k8")
    assert [next(iterator).key for _ in range(3)] == ["k1", "k2", "k3"]
    iterator.close()
    (query,) = sim.get_results().range_queries(NS)
    assert (query.start_key, query.end_key, query.itr_exhausted) == ("k1", "k3", False)
    # Never-read iterators observed nothing and record nothing.
    sim.get_state_range_scan_iterator(NS, "a", "z").close()
    assert len(sim.get_results().range_queries(NS)) == 1


def test_pagination_resumes_from_bookmark(ledger: Ledger) -> None:
    keys = [f"k{i:03d}" for i in range(95)]
    commit_writes(ledger, "t0", dict.fromkeys(keys, b"v"))
    seen: list[str] = []
    start, pages = "", 0
    while True:
        sim = ledger.new_simulator(f"q{pages}")
        iterator = sim.get_state_range_scan_iterator_with_pagination(NS, start, "k090", 20)
        page = [kv.key for kv in iterator]
        assert len(page) <= 20
        seen += page
        pages += 1
        bookmark = iterator.bookmark
        if not bookmark:
            break
        assert bookmark == f"k{len(seen):03d}"
        start = bookmark
    assert seen == keys[:90]
    assert pages == 5  # 20+20+20+20+10
    # A page that ends exactly at the end of the range is exhausted with no bookmark.
    sim = ledger.new_simulator("q-exact")
    iterator = sim.get_state_range_scan_iterator_with_pagination(NS, "k080", "k090", 10)
    assert len(list(iterator)) == 10
    assert iterator.bookmark == ""
    assert sim.get_results().range_queries(NS)[0].itr_exhausted is True


def test_paginated_query_requires_read_only_tx(ledger: Ledger) -> None:
    sim = ledger.new_simulator("t1")
    sim.put_state(NS, "k", b"v")
    with pytest.raises(ReadOnlyViolation, match="supported only in a read-only transaction"):
        sim.get_state_range_scan_iterator_with_pagination(NS, "", "", 10)
    sim2 = ledger.new_simulator("t2")
    sim2.get_state_range_scan_iterator_with_pagination(NS, "", "", 10)
    for write in (
        lambda: sim2.put_state(NS, "k", b"v"),
        lambda: sim2.delete_state(NS, "k"),
        lambda: sim2.set_state_metadata(NS, "k", {}),
    ):
        with pytest.raises(ReadOnlyViolation, match="Writes are not allowed"):
            write()
    assert sim2.has_writes() is False
    assert issubclass(ReadOnlyViolation, LedgerError)


# -- validation and commit ----------------------------------------------------------------


def test_mvcc_read_conflict(ledger: Ledger) -> None:
    commit_writes(ledger, "t0", {"counter": b"0"})
    first, second = ledger.new_simulator("t1"), ledger.new_simulator("t2")
    for sim in (first, second):
        value = int(sim.get_state(NS, "counter"))
        sim.put_state(NS, "counter", str(value + 1).encode())
    assert ledger.commit("t1", first.get_results()) is ValidationCode.VALID
    assert ledger.commit("t2", second.get_results()) is ValidationCode.MVCC_READ_CONFLICT
    assert ledger.get_state(NS, "counter") == b"1"
    assert ledger.get_version(NS, "counter") == Height(1, 0)
    assert ledger.get_tx_validation_code("t2") is ValidationCode.MVCC_READ_CONFLICT
    assert ledger.height == 3


def test_read_of_missing_key_conflicts_with_its_creation(ledger: Ledger) -> None:
    sim = ledger.new_simulator("t1")
    assert sim.get_state(NS, "k") is None
    sim.put_state(NS, "other", b"x")
    commit_writes(ledger, "t0", {"k": b"created"})
    assert ledger.commit("t1", sim.get_results()) is ValidationCode.MVCC_READ_CONFLICT
    assert ledger.get_state(NS, "other") is None


def test_blind_writes_do_not_conflict(ledger: Ledger) -> None:
    first, second = ledger.new_simulator("t1"), ledger.new_simulator("t2")
    first.put_state(NS, "k", b"1")
    second.put_state(NS, "k", b"2")
    assert ledger.commit("t1", first.get_results()) is ValidationCode.VALID
    assert ledger.commit("t2", second.get_results()) is ValidationCode.VALID
    assert ledger.get_state(NS, "k") == b"2"


def test_phantom_read_insert_into_scanned_range(ledger: Ledger) -> None:
    commit_writes(ledger, "t0", {"a1": b"", "a3": b"x", "b1": b"x"})
    sim = ledger.new_simulator("t1")
    assert scan(sim, "a", "b") == ["a3"]
    sim.put_state(NS, "summary", b"1")
    other = ledger.new_simulator("t2")
    other.put_state(NS, "a2", b"new")
    assert ledger.commit("t2", other.get_results()) is ValidationCode.VALID
    assert ledger.commit("t1", sim.get_results()) is ValidationCode.PHANTOM_READ_CONFLICT
    assert ledger.get_state(NS, "summary") is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"a2": b"new"}, ValidationCode.PHANTOM_READ_CONFLICT),  # insert inside the range
        ({"a1": b""}, ValidationCode.PHANTOM_READ_CONFLICT),  # delete of a scanned key
        ({"a3": b"upd"}, ValidationCode.PHANTOM_READ_CONFLICT),  # update of a scanned key
        ({"b0": b"new"}, ValidationCode.VALID),  # insert at the excluded end key
        ({"0": b"new"}, ValidationCode.VALID),  # insert before the range
    ],
)
def test_phantom_detection_after_full_scan(ledger: Ledger, change, expected) -> None:
    commit_writes(ledger, "t0", {"a1": b"x", "a3": b"x", "b0": b"x"})
    sim = ledger.new_simulator("t1")
    scan(sim, "a", "b0")
    sim.put_state(NS, "out", b"1")
    other = ledger.new_simulator("t2")
    for key, value in change.items():
        other.put_state(NS, key, value)
    assert ledger.commit("t2", other.get_results()) is ValidationCode.VALID
    assert ledger.commit("t1", sim.get_results()) is expected


def test_partial_scan_ignores_changes_beyond_last_read(ledger: Ledger) -> None:
    commit_writes(ledger, "t0", {f"k{i}": b"x" for i in range(6)})
    sim = ledger.new_simulator("t1")
    iterator = sim.get_state_range_scan_iterator(NS, "k0", "")
    assert [next(iterator).key, next(iterator).key] == ["k0", "k1"]
    sim.put_state(NS, "out", b"1")
    commit_writes(ledger, "t2", {"k3": b"changed", "k25": b"new"})
    assert ledger.commit("t1", sim.get_results()) is ValidationCode.VALID
    sim = ledger.new_simulator("t3")
    iterator = sim.get_state_range_scan_iterator(NS, "k0", "")
    assert [next(iterator).key, next(iterator).key] == ["k0", "k1"]
    commit_writes(ledger, "t4", {"k1": b"changed"})  # the last key read is inclusive
    assert ledger.commit("t3", sim.get_results()) is ValidationCode.PHANTOM_READ_CONFLICT


def test_duplicate_txid(ledger: Ledger) -> None:
    sim = ledger.new_simulator("dup")
    sim.put_state(NS, "k", b"1")
    results = sim.get_results()
    assert ledger.commit("dup", results) is ValidationCode.VALID
    assert ledger.commit("dup", results) is ValidationCode.DUPLICATE_TXID
    other = ledger.new_simulator("x")
    other.put_state(NS, "k", b"2")
    codes = ledger.commit_block([("x", other.get_results()), ("x", other.get_results())])
    assert codes == [ValidationCode.VALID, ValidationCode.DUPLICATE_TXID]
    assert ledger.txid_exists("x") and not ledger.txid_exists("never")
    assert ledger.get_tx_validation_code("x") is ValidationCode.VALID
    assert ledger.get_version(NS, "k") == Height(2, 0)


def test_commit_block_validates_in_order(ledger: Ledger) -> None:
    commit_writes(ledger, "t0", {"a": b"0", "b": b"0"})

    def increment(txid: str, key: str) -> SimulationResults:
        sim = ledger.new_simulator(txid)
        sim.put_state(NS, key, str(int(sim.get_state(NS, key)) + 1).encode())
        return sim.get_results()

    blind = ledger.new_simulator("t4")
    blind.put_state(NS, "c", b"blind")
    scanner = ledger.new_simulator("t5")
    scan(scanner, "", "")
    scanner.put_state(NS, "d", b"x")
    block = [
        ("t1", increment("t1", "a"), 1000.0),
        ("t2", increment("t2", "a")),  # read a@(0,0), but t1 wrote a in this block
        ("t3", increment("t3", "b"), 1003.5),
        ("t4", blind.get_results()),
        ("t5", scanner.get_results()),  # scanned a, b before t1/t3/t4 changed them
    ]
    codes = ledger.commit_block(block)
    assert codes == [
        ValidationCode.VALID,
        ValidationCode.MVCC_READ_CONFLICT,
        ValidationCode.VALID,
        ValidationCode.VALID,
        ValidationCode.PHANTOM_READ_CONFLICT,
    ]
    assert ledger.height == 2
    assert ledger.get_state(NS, "a") == b"1"
    assert ledger.get_version(NS, "a") == Height(1, 0)
    assert ledger.get_version(NS, "b") == Height(1, 2)
    assert ledger.get_version(NS, "c") == Height(1, 3)
    assert ledger.get_state(NS, "d") is None
    # Each transaction's history entries carry its own (channel header) timestamp.
    history = ledger.get_history_for_key(NS, "a")
    assert [(m.tx_id, m.value, m.timestamp) for m in history[:1]] == [("t1", b"1", 1000.0)]
    history = ledger.get_history_for_key(NS, "b")
    assert [(m.tx_id, m.value, m.timestamp) for m in history[:1]] == [("t3", b"1", 1003.5)]


def test_later_tx_sees_earlier_delete_in_same_block(ledger: Ledger) -> None:
    commit_writes(ledger, "t0", {"a": b"x", "b": b"x"})
    deleter = ledger.new_simulator("t1")
    deleter.delete_state(NS, "a")
    reader = ledger.new_simulator("t2")
    scan(reader, "", "")
    reader.put_state(NS, "r", b"x")
    blind = ledger.new_simulator("t3")
    assert blind.get_state(NS, "zzz") is None
    blind.put_state(NS, "zzz", b"x")
    codes = ledger.commit_block(
        [("t1", deleter.get_results()), ("t2", reader.get_results()), ("t3", blind.get_results())]
    )
    assert codes == [
        ValidationCode.VALID,
        ValidationCode.PHANTOM_READ_CONFLICT,
        ValidationCode.VALID,
    ]
    assert ledger.get_state(NS, "a") is None
    assert ledger.get_state(NS, "zzz") == b"x"


def test_read_conflicts_with_any_earlier_update_in_block(ledger: Ledger) -> None:
    # The deleted key never existed, so the version compare alone would pass; Fabric (and we)
    # reject any read of a key that an earlier transaction of the same block wrote.
    deleter = ledger.new_simulator("t1")
    deleter.delete_state(NS, "never")
    reader = ledger.new_simulator("t2")
    assert reader.get_state(NS, "never") is None
    reader.put_state(NS, "out", b"x")
    codes = ledger.commit_block([("t1", deleter.get_results()), ("t2", reader.get_results())])
    assert codes == [ValidationCode.VALID, ValidationCode.MVCC_READ_CONFLICT]


def test_empty_block_advances_height(ledger: Ledger) -> None:
    assert ledger.commit_block([]) == []
    assert ledger.height == 1


# -- metadata -----------------------------------------------------------------------------


def test_metadata_round_trip(ledger: Ledger) -> None:
    sim = ledger.new_simulator("t1")
    sim.put_state(NS, "k", b"v")
    sim.set_state_metadata(NS, "k", {"VALIDATION_PARAMETER": b"policy", "a": b""})
    sim.set_state_metadata(NS, "ghost", {"x": b"y"})  # key never exists: no-op at commit
    results = sim.get_results()
    assert results.metadata_writes(NS) == {
        "ghost": {"x": b"y"},
        "k": {"VALIDATION_PARAMETER": b"policy", "a": b""},
    }
    kv = kv_rwset_pb2.KVRWSet.FromString(results.to_proto().ns_rwset[0].rwset)
    assert [e.name for e in kv.metadata_writes[1].entries] == ["VALIDATION_PARAMETER", "a"]
    assert ledger.commit("t1", results) is ValidationCode.VALID
    assert ledger.get_state(NS, "ghost") is None
    reader = ledger.new_simulator("t2")
    assert reader.get_state_metadata(NS, "k") == {"VALIDATION_PARAMETER": b"policy", "a": b""}
    assert reader.get_state_metadata(NS, "nope") == {}
    assert reader.get_results().reads(NS) == {"k": Height(0, 0), "nope": None}

    commit_writes(ledger, "t3", {"k": b"v2"})  # value-only update keeps metadata
    assert ledger.get_state_metadata(NS, "k") == {"VALIDATION_PARAMETER": b"policy", "a": b""}

    sim = ledger.new_simulator("t4")
    sim.set_state_metadata(NS, "k", {"only": b"this"})  # metadata-only update bumps version
    assert ledger.commit("t4", sim.get_results()) is ValidationCode.VALID
    assert ledger.get_state(NS, "k") == b"v2"
    assert ledger.get_version(NS, "k") == Height(2, 0)
    assert ledger.get_state_metadata(NS, "k") == {"only": b"this"}

    sim = ledger.new_simulator("t5")
    sim.set_state_metadata(NS, "k", {})
    assert ledger.commit("t5", sim.get_results()) is ValidationCode.VALID
    assert ledger.get_state_metadata(NS, "k") == {}

    sim = ledger.new_simulator("t6")
    sim.set_state_metadata(NS, "k", {"m": b"1"})
    sim.delete_state(NS, "k")
    assert ledger.commit("t6", sim.get_results()) is ValidationCode.VALID
    assert ledger.get_state_metadata(NS, "k") == {}
    assert ledger.get_version(NS, "k") is None


# -- history ------------------------------------------------------------------------------


def test_history_newest_first_with_deletes(ledger: Ledger) -> None:
    for i, value in enumerate([b"v1", b"v2", b"", b"v4"]):
        sim = ledger.new_simulator(f"h{i}")
        sim.put_state(NS, "k", value)
        sim.put_state(NS, "other", b"noise")
        assert (
            ledger.commit(f"h{i}", sim.get_results(), timestamp=100.0 + i) is ValidationCode.VALID
        )
    failed = ledger.new_simulator("bad")
    failed.get_state(NS, "k")
    failed.put_state(NS, "k", b"never")
    commit_writes(ledger, "h9", {"k": b"v5"})
    assert ledger.commit("bad", failed.get_results()) is ValidationCode.MVCC_READ_CONFLICT
    sim = ledger.new_simulator("q")
    history = list(sim.get_history_for_key(NS, "k"))
    assert [tuple(m)[:2] + tuple(m)[3:] for m in history] == [
        ("h9", b"v5", False),
        ("h3", b"v4", False),
        ("h2", b"", True),
        ("h1", b"v2", False),
        ("h0", b"v1", False),
    ]
    assert [m.timestamp for m in history[1:]] == [103.0, 102.0, 101.0, 100.0]
    assert isinstance(history[0], KeyModification) and history[0].timestamp > 1e9
    assert sim.get_results().namespaces == []  # history queries are not in the read set
    assert list(sim.get_history_for_key(NS, "unknown")) == []


def test_history_disabled() -> None:
    ledger = LedgerManager(history=False).get("ch")
    commit_writes(ledger, "t1", {"k": b"v"})
    assert ledger.history_enabled is False
    with pytest.raises(LedgerError, match="history database is not enabled"):
        ledger.new_simulator("t2").get_history_for_key(NS, "k")
    with pytest.raises(LedgerError, match="history database is not enabled"):
        ledger.get_history_for_key(NS, "k")


# -- rwset protobuf -----------------------------------------------------------------------


def test_rwset_proto_is_sorted_and_round_trips(ledger: Ledger) -> None:
    commit_writes(ledger, "t0", {"r1": b"x", "r2": b"x"}, ns="zeta")
    sim = ledger.new_simulator("t1")
    for key in ["m", "c", "x", "a"]:
        sim.put_state("beta", key, key.encode())
    sim.get_state("zeta", "r2")
    sim.get_state("zeta", "r1")
    sim.get_state("zeta", "r0")
    scan(sim, "r", "s", ns="zeta")
    sim.set_state_metadata("alpha", "k", {"n": b"v"})
    results = sim.get_results()
    assert results.namespaces == ["alpha", "beta", "zeta"]

    tx = rwset_pb2.TxReadWriteSet.FromString(results.to_bytes())
    assert tx.data_model == rwset_pb2.TxReadWriteSet.KV
    assert [ns.namespace for ns in tx.ns_rwset] == ["alpha", "beta", "zeta"]
    beta = kv_rwset_pb2.KVRWSet.FromString(tx.ns_rwset[1].rwset)
    assert [w.key for w in beta.writes] == ["a", "c", "m", "x"]
    assert [w.value for w in beta.writes] == [b"a", b"c", b"m", b"x"]
    zeta = kv_rwset_pb2.KVRWSet.FromString(tx.ns_rwset[2].rwset)
    assert [r.key for r in zeta.reads] == ["r0", "r1", "r2"]
    assert not zeta.reads[0].HasField("version")
    assert (zeta.reads[1].version.block_num, zeta.reads[1].version.tx_num) == (0, 0)
    assert zeta.reads[1].HasField("version")
    (info,) = zeta.range_queries_info
    assert (info.start_key, info.end_key, info.itr_exhausted) == ("r", "s", True)
    assert [r.key for r in info.raw_reads.kv_reads] == ["r1", "r2"]
    alpha = kv_rwset_pb2.KVRWSet.FromString(tx.ns_rwset[0].rwset)
    assert alpha.metadata_writes[0].entries[0].value == b"v"

    parsed = SimulationResults.from_bytes(results.to_bytes())
    assert parsed == results
    assert parsed.to_bytes() == results.to_bytes()
    assert ledger.commit("t1", parsed) is ValidationCode.VALID
    assert ledger.get_state("beta", "m") == b"m"


def test_from_bytes_rejects_garbage() -> None:
    with pytest.raises(LedgerError):
        SimulationResults.from_bytes(b"\xff\xff\xff")


# -- persistence --------------------------------------------------------------------------


def test_sqlite_ledger_survives_restart(tmp_path) -> None:
    manager = LedgerManager(str(tmp_path))
    ledger = manager.get("ch1")
    manager.get("ch2")
    sim = ledger.new_simulator("t1")
    sim.put_state(NS, "\x00composite\x00key\x00", b"c")
    sim.put_state(NS, "plain", b"p")
    sim.set_state_metadata(NS, "plain", {"VALIDATION_PARAMETER": b"pol"})
    assert ledger.commit("t1", sim.get_results(), timestamp=42.0) is ValidationCode.VALID
    commit_writes(ledger, "t2", {"plain": b"p2", "gone": b"x"})
    sim = ledger.new_simulator("t3")
    sim.delete_state(NS, "gone")
    assert ledger.commit("t3", sim.get_results()) is ValidationCode.VALID
    stale = ledger.new_simulator("t4")
    stale.get_state(NS, "plain")
    stale.put_state(NS, "plain", b"stale")
    commit_writes(ledger, "t5", {"plain": b"p3"})
    assert ledger.commit("t4", stale.get_results()) is ValidationCode.MVCC_READ_CONFLICT
    manager.close()
    with pytest.raises(LedgerError):
        manager.get("ch1")

    reopened = LedgerManager(str(tmp_path))
    assert reopened.channels() == ["ch1", "ch2"]
    ledger = reopened.get("ch1", create=False)
    assert ledger.height == 5
    assert ledger.get_state(NS, "plain") == b"p3"
    assert ledger.get_version(NS, "plain") == Height(3, 0)
    assert ledger.get_state_metadata(NS, "plain") == {"VALIDATION_PARAMETER": b"pol"}
    assert ledger.get_state(NS, "gone") is None
    assert ledger.get_tx_validation_code("t4") is ValidationCode.MVCC_READ_CONFLICT
    sim = ledger.new_simulator("t6")
    assert scan(sim, "", "") == ["\x00composite\x00key\x00", "plain"]
    history = list(sim.get_history_for_key(NS, "plain"))
    assert [(m.tx_id, m.value) for m in history] == [("t5", b"p3"), ("t2", b"p2"), ("t1", b"p")]
    assert history[-1].timestamp == 42.0
    assert [m.is_delete for m in sim.get_history_for_key(NS, "gone")] == [True, False]
    assert ledger.commit("t1", SimulationResults()) is ValidationCode.DUPLICATE_TXID
    commit_writes(ledger, "t7", {"after": b"restart"})
    # Block 5 held only the duplicate, yet it was committed (as invalid), like in Fabric.
    assert ledger.get_version(NS, "after") == Height(6, 0)
    reopened.close()
    again = LedgerManager(str(tmp_path))
    assert again.get("ch1").get_state(NS, "after") == b"restart"
    again.close()


def test_sqlite_file_problems_are_ledger_errors(tmp_path) -> None:
    (tmp_path / "bad.sqlite").write_bytes(b"not a database " * 100)
    with pytest.raises(LedgerError, match="cannot open ledger file"):
        LedgerManager(str(tmp_path)).get("bad")
    ledger = Ledger("one", path=str(tmp_path / "x.sqlite"))
    commit_writes(ledger, "t1", {"k": b"v"})
    sim = ledger.new_simulator("t2")
    ledger.close()
    ledger.close()  # idempotent
    with pytest.raises(LedgerError, match="closed"):
        list(sim.get_history_for_key(NS, "k"))
    with pytest.raises(LedgerError, match="holds the ledger of channel 'one'"):
        Ledger("two", path=str(tmp_path / "x.sqlite"))


def test_missing_ledger_without_create(tmp_path) -> None:
    with pytest.raises(LedgerError, match="failed to find ledger for channel: nochan"):
        LedgerManager().get("nochan", create=False)
    with pytest.raises(LedgerError, match="failed to find ledger for channel: nochan"):
        LedgerManager(str(tmp_path)).get("nochan", create=False)
    manager = LedgerManager()
    ledger = manager.get("yes")
    assert manager.get("yes", create=False) is ledger
    assert manager.channels() == ["yes"]


def test_closed_ledger_rejects_work(ledger: Ledger) -> None:
    ledger.close()
    with pytest.raises(LedgerError, match="closed"):
        ledger.new_simulator("t1")
    with pytest.raises(LedgerError, match="closed"):
        ledger.commit("t1", SimulationResults())


# -- concurrency --------------------------------------------------------------------------


def test_concurrent_increments_with_retry_reach_exact_total(ledger: Ledger) -> None:
    commit_writes(ledger, "init", {"counter": b"0"})
    threads_n, increments = 8, 40
    conflicts = []

    def worker(worker_id: int) -> None:
        for i in range(increments):
            attempt = 0
            while True:
                txid = f"w{worker_id}-{i}-{attempt}"
                sim = ledger.new_simulator(txid)
                value = int(sim.get_state(NS, "counter"))
                scan(sim, "counter", "counter\x00")
                sim.put_state(NS, "counter", str(value + 1).encode())
                sim.put_state(NS, f"log-{worker_id}-{i}", b"x")
                sim.done()
                code = ledger.commit(txid, sim.get_results())
                if code is ValidationCode.VALID:
                    break
                assert code in (
                    ValidationCode.MVCC_READ_CONFLICT,
                    ValidationCode.PHANTOM_READ_CONFLICT,
                )
                conflicts.append(txid)
                attempt += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]
    # Switch threads far more often than the default 5 ms so that races have a chance.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert ledger.get_state(NS, "counter") == str(threads_n * increments).encode()
    assert ledger.height == 1 + threads_n * increments + len(conflicts)
    history = ledger.get_history_for_key(NS, "counter")
    assert [int(m.value) for m in history] == list(range(threads_n * increments, -1, -1))
    assert len(scan(ledger.new_simulator("end"), "log-", "log.")) == threads_n * increments


def test_range_iteration_while_committing(ledger: Ledger) -> None:
    commit_writes(ledger, "t0", {f"k{i:05d}": b"x" for i in range(0, 2000, 2)})
    stop = threading.Event()
    errors: list[BaseException] = []

    def committer() -> None:
        n = 0
        try:
            while not stop.is_set():
                sim = ledger.new_simulator(f"c{n}")
                sim.put_state(NS, f"k{(2 * n + 1) % 2000:05d}", b"new")
                sim.delete_state(NS, f"k{(4 * n) % 2000:05d}")
                ledger.commit(f"c{n}", sim.get_results())
                n += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=committer)
    thread.start()
    try:
        for round_ in range(20):
            sim = ledger.new_simulator(f"r{round_}")
            keys = scan(sim, "", "")
            assert keys == sorted(keys) and len(keys) == len(set(keys))
            sim.put_state(NS, "x", b"1")
            # Committing after concurrent changes to the scanned range must be caught.
            code = ledger.commit(f"r{round_}", sim.get_results())
            assert code in (ValidationCode.VALID, ValidationCode.PHANTOM_READ_CONFLICT)
    finally:
        stop.set()
        thread.join()
    assert not errors


# -- property -----------------------------------------------------------------------------

_alphabet = st.sampled_from(["a", "b", "\x00", "\u00e9", "\U0001f600"])
_keys = st.text(alphabet=_alphabet, min_size=1, max_size=3)
_bounds = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=2)


@settings(max_examples=60, deadline=None)
@given(
    blocks=st.lists(
        st.lists(st.tuples(_keys, st.one_of(st.none(), st.binary(max_size=3))), max_size=6),
        max_size=6,
    ),
    bounds=st.tuples(_bounds, _bounds),
)
def test_state_matches_a_dict_model(blocks, bounds) -> None:
    ledger = Ledger("prop")
    model: dict[str, bytes] = {}
    for number, writes in enumerate(blocks):
        sim = ledger.new_simulator(f"t{number}")
        expected_writes: dict[str, bytes | None] = {}
        for key, value in writes:
            if value is None:
                sim.delete_state(NS, key)
            else:
                sim.put_state(NS, key, value)
            expected_writes[key] = value or None
        assert sim.get_results().writes(NS) == expected_writes
        assert ledger.commit(f"t{number}", sim.get_results()) is ValidationCode.VALID
        for key, value in expected_writes.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
    start, end = bounds
    sim = ledger.new_simulator("check")
    got = [(kv.key, kv.value) for kv in sim.get_state_range_scan_iterator(NS, start, end)]
    expected = sorted(
        (k, v)
        for k, v in model.items()
        if k.encode() >= start.encode() and (not end or k.encode() < end.encode())
    )
    assert got == expected
    assert [sim.get_state(NS, k) for k in model] == list(model.values())
    # The recorded range replays cleanly against unchanged state.
    sim.put_state(NS, "zz-marker", b"1")
    assert ledger.commit("check", sim.get_results()) is ValidationCode.VALID


# -- snapshots: every read of one simulation sees one committed state ----------------------


def transfer(ledger: Ledger, txid: str, amount: int) -> ValidationCode:
    sim = ledger.new_simulator(txid)
    a, b = int(sim.get_state(NS, "A")), int(sim.get_state(NS, "B"))
    sim.put_state(NS, "A", str(a - amount).encode())
    sim.put_state(NS, "B", str(b + amount).encode())
    sim.done()
    return ledger.commit(txid, sim.get_results())


def test_reads_after_a_commit_see_the_state_the_simulation_started_from(ledger: Ledger) -> None:
    commit_writes(ledger, "t0", {"A": b"50", "B": b"50", "gone": b"old", "kept": b"k"})
    sim = ledger.new_simulator("reader")
    assert sim.get_state(NS, "A") == b"50"
    assert transfer(ledger, "t1", 20) is ValidationCode.VALID
    commit_writes(ledger, "t2", {"new": b"n", "kept": b"k2"})
    deleter = ledger.new_simulator("t3")
    deleter.delete_state(NS, "gone")
    assert ledger.commit("t3", deleter.get_results()) is ValidationCode.VALID
    # B after A's transfer committed: still the B of the state A was read from.
    assert sim.get_state(NS, "B") == b"50"
    assert sim.get_state_multiple(NS, ["B", "kept", "new", "gone"]) == [b"50", b"k", None, b"old"]
    assert sim.get_state_metadata(NS, "gone") == {}
    # A range query agrees with GET_STATE: no key created since, deleted keys still there.
    got = [(kv.key, kv.value) for kv in sim.get_state_range_scan_iterator(NS, "", "")]
    assert got == [("A", b"50"), ("B", b"50"), ("gone", b"old"), ("kept", b"k")]
    assert ledger.get_state(NS, "A") == b"30"  # outside the simulation: the latest state
    reads = sim.get_results().reads(NS)
    assert reads["B"] == Height(0, 0) and reads["new"] is None
    # ... and MVCC then rejects the stale simulation if it writes.
    sim.put_state(NS, "A", b"0")
    sim.done()
    assert ledger.commit("reader", sim.get_results()) is ValidationCode.MVCC_READ_CONFLICT


def test_snapshot_range_in_chunks_sees_deleted_and_recreated_keys(ledger: Ledger) -> None:
    commit_writes(ledger, "t0", {f"k{i:04d}": b"v0" for i in range(400)})
    sim = ledger.new_simulator("reader")
    iterator = sim.get_state_range_scan_iterator(NS, "", "")
    first = [next(iterator) for _ in range(10)]
    # Between chunks: delete every other key, recreate some, insert new ones in between.
    changer = ledger.new_simulator("t1")
    for i in range(0, 400, 2):
        changer.delete_state(NS, f"k{i:04d}")
        changer.put_state(NS, f"k{i:04d}x", b"new")
    assert ledger.commit("t1", changer.get_results()) is ValidationCode.VALID
    commit_writes(ledger, "t2", {f"k{i:04d}": b"again" for i in range(0, 400, 4)})
    rest = list(iterator)
    assert [kv.key for kv in first + rest] == [f"k{i:04d}" for i in range(400)]
    assert {kv.value for kv in first + rest} == {b"v0"}
    # A second simulation started now sees the new state, while the first still lives.
    now = ledger.new_simulator("now")
    keys = scan(now, "", "")
    assert len(keys) == 500 and "k0002" not in keys and "k0004" in keys and "k0002x" in keys
    assert now.get_state(NS, "k0004") == b"again"
    assert sim.get_state(NS, "k0004") == b"v0"


def test_transfers_never_show_a_sum_that_never_existed(ledger: Ledger) -> None:
    commit_writes(ledger, "init", {"A": b"1000", "B": b"1000"})
    stop = threading.Event()
    errors: list[BaseException] = []

    def transfers() -> None:
        n = 0
        try:
            while not stop.is_set():
                transfer(ledger, f"x{n}", 1 if n % 3 else -2)
                n += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=transfers)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread.start()
    try:
        # Read until many transfers have committed meanwhile (bounded, should it starve).
        for i in range(100_000):
            if ledger.height > 300:
                break
            sim = ledger.new_simulator(f"r{i}")
            a = int(sim.get_state(NS, "A"))
            b = int(sim.get_state(NS, "B"))
            assert a + b == 2000, (a, b)
            ranged = {kv.key: int(kv.value) for kv in sim.get_state_range_scan_iterator(NS, "", "")}
            assert ranged == {"A": a, "B": b}  # the range agrees with GET_STATE
            sim.done()
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    assert not errors
    assert ledger.height > 300  # the transfers really ran alongside


def test_old_values_are_kept_only_while_a_simulation_needs_them(ledger: Ledger) -> None:
    commit_writes(ledger, "t0", {"a": b"0"})
    state = ledger._state
    live = ledger.new_simulator("live")
    for n in range(1, 6):
        commit_writes(ledger, f"t{n}", {"a": str(n).encode(), f"b{n}": b"x"})
    assert live.get_state(NS, "a") == b"0"
    assert len(state._old[(NS, "a")]) == 5
    live.done()
    commit_writes(ledger, "t6", {"a": b"6"})
    assert state._old == {} and state._ghosts == {}
    # A simulator dropped without done() does not pin old values either.
    dropped = ledger.new_simulator("dropped")
    dropped.get_state(NS, "a")
    del dropped
    commit_writes(ledger, "t7", {"a": b"7"})
    commit_writes(ledger, "t8", {"a": b"8"})
    assert state._old == {}
    # Simulations that only query leave nothing behind, even while nothing commits.
    for n in range(1000):
        ledger.new_simulator(f"q{n}").done()
    assert not state._snapshots


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(
                st.just("commit"),
                st.lists(st.tuples(_keys, st.one_of(st.none(), st.binary(max_size=2))), max_size=4),
            ),
            st.tuples(st.just("open"), st.none()),
            st.tuples(st.just("close"), st.integers(min_value=0, max_value=7)),
        ),
        max_size=25,
    )
)
def test_every_snapshot_matches_the_state_at_its_height(steps) -> None:
    ledger = Ledger("prop")
    model: dict[str, bytes] = {}
    live: list[tuple[TxSimulator, dict[str, bytes]]] = []
    for number, (op, arg) in enumerate(steps):
        if op == "commit":
            sim = ledger.new_simulator(f"t{number}")
            for key, value in arg:
                sim.put_state(NS, key, value or b"")
            sim.done()
            assert ledger.commit(f"t{number}", sim.get_results()) is ValidationCode.VALID
            for key, value in arg:
                if value:
                    model[key] = value
                else:
                    model.pop(key, None)
        elif op == "open":
            live.append((ledger.new_simulator(f"s{number}"), dict(model)))
        elif live:
            sim, _ = live.pop(arg % len(live))
            sim.done()
        for sim, seen in live:
            got = {kv.key: kv.value for kv in sim.get_state_range_scan_iterator(NS, "", "")}
            assert got == seen
            assert all(sim.get_state(NS, key) == value for key, value in seen.items())


# -- totalQueryLimit, page sizes, write set limit ------------------------------------------


def test_range_stopped_by_total_query_limit_records_only_what_it_returned() -> None:
    ledger = Ledger("limits", total_query_limit=3)
    commit_writes(ledger, "t0", {f"k{i}": b"v" for i in range(6)})
    sim = ledger.new_simulator("scanner")
    assert scan(sim, "", "") == ["k0", "k1", "k2"]
    sim.put_state(NS, "out", b"1")
    (query,) = sim.get_results().range_queries(NS)
    assert (query.end_key, query.itr_exhausted) == ("k2", False)
    assert [read.key for read in query.reads] == ["k0", "k1", "k2"]
    # A change to the key it stopped before is no phantom: the scan never read it.
    commit_writes(ledger, "t1", {"k3": b"changed"})
    assert ledger.commit("scanner", sim.get_results()) is ValidationCode.VALID
    # A limit exactly at the end of the range: still not exhausted, so later keys are fine.
    sim = ledger.new_simulator("scanner2")
    assert scan(sim, "k3", "k6") == ["k3", "k4", "k5"]
    commit_writes(ledger, "t2", {"k55": b"after"})
    assert ledger.commit("scanner2", sim.get_results()) is ValidationCode.VALID


@pytest.mark.parametrize("page_size", [0, -1, -100])
def test_non_positive_page_size_means_no_page_limit(page_size: int) -> None:
    ledger = Ledger("pages", total_query_limit=5)
    commit_writes(ledger, "t0", {f"k{i}": b"v" for i in range(8)})
    sim = ledger.new_simulator("q")
    iterator = sim.get_state_range_scan_iterator_with_pagination(NS, "", "", page_size)
    assert [kv.key for kv in iterator] == ["k0", "k1", "k2", "k3", "k4"]  # totalQueryLimit
    assert iterator.bookmark == "k5"
    unlimited = Ledger("pages2")
    commit_writes(unlimited, "t0", {f"k{i}": b"v" for i in range(300)})
    sim = unlimited.new_simulator("q")
    iterator = sim.get_state_range_scan_iterator_with_pagination(NS, "", "", page_size)
    assert len(list(iterator)) == 300 and iterator.bookmark == ""


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(0, 300),
    page_size=st.integers(0, 140),
    limit=st.integers(0, 140),
    sizes=st.lists(st.integers(0, 150), min_size=1, max_size=8),
)
def test_taking_a_range_in_batches_returns_and_records_what_it_should(
    count: int, page_size: int, limit: int, sizes: list[int]
) -> None:
    ledger = Ledger("take", total_query_limit=limit)
    keys = [f"k{i:03d}" for i in range(count)]
    if keys:
        commit_writes(ledger, "t0", {key: key.encode() for key in keys})
    sim = ledger.new_simulator("q")
    if page_size:
        iterator = sim.get_state_range_scan_iterator_with_pagination(NS, "", "", page_size)
    else:
        iterator = sim.get_state_range_scan_iterator(NS, "", "")
    taken: list[str] = []
    values: list[bytes] = []
    for n in [*sizes, 1000, 1]:  # then to the end, and once beyond it
        got, got_values = iterator.take(n)
        assert len(got) == len(got_values) <= n
        taken += got
        values += got_values
    cap = min(c for c in (page_size, limit, count) if c or c == count)
    assert taken == keys[:cap] and values == [key.encode() for key in taken]
    if page_size:
        assert iterator.bookmark == (keys[cap] if cap < count else "")
    queries = sim.get_results().range_queries(NS)
    if not taken and cap < count:  # stopped before reading anything: nothing observed
        assert queries == []
        return
    (query,) = queries
    assert list(query.reads) == [(key, Height(0, 0)) for key in taken] == list(query.reads[:])
    assert SimulationResults.from_bytes(sim.get_results().to_bytes()).range_queries(NS) == [query]
    # Exhausted when the range ended within the cap, or a full page proved it ended there;
    # a totalQueryLimit never reads beyond itself.
    exhausted = cap == count and not (limit and limit == count and limit < (page_size or 10**9))
    assert query.itr_exhausted is exhausted
    assert query.end_key == ("" if exhausted else taken[-1])


def test_write_set_over_the_limit_fails_the_transaction() -> None:
    ledger = Ledger("big", max_write_set=1000)
    sim = ledger.new_simulator("t1")
    sim.put_state(NS, "a", b"x" * 500)
    sim.put_state(NS, "a", b"x" * 900)  # replaces the first value: 901 bytes in all
    with pytest.raises(WriteSetTooLarge, match="would exceed 1000 bytes"):
        sim.put_state(NS, "b", b"x" * 100)
    assert sim.get_state(NS, "a") is None  # reads still work ...
    with pytest.raises(WriteSetTooLarge):  # ... but the transaction has failed for good
        sim.put_state(NS, "c", b"")
    with pytest.raises(WriteSetTooLarge):
        sim.get_results()
    assert ledger.height == 0
    # Deletes and metadata count too; under the limit all is well.
    sim = ledger.new_simulator("t2")
    sim.delete_state(NS, "k" * 400)
    sim.set_state_metadata(NS, "m", {"n": b"v" * 500})
    with pytest.raises(WriteSetTooLarge):
        sim.delete_state(NS, "z" * 100)
    ok = ledger.new_simulator("t3")
    ok.put_state(NS, "a", b"x" * 990)
    assert ledger.commit("t3", ok.get_results()) is ValidationCode.VALID
    with pytest.raises(LedgerError, match="non-negative"):
        Ledger("bad", max_write_set=-1)


def test_sqlite_durability_levels(tmp_path) -> None:
    for level in ("off", "NORMAL", "full", "EXTRA"):
        path = str(tmp_path / f"{level}.sqlite")
        with Ledger("ch", path=path, synchronous=level) as ledger:
            commit_writes(ledger, "t0", {"a": b"1"})
            (mode,) = ledger._storage._db.execute("PRAGMA synchronous").fetchone()
            assert mode == {"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3}[level.upper()]
    with Ledger("ch", path=str(tmp_path / "default.sqlite")) as ledger:
        assert ledger._storage._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    with pytest.raises(LedgerError, match="one of OFF, NORMAL, FULL, EXTRA"):
        LedgerManager(str(tmp_path), synchronous="sometimes")
    # The configuration offers exactly these levels (it cannot import the ledger: see there).
    assert tuple(storage.SYNCHRONOUS_LEVELS) == config.SYNCHRONOUS_LEVELS


def test_txid_exists_for_valid_and_invalid_transactions(tmp_path) -> None:
    path = str(tmp_path / "ch.sqlite")
    with Ledger("ch", path=path) as ledger:
        commit_writes(ledger, "good", {"a": b"1"})
        stale = ledger.new_simulator("bad")
        stale.get_state(NS, "a")
        commit_writes(ledger, "other", {"a": b"2"})
        stale.put_state(NS, "a", b"3")
        assert ledger.commit("bad", stale.get_results()) is ValidationCode.MVCC_READ_CONFLICT
        assert ledger.txid_exists("good") and ledger.txid_exists("bad")
        assert not ledger.txid_exists("never")
    with Ledger("ch", path=path) as ledger:
        assert ledger.txid_exists("bad") and not ledger.txid_exists("never")


def test_one_ledger_directory_serves_one_manager(tmp_path) -> None:
    first = LedgerManager(str(tmp_path))
    with pytest.raises(LedgerError, match="is in use by another process"):
        LedgerManager(str(tmp_path))
    first.close()
    LedgerManager(str(tmp_path)).close()


def test_plain_results_match_the_general_path(ledger: Ledger) -> None:
    """Reads and writes only take get_results' short path; with a metadata write somewhere
    else it takes the general one: both give the same parts."""
    from actors.ledger.rwset import Read, Write

    commit_writes(ledger, "t0", {"a": b"1", "b": b"2"})
    commit_writes(ledger, "t1", {"x": b"9"}, ns="zz")

    def simulate(txid: str) -> TxSimulator:
        sim = ledger.new_simulator(txid)
        sim.put_state("zz", "y", b"new")
        sim.get_state("zz", "x")
        sim.get_state(NS, "missing")
        sim.get_state(NS, "b")
        sim.get_state(NS, "a")
        sim.delete_state(NS, "b")
        sim.put_state(NS, "a", b"3")
        sim.put_state(NS, "c", b"")  # an empty value is a delete
        return sim

    plain = simulate("t2").get_results()
    general_sim = simulate("t3")
    general_sim.set_state_metadata("other", "k", {"m": b"v"})
    general = general_sim.get_results()
    assert plain.namespaces == [NS, "zz"]
    assert general.namespaces == [NS, "other", "zz"]
    assert plain.ns_results == tuple(ns for ns in general.ns_results if ns.namespace != "other")
    mine = plain.namespace(NS)
    assert [read.key for read in mine.reads] == ["a", "b", "missing"]
    assert mine.reads[2] == Read("missing", None) and mine.reads[0].version is not None
    assert mine.writes == (Write("a", b"3"), Write("b", None), Write("c", None))
    assert plain.writes("zz") == {"y": b"new"}
    assert plain.namespace("nothing").is_empty()
