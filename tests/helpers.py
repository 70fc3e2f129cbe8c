"""Helpers shared by the tests: free ports, CI-aware skipping, bounded receives, and server
processes started and waited for."""

from __future__ import annotations

import io
import os
import queue
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from actors.transports import MessageStream
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage

if TYPE_CHECKING:
    from actors.events import LifecycleEvent
    from actors.support import ChaincodeSupport


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test here; in CI (``CI=true``) fail it: Docker and interop tests must run."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: this test must run in CI)", pytrace=False)
    pytest.skip(reason)


def docker_engine() -> Any:
    """A docker client with the base images present and the shim layer up to date; skips
    (fails in CI) saying exactly what is missing. The caller closes it."""
    from actors.images import (
        BASE_IMAGE,
        DEBIAN_IMAGE,
        DockerUnavailable,
        build_shim_image,
        docker_client,
        find_image,
    )

    try:
        client = docker_client(timeout=60)
    except DockerUnavailable as exc:
        if os.geteuid() != 0:
            skip_or_fail(f"not root and no Docker engine answers: {exc}")
        skip_or_fail(f"no Docker engine: {exc}")
    if find_image(client, DEBIAN_IMAGE) is None:
        client.close()
        skip_or_fail(
            f"no base image {DEBIAN_IMAGE}: run `ccactors images build` "
            "(or `bash tools/ensure_docker.sh` as root)"
        )
    # Cheap when up to date; rebuilds the shim layer when our sources changed since.
    build_shim_image(client, BASE_IMAGE, progress=lambda message: None)
    return client


ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``ccactors ARGS`` as a user runs it (a new interpreter, from the repository root)."""
    return subprocess.run(
        [sys.executable, "-m", "actors.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def tar_gz(entries: Mapping[str, bytes]) -> bytes:
    """A gzipped tar of regular files, name -> content."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recv_within(stream: MessageStream, timeout: float = 10.0) -> ChaincodeMessage:
    """The next message, or the stream's own exception; fails the test after ``timeout``."""
    box: list[ChaincodeMessage | Exception] = []

    def read() -> None:
        try:
            box.append(stream.recv())
        except Exception as exc:
            box.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert box, "no message within the timeout"
    if isinstance(box[0], Exception):
        raise box[0]
    return box[0]


class ServiceProcess:
    """A server process whose output is always drained (kept in ``output``) and which is
    ready once it prints a line that ``ready`` accepts."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def launch(
        self,
        command: Sequence[str],
        ready: Callable[[str], bool],
        *,
        what: str,
        timeout: float,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.process = process
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                self.output.append(line.rstrip())
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                pytest.fail(f"{what} did not start within {timeout}s: {self.output}")
            if line is None:
                pytest.fail(f"{what} exited before serving: {self.output}")
            if ready(line):
                return

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class EventLog:
    """The lifecycle events a support publishes, recorded as they come (from actor threads)."""

    def __init__(self, support: ChaincodeSupport) -> None:
        self._items: list[LifecycleEvent] = []
        self._lock = threading.Lock()
        support.subscribe(self._add)

    def _add(self, event: LifecycleEvent) -> None:
        with self._lock:
            self._items.append(event)

    @property
    def items(self) -> list[LifecycleEvent]:
        with self._lock:
            return list(self._items)

    def of(self, kind: str, chaincode: str | None = None) -> list[LifecycleEvent]:
        return [e for e in self.items if e.kind == kind and chaincode in (None, e.chaincode)]

    def kinds(self, chaincode: str | None = None) -> list[str]:
        return [e.kind for e in self.items if chaincode in (None, e.chaincode)]

    def details(self, kind: str, chaincode: str | None = None) -> list[str]:
        return [e.detail for e in self.of(kind, chaincode)]

    def count(self, kind: str, chaincode: str | None = None) -> int:
        return len(self.of(kind, chaincode))


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.005,
    *,
    what: str | None = None,
) -> Any:
    """Poll ``predicate`` until it returns something truthy or ``timeout`` passes. Returns its
    last value, so ``assert wait_for(...)`` shows what it was; with ``what``, a timeout raises
    AssertionError naming what was awaited instead."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            if what is not None:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            return value
        time.sleep(interval)


class Inbox:
    """A stand-in for an actor (or supervised) reference that records what it is told or
    asked, for driving one actor alone: its collaborators are Inboxes. ``answer`` gives the
    reply to an ask (default None)."""

    def __init__(self, answer: Callable[[Any], Any] | None = None) -> None:
        self.messages: list[Any] = []
        self.stopped = False
        self._answer = answer
        self._lock = threading.Lock()

    def tell(self, message: Any) -> None:
        with self._lock:
            self.messages.append(message)

    def ask(self, message: Any, timeout: float | None = None) -> Any:
        self.tell(message)
        return self._answer(message) if self._answer is not None else None

    def is_alive(self) -> bool:
        return not self.stopped

    def stop(self, block: bool = True, timeout: float | None = None) -> None:
        self.stopped = True

    def of(self, kind: type) -> list[Any]:
        with self._lock:
            return [m for m in self.messages if type(m) is kind]

    def wait(self, kind: type, count: int = 1) -> list[Any]:
        """The messages of type ``kind`` once there are ``count`` (fails after a while)."""
        wait_for(lambda: len(self.of(kind)) >= count, what=f"{count} x {kind.__name__}")
        return self.of(kind)
