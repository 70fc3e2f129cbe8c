"""A chaincode's output, as the peer keeps it: every line to the logger
``peer.chaincode.<name>``, the last ones in a ring buffer that explains an exit.

Fabric counterpart: ``dockercontroller``'s ``streamOutput`` (container logs to the
``peer.chaincode.<id>`` logger). Used by the runtimes whose chaincode writes to a pipe the peer
reads (system, process); the Docker runtime reads the engine's log stream instead.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import IO

from actors.runtimes import ExitStatus

LOG_LINES = 200


class OutputTail:
    """Reads ``stream`` to its end on a daemon thread."""

    def __init__(self, chaincode: str, stream: IO[bytes]) -> None:
        self.chaincode = chaincode
        self.lines: deque[str] = deque(maxlen=LOG_LINES)
        self._stream = stream
        self._pump = threading.Thread(
            target=self._read, name=f"ccactors-log-{chaincode}", daemon=True
        )
        self._pump.start()

    def _read(self) -> None:
        logger = logging.getLogger(f"peer.chaincode.{self.chaincode}")
        with self._stream:
            for raw in self._stream:
                line = raw.decode("utf-8", "replace").rstrip()
                self.lines.append(line)
                logger.info("%s", line)

    def settle(self, timeout: float = 1.0) -> None:
        """Wait (bounded: a grandchild may hold the pipe open) until the output has been read
        to its end, once the chaincode has exited, so the tail holds its last words."""
        self._pump.join(timeout)

    def last(self, count: int) -> list[str]:
        return list(self.lines)[-count:]

    def report_exit(self, what: str, status: ExitStatus, stopped: bool) -> None:
        """Log how the chaincode ended with its last lines: at WARNING unless it ended
        cleanly or the peer stopped it."""
        self.settle()
        quiet = stopped or status == ExitStatus(code=0)
        tail = "".join(f"\n  | {line}" for line in self.last(10))
        logging.getLogger("actors.runtimes").log(
            logging.INFO if quiet else logging.WARNING,
            "chaincode %s %s%s",
            what,
            status.describe(),
            tail,
        )
