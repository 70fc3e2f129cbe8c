"""ChaincodeSupport end to end with system chaincodes in real child processes.

Every chaincode here runs in a process forked by the system runtime's fork server and talks to
its Handler over a Pipe in msgpack frames, so these tests exercise launch, the REGISTER
handshake, the shim protocol, crashes, timeouts and shutdown for real. Every wait is bounded:
a broken build fails here instead of hanging.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import forkserver, resource_tracker
from pathlib import Path
from typing import Any

import pytest

from actors.config import ChaincodeDefinition, Config
from actors.errors import (
    ChaincodeError,
    ChaincodeStreamTerminated,
    DuplicateTransaction,
    ExecuteTimeout,
    InvalidRequest,
    LaunchError,
    StartupTimeout,
    SupportShutdown,
    TransactionFailed,
    UnknownChaincode,
    UnknownChannel,
)
from actors.ledger import ValidationCode
from actors.policy import RestartPolicy
from actors.support import ChaincodeSupport
from actors.txcontexts import CountContexts, ExecuteResult
from tests.helpers import EventLog, wait_for

pytestmark = pytest.mark.timeout(90)

CHANNEL = "mychannel"
OTHER_CHANNEL = "otherchannel"
WAIT = 30.0  # the longest any single future may take before the test fails

KV = ChaincodeDefinition("kv", target="examples.kv:KVChaincode")
ASSET = ChaincodeDefinition("asset", target="examples.asset_transfer:AssetTransfer")
# Crashed on purpose over and over: its supervisor must not give up on it.
CRASHY = ChaincodeDefinition(
    "crashy",
    target="tests.integration.chaincodes:Crashy",
    restart=RestartPolicy(max_restarts=1000, backoff_initial=0.01, backoff_max=0.05),
)
NEVER = ChaincodeDefinition("never", target="tests.integration.chaincodes:NeverRegisters")
MISSING = ChaincodeDefinition("missing", target="tests.integration.no_such_module:Chaincode")
BROKEN = ChaincodeDefinition("broken", target="tests.integration.chaincodes:BrokenConstructor")
DEFINITIONS = (KV, ASSET, CRASHY, NEVER, MISSING, BROKEN)

STARTUP_TIMEOUT = 5.0  # the smallest Config accepts
EXECUTE_TIMEOUT = 20.0


# -- helpers -----------------------------------------------------------------------------------


def make_config(**changes: Any) -> Config:
    values: dict[str, Any] = {
        "startup_timeout": STARTUP_TIMEOUT,
        "execute_timeout": EXECUTE_TIMEOUT,
        "chaincodes": DEFINITIONS,
        "channels": (CHANNEL, OTHER_CHANNEL),
    }
    values.update(changes)
    return Config(**values)


def _status_field(pid: int, field: str) -> str | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    match = re.search(rf"^{field}:\s+(\S+)", text, re.MULTILINE)
    return match.group(1) if match else None


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    state = _status_field(pid, "State")
    return state is not None and state != "Z"


def parent_of(pid: int) -> int | None:
    ppid = _status_field(pid, "PPid")
    return None if ppid is None else int(ppid)


def descendants(root: int | None = None) -> set[int]:
    """All processes below ``root`` (default: this process), zombies included."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = parent_of(int(entry))
            if ppid is not None:
                children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def forkserver_pid() -> int | None:
    return forkserver._forkserver._forkserver_pid


def pid_of(support: ChaincodeSupport, chaincode: str) -> int:
    # The VMController lists an instance once runtime.start() has returned on its worker
    # thread, which can be a moment after the chaincode registered and launch() returned.
    assert wait_for(lambda: chaincode in support.instances(), timeout=5), support.instances()
    description = support.instances()[chaincode]
    match = re.fullmatch(r"system process pid (\d+)", description)
    assert match, description
    return int(match.group(1))


def run(support: ChaincodeSupport, *args: str, chaincode: str = "kv", **kw: Any) -> ExecuteResult:
    """Execute (simulate) one transaction, failing the test instead of hanging."""
    return support.execute_async(CHANNEL, None, chaincode, list(args), **kw).result(WAIT)


def submit(support: ChaincodeSupport, *args: str, chaincode: str = "kv", **kw: Any) -> str:
    """Execute and commit one transaction that must succeed; returns its txid."""
    result = run(support, *args, chaincode=chaincode, **kw)
    assert result.response.status == 200, result.response
    assert support.commit(CHANNEL, result) is ValidationCode.VALID
    return result.txid


def sample(support: ChaincodeSupport, name: str, **labels: str) -> float | None:
    return support.metrics.registry.get_sample_value(name, labels)


def in_flight(support: ChaincodeSupport, chaincode: str) -> int:
    return support.registry.ask(CountContexts(chaincode), timeout=10)


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def make_support() -> Iterator[Callable[..., ChaincodeSupport]]:
    made: list[ChaincodeSupport] = []

    def make(**changes: Any) -> ChaincodeSupport:
        support = ChaincodeSupport(make_config(**changes))
        made.append(support)
        return support

    yield make
    for support in made:
        support.shutdown()


@pytest.fixture
def support(make_support: Callable[..., ChaincodeSupport]) -> ChaincodeSupport:
    return make_support()


@pytest.fixture
def events(support: ChaincodeSupport) -> EventLog:
    return EventLog(support)


# -- 1. launch -------------------------------------------------------------------------------


def test_launch_starts_one_registered_child_process(
    support: ChaincodeSupport, events: EventLog
) -> None:
    started = time.monotonic()
    support.launch("kv", timeout=WAIT)
    elapsed = time.monotonic() - started

    assert support.status() == {"kv": "ready"}
    pid = pid_of(support, "kv")
    assert pid != os.getpid()
    assert alive(pid)
    # Forked by the fork server (itself our child), never by the multi-threaded test process.
    assert parent_of(pid) == forkserver_pid()
    assert parent_of(forkserver_pid()) == os.getpid()

    assert wait_for(lambda: len(events.kinds("kv")) == 3, timeout=5), events.items
    assert events.kinds("kv")[0] == "launching"
    assert sorted(events.kinds("kv")) == ["launched", "launching", "ready"]
    assert events.details("launched", "kv") == [f"system process pid {pid}"]

    labels = {"chaincode": "kv", "success": "true"}
    assert sample(support, "chaincode_launch_duration_count", **labels) == 1
    duration = sample(support, "chaincode_launch_duration_sum", **labels)
    assert duration is not None
    assert 0 < duration <= elapsed
    assert sample(support, "chaincode_launch_timeouts_total", chaincode="kv") is None

    # A second launch is answered from the directory: same process, nothing new recorded.
    support.launch("kv", timeout=WAIT)
    assert pid_of(support, "kv") == pid
    assert sample(support, "chaincode_launch_duration_count", **labels) == 1
    assert events.count("launching", "kv") == 1

    # The handshake really completed: the chaincode serves a transaction.
    assert run(support, "put", "a", "1").response.status == 200


# -- 2. launch coalescing --------------------------------------------------------------------


def test_concurrent_first_executes_share_one_launch(
    support: ChaincodeSupport, events: EventLog
) -> None:
    n = 64
    barrier = threading.Barrier(n)

    def one(i: int) -> ExecuteResult:
        barrier.wait(WAIT)
        return support.execute_async(CHANNEL, None, "kv", ["put", f"c{i:02}", str(i)]).result(WAIT)

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))

    for i, result in enumerate(results):
        assert result.response.status == 200
        assert result.results is not None
        assert result.results.writes("kv") == {f"c{i:02}": str(i).encode()}
    assert len({r.txid for r in results}) == n

    assert events.count("launching", "kv") == 1
    assert wait_for(lambda: events.count("launched", "kv") == 1, timeout=5)
    assert events.count("ready", "kv") == 1
    assert events.count("launch_failed", "kv") == 0
    pid = pid_of(support, "kv")
    assert descendants(forkserver_pid()) == {pid}
    labels = {"chaincode": "kv", "success": "true"}
    assert sample(support, "chaincode_launch_duration_count", **labels) == 1


# -- 3. end to end over the pipe -------------------------------------------------------------


def test_put_get_del(support: ChaincodeSupport) -> None:
    put_txid = submit(support, "put", "k1", "v1")

    got = run(support, "get", "k1")
    assert got.response.status == 200
    assert got.response.payload == b"v1"
    assert got.results is not None
    (read_version,) = got.results.reads("kv").values()
    assert read_version is not None  # a committed key is read at its version
    assert got.results.writes("kv") == {}
    assert support.ledgers.get(CHANNEL).get_tx_validation_code(put_txid) is ValidationCode.VALID

    submit(support, "del", "k1")
    missing = run(support, "get", "k1")
    assert missing.response.status == 404
    assert "not found" in missing.response.message
    assert support.ledgers.get(CHANNEL).get_state("kv", "k1") is None


def test_getput_reads_then_writes(support: ChaincodeSupport) -> None:
    first = run(support, "getput", "gp", "one")
    assert first.response.status == 200
    assert first.response.payload == b""
    assert first.results is not None
    assert first.results.reads("kv") == {"gp": None}
    assert first.results.writes("kv") == {"gp": b"one"}
    assert support.commit(CHANNEL, first) is ValidationCode.VALID

    second = run(support, "getput", "gp", "two")
    assert second.response.payload == b"one"
    assert second.results is not None
    assert second.results.reads("kv")["gp"] is not None
    assert second.results.writes("kv") == {"gp": b"two"}


def test_range_spanning_several_query_batches(support: ChaincodeSupport) -> None:
    n = 250  # the peer answers in batches of 100: this needs QUERY_STATE_NEXT twice
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: submit(support, "put", f"r/{i:03}", f"value-{i}"), range(n)))
    submit(support, "put", "s/outside", "x")

    everything = run(support, "range", "r/", "r/~")
    assert everything.response.status == 200
    items = json.loads(everything.response.payload)
    assert items == {f"r/{i:03}": f"value-{i}" for i in range(n)}
    assert list(items) == sorted(items)  # the ledger hands keys over in order
    assert everything.results is not None
    (query,) = everything.results.range_queries("kv")
    assert (query.start_key, query.end_key) == ("r/", "r/~")

    window = json.loads(run(support, "range", "r/100", "r/110").response.payload)
    assert sorted(window) == [f"r/{i}" for i in range(100, 110)]

    # Iterators are closed by the chaincode and forgotten by the peer: nothing stays in flight.
    assert in_flight(support, "kv") == 0


def test_history_of_a_key(support: ChaincodeSupport) -> None:
    t1 = submit(support, "put", "h", "v1")
    t2 = submit(support, "put", "h", "v2")
    t3 = submit(support, "del", "h")

    result = run(support, "history", "h")
    assert result.response.status == 200
    assert json.loads(result.response.payload) == [  # newest first, as in Fabric
        {"txid": t3, "value": "", "delete": True},
        {"txid": t2, "value": "v2", "delete": False},
        {"txid": t1, "value": "v1", "delete": False},
    ]
    assert json.loads(run(support, "history", "never-written").response.payload) == []


def test_concurrent_increments_conflict_under_mvcc(support: ChaincodeSupport) -> None:
    submit(support, "put", "counter", "41")

    # Both simulate against the same committed version before either commits.
    first = support.execute_async(CHANNEL, None, "kv", ["incr", "counter"])
    second = support.execute_async(CHANNEL, None, "kv", ["incr", "counter"])
    r1, r2 = first.result(WAIT), second.result(WAIT)
    assert r1.response.payload == r2.response.payload == b"42"

    assert support.commit(CHANNEL, r1) is ValidationCode.VALID
    assert support.commit(CHANNEL, r2) is ValidationCode.MVCC_READ_CONFLICT
    assert run(support, "get", "counter").response.payload == b"42"

    ledger = support.ledgers.get(CHANNEL)
    assert ledger.get_tx_validation_code(r2.txid) is ValidationCode.MVCC_READ_CONFLICT

    # invoke = execute + commit: a fresh increment after the conflict goes through.
    invoked = support.invoke(CHANNEL, None, "kv", ["incr", "counter"], timeout=10)
    assert invoked.committed
    assert invoked.response.payload == b"43"


def test_chaincode_to_chaincode_transfer(support: ChaincodeSupport, events: EventLog) -> None:
    created = support.invoke(CHANNEL, None, "asset", ["create", "a1", "bob", "7"], timeout=10)
    assert created.committed, created.response

    # transfer calls kv (not launched yet: the callee is launched on demand) on the same channel.
    transfer = run(support, "transfer", "a1", "alice", chaincode="asset")
    assert transfer.response.status == 200, transfer.response
    assert json.loads(transfer.response.payload) == {"id": "a1", "owner": "alice", "value": 7}
    assert events.count("ready", "kv") == 1

    rwset = transfer.results
    assert rwset is not None
    assert sorted(rwset.namespaces) == ["asset", "kv"]  # one rwset, both namespaces
    (asset_key,) = rwset.writes("asset")
    assert json.loads(rwset.writes("asset")[asset_key])["owner"] == "alice"
    assert rwset.writes("kv") == {"audit~a1": b"bob->alice"}

    event = transfer.event
    assert event is not None
    assert event.event_name == "Transfer"
    assert event.chaincode_id == "asset"
    assert event.tx_id == transfer.txid
    assert json.loads(event.payload) == {"id": "a1", "from": "bob", "to": "alice"}

    assert support.commit(CHANNEL, transfer) is ValidationCode.VALID
    assert run(support, "get", "audit~a1").response.payload == b"bob->alice"
    owner = json.loads(run(support, "read", "a1", chaincode="asset").response.payload)["owner"]
    assert owner == "alice"

    # And the other way round, through kv's generic `call` function.
    called = run(support, "call", "asset", "read", "a1")
    assert called.response.status == 200
    assert json.loads(called.response.payload)["owner"] == "alice"


def test_error_response_is_returned_and_not_committed(support: ChaincodeSupport) -> None:
    ledger = support.ledgers.get(CHANNEL)
    submit(support, "put", "x", "1")
    height = ledger.height

    outcome = support.invoke(CHANNEL, None, "kv", ["fail", "boom"], timeout=10)
    assert outcome.response.status == 500
    assert outcome.response.message == "boom"
    assert outcome.validation is None
    assert not outcome.committed
    assert ledger.height == height
    assert not ledger.txid_exists(outcome.result.txid)


def test_exception_in_chaincode_fails_the_transaction_only(support: ChaincodeSupport) -> None:
    support.launch("kv", timeout=WAIT)
    pid = pid_of(support, "kv")

    with pytest.raises(TransactionFailed, match=r"transaction returned with failure: .*kaboom"):
        run(support, "raise", "kaboom")
    with pytest.raises(TransactionFailed):
        support.invoke(CHANNEL, None, "kv", ["raise", "again"], timeout=10)

    # Same process, still serving.
    assert run(support, "put", "after", "raise").response.status == 200
    assert pid_of(support, "kv") == pid
    assert in_flight(support, "kv") == 0


def test_unknown_function_and_bad_arguments(support: ChaincodeSupport) -> None:
    unknown = run(support, "nope")
    assert unknown.response.status == 400
    assert unknown.response.message == "unknown function 'nope'"

    bad = run(support, "put", "only-a-key")
    assert bad.response.status == 400
    assert bad.response.message.startswith("bad arguments for put")

    no_function = run(support)
    assert no_function.response.status == 400


def test_init_and_duplicate_txid(support: ChaincodeSupport) -> None:
    init = run(support, "init", is_init=True)
    assert init.response.status == 200
    assert init.response.message == "kv initialised"

    first = support.execute_async(CHANNEL, "dup-1", "kv", ["sleep", "1"])
    assert wait_for(lambda: in_flight(support, "kv") == 1, timeout=5)
    with pytest.raises(DuplicateTransaction, match=r"txid: dup-1\(mychannel\) exists"):
        support.execute_async(CHANNEL, "dup-1", "kv", ["get", "k"]).result(WAIT)
    assert first.result(WAIT).response.status == 200
    # A txid in use on another channel is another transaction.
    other = support.execute_async(OTHER_CHANNEL, "dup-1", "kv", ["put", "k", "v"])
    assert other.result(WAIT).response.status == 200


# -- 4. startup timeout ----------------------------------------------------------------------


@pytest.mark.slow
def test_startup_timeout_when_chaincode_never_registers(
    support: ChaincodeSupport, events: EventLog
) -> None:
    started = time.monotonic()
    via_execute = support.execute_async(CHANNEL, None, "never", ["anything"])
    assert wait_for(lambda: events.count("launched", "never") == 1, timeout=5)
    (description,) = events.details("launched", "never")
    pid = int(description.rsplit(" ", 1)[1])
    assert alive(pid)
    assert support.status() == {"never": "launching"}

    expected = "timeout expired while starting chaincode never for transaction"
    with pytest.raises(StartupTimeout, match=expected):
        support.launch("never", timeout=WAIT)  # joins the launch in progress
    elapsed = time.monotonic() - started
    assert STARTUP_TIMEOUT - 0.5 <= elapsed < STARTUP_TIMEOUT + 3
    with pytest.raises(StartupTimeout, match=expected):
        via_execute.result(2)

    assert sample(support, "chaincode_launch_timeouts_total", chaincode="never") == 1
    labels = {"chaincode": "never", "success": "false"}
    assert sample(support, "chaincode_launch_duration_count", **labels) == 1
    assert sample(support, "chaincode_launch_duration_sum", **labels) >= STARTUP_TIMEOUT - 0.5

    # Nothing is left running or launching.
    assert wait_for(lambda: not alive(pid), timeout=10)
    assert wait_for(lambda: support.instances() == {}, timeout=5)
    assert support.status() == {}
    assert events.count("launch_failed", "never") == 1


# -- 5. a chaincode that cannot be loaded ----------------------------------------------------


@pytest.mark.parametrize(
    ("chaincode", "cause"),
    [
        ("missing", "ModuleNotFoundError: No module named 'tests.integration.no_such_module'"),
        ("broken", "RuntimeError: BrokenConstructor refuses to start"),
    ],
)
def test_a_failed_launch_names_its_cause(
    support: ChaincodeSupport,
    events: EventLog,
    chaincode: str,
    cause: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 14: the cause was only on the peer's stderr; now it is in the LaunchError, in the
    launch_failed and exited events, and in a WARNING log."""
    with pytest.raises(LaunchError) as info:
        support.launch(chaincode, timeout=WAIT)
    assert cause in str(info.value), info.value
    assert any(cause in detail for detail in events.details("launch_failed", chaincode))
    assert wait_for(lambda: events.of("exited", chaincode), timeout=10)
    (exited,) = events.of("exited", chaincode)
    assert any(cause in line for line in exited.last_lines), exited.last_lines
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(cause in text and f"chaincode {chaincode}" in text for text in warned), warned


def test_a_system_chaincode_runs_in_its_workdir(
    make_support: Callable[..., ChaincodeSupport], tmp_path: Path
) -> None:
    """Its target is imported from ``workdir`` first, and it runs there."""
    (tmp_path / "bank.py").write_text(
        "import os\n"
        "from actors.shim import Chaincode, success\n"
        "class Bank(Chaincode):\n"
        "    def invoke(self, stub):\n"
        "        return success(os.getcwd())\n"
    )
    bank = ChaincodeDefinition("bank", target="bank:Bank", workdir=str(tmp_path))
    support = make_support(chaincodes=(bank,))
    assert run(support, "where", chaincode="bank").response.payload == str(tmp_path).encode()


@pytest.mark.parametrize("chaincode", ["missing", "broken"])
def test_unloadable_chaincode_fails_fast(
    support: ChaincodeSupport, events: EventLog, chaincode: str
) -> None:
    # "Fast" means the exit ends the launch, not the startup timeout: no StartupTimeout and
    # no launch-timeout metric (a wall-clock bound would only measure the machine's load).
    with pytest.raises(LaunchError) as info:
        support.launch(chaincode, timeout=WAIT)

    assert not isinstance(info.value, StartupTimeout)
    assert re.search(r"chaincode registration failed: .*exited with code 3", str(info.value))
    assert sample(support, "chaincode_launch_timeouts_total", chaincode=chaincode) is None
    labels = {"chaincode": chaincode, "success": "false"}
    assert sample(support, "chaincode_launch_duration_count", **labels) == 1

    (description,) = events.details("launched", chaincode)
    pid = int(description.rsplit(" ", 1)[1])
    assert wait_for(lambda: not alive(pid), timeout=5)
    assert support.status() == {}

    # execute reports the same failure (the exit, not a timeout) and tries a fresh process.
    with pytest.raises(LaunchError, match="exited with code 3"):
        run(support, "anything", chaincode=chaincode)
    assert events.count("launching", chaincode) == 2


# -- 6. a chaincode dying mid-transaction ----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "cause"),
    [
        (["exit", "7"], r"chaincode crashy exited with code 7$"),
        (["kill"], r"chaincode crashy exited with code 137 \(SIGKILL\)$"),
    ],
    ids=["exit-7", "sigkill"],
)
def test_chaincode_dying_mid_transaction(
    support: ChaincodeSupport, events: EventLog, args: list[str], cause: str
) -> None:
    support.launch("kv", timeout=WAIT)
    support.launch("crashy", timeout=WAIT)
    kv_pid, old_pid = pid_of(support, "kv"), pid_of(support, "crashy")

    # Bystanders reach the chaincode before the fatal transaction (one Handler mailbox).
    bystanders = [support.execute_async(CHANNEL, None, "crashy", ["sleep", "60"]) for _ in range(3)]
    started = time.monotonic()
    fatal = support.execute_async(CHANNEL, None, "crashy", args)
    with pytest.raises(ChaincodeStreamTerminated, match=cause):
        fatal.result(WAIT)
    # At once, not after the execute timeout.
    assert time.monotonic() - started < 5
    for bystander in bystanders:
        with pytest.raises(ChaincodeStreamTerminated, match=cause):
            bystander.result(5)

    # A later execute relaunches the chaincode in a new process.
    relaunched = run(support, "ok", chaincode="crashy")
    assert relaunched.response.status == 200
    new_pid = int(relaunched.response.payload.split()[1])
    assert new_pid != old_pid
    assert pid_of(support, "crashy") == new_pid
    assert events.count("launching", "crashy") == 2

    assert wait_for(lambda: not alive(old_pid), timeout=5)
    assert wait_for(lambda: events.count("exited", "crashy") == 1, timeout=5)
    (exited,) = events.details("exited", "crashy")
    assert re.search(cause.removeprefix("chaincode crashy "), exited)

    # Other chaincodes are unaffected.
    assert pid_of(support, "kv") == kv_pid
    assert run(support, "put", "still", "here").response.status == 200
    assert in_flight(support, "crashy") == 0


def test_immediate_retry_after_a_crash_relaunches(support: ChaincodeSupport) -> None:
    """A caller that retries the moment its transaction failed must reach a new instance,
    not the dead handler (whose mailbox is dropped when it stops: that hung until the
    execute timeout). Frequent thread switches make the race show up."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for round_ in range(50):
            support.launch("crashy", timeout=WAIT)
            old_pid = pid_of(support, "crashy")
            with pytest.raises(ChaincodeStreamTerminated, match="exited with code 7"):
                run(support, "exit", "7", chaincode="crashy")
            retried = support.execute_async(CHANNEL, None, "crashy", ["ok"]).result(10)
            assert retried.response.status == 200, round_
            assert int(retried.response.payload.split()[1]) != old_pid
    finally:
        sys.setswitchinterval(interval)


# -- 7. execute timeout ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.inf, math.nan, 1e10, True, "5"])
def test_an_absurd_timeout_is_refused_and_every_timeout_still_works(
    support: ChaincodeSupport, bad: Any
) -> None:
    # One such timeout used to kill the shared deadline thread: no transaction timed out again.
    support.launch("kv", timeout=WAIT)
    with pytest.raises(InvalidRequest, match="timeout must be"):
        support.execute_async(CHANNEL, None, "kv", ["get", "k"], timeout=bad)
    with pytest.raises(InvalidRequest, match="timeout must be"):
        support.invoke(CHANNEL, None, "kv", ["put", "k", "v"], timeout=bad)
    with pytest.raises(InvalidRequest, match="timeout must be"):
        support.launch("kv", timeout=bad)
    sleeping = support.execute_async(CHANNEL, None, "kv", ["sleep", "1.5"], timeout=0.3)
    with pytest.raises(ExecuteTimeout):
        sleeping.result(WAIT)


def test_execute_timeout_and_the_chaincode_keeps_serving(support: ChaincodeSupport) -> None:
    support.launch("kv", timeout=WAIT)
    pid = pid_of(support, "kv")

    started = time.monotonic()
    sleeping = support.execute_async(CHANNEL, None, "kv", ["sleep", "1.5"], timeout=0.3)
    with pytest.raises(ExecuteTimeout, match="timeout expired while executing transaction"):
        sleeping.result(WAIT)
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 1.4, elapsed
    assert sample(support, "chaincode_execute_timeouts_total", chaincode="kv") == 1

    # While the chaincode still sleeps on the expired transaction it serves others...
    assert run(support, "put", "after", "timeout").response.status == 200
    # ...and after its late COMPLETED (ignored by the peer) too.
    time.sleep(max(0.0, started + 1.8 - time.monotonic()))
    assert run(support, "getput", "after", "again").response.payload == b""
    assert pid_of(support, "kv") == pid
    assert wait_for(lambda: in_flight(support, "kv") == 0, timeout=5)
    assert sample(support, "chaincode_execute_timeouts_total", chaincode="kv") == 1


def test_per_chaincode_execute_timeout(make_support: Callable[..., ChaincodeSupport]) -> None:
    quick = ChaincodeDefinition("quick", target="examples.kv:KVChaincode", execute_timeout=0.3)
    support = make_support(chaincodes=(*DEFINITIONS, quick))
    support.launch("quick", timeout=WAIT)
    with pytest.raises(ExecuteTimeout):
        run(support, "sleep", "1", chaincode="quick")
    # An explicit timeout wins over the definition's.
    assert run(support, "sleep", "0.5", chaincode="quick", timeout=5).response.status == 200


# -- 8. stop ---------------------------------------------------------------------------------


def test_stop_ends_the_process_and_a_later_execute_relaunches(
    support: ChaincodeSupport, events: EventLog
) -> None:
    submit(support, "put", "k", "v")
    pid = pid_of(support, "kv")
    pending = support.execute_async(CHANNEL, None, "kv", ["sleep", "60"])
    assert wait_for(lambda: in_flight(support, "kv") == 1, timeout=5)

    started = time.monotonic()
    support.stop("kv")
    assert time.monotonic() - started < 8
    with pytest.raises(ChaincodeStreamTerminated):
        pending.result(5)
    assert wait_for(lambda: not alive(pid), timeout=10)
    assert support.status() == {}
    assert support.instances() == {}

    # Stopping what is not running is harmless.
    support.stop("kv")
    support.stop("asset")

    got = run(support, "get", "k")
    assert got.response.payload == b"v"
    new_pid = pid_of(support, "kv")
    assert new_pid != pid
    assert alive(new_pid)
    assert events.count("launching", "kv") == 2


# -- 9. shutdown -----------------------------------------------------------------------------


def _new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before and t.is_alive()]


def test_shutdown_leaves_nothing_behind() -> None:
    threads_before = set(threading.enumerate())
    # The resource tracker is multiprocessing's process-wide helper (started with the first
    # fork server and shared with any other multiprocessing user); it is not ours to stop.
    processes_before = descendants()
    support = ChaincodeSupport(make_config())
    try:
        submit(support, "put", "k", "v")
        run(support, "read", "nothing", chaincode="asset")
        pids = {pid_of(support, "kv"), pid_of(support, "asset")}
        server = forkserver_pid()
        assert server is not None
        assert descendants(server) == pids
        pending = support.execute_async(CHANNEL, None, "kv", ["sleep", "60"])
        assert wait_for(lambda: in_flight(support, "kv") == 1, timeout=5)

        started = time.monotonic()
        support.shutdown()
        assert time.monotonic() - started < 15
    except BaseException:
        support.shutdown()
        raise

    # The in-flight transaction ended with an error instead of waiting for its timeout.
    with pytest.raises(ChaincodeError):
        pending.result(5)

    tracker = resource_tracker._resource_tracker._pid
    assert wait_for(lambda: descendants() - processes_before - {tracker} == set(), timeout=10), [
        (pid, _status_field(pid, "Name"), _status_field(pid, "State"))
        for pid in descendants() - processes_before
    ]
    assert forkserver_pid() is None
    for pid in pids | {server}:
        assert not alive(pid)

    assert wait_for(lambda: not _new_threads(threads_before), timeout=10), [
        (t.name, t.daemon) for t in _new_threads(threads_before)
    ]

    # Idempotent, and everything afterwards says so clearly.
    support.shutdown()
    calls: list[Callable[[], Any]] = [
        lambda: support.execute(CHANNEL, None, "kv", ["get", "k"]),
        lambda: support.execute_async(CHANNEL, None, "kv", ["get", "k"]),
        lambda: support.invoke(CHANNEL, None, "kv", ["put", "k", "v"]),
        lambda: support.launch("kv"),
        lambda: support.define(ChaincodeDefinition("late", target="examples.kv:KVChaincode")),
        lambda: support.stop("kv"),
        lambda: support.status(),
        lambda: support.instances(),
    ]
    for call in calls:
        with pytest.raises(SupportShutdown, match="chaincode support has been shut down"):
            call()
    assert descendants() - processes_before - {tracker} == set()


def test_shutdown_while_a_launch_is_in_progress() -> None:
    threads_before = set(threading.enumerate())
    processes_before = descendants()
    support = ChaincodeSupport(make_config())
    events = EventLog(support)
    try:
        launching = support.execute_async(CHANNEL, None, "never", ["x"])
        assert wait_for(lambda: events.count("launched", "never") == 1, timeout=5)
    finally:
        support.shutdown()
    # The waiting caller is released (not left for the startup timeout) ...
    with pytest.raises(ChaincodeError):
        launching.result(STARTUP_TIMEOUT + 5)
    # ... and the never-registering child is gone.
    tracker = resource_tracker._resource_tracker._pid
    assert wait_for(lambda: descendants() - processes_before - {tracker} == set(), timeout=10)
    assert wait_for(lambda: not _new_threads(threads_before), timeout=10), [
        (t.name, t.daemon) for t in _new_threads(threads_before)
    ]


# -- 10. concurrency -------------------------------------------------------------------------


def test_many_threads_many_transactions(support: ChaincodeSupport) -> None:
    threads, per_thread = 16, 50
    support.launch("kv", timeout=WAIT)

    def worker(t: int) -> list[tuple[str, ExecuteResult]]:
        out = []
        for i in range(per_thread):
            key = f"t{t:02}/{i:03}"
            out.append((key, run(support, "getput", key, f"v{t}.{i}")))
        return out

    with ThreadPoolExecutor(threads) as pool:
        batches = list(pool.map(worker, range(threads)))

    results = [pair for batch in batches for pair in batch]
    assert len(results) == threads * per_thread
    assert len({r.txid for _, r in results}) == len(results)
    for key, result in results:
        assert result.response.status == 200
        assert result.response.payload == b""
        assert result.results is not None
        assert result.results.namespaces == ["kv"]
        assert result.results.reads("kv") == {key: None}
        t, i = key[1:].split("/")
        assert result.results.writes("kv") == {key: f"v{int(t)}.{int(i)}".encode()}

    # Distinct keys: every one commits.
    for _, result in results:
        assert support.commit(CHANNEL, result) is ValidationCode.VALID
    committed = json.loads(run(support, "range", "t", "u").response.payload)
    assert len(committed) == threads * per_thread
    assert in_flight(support, "kv") == 0
    assert len(support.instances()) == 1


# -- 11. bad caller input --------------------------------------------------------------------


def test_bad_caller_input_is_rejected_without_launching(
    support: ChaincodeSupport, events: EventLog
) -> None:
    ex = support.execute_async
    get = ["get", "k"]
    bad_calls: list[tuple[str, Callable[[], Any]]] = [
        ("channel", lambda: ex("", None, "kv", get)),
        ("channel", lambda: ex(None, None, "kv", get)),  # type: ignore[arg-type]
        ("chaincode", lambda: ex(CHANNEL, None, "", get)),
        ("chaincode", lambda: ex(CHANNEL, None, None, get)),  # type: ignore[arg-type]
        ("txid", lambda: ex(CHANNEL, "", "kv", get)),
        ("args must be a list", lambda: ex(CHANNEL, None, "kv", "get k")),
        ("args must be a list", lambda: ex(CHANNEL, None, "kv", b"get")),
        ("args must be a list", lambda: ex(CHANNEL, None, "kv", {"get": 1})),  # type: ignore[arg-type]
        (r"args\[1\] must be bytes or str, got int", lambda: ex(CHANNEL, None, "kv", ["put", 1])),  # type: ignore[list-item]
        (r"args\[1\]", lambda: ex(CHANNEL, None, "kv", ["get", None])),  # type: ignore[list-item]
        ("timeout must be positive", lambda: ex(CHANNEL, None, "kv", get, timeout=-1)),
        ("timeout must be positive", lambda: ex(CHANNEL, None, "kv", get, timeout=0)),
        ("channel", lambda: support.invoke("", None, "kv", ["put", "k", "v"])),
        ("chaincode", lambda: support.launch("")),
    ]  # fmt: skip
    for text, call in bad_calls:
        with pytest.raises(InvalidRequest, match=text):
            call()

    # A channel the peer has not joined (a name no ledger could take included): the future
    # says so, with Fabric's text, at once; no ledger is made for it.
    with pytest.raises(UnknownChannel, match=r"^channel 'bad channel' not found$"):
        ex("bad channel", None, "kv", get).result(5)
    assert "bad channel" not in support.ledgers.channels()

    # A name nobody defined: the future says so (Fabric's endorser's text), at once.
    unknown = "make sure the chaincode x has been successfully defined on channel mychannel"
    with pytest.raises(UnknownChaincode, match=unknown):
        support.execute_async(CHANNEL, None, "x", ["get", "k"]).result(5)
    with pytest.raises(UnknownChaincode, match=unknown):
        support.invoke(CHANNEL, None, "x", ["put", "k", "v"])
    # launch takes a chaincode id (what runs), not a name on a channel: the launcher's text.
    with pytest.raises(UnknownChaincode, match="chaincode definition for 'x' not found"):
        support.launch("x", timeout=5)

    assert events.items == []
    assert support.status() == {}
    assert support.instances() == {}
    assert forkserver_pid() is None or descendants(forkserver_pid()) == set()
    assert support.ledgers.get(CHANNEL).height == 0

    # The support is still perfectly usable.
    assert run(support, "put", "k", "v").response.status == 200


# -- 12. file-backed ledger ------------------------------------------------------------------


def test_file_backed_ledger_survives_a_restart(
    make_support: Callable[..., ChaincodeSupport], tmp_path: Path
) -> None:
    path = str(tmp_path / "ledger")
    first = make_support(ledger_path=path)
    t1 = submit(first, "put", "persist", "v1")
    t2 = submit(first, "put", "persist", "v2")
    submit(first, "put", "gone", "x")
    submit(first, "del", "gone")
    version = first.ledgers.get(CHANNEL).get_version("kv", "persist")
    assert version is not None
    first.shutdown()

    second = make_support(ledger_path=path)
    assert run(second, "get", "persist").response.payload == b"v2"
    assert run(second, "get", "gone").response.status == 404
    history = json.loads(run(second, "history", "persist").response.payload)
    assert [h["txid"] for h in history] == [t2, t1]
    assert second.ledgers.get(CHANNEL).get_tx_validation_code(t1) is ValidationCode.VALID
    # Versions survive too: reads see the committed version, and MVCC still works on it.
    updated = run(second, "getput", "persist", "v3")
    assert updated.results is not None
    assert updated.results.reads("kv") == {"persist": version}
    assert second.commit(CHANNEL, updated) is ValidationCode.VALID
    assert run(second, "get", "persist").response.payload == b"v3"


@pytest.mark.parametrize("target", ["Copier", "GreenletCopier"])
def test_large_values_both_ways_at_once_do_not_deadlock_the_pipe(
    make_support: Callable[..., ChaincodeSupport], target: str
) -> None:
    # 32 transactions each read a 200 KB value (peer -> chaincode) and write it back
    # (chaincode -> peer): with blocking sends on both reading sides the two socket buffers
    # fill and every transaction waits for its timeout.
    definition = ChaincodeDefinition("copier", target=f"tests.integration.chaincodes:{target}")
    support = make_support(chaincodes=(definition,))
    assert support.invoke(CHANNEL, None, "copier", ["seed", "big", str(200_000)]).committed
    futures = [
        support.execute_async(CHANNEL, None, "copier", ["copy", "big", f"copy{i}"], timeout=10)
        for i in range(32)
    ]
    for future in futures:
        result = future.result(WAIT)
        assert result.response.payload == b"200000"
        assert [len(w.value) for w in result.results.namespace("copier").writes] == [200_000]


def test_sigkill_under_load_names_the_signal_in_every_failure(support: ChaincodeSupport) -> None:
    # Under load the reader thread is often writing a reply when the process dies: that write
    # failing must still lead to the exit status, like the end of the stream does.
    support.launch("kv", timeout=WAIT)
    pid = pid_of(support, "kv")
    futures = []
    for round_ in range(60):
        futures += [
            support.execute_async(CHANNEL, None, "kv", ["getput", f"k{i}", "v"]) for i in range(64)
        ]
        if round_ == 30:
            os.kill(pid, signal.SIGKILL)
    failures = [f.exception(WAIT) for f in futures]
    causes = {str(e) for e in failures if e is not None}
    killed = "chaincode stream terminated: chaincode kv exited with code 137 (SIGKILL)"
    assert killed in causes, causes
    # Transactions that reached the Handler as it was ending were never sent: they say so.
    unsent = "chaincode stream terminated: it ended before the transaction was sent"
    assert causes <= {killed, unsent}
