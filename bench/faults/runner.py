"""The I/O of a fault run: start a supervised peer, drive the invoke load, inject the scheduled
faults, then collect the report and clean up whatever the peer left behind.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import psutil

import examples

from .accounting import NUMBER, SUCCEEDED, DuplicateOutcomeLog, OutcomeBook, Tx, describe_failure
from .config import FaultsConfig, FaultsUnavailable, ScheduledFault, build_schedule
from .ledger import LedgerReader, check_ledger
from .recovery import Injection, ObservedEvent, count_restarts, relate, summarize
from .report import FaultReport

if TYPE_CHECKING:
    from actors.events import LifecycleEvent
    from actors.support import ChaincodeSupport

log = logging.getLogger(__name__)

CHANNEL = "faults-channel"
TARGET = "examples.faulty:Faulty"
# The examples package (installed with ccactors) holds the chaincode; found by import, not by
# where this file sits in a checkout.
EXAMPLES = Path(examples.__file__).resolve().parent
PROBE_BYTES = b"\x07" + b"not a protobuf message" * 3  # field 0, wire type 7: never parses


def _proc_state(pid: int) -> str | None:
    """The process's psutil status ("running", "sleeping", "stopped", "zombie"...), None if
    it is gone."""
    try:
        return str(psutil.Process(pid).status())
    except psutil.NoSuchProcess:
        return None


def _ident(instance: Any) -> str | None:
    """``"pid 123"`` or ``"container <id>"`` for a running instance."""
    if instance is None:
        return None
    container = getattr(instance, "container_id", None)
    if container:
        return f"container {container}"
    pid = getattr(instance, "pid", None)
    return f"pid {pid}" if pid else None


class FaultRunner:
    """Runs one fault run (see the package doc). ``progress`` gets a line a second."""

    def __init__(self, config: FaultsConfig, progress: IO[str] | None = None) -> None:
        if config.seed is None:
            config = replace(config, seed=random.randrange(2**31))
        self.config = config
        self.progress = progress
        self.run_id = uuid.uuid4().hex[:8]
        self._t0 = time.monotonic()
        self._inject_times: list[float] = []
        self._never = itertools.count(1)
        self.book = OutcomeBook(self.now)
        self._events: list[ObservedEvent] = []
        self._events_lock = threading.Lock()
        self._injections: list[Injection] = []
        self._injections_lock = threading.Lock()
        self._findings: list[str] = []
        self._stop = threading.Event()
        self._support: ChaincodeSupport | None = None
        self._docker: Any = None
        self._package_dir: str | None = None
        self._stopped_pids: list[int] = []  # SIGSTOPped by a hang fault
        self._paused: list[str] = []  # containers paused by a hang fault
        self._never_pids: list[int] = []
        self._seen: dict[str, list[str]] = {}  # chaincode -> instances it ran on ("pid 12")
        self._closing = threading.Event()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def finding(self, text: str) -> None:
        log.warning("faults: %s", text)
        with self._injections_lock:
            self._findings.append(text)

    # -- set-up ------------------------------------------------------------------------------

    def _policy(self, restart: str = "permanent") -> Any:
        from actors.supervisor import RestartPolicy

        return RestartPolicy(
            restart=restart, max_restarts=1000, within=60, backoff_initial=0.05, backoff_max=1.0
        )

    def _definitions(self) -> tuple[Any, ...]:
        from actors.config import ChaincodeDefinition

        runtime, policy = self.config.runtime, self._policy()
        out = []
        for name in self.config.chaincode_names:
            if runtime == "docker":
                assert self._package_dir is not None
                definition = ChaincodeDefinition(
                    name,
                    runtime="docker",
                    package=str(Path(self._package_dir) / "faulty.tar.gz"),
                    restart=policy,
                )
            else:
                definition = ChaincodeDefinition(
                    name,
                    runtime=runtime,
                    target=TARGET,
                    workdir=str(EXAMPLES.parent) if runtime == "process" else None,
                    restart=policy,
                )
            out.append(definition)
        return tuple(out)

    def _prepare_docker(self) -> None:
        from actors.images import BASE_IMAGE, build_shim_image, docker_client
        from actors.packaging import create_package
        from bench.workloads import RUNTIMES as BENCH_RUNTIMES

        why_not = BENCH_RUNTIMES["docker"].available()  # an engine and the base image
        if why_not is not None:
            raise FaultsUnavailable(f"the docker runtime cannot run here: {why_not}")
        self._docker = docker_client(timeout=60)
        build_shim_image(self._docker, BASE_IMAGE, progress=self._say)  # cheap when current
        self._package_dir = tempfile.mkdtemp(prefix="ccactors-faults-")
        create_package(
            EXAMPLES, "faulty", target=TARGET, out=Path(self._package_dir) / "faulty.tar.gz"
        )

    def _make_support(self) -> ChaincodeSupport:
        from actors.config import Config
        from actors.peer import PeerAddress
        from actors.runtimes.docker import DockerRuntime
        from actors.runtimes.process import ProcessRuntime
        from actors.runtimes.system import SystemRuntime
        from actors.support import ChaincodeSupport

        c = self.config
        peer_address = PeerAddress()
        runtimes: dict[str, Any] = {
            "system": SystemRuntime(),
            "process": ProcessRuntime(peer_address),
        }
        if c.runtime == "docker":
            runtimes["docker"] = DockerRuntime(
                peer_address,
                peer_id=f"faults-{self.run_id}",
                network_id="ccactors",
                network_mode="host",  # its listener is on 127.0.0.1
            )
        config = Config(
            channels=(CHANNEL,),
            startup_timeout=c.startup_timeout,
            execute_timeout=c.execute_timeout,
            hung_after=c.hung_after,
            tls_enabled=False,  # its runtimes are made without TLS material
            restart=self._policy(),
            chaincodes=self._definitions(),
        )
        support = ChaincodeSupport(config, runtimes=runtimes, peer_address=peer_address)
        try:
            support.listen("127.0.0.1:0")
        except Exception:
            support.shutdown()
            raise
        return support

    def _on_event(self, event: LifecycleEvent) -> None:
        with self._events_lock:
            self._events.append(
                ObservedEvent(
                    self.now(),
                    event.chaincode,
                    event.kind,
                    event.actor,
                    event.detail or event.instance,
                )
            )

    def events(self) -> list[ObservedEvent]:
        with self._events_lock:
            return list(self._events)

    # -- the load ----------------------------------------------------------------------------

    def _client(self, client: int) -> None:
        support, book, c = self._support, self.book, self.config
        assert support is not None
        names = c.chaincode_names
        seq = 0
        while not self._stop.is_set():
            seq += 1
            chaincode = names[(client + seq) % len(names)]
            key = f"c{client}-{seq}"
            txid = f"faults-{self.run_id}-{client}-{seq}"
            tx = book.submit(txid, client, chaincode, key)
            try:
                future = support.execute_async(CHANNEL, txid, chaincode, ["put", key, txid])
            except Exception as exc:
                reason = describe_failure(exc)
                book.executed(tx, reason)
                book.conclude(tx, reason)
                continue
            future.add_done_callback(lambda f, tx=tx: book.resolve_future(tx, f))
            if not tx.done.wait(c.wait_bound):
                book.give_up(tx)
                continue
            book.conclude(tx, self._finish(support, tx))

    def _finish(self, support: ChaincodeSupport, tx: Tx) -> str:
        """Commit an execution that came back; the transaction's final outcome."""
        if tx.outcome != "ok":
            return tx.outcome or "no outcome"
        result = tx.result
        if result.response.status >= 400:
            message = NUMBER.sub("N", result.response.message)[:50]
            return f"status {result.response.status}: {message}"
        writes = result.results.writes(tx.chaincode) if result.results is not None else {}
        if result.txid != tx.txid or dict(writes) != {tx.key: tx.txid.encode()}:
            return f"mismatched result: txid {result.txid}, writes {sorted(writes)[:3]}"
        try:
            code = support.commit(CHANNEL, result)
        except Exception as exc:
            return f"commit raised {describe_failure(exc)}"
        return SUCCEEDED if code.name == "VALID" else f"commit {code.name}"

    def _report_progress(self) -> None:
        while not self._stop.wait(1.0):
            submitted, succeeded, failed, in_flight = self.book.snapshot()
            print(
                f"[{self.now():6.1f}s] submitted {submitted} succeeded {succeeded} "
                f"failed {failed} in flight {in_flight} faults {len(self._injections)}",
                file=self.progress,
                flush=True,
            )

    # -- faults ------------------------------------------------------------------------------

    def _inject(self, fault: ScheduledFault) -> None:
        at = self.now()
        with self._injections_lock:
            self._inject_times.append(at)
        try:
            injection = getattr(self, f"_fault_{fault.kind}")(fault, at)
        except Exception as exc:
            injection = Injection(
                at, fault.kind, fault.target, False, f"injection raised {describe_failure(exc)}"
            )
            self.finding(f"{fault.kind} at {at:.2f} s: injection raised {exc!r}")
        with self._injections_lock:
            self._injections.append(injection)

    def _instance(self, name: str) -> Any:
        assert self._support is not None
        return self._support.instance_of(name)

    def _fault_kill(self, fault: ScheduledFault, at: float) -> Injection:
        instance = self._instance(fault.target)
        if instance is None:
            return Injection(at, fault.kind, fault.target, False, "no running instance")
        container = getattr(instance, "container_id", None)
        if container:
            self._docker.containers.get(container).kill()
            return Injection(at, fault.kind, fault.target, True, f"docker kill {container[:12]}")
        pid = instance.pid
        os.kill(pid, signal.SIGKILL)
        return Injection(at, fault.kind, fault.target, True, f"SIGKILL pid {pid}")

    def _fault_hang(self, fault: ScheduledFault, at: float) -> Injection:
        instance = self._instance(fault.target)
        if instance is None:
            return Injection(at, fault.kind, fault.target, False, "no running instance")
        container = getattr(instance, "container_id", None)
        if container:
            self._docker.containers.get(container).pause()
            self._paused.append(container)
            return Injection(at, fault.kind, fault.target, True, f"docker pause {container[:12]}")
        pid = instance.pid
        os.kill(pid, signal.SIGSTOP)
        self._stopped_pids.append(pid)
        return Injection(at, fault.kind, fault.target, True, f"SIGSTOP pid {pid}")

    def _fault_handler_exception(self, fault: ScheduledFault, at: float) -> Injection:
        from actors.testing import Poison

        assert self._support is not None
        handler = self._support.handler_for(fault.target)
        if handler is None:
            return Injection(at, fault.kind, fault.target, False, "no handler")
        handler.tell(Poison(f"fault injection at {at:.2f} s"))
        return Injection(at, fault.kind, fault.target, True, "Poison told to its Handler")

    def _stop_actor(self, fault: ScheduledFault, at: float, ref: Any) -> Injection:
        actor = ref.actor_ref
        actor.stop(block=False)
        return Injection(at, fault.kind, fault.target, True, f"stopped {actor}")

    def _fault_stop_launcher(self, fault: ScheduledFault, at: float) -> Injection:
        assert self._support is not None
        return self._stop_actor(fault, at, self._support.launcher)

    def _fault_stop_vmcontroller(self, fault: ScheduledFault, at: float) -> Injection:
        assert self._support is not None
        return self._stop_actor(fault, at, self._support.vmcontroller)

    def _fault_crash_registry(self, fault: ScheduledFault, at: float) -> Injection:
        from actors.testing import Poison

        assert self._support is not None
        self._support.registry.tell(Poison(f"fault injection at {at:.2f} s"))
        return Injection(at, fault.kind, fault.target, True, "Poison told to the registry")

    def _probe(self, future: Future[Any], bound: float) -> tuple[str, float | None, bool]:
        """Wait for a probe transaction: (what it got, after how long, hung)."""
        started = time.monotonic()
        done = threading.Event()
        future.add_done_callback(lambda f: done.set())
        if not done.wait(bound):
            return f"no outcome within {bound:g} s", None, True
        exc = future.exception()
        got = (
            describe_failure(exc)
            if exc is not None
            else f"status {future.result().response.status}"
        )
        return got, time.monotonic() - started, False

    def _fault_never_registers(self, fault: ScheduledFault, at: float) -> Injection:
        from actors.config import ChaincodeDefinition
        from actors.errors import StartupTimeout

        support, c = self._support, self.config
        assert support is not None
        name = f"never{next(self._never)}"
        # Restarting a chaincode that can never register cannot help: temporary policy, so
        # the fault measures only what a caller gets (a startup timeout, not a hang).
        support.define(
            ChaincodeDefinition(
                name,
                runtime="process",
                command=(sys.executable, "-c", "import time; time.sleep(3600)"),
                restart=self._policy("temporary"),
            )
        )
        future = support.execute_async(CHANNEL, None, name, ["put", "never", "registers"])
        pid_seen: list[int] = []

        def watch_pid() -> None:
            while not future.done():
                try:
                    pid = getattr(support.instance_of(name), "pid", None)
                except Exception:
                    return
                if pid and pid not in pid_seen:
                    pid_seen.append(pid)
                time.sleep(0.05)

        watcher = threading.Thread(target=watch_pid, name="faults-never-pid", daemon=True)
        watcher.start()
        got, took, hung = self._probe(future, c.startup_timeout + c.margin)
        expected = None if hung else isinstance(future.exception(), StartupTimeout)
        self._never_pids.extend(pid_seen)
        return Injection(
            at,
            fault.kind,
            name,
            True,
            f"process chaincode {name} sleeping instead of registering (pids {pid_seen})",
            probe=got,
            probe_s=took,
            expected=expected,
            hung_probe=hung,
        )

    def _fault_pipe_garbage(self, fault: ScheduledFault, at: float) -> Injection:
        support, c = self._support, self.config
        assert support is not None
        if support.handler_for(fault.target) is None:
            return Injection(at, fault.kind, fault.target, False, "no handler")
        future = support.execute_async(CHANNEL, None, fault.target, ["garbage", "64"])
        got, took, hung = self._probe(future, c.wait_bound)
        # The connection must end: the garbage transaction fails with it.
        expected = None if hung else future.exception() is not None
        return Injection(
            at,
            fault.kind,
            fault.target,
            True,
            "the chaincode wrote a 64-byte non-frame on its pipe",
            probe=got,
            probe_s=took,
            expected=expected,
            hung_probe=hung,
        )

    def _fault_grpc_garbage(self, fault: ScheduledFault, at: float) -> Injection:
        import grpc

        support, c = self._support, self.config
        assert support is not None
        address = support.peer_address()
        if not address:
            return Injection(at, fault.kind, "listener", False, "no listener")
        handlers_before = {name: support.handler_for(name) for name in c.chaincode_names}
        finished = threading.Event()
        closed: list[str] = []

        def requests() -> Iterator[bytes]:
            yield PROBE_BYTES
            finished.wait(c.wait_bound)

        channel = grpc.insecure_channel(address)
        try:
            call = channel.stream_stream("/protos.ChaincodeSupport/Register")(requests())

            def read() -> None:
                try:
                    for _ in call:
                        closed.append("the peer answered garbage with a message")
                        return
                    closed.append("stream ended")
                except grpc.RpcError as exc:
                    closed.append(f"stream closed: {exc.code().name}")

            started = time.monotonic()
            reader = threading.Thread(target=read, name="faults-grpc-garbage", daemon=True)
            reader.start()
            reader.join(c.wait_bound)
            took = time.monotonic() - started
            if not closed:
                call.cancel()
        finally:
            finished.set()
            channel.close()
        changed = [
            name
            for name, ref in handlers_before.items()
            if ref is not None and support.handler_for(name) is not ref
        ]
        detail = "rogue Register stream sent non-protobuf bytes"
        if closed:
            with self._injections_lock:
                others = [t for t in self._inject_times if at < t <= at + took + 0.5]
            if changed and not others:
                # No other fault explains it: the garbage took down other connections too.
                detail += f"; the handlers of {changed} were replaced meanwhile"
                self.finding(f"grpc_garbage at {at:.2f} s: the handlers of {changed} changed")
            return Injection(
                at,
                fault.kind,
                "listener",
                True,
                detail,
                probe=closed[0],
                probe_s=took,
                expected=not closed[0].startswith("the peer answered")
                and not (changed and not others),
            )
        return Injection(
            at,
            fault.kind,
            "listener",
            True,
            detail,
            probe=f"stream still open after {c.wait_bound:g} s",
            probe_s=None,
            expected=False,
            hung_probe=True,
        )

    def _injector(
        self, schedule: Sequence[ScheduledFault], threads: list[threading.Thread]
    ) -> None:
        for fault in schedule:
            if self._stop.wait(max(0.0, fault.at - self.now())):
                return
            thread = threading.Thread(
                target=self._inject, args=(fault,), name=f"faults-{fault.kind}", daemon=True
            )
            threads.append(thread)
            thread.start()

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> FaultReport:
        c = self.config
        dup_log = DuplicateOutcomeLog(self.book)
        root = logging.getLogger()
        root.addHandler(dup_log)
        support = None
        shutdown_s: float | None = None
        try:
            if c.runtime == "docker":
                self._prepare_docker()
            support = self._support = self._make_support()
            unsubscribe = support.subscribe(self._on_event)
            for name in c.chaincode_names:
                support.launch(name, timeout=c.startup_timeout + 30)
            report = self._load(support)
            unsubscribe()
        finally:
            self._closing.set()
            if support is not None:
                self._say("load done; shutting the peer down")
                shutdown_s = self._shutdown(support)
            root.removeHandler(dup_log)
            self._cleanup()
        return replace(
            report,
            findings=tuple(self._findings),
            shutdown_s=shutdown_s,
            duplicate_log=tuple(dup_log.samples),
        )

    def _say(self, text: str) -> None:
        if self.progress is not None:
            print(f"[{self.now():6.1f}s] {text}", file=self.progress, flush=True)

    def _load(self, support: ChaincodeSupport) -> FaultReport:
        c = self.config
        assert c.seed is not None
        schedule = build_schedule(c.faults, c.duration, c.fault_every, c.chaincode_names, c.seed)
        with self._events_lock:  # times are from here on; the launch's events are not counted
            self._t0 = time.monotonic()
            self._events.clear()
        clients = [
            threading.Thread(target=self._client, args=(i,), name=f"faults-client-{i}", daemon=True)
            for i in range(c.clients)
        ]
        fault_threads: list[threading.Thread] = []
        injector = threading.Thread(
            target=self._injector,
            args=(schedule, fault_threads),
            name="faults-injector",
            daemon=True,
        )
        watcher = threading.Thread(
            target=self._watch_instances, name="faults-instances", daemon=True
        )
        watcher.start()
        progress = None
        if self.progress is not None:
            progress = threading.Thread(
                target=self._report_progress,
                name="faults-progress",
                daemon=True,
            )
        for thread in (*clients, injector, *([progress] if progress else [])):
            thread.start()
        time.sleep(max(0.0, c.duration - self.now()))
        self._stop.set()
        seconds = self.now()
        submitted, succeeded, failed, in_flight = self.book.snapshot()
        self._say(
            f"load stopped: submitted {submitted} succeeded {succeeded} failed {failed} "
            f"in flight {in_flight}; waiting for stragglers and recoveries"
        )
        # Clients finish the transaction they are in (bounded by their own wait).
        deadline = time.monotonic() + c.wait_bound + 5
        for thread in clients:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = self._stacks([t for t in clients if t.is_alive()])
        injector.join(5)
        for thread in list(fault_threads):
            thread.join(max(0.0, deadline + c.wait_bound - time.monotonic()))
        for thread in fault_threads:
            if thread.is_alive():
                self.finding(f"fault thread {thread.name} did not finish")
        # Stragglers: outcomes of transactions whose client gave up.
        deadline = time.monotonic() + c.wait_bound
        while self.book.unresolved() and time.monotonic() < deadline:
            time.sleep(0.1)
        # Faults injected near the end: give them the time a restart may take.
        deadline = time.monotonic() + c.startup_timeout + c.execute_timeout + c.margin
        while time.monotonic() < deadline:
            events = self.events()
            records = [relate(i, events) for i in self._injections]
            if all(r.recovery_s is not None for r in records if r.needs_recovery):
                break
            time.sleep(0.1)
        self._check_leftovers()
        events = self.events()
        records = tuple(relate(i, events) for i in sorted(self._injections, key=lambda i: i.at))
        for record in records:
            if record.needs_recovery and record.recovery_s is None:
                self.finding(
                    f"{record.injection.kind} on {record.injection.target} at "
                    f"{record.injection.at:.2f} s: no recovery event; its events: "
                    f"{list(record.events) or 'none'}"
                )
            if record.injection.expected is False:
                self.finding(
                    f"{record.injection.kind} on {record.injection.target} at "
                    f"{record.injection.at:.2f} s: probe got {record.injection.probe}"
                )
        ledger = check_ledger(
            self.book.attempts(),
            LedgerReader(support.ledgers.get(CHANNEL)),
            c.chaincode_names,
        )
        return FaultReport(
            config=c,
            seconds=seconds,
            accounting=self.book.accounting(),
            restarts=count_restarts(events),
            records=records,
            summaries=summarize(records, c.faults),
            ledger=ledger,
            events=dict(Counter(e.kind for e in events).most_common()),
            stuck_threads=stuck,
        )

    @staticmethod
    def _stacks(threads: Sequence[threading.Thread]) -> tuple[str, ...]:
        frames = sys._current_frames()
        out = []
        for thread in threads:
            frame = frames.get(thread.ident or -1)
            stack = "".join(traceback.format_stack(frame)[-8:]) if frame else "?"
            out.append(f"{thread.name}:\n{stack}")
        return tuple(out)

    def _watch_instances(self) -> None:
        """Note every instance the load's chaincodes run on, to find leftovers at the end."""
        while not self._closing.wait(0.25):
            for name in self.config.chaincode_names:
                self._current_instance(name)

    def _current_instance(self, name: str) -> str | None:
        assert self._support is not None
        try:
            ident = _ident(self._support.instance_of(name))
        except Exception:
            return None
        if ident is not None:
            with self._injections_lock:
                seen = self._seen.setdefault(name, [])
                if ident not in seen:
                    seen.append(ident)
        return ident

    def _alive(self, ident: str) -> bool:
        kind, _, value = ident.partition(" ")
        if kind == "pid":
            return _proc_state(int(value)) not in (None, psutil.STATUS_ZOMBIE)
        try:
            return self._docker.containers.get(value).status in ("running", "paused")
        except Exception:
            return False

    def _still_alive(self, idents: Iterable[str], within: float) -> list[str]:
        """Those of ``idents`` still running after waiting up to ``within`` seconds."""
        deadline = time.monotonic() + within
        alive = list(idents)
        while alive:
            alive = [ident for ident in alive if self._alive(ident)]
            if not alive or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return alive

    def _all_instances(self) -> list[str]:
        with self._injections_lock:
            seen = [ident for idents in self._seen.values() for ident in idents]
        return seen + [f"pid {pid}" for pid in self._never_pids]

    def _check_leftovers(self) -> None:
        """Instances the peer replaced but did not end, and what our faults froze."""
        for name in self.config.chaincode_names:
            current = self._current_instance(name)
            with self._injections_lock:
                replaced = [i for i in self._seen.get(name, []) if i != current]
            for ident in self._still_alive(replaced, 5):
                self.finding(f"{name}: replaced instance {ident} still runs (now: {current})")
        for pid in self._stopped_pids:
            if _proc_state(pid) == psutil.STATUS_STOPPED:
                self.finding(f"hang: pid {pid} is still stopped (SIGSTOP) at the end of the load")
        for ident in self._still_alive([f"pid {pid}" for pid in self._never_pids], 5):
            self.finding(f"never_registers: {ident} still runs after its launch failed")
        for container in self._paused:
            with contextlib.suppress(Exception):
                state = self._docker.containers.get(container).attrs["State"]
                if state.get("Paused"):
                    self.finding(f"hang: container {container[:12]} is still paused")

    def _shutdown(self, support: ChaincodeSupport) -> float | None:
        started = time.monotonic()
        done = threading.Event()

        def shut() -> None:
            try:
                support.shutdown()
            except Exception as exc:
                self.finding(f"shutdown raised {exc!r}")
            finally:
                done.set()

        threading.Thread(target=shut, name="faults-shutdown", daemon=True).start()
        if not done.wait(60):
            self.finding("shutdown did not finish within 60 s")
            return None
        took = time.monotonic() - started
        for ident in self._still_alive(self._all_instances(), 5):
            self.finding(f"{ident} still runs after the peer shut down")
        return took

    def _cleanup(self) -> None:
        """Whatever the peer should have ended but did not (reported as findings already)."""
        pids = {int(i.split()[1]) for i in self._all_instances() if i.startswith("pid ")}
        for pid in pids | set(self._stopped_pids):
            if _proc_state(pid) not in (None, psutil.STATUS_ZOMBIE):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        if self._docker is not None:
            from actors.runtimes.docker import PEER_LABEL

            ours = {"label": f"{PEER_LABEL}=faults-{self.run_id}"}
            with contextlib.suppress(Exception):
                for container in self._docker.containers.list(all=True, filters=ours):
                    with contextlib.suppress(Exception):
                        container.remove(force=True)
                for image in self._docker.images.list(filters=ours):
                    with contextlib.suppress(Exception):
                        self._docker.images.remove(image.id, force=True)
            self._docker.close()
        if self._package_dir is not None:
            shutil.rmtree(self._package_dir, ignore_errors=True)


def run(config: FaultsConfig, progress: IO[str] | None = None) -> FaultReport:
    """Run one fault run and return its report."""
    return FaultRunner(config, progress).run()
