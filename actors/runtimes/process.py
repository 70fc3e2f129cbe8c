"""Chaincode as a local OS process that dials the peer over gRPC (Fabric's "dev mode" way,
and how a developer runs Node or Go chaincode by hand).

Fabric counterpart: none in the peer (in dev mode the user starts the chaincode); the
environment and arguments are those ``dockercontroller`` gives a container:
``CORE_CHAINCODE_ID_NAME``, ``CORE_PEER_ADDRESS``, ``CORE_PEER_TLS_ENABLED``, the logging
variables, and ``--peer.address`` on the command line. The process's output goes to the logger
``peer.chaincode.<name>`` and to a ring buffer whose last lines explain an exit
(:mod:`actors.runtimes.output`). It runs in ``workdir``, which is also where the shim imports
``target`` from.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from actors.config import ChaincodeDefinition
from actors.runtimes import Connect, ExitStatus
from actors.runtimes.output import OutputTail
from actors.tls import ClientTLS


class ProcessInstance:
    """One chaincode process and the tail of its output."""

    def __init__(
        self, chaincode: str, process: subprocess.Popen[bytes], tls_dir: str | None = None
    ) -> None:
        self.chaincode = chaincode
        self.process = process
        self._tls_dir = tls_dir
        self._stopped = False
        assert process.stdout is not None
        self._output = OutputTail(chaincode, process.stdout)
        self.log_tail = self._output.lines

    @property
    def pid(self) -> int:
        return self.process.pid

    def last_lines(self, count: int = 10) -> list[str]:
        if self.process.poll() is not None:
            self._output.settle()
        return self._output.last(count)

    def wait(self) -> ExitStatus:
        status = ExitStatus.from_returncode(self.process.wait())
        self._output.report_exit(f"{self.chaincode} ({self.describe()})", status, self._stopped)
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)  # the chaincode's private key
        return status

    def exit_status(self, timeout: float = 0.0) -> ExitStatus | None:
        try:
            return ExitStatus.from_returncode(self.process.wait(timeout))
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped = True
        proc = self.process
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def describe(self) -> str:
        return f"process pid {self.pid}"


class ProcessRuntime:
    """Starts chaincode processes that dial the peer's chaincode listener."""

    kind = "process"

    def __init__(
        self,
        peer_address: Callable[[], str | None],
        base_env: Mapping[str, str] | None = None,
        tls: Callable[[str], ClientTLS | None] | None = None,
        msp_id: str | None = None,
    ) -> None:
        self._peer_address = peer_address
        self.msp_id = msp_id
        self._base_env = dict(os.environ if base_env is None else base_env)
        self._tls = tls or (lambda ccid: None)

    def command_for(self, definition: ChaincodeDefinition, address: str) -> list[str]:
        if definition.command:
            return [*definition.command, "--peer.address", address]
        return [sys.executable, "-m", "actors.shim", "--peer.address", address, definition.target]

    def environment(self, definition: ChaincodeDefinition, address: str) -> dict[str, str]:
        env = dict(self._base_env)
        env.update(
            CORE_CHAINCODE_ID_NAME=definition.name,
            CORE_PEER_ADDRESS=address,
            CORE_PEER_TLS_ENABLED="false",
            CORE_CHAINCODE_LOGGING_LEVEL=env.get("CORE_CHAINCODE_LOGGING_LEVEL", "info"),
            CORE_CHAINCODE_LOGGING_SHIM=env.get("CORE_CHAINCODE_LOGGING_SHIM", "warning"),
        )
        if self.msp_id:
            env["CORE_PEER_LOCALMSPID"] = self.msp_id  # as Fabric gives every chaincode
        env.update(definition.env)
        return env

    def start(self, definition: ChaincodeDefinition, connect: Connect) -> ProcessInstance:
        address = self._peer_address()
        if not address:
            raise RuntimeError(
                "no chaincode listener is running: call ChaincodeSupport.listen() first"
            )
        env = self.environment(definition, address)
        tls_dir = None
        client_tls = self._tls(definition.name)
        if client_tls is not None:
            tls_dir = tempfile.mkdtemp(prefix=f"ccactors-tls-{definition.name}-")
            env.update(client_tls.write_files(Path(tls_dir)))
        try:
            process = subprocess.Popen(
                self.command_for(definition, address),
                env=env,
                cwd=definition.workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C is for the peer, not for us
            )
        except OSError as exc:
            if tls_dir is not None:
                shutil.rmtree(tls_dir, ignore_errors=True)
            raise RuntimeError(
                f"cannot start {definition.command or definition.target}: {exc}"
            ) from exc
        return ProcessInstance(definition.name, process, tls_dir)

    def close(self) -> None:
        pass
