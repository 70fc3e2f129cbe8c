"""The committer: validates each ordered block, applies it to state, stores it.

Fabric counterparts: ``core/committer/committer_impl.go`` with ``txvalidator/v20`` (signatures,
endorsement and key-level policies, duplicates) followed by ``kvledger.CommitLegacy`` (MVCC and
phantom checks, the state update, the block store with its TRANSACTIONS_FILTER). One actor
commits the blocks of every channel in order; after a block is stored, CommitStatus waiters
and ChaincodeEvents streams see it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors.gateway.blockstore import BlockStore
from actors.gateway.orderer import CommitBlock
from actors.gateway.validator import ChannelView, validate_block
from actors.ledger import Ledger
from actors.ledger.errors import LedgerError
from actors.ledger.rwset import SimulationResults
from actors.mailbox import ThreadingActor
from protos.common.common_pb2 import TRANSACTIONS_FILTER
from protos.peer import transaction_pb2 as tx_pb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChannelCommit:
    """What committing to one channel needs: the validator's view, state and blocks."""

    view: ChannelView
    ledger: Ledger
    store: BlockStore


class Committer(ThreadingActor):
    def __init__(self, *, channels: Callable[[str], ChannelCommit | None]) -> None:
        super().__init__()
        self._channels = channels

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, CommitBlock):
            self._commit(message.channel, message.block)
        return None

    def _commit(self, channel: str, block: Any) -> None:
        target = self._channels(channel)
        if target is None:
            log.error("block %d for unknown channel %s dropped", block.header.number, channel)
            return
        results = validate_block(list(block.data.data), target.view)
        codes = [r.code for r in results]
        to_ledger: list[tuple[int, str, SimulationResults]] = []
        for i, r in enumerate(results):
            if r.code != tx_pb.VALID:
                continue
            try:
                to_ledger.append((i, r.txid, SimulationResults.from_proto(r.rwset)))
            except LedgerError as exc:
                log.info("tx %s: bad read/write set: %s", r.txid, exc)
                codes[i] = tx_pb.BAD_RWSET
        if to_ledger:
            ledger_codes = target.ledger.commit_block([(txid, res) for _, txid, res in to_ledger])
            for (i, _, _), code in zip(to_ledger, ledger_codes, strict=True):
                codes[i] = code.value
        block.metadata.metadata[TRANSACTIONS_FILTER] = bytes(codes)
        target.store.append(block)
