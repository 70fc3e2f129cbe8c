"""System chaincodes: each in its own OS process, linked to its Handler by a Pipe.

Fabric 1.x ran system chaincodes in the peer process (``inproccontroller``), 2.x on an in-memory
stream. Here each runs in a child process started with multiprocessing and speaks the normal
protocol (REGISTER first) over a Pipe carrying msgpack frames, so a crashing system chaincode
cannot take the peer down and can be killed and restarted on its own.

Children come from a fork server by default: forking a multi-threaded peer directly is unsafe,
and spawning a fresh interpreter costs ~100 ms, while a fork server that has already imported
the shim forks a ready child in a few milliseconds.

A child runs in its definition's ``workdir`` (the peer's current directory when it has none),
imports its target from there first (:mod:`actors.shim.loader`), and writes its stdout and
stderr to a pipe the peer reads (:mod:`actors.runtimes.output`), so a launch that fails says why.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import warnings
from typing import Any

from actors.config import ChaincodeDefinition
from actors.runtimes import Connect, ExitStatus
from actors.runtimes.output import OutputTail
from actors.transports.pipe import DEFAULT_MAX_FRAME, PipeStream

log = logging.getLogger(__name__)

# Imported once by the fork server so that every child starts with them loaded.
PRELOAD = ["actors.runtimes.system", "actors.shim", "actors.transports.pipe"]
# Children also re-import the parent's __main__ (multiprocessing's rule): for the ccactors
# command that is actors.cli, which pulls in grpc, cryptography, docker and prometheus, ~165 ms
# per launch unless the fork server has them. So it also imports whatever of ccactors the
# peer has loaded when its runtime is made (see SystemRuntime); a child of `python -m X` then
# finds X imported already, and runpy warns that it re-runs it as __mp_main__: expected, and
# harmless.
warnings.filterwarnings(
    "ignore", message=r"'[\w.]+' found in sys\.modules after import", category=RuntimeWarning
)


def _preload() -> list[str]:
    loaded = sorted(m for m in sys.modules if m.split(".", 1)[0] == "actors")
    return PRELOAD + [m for m in loaded if m not in PRELOAD]


def run_system_chaincode(
    conn: multiprocessing.connection.Connection,
    output: multiprocessing.connection.Connection,
    name: str,
    target: str,
    workdir: str,
    max_frame: int,
) -> None:
    """Child process entry point: run the shim over the pipe until the peer closes it. Its
    stdout and stderr go to ``output``, which the peer reads (:mod:`actors.runtimes.output`)."""
    from actors.shim import ShimHandler
    from actors.shim.loader import load_chaincode

    # Ctrl-C in a terminal reaches the whole process group; the peer decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.dup2(output.fileno(), 1)
    os.dup2(output.fileno(), 2)
    output.close()
    if sys.stdout is not None:
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    stream = PipeStream(conn, max_frame)
    try:
        os.chdir(workdir)
        chaincode = load_chaincode(target, workdir)
    except Exception as exc:
        log.error(
            "cannot load system chaincode %s from %s in %s: %s: %s",
            name,
            target,
            workdir,
            type(exc).__name__,
            exc,
        )
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

    def __init__(
        self, chaincode: str, process: multiprocessing.process.BaseProcess, output: OutputTail
    ) -> None:
        self.chaincode = chaincode
        self.process = process
        self._output = output
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def last_lines(self, count: int = 10) -> list[str]:
        if self.process.exitcode is not None:
            self._output.settle()
        return self._output.last(count)

    def wait(self) -> ExitStatus:
        self.process.join()
        status = self._status()
        self._output.report_exit(f"{self.chaincode} ({self.describe()})", status, self._stopped)
        return status

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
        self._stopped = True
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
            self._ctx.set_forkserver_preload(_preload())
            with _forkserver_users_lock:
                global _forkserver_users
                _forkserver_users += 1
        self.start_method = start_method
        self.max_frame = max_frame
        self._closed = False

    def start(self, definition: ChaincodeDefinition, connect: Connect) -> SystemInstance:
        parent, child = self._ctx.Pipe(duplex=True)
        output, write_end = os.pipe()
        child_output = multiprocessing.connection.Connection(write_end, readable=False)
        workdir = definition.workdir or os.getcwd()
        process = self._ctx.Process(
            target=run_system_chaincode,
            args=(child, child_output, definition.name, definition.target, workdir, self.max_frame),
            name=f"ccactors-syscc-{definition.name}",
            daemon=True,
        )
        try:
            process.start()
        except BaseException:
            os.close(output)
            raise
        finally:
            # The child has its own copies; ours would hide EOF from the readers.
            child.close()
            child_output.close()
        if self.start_method == "forkserver":
            _read_exit_status_once(process)
        tail = OutputTail(definition.name, os.fdopen(output, "rb"))
        instance = SystemInstance(definition.name, process, tail)
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
