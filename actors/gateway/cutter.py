"""The block cutter: when a batch of ordered transactions becomes a block.

Fabric counterpart: ``orderer/common/blockcutter/blockcutter.go`` with the ``BatchSize`` and
``BatchTimeout`` of the channel's orderer config, as the solo consenter uses it. Pure: it is
given envelopes and says which batches to cut; the ordering stage owns the timer (it cuts what
is pending when ``BatchTimeout`` has passed since the first pending message).
"""

from __future__ import annotations

from dataclasses import dataclass, field


class BatchConfigError(ValueError):
    """BatchSize / BatchTimeout values Fabric would refuse."""


@dataclass(frozen=True)
class BatchConfig:
    """Fabric's ``Orderer.BatchSize`` and ``Orderer.BatchTimeout`` (sample configtx values)."""

    max_message_count: int = 500
    absolute_max_bytes: int = 10 * 1024 * 1024
    preferred_max_bytes: int = 2 * 1024 * 1024
    batch_timeout: float = 2.0

    def __post_init__(self) -> None:
        for name in ("max_message_count", "absolute_max_bytes", "preferred_max_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise BatchConfigError(
                    f"BatchSize.{name} must be a positive integer, got {value!r}"
                )
        if self.preferred_max_bytes > self.absolute_max_bytes:
            raise BatchConfigError(
                "BatchSize.preferred_max_bytes must not exceed absolute_max_bytes"
            )
        timeout = self.batch_timeout
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not (0 < timeout <= 3600)
        ):
            raise BatchConfigError(f"BatchTimeout must be in (0, 1h], got {timeout!r}")


@dataclass
class BlockCutter:
    """Fabric's receiver: ``ordered`` returns the batches to cut now and whether something is
    left pending (the caller starts the batch timer when it is)."""

    config: BatchConfig
    _pending: list[bytes] = field(default_factory=list)
    _pending_bytes: int = 0

    def ordered(self, envelope: bytes) -> tuple[list[list[bytes]], bool]:
        size = len(envelope)
        batches: list[list[bytes]] = []
        if size > self.config.preferred_max_bytes:
            if self._pending:
                batches.append(self.cut())
            batches.append([envelope])
            return batches, False
        if self._pending_bytes + size > self.config.preferred_max_bytes:
            batches.append(self.cut())
        self._pending.append(envelope)
        self._pending_bytes += size
        if len(self._pending) >= self.config.max_message_count:
            batches.append(self.cut())
        return batches, bool(self._pending)

    def cut(self) -> list[bytes]:
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        return batch

    @property
    def pending(self) -> int:
        return len(self._pending)
