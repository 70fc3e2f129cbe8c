"""The pure parts of ``ccactors faults``: options, schedule, outcome accounting, the ledger
check, recovery times and the report. No peer runs here (see tests/integration/test_faults.py).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, replace

import pytest

from actors.errors import ExecuteTimeout, StartupTimeout
from actors.ledger import Ledger
from bench.faults import (
    ACTOR_FAULTS,
    CHAINCODE_FAULTS,
    DUPLICATED_WRITE,
    FAULT_KINDS,
    MISSING_WRITE,
    SUCCEEDED,
    UNEXPECTED_KEY,
    WRITE_WITHOUT_SUCCESS,
    WRONG_VALUE,
    Attempt,
    DuplicateOutcomeLog,
    FaultRecord,
    FaultReport,
    FaultsConfig,
    FaultsConfigError,
    Injection,
    LedgerCheck,
    LedgerReader,
    ObservedEvent,
    OutcomeBook,
    build_schedule,
    check_ledger,
    count_restarts,
    describe_failure,
    faults_for,
    parse_fault_list,
    relate,
    render_table,
    summarize,
)

# -- options ---------------------------------------------------------------------------------


def test_defaults_select_every_fault_that_applies() -> None:
    config = FaultsConfig()
    assert config.faults == FAULT_KINDS
    assert config.chaincode_names == ("faulty0", "faulty1")
    assert config.wait_bound == 3.0 + 10.0 + 5.0
    assert "pipe_garbage" not in FaultsConfig(runtime="docker").faults
    assert "pipe_garbage" not in faults_for("process")
    assert FaultsConfig(faults=("kill", "hang", "kill")).faults == ("kill", "hang")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"runtime": "external"}, "--runtime must be one of"),
        ({"clients": 0}, "--clients must be at least 1"),
        ({"chaincodes": 0}, "--chaincodes must be at least 1"),
        ({"duration": 0}, "--duration must be a positive"),
        ({"fault_every": -1}, "--fault-every must be a positive"),
        ({"fault_every": float("nan")}, "--fault-every must be a positive"),
        ({"execute_timeout": 0}, "--execute-timeout must be a positive"),
        ({"startup_timeout": 2}, "--startup-timeout must be at least 5"),
        ({"faults": ("kill", "explode")}, "unknown fault kind(s) explode"),
        ({"runtime": "docker", "faults": ("pipe_garbage",)}, "cannot be injected on the docker"),
    ],
)
def test_bad_options_are_clear_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(FaultsConfigError) as info:
        FaultsConfig(**changes)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_parse_fault_list() -> None:
    assert parse_fault_list("") == ()
    assert parse_fault_list("all") == ()
    assert parse_fault_list(" kill, hang ,,") == ("kill", "hang")


# -- schedule --------------------------------------------------------------------------------


def test_schedule_deals_every_kind_before_repeating_one() -> None:
    kinds = FAULT_KINDS
    schedule = build_schedule(kinds, 60, 2, ("a", "b"), seed=7)
    assert len(schedule) == 29  # 2, 4, ..., 58: strictly inside the load
    assert [f.at for f in schedule] == [2.0 * n for n in range(1, 30)]
    first_round = [f.kind for f in schedule[: len(kinds)]]
    assert sorted(first_round) == sorted(kinds)
    counts = Counter(f.kind for f in schedule)
    assert max(counts.values()) - min(counts.values()) <= 1
    for fault in schedule:
        if fault.kind in CHAINCODE_FAULTS:
            assert fault.target in ("a", "b")
        elif fault.kind in ACTOR_FAULTS:
            assert fault.target == ACTOR_FAULTS[fault.kind]
        else:
            assert fault.target == ""
    assert build_schedule(kinds, 60, 2, ("a", "b"), seed=7) == schedule
    assert build_schedule(kinds, 60, 2, ("a", "b"), seed=8) != schedule


def test_schedule_edges() -> None:
    assert build_schedule((), 60, 2, ("a",), seed=1) == ()
    assert build_schedule(("kill",), 1, 2, ("a",), seed=1) == ()  # shorter than one interval
    assert [f.at for f in build_schedule(("kill",), 8, 0.5, ("a",), seed=1)] == [
        0.5 * n for n in range(1, 16)
    ]


# -- outcome accounting ----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_every_outcome_is_accounted_once() -> None:
    clock = Clock()
    book = OutcomeBook(clock)
    ok = book.submit("t1", 0, "cc", "c0-1")
    book.executed(ok, "ok", result=object())
    book.conclude(ok, SUCCEEDED)
    timeout = book.submit("t2", 0, "cc", "c0-2")
    book.executed(timeout, describe_failure(ExecuteTimeout("timeout expired 3 s")))
    book.conclude(timeout, timeout.outcome or "")
    late = book.submit("t3", 1, "cc", "c1-1")
    book.give_up(late)
    clock.now = 30.0
    book.executed(late, "ok")  # answered after the client gave up
    lost = book.submit("t4", 1, "cc", "c1-2")
    book.give_up(lost)
    stuck = book.submit("t5", 2, "cc", "c2-1")  # the client never concluded it
    twice = book.submit("t6", 3, "cc", "c3-1")
    book.executed(twice, "ok")
    book.executed(twice, "ChaincodeStreamTerminated: gone")
    book.conclude(twice, SUCCEEDED)

    assert book.snapshot() == (6, 2, 1, 1)  # t5 in flight
    accounting = book.accounting()
    assert accounting.submitted == 6
    assert accounting.succeeded == 2
    assert dict(accounting.failures) == {"ExecuteTimeout: timeout expired N s": 1}
    assert accounting.failed == 1
    assert accounting.hung == 2
    assert accounting.late == 1
    assert accounting.lost == 2  # t4 and t5 never had an outcome
    assert accounting.unfinished == 1
    assert accounting.duplicated == 1
    assert [t.txid for t in accounting.examples["lost"]] == ["t4", "t5"]
    assert [t.txid for t in accounting.examples["duplicated"]] == ["t6"]
    assert accounting.examples["hung"][0].resolved_at == 30.0
    assert stuck.outcome is None
    assert {a.txid: a.succeeded for a in book.attempts()} == {
        "t1": True,
        "t2": False,
        "t3": False,
        "t4": False,
        "t5": False,
        "t6": True,
    }
    with pytest.raises(ValueError, match="submitted twice"):
        book.submit("t1", 0, "cc", "again")


def test_outcomes_come_from_the_futures_done_callback() -> None:
    book = OutcomeBook()
    good, bad = book.submit("g", 0, "cc", "k1"), book.submit("b", 0, "cc", "k2")
    futures: list[Future[str]] = [Future(), Future()]
    futures[0].add_done_callback(lambda f: book.resolve_future(good, f))
    futures[1].add_done_callback(lambda f: book.resolve_future(bad, f))
    futures[0].set_result("result")
    futures[1].set_exception(StartupTimeout("chaincode never1 did not register within 10 s"))
    assert good.done.is_set() and good.outcome == "ok" and good.result == "result"
    assert bad.outcome == "StartupTimeout: chaincode never1 did not register within N s"
    with pytest.raises(InvalidStateError):  # resolving twice raises in the resolver ...
        futures[0].set_result("again")
    assert book.accounting().duplicated == 0  # ... so the callback does not see it: the log does


def test_a_future_resolved_twice_is_counted_from_the_log() -> None:
    book = OutcomeBook()
    handler = DuplicateOutcomeLog(book)
    logger = logging.getLogger("tests.faults.resolver")
    logger.addHandler(handler)
    try:
        future: Future[int] = Future()
        future.set_result(1)
        try:
            future.set_result(2)
        except InvalidStateError:
            logger.exception("actor failed")  # what pykka logs when an actor's tell raises
        logger.error("unrelated error")
    finally:
        logger.removeHandler(handler)
    assert book.accounting().duplicated == 1
    assert handler.samples == ["tests.faults.resolver: actor failed"]


def test_describe_failure_groups_reasons() -> None:
    text = "chaincode faulty0 (pid 1234) exited: 3f2a9b1c0d4e5f60 after 2.5 s"
    assert describe_failure(RuntimeError(text)) == (
        "RuntimeError: chaincode faulty0 (pid N) exited: … after N s"
    )
    assert describe_failure(KeyError()) == "KeyError"
    assert describe_failure(ValueError("first\nsecond")) == "ValueError: first"


# -- the ledger check ------------------------------------------------------------------------


@dataclass(frozen=True)
class Mod:
    tx_id: str


class FakeLedger:
    """A LedgerView over dicts: state[(ns, key)] and history[(ns, key)] (newest first)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], bytes] = {}
        self.mods: dict[tuple[str, str], list[Mod]] = {}

    def write(self, ns: str, key: str, txid: str, value: bytes | None = None) -> None:
        self.values[(ns, key)] = txid.encode() if value is None else value
        self.mods.setdefault((ns, key), []).insert(0, Mod(txid))

    def state(self, namespace: str, key: str) -> bytes | None:
        return self.values.get((namespace, key))

    def history(self, namespace: str, key: str) -> Sequence[Mod]:
        return self.mods.get((namespace, key), [])

    def keys(self, namespace: str) -> Iterable[str]:
        return sorted(k for ns, k in self.values if ns == namespace)


def kinds(check: LedgerCheck) -> list[tuple[str, str]]:
    return sorted((p.kind, p.key) for p in check.problems)


def test_a_consistent_ledger() -> None:
    ledger = FakeLedger()
    ledger.write("cc", "k1", "t1")
    attempts = [Attempt("t1", "cc", "k1", True), Attempt("t2", "cc", "k2", False)]
    check = check_ledger(attempts, ledger, ["cc"])
    assert check.consistent
    assert (check.checked, check.committed) == (2, 1)
    assert check.counts() == {}


def test_the_ledger_check_detects_each_inconsistency() -> None:
    ledger = FakeLedger()
    ledger.write("cc", "orphan", "t-failed")  # committed, but its tx is not a success
    ledger.write("cc", "twice", "t-twice")  # written twice: duplicated
    ledger.write("cc", "twice", "t-twice")
    ledger.write("cc", "other", "t-other", value=b"someone else's value")
    ledger.write("cc", "stray", "t-nobody")  # no client wrote this key
    ledger.write("elsewhere", "x", "t-x")  # a namespace we were not asked about
    attempts = [
        Attempt("t-failed", "cc", "orphan", False),
        Attempt("t-lost", "cc", "missing", True),  # succeeded, write missing
        Attempt("t-twice", "cc", "twice", True),
        Attempt("t-other", "cc", "other", True),
    ]
    check = check_ledger(attempts, ledger, ["cc"])
    assert not check.consistent
    assert kinds(check) == [
        (DUPLICATED_WRITE, "twice"),
        (MISSING_WRITE, "missing"),
        (UNEXPECTED_KEY, "stray"),
        (WRITE_WITHOUT_SUCCESS, "orphan"),
        (WRONG_VALUE, "other"),
    ]
    assert check.counts() == {
        WRITE_WITHOUT_SUCCESS: 1,
        WRONG_VALUE: 1,
        MISSING_WRITE: 1,
        DUPLICATED_WRITE: 1,
        UNEXPECTED_KEY: 1,
    }
    duplicated = next(p for p in check.problems if p.kind == DUPLICATED_WRITE)
    assert duplicated.detail == "2 modifications: t-twice, t-twice"


def test_the_check_on_a_real_ledger() -> None:
    with Ledger("faults-test") as ledger:

        def commit(txid: str, key: str, value: str | None = None) -> None:
            sim = ledger.new_simulator(txid)
            sim.put_state("cc", key, (value or txid).encode())
            ledger.commit(txid, sim.get_results())
            sim.done()

        commit("t1", "c0-1")
        commit("t2", "c0-2")
        attempts = [Attempt("t1", "cc", "c0-1", True), Attempt("t2", "cc", "c0-2", True)]
        assert check_ledger(attempts, LedgerReader(ledger), ["cc"]).consistent
        commit("t3", "c0-2", value="t2")  # the same write committed again under another tx
        commit("t4", "c9-9")
        attempts.append(Attempt("t5", "cc", "c0-3", True))
        check = check_ledger(attempts, LedgerReader(ledger), ["cc"])
        assert kinds(check) == [
            (DUPLICATED_WRITE, "c0-2"),
            (MISSING_WRITE, "c0-3"),
            (UNEXPECTED_KEY, "c9-9"),
        ]


# -- recovery times --------------------------------------------------------------------------


def event(at: float, chaincode: str, kind: str, actor: str = "") -> ObservedEvent:
    return ObservedEvent(at, chaincode, kind, actor)


EVENTS = [
    event(0.5, "cc0", "ready"),  # before the injection: not a recovery
    event(1.1, "cc1", "exited"),  # another chaincode
    event(1.2, "cc0", "exited"),
    event(1.25, "cc0", "restart_scheduled"),
    event(1.3, "cc1", "ready"),
    event(1.6, "cc0", "ready"),
    event(2.4, "", "crashed", "registry"),
    event(2.5, "", "restarted", "registry"),
    event(3.2, "", "restarted", "launcher"),
]


def test_recovery_of_a_chaincode_fault_is_its_next_ready() -> None:
    record = relate(Injection(1.0, "kill", "cc0", True, "SIGKILL pid 1"), EVENTS)
    assert record.detected_s == pytest.approx(0.2)
    assert record.recovery_s == pytest.approx(0.6)
    assert [line.split()[1] for line in record.events] == ["exited", "restart_scheduled", "ready"]


def test_recovery_of_an_actor_fault_is_its_restart() -> None:
    record = relate(Injection(2.0, "crash_registry", "registry", True), EVENTS)
    assert record.detected_s == pytest.approx(0.4)
    assert record.recovery_s == pytest.approx(0.5)
    launcher = relate(Injection(3.0, "stop_launcher", "launcher", True), EVENTS)
    assert launcher.recovery_s == pytest.approx(0.2)


def test_no_recovery_event_and_faults_that_were_not_injected() -> None:
    missing = relate(Injection(2.0, "hang", "cc0", True), EVENTS)
    assert missing.recovery_s is None and missing.needs_recovery
    skipped = relate(Injection(1.0, "kill", "cc0", False, "no running instance"), EVENTS)
    assert skipped.recovery_s is None and not skipped.needs_recovery
    probe = relate(Injection(1.0, "never_registers", "never1", True), EVENTS)
    assert not probe.needs_recovery


def test_restarts_are_counted_from_events() -> None:
    restarts = count_restarts([*EVENTS, event(4.0, "cc0", "gave_up")])
    assert restarts.chaincode == 1
    assert dict(restarts.actors) == {"launcher": 1, "registry": 1}
    assert restarts.gave_up == 1
    assert restarts.total == 3


# -- the report ------------------------------------------------------------------------------


def make_report(**accounting_changes: int) -> FaultReport:
    book = OutcomeBook()
    for n in range(3):
        tx = book.submit(f"t{n}", 0, "faulty0", f"c0-{n}")
        book.executed(tx, "ok")
        book.conclude(tx, SUCCEEDED)
    failed = book.submit("tf", 0, "faulty0", "c0-f")
    book.executed(failed, "ChaincodeStreamTerminated: gone")
    book.conclude(failed, "ChaincodeStreamTerminated: gone")
    for n in range(accounting_changes.get("lost", 0)):
        book.give_up(book.submit(f"lost{n}", 1, "faulty1", f"c1-{n}"))
    config = FaultsConfig(duration=8, clients=2, fault_every=0.5, seed=3)
    records = (
        relate(Injection(1.0, "kill", "cc0", True, "SIGKILL pid 1"), EVENTS),
        relate(Injection(2.0, "crash_registry", "registry", True), EVENTS),
        relate(Injection(3.0, "kill", "cc0", False, "no running instance"), EVENTS),
        FaultRecord(
            Injection(
                4.0,
                "never_registers",
                "never1",
                True,
                probe="StartupTimeout: ...",
                probe_s=10.1,
                expected=True,
            ),
            None,
            None,
            (),
        ),
    )
    return FaultReport(
        config=config,
        seconds=8.01,
        accounting=book.accounting(),
        restarts=count_restarts(EVENTS),
        records=records,
        summaries=summarize(records, config.faults),
        ledger=LedgerCheck(4, 3, ()),
        events={"ready": 3},
        shutdown_s=0.4,
    )


def test_report_json_is_one_object_with_everything_asked_for() -> None:
    report = make_report()
    data = json.loads(json.dumps(report.to_json()))
    assert data["ok"] is True
    for key in ("submitted", "succeeded", "failed", "lost", "duplicated", "hung", "restarts"):
        assert isinstance(data[key], int), key
    assert (data["submitted"], data["succeeded"], data["failed"]) == (4, 3, 1)
    assert data["failures"] == {"ChaincodeStreamTerminated: gone": 1}
    kill = data["faults"]["kill"]
    assert (kill["injected"], kill["skipped"], kill["recovered"]) == (1, 1, 1)
    assert kill["recovery_s"] == {"min": 0.6, "median": 0.6, "max": 0.6, "values": [0.6]}
    assert data["faults"]["crash_registry"]["recovery_s"]["values"] == [0.5]
    assert kill["death_to_ready_s"] == {"min": 0.4, "median": 0.4, "max": 0.4, "values": [0.4]}
    assert data["faults"]["hang"] == {
        "injected": 0,
        "skipped": 0,
        "recovered": 0,
        "unexpected": 0,
        "recovery_s": {"values": []},
        "death_to_ready_s": {"values": []},
        "probe_s": None,
    }
    never = data["faults"]["never_registers"]
    assert never["recovered"] is None and never["recovery_s"] is None
    assert never["probe_s"]["values"] == [10.1]
    assert data["ledger"] == {
        "consistent": True,
        "checked": 4,
        "committed": 3,
        "problems": {},
        "examples": [],
    }
    assert data["restarts"] == 3 and data["actor_restarts"] == {"launcher": 1, "registry": 1}
    assert [i["kind"] for i in data["injections"]] == [
        "kill",
        "crash_registry",
        "kill",
        "never_registers",
    ]


def test_report_is_not_ok_when_anything_is_lost_hung_or_inconsistent() -> None:
    good = make_report()
    assert good.ok
    lost = make_report(lost=2)
    assert not lost.ok
    assert (lost.to_json()["lost"], lost.to_json()["hung"]) == (2, 2)
    missing = check_ledger([Attempt("t9", "cc", "k", True)], FakeLedger())
    assert not replace(good, ledger=missing).ok
    assert replace(good, ledger=missing).to_json()["ledger"]["problems"] == {MISSING_WRITE: 1}
    hung_probe = FaultRecord(
        Injection(1.0, "grpc_garbage", "listener", True, hung_probe=True), None, None, ()
    )
    probed = replace(good, records=(hung_probe,))
    assert probed.hung == 1 and probed.to_json()["hung_probes"] == 1 and not probed.ok


def test_table_names_every_count_and_fault() -> None:
    table = render_table(make_report(lost=1))
    assert "system runtime, 2 clients over 2 chaincode(s) for 8.0 s, a fault every 0.5 s" in table
    for label in ("submitted", "succeeded", "failed", "lost", "duplicated", "hung", "restarts"):
        assert f"  {label}" in table
    assert "ChaincodeStreamTerminated: gone" in table
    assert "kill" in table and "0.600 / 0.600 / 0.600" in table
    assert "never_registers" in table and "probe answered in 10.100" in table
    assert "ledger       consistent" in table
    assert "lost tx lost0 on faulty1" in table
    assert table.rstrip().endswith("result       FAILED")
    assert render_table(make_report()).rstrip().endswith("result       OK")
