"""System chaincodes: each in its own OS process, linked to its Handler by a Pipe.

Fabric 1.x ran system chaincodes in the peer process (``inproccontroller``), 2.x on an in-memory
stream. Here each runs in a child process started with multiprocessing and speaks the normal
protocol (REGISTER first) over a Pipe carrying msgpack frames, so a crashing system chaincode
cannot take the peer down and can be killed and restarted on its own.

Children come from a fork server by default: forking a multi-threaded peer directly is unsafe,
and spawning a fresh interpreter costs ~100 ms, while a fork server that has already imported
the shim forks a ready child in a few milliseconds.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import warnings
from typing import Any

from actors.config import ChaincodeDefinition
from actors.runtimes import Connect, ExitStatus
from actors.transports.pipe import DEFAULT_MAX_FRAME, PipeStream

log = logging.getLogger(__name__)

# Imported once by the fork server so that every child starts with them loaded. Children
# re-import the parent's __main__ (multiprocessing's rule); for the ccactors command that is
# actors.cli, which pulls in grpc, cryptography, docker and prometheus: ~165 ms per launch
# unless the fork server already has them.
PRELOAD = ["actors.runtimes.system", "actors.shim", "actors.transports.pipe", "actors.cli"]
# Having actors.cli preloaded makes runpy warn in each child of `python -m actors.cli` that the
# module it re-runs as __mp_main__ is imported already: expected, and harmless. (Not preloading
# it instead costs 7-14 ms per launch.)
warnings.filterwarnings(
    "ignore", message=r"'actors\.cli' found in sys\.modules", category=RuntimeWarning
)


def load_chaincode(target: str) -> Any:
    """Instantiate ``module:Class`` (or ``module:factory``)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"chaincode target must be 'module:Class', got {target!r}")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory()


def run_system_chaincode(
    conn: multiprocessing.connection.Connection, name: str, target: str, max_frame: int
) -> None:
    """Child process entry point: run the shim over the pipe until the peer closes it."""
    from actors.shim import ShimHandler

    # Ctrl-C in a terminal reaches the whole process group; the peer decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stream = PipeStream(conn, max_frame)
    try:
        chaincode = load_chaincode(target)
    except Exception as exc:
        log.error("cannot load system chaincode %s from %s: %s", name, target, exc)
        raise SystemExit(3) from exc
    ShimHandler(stream, chaincode, name).run()


def _read_exit_status_once(process: multiprocessing.process.BaseProcess) -> None:
    """Make a fork-server child's exit status safe to read from several threads.

    The fork server writes the status to the process's sentinel pipe once, and CPython's
    ``Popen.poll`` reads it without a lock (CPython gh-130895): when two threads poll at the
    same moment (the exit waiter, the Handler's reader asking why the pipe closed, another
    ``Process.start`` reaping finished children) the loser reads EOF and overwrites the real
    status with 255. Wait outside a lock, read under it, so the status is read exactly once.
    """
    popen: Any = process._popen  # type: ignore[attr-defined]
    poll = popen.poll
    lock = threading.Lock()

    def locked_poll(flag: int = os.WNOHANG) -> int | None:
        if popen.returncode is None:
            timeout = 0 if flag == os.WNOHANG else None
            if not multiprocessing.connection.wait([popen.sentinel], timeout):
                return None
            with lock:
                return poll(os.WNOHANG)  # returns the status another thread read, if any
        return popen.returncode

    popen.poll = locked_poll


class SystemInstance:
    """One system chaincode process."""

    def __init__(self, chaincode: str, process: multiprocessing.process.BaseProcess) -> None:
        self.chaincode = chaincode
        self.process = process
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def wait(self) -> ExitStatus:
        self.process.join()
        return self._status()

    def exit_status(self, timeout: float = 0.0) -> ExitStatus | None:
        self.process.join(timeout)
        return None if self.process.exitcode is None else self._status()

    def _status(self) -> ExitStatus:
        code = self.process.exitcode
        assert code is not None
        return ExitStatus.from_returncode(code)

    def stop(self, timeout: float = 5.0) -> None:
        # The shim exits by itself once its Handler closes the pipe; give it a moment, then
        # SIGTERM, then SIGKILL.
        with self._lock:
            proc = self.process
            proc.join(min(timeout, 0.5))
            if proc.exitcode is None:
                proc.terminate()
                proc.join(timeout)
            if proc.exitcode is None:
                proc.kill()
                proc.join(5)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Fault injection: send ``sig`` to the process."""
        if self.process.pid is not None and self.process.exitcode is None:
            os.kill(self.process.pid, sig)

    def describe(self) -> str:
        return f"system process pid {self.pid}"


_forkserver_users = 0
_forkserver_users_lock = threading.Lock()


class SystemRuntime:
    """Starts system chaincodes as child processes."""

    kind = "system"

    def __init__(
        self, start_method: str = "forkserver", max_frame: int = DEFAULT_MAX_FRAME
    ) -> None:
        self._ctx = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            self._ctx.set_forkserver_preload(PRELOAD)
            with _forkserver_users_lock:
                global _forkserver_users
                _forkserver_users += 1
        self.start_method = start_method
        self.max_frame = max_frame
        self._closed = False

    def start(self, definition: ChaincodeDefinition, connect: Connect) -> SystemInstance:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=run_system_chaincode,
            args=(child, definition.name, definition.target, self.max_frame),
            name=f"ccactors-syscc-{definition.name}",
            daemon=True,
        )
        try:
            process.start()
        finally:
            child.close()  # the child has its own copy; ours would hide EOF from the reader
        if self.start_method == "forkserver":
            _read_exit_status_once(process)
        instance = SystemInstance(definition.name, process)
        connect(PipeStream(parent, self.max_frame), instance)
        return instance

    def close(self) -> None:
        """Stop the fork server once its last user is gone, so that a shut-down peer leaves
        no process behind. Idempotent."""
        if self.start_method != "forkserver" or self._closed:
            return
        self._closed = True
        global _forkserver_users
        with _forkserver_users_lock:
            _forkserver_users -= 1
            # The fork server is per interpreter, shared by every ChaincodeSupport here (and
            # anything else using forkserver). It only exits once every child it forked has
            # closed its copy of the server's lifeline, so stopping it under live children
            # would block; leave it then (it dies with this process).
            if _forkserver_users > 0 or multiprocessing.active_children():
                return
            from multiprocessing import forkserver

            stop = getattr(forkserver._forkserver, "_stop", None)
            if stop is not None:
                stop()
