"""Ways of running chaincode, one module each, behind one small interface.

Fabric counterpart: ``core/container`` (``ccintf``, ``dockercontroller``, ``externalbuilder``)
and 1.x's ``inproccontroller``. A :class:`Runtime` starts an :class:`Instance` of a chaincode
definition and hands every stream that instance opens to ``connect`` (pipe runtimes call it
themselves; network runtimes are reached through the gRPC listener instead).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from actors.config import ChaincodeDefinition
from actors.transports import MessageStream


@dataclass(frozen=True)
class ExitStatus:
    """How an instance ended: an exit code, or the signal that killed it."""

    code: int | None = None
    signal: int | None = None

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitStatus:
        """``Popen``/``multiprocessing`` convention: negative means killed by that signal."""
        return cls(signal=-returncode) if returncode < 0 else cls(code=returncode)

    def describe(self) -> str:
        if self.signal is None and self.code is None:
            return "exited with an unknown status"
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = "unknown signal"
            # Say it both ways: shells and Docker report a kill as 128 + signal.
            return f"exited with code {128 + self.signal} ({name})"
        return f"exited with code {self.code}"


def last_log_lines(instance: Any, lines: int = 5) -> tuple[str, ...]:
    """What the instance printed last (nothing when its runtime captures no output)."""
    last_lines = getattr(instance, "last_lines", None)
    return tuple(last_lines(lines)) if last_lines is not None else ()


def exit_cause(instance: Any, status: ExitStatus, tail: tuple[str, ...]) -> str:
    """ "chaincode kv exited with code 137 (SIGKILL); last log lines: a | b"."""
    text = f"chaincode {instance.chaincode} {status.describe()}"
    return text + "; last log lines: " + " | ".join(tail) if tail else text


def describe_end(instance: Any, fallback: str, wait: float = 1.0) -> str:
    """Why a chaincode's connection ended, from its instance: the exit status (waiting a
    little for it: the stream usually ends first) and the last lines it printed."""
    status = instance.exit_status(timeout=wait)
    return fallback if status is None else exit_cause(instance, status, last_log_lines(instance))


class Instance(Protocol):
    """One running copy of a chaincode."""

    chaincode: str

    def wait(self) -> ExitStatus:
        """Block until the instance has ended."""

    def exit_status(self, timeout: float = 0.0) -> ExitStatus | None:
        """The exit status if it has ended (waiting at most ``timeout``), else None."""

    def stop(self, timeout: float = 5.0) -> None:
        """End the instance: politely, then by force after ``timeout`` seconds."""

    def describe(self) -> str:
        """A short human description (pid, container id, ...)."""


Connect = Callable[[MessageStream, Instance], None]


class Runtime(Protocol):
    """A way of running chaincode. A runtime that needs a slow preparation step (an image
    build) also offers ``build(definition)``, which the VM controller calls before ``start``
    so that the launcher can keep it out of the startup timeout."""

    kind: str

    def start(self, definition: ChaincodeDefinition, connect: Connect) -> Instance:
        """Start an instance; raise with a clear message when that is impossible."""

    def close(self) -> None:
        """Release what the runtime holds (helper processes, clients)."""
