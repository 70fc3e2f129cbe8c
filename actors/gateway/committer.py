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

from actors.gateway.blocks import transactions_filter
from actors.gateway.blockstore import BlockStore
from actors.gateway.orderer import CommitBlock
from actors.gateway.validator import ChannelView, rwset_of, validate_block
from actors.ledger import Ledger
from actors.ledger.errors import LedgerError
from actors.ledger.rwset import SimulationResults
from actors.mailbox import ThreadingActor
from protos.common.common_pb2 import TRANSACTIONS_FILTER
from protos.peer import transaction_pb2 as tx_pb

log = logging.getLogger(__name__)


# Codes given after the envelope's signature and txid were checked: the txid is the
# submitter's own, so its private write sets can go. (Not a duplicate, nor an envelope that
# merely claims a txid: that must not discard another transaction's private data.)
_AUTHENTIC_REFUSALS = frozenset(
    {
        tx_pb.ENDORSEMENT_POLICY_FAILURE,
        tx_pb.INVALID_CHAINCODE,
        tx_pb.BAD_RWSET,
        tx_pb.ILLEGAL_WRITESET,
        tx_pb.BAD_HEADER_EXTENSION,
        tx_pb.BAD_RESPONSE_PAYLOAD,
        tx_pb.INVALID_ENDORSER_TRANSACTION,
    }
)


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
        block.metadata.metadata[TRANSACTIONS_FILTER] = bytes(codes)
        target.store.begin(block)
        valid = [
            (i, r.txid, r.rwset, r.timestamp)
            for i, r in enumerate(results)
            if r.code == tx_pb.VALID
        ]
        target.store.finish(bytes(_apply(target.ledger, valid, codes)))
        refused = [r.txid for r in results if r.code in _AUTHENTIC_REFUSALS and r.txid]
        if refused:
            try:
                target.ledger.discard_private(refused)
            except LedgerError as exc:  # only storage is left: never stop the committer
                log.warning("channel %s: could not drop private write sets: %s", channel, exc)


def _apply(
    ledger: Ledger, valid: list[tuple[int, str, Any, float | None]], codes: list[int]
) -> list[int]:
    """Commit the valid transactions' read/write sets to state (MVCC decides), and return the
    block's final codes. Each carries its channel-header time, for the history database."""
    codes = list(codes)
    to_ledger: list[tuple[int, str, SimulationResults, float | None]] = []
    for i, txid, rwset, stamp in valid:
        try:
            to_ledger.append((i, txid, SimulationResults.from_proto(rwset), stamp))
        except LedgerError as exc:
            log.info("tx %s: bad read/write set: %s", txid, exc)
            codes[i] = tx_pb.BAD_RWSET
    if to_ledger:
        ledger_codes = ledger.commit_block([(t, res, s) for _, t, res, s in to_ledger])
        for (i, *_), code in zip(to_ledger, ledger_codes, strict=True):
            codes[i] = code.value
    return codes


def recover(target: ChannelCommit) -> None:
    """Finish a block a crash left pending: if the state commit happened (the ledger knows its
    valid transactions), take the ledger's codes; if not, commit it now. Either way the block's
    transactions are applied exactly once."""
    block = target.store.pending()
    if block is None:
        return
    codes = list(transactions_filter(block))
    valid = []
    for i, raw in enumerate(block.data.data):
        if i < len(codes) and codes[i] == tx_pb.VALID:
            txid, rwset, stamp = rwset_of(raw)
            valid.append((i, txid, rwset, stamp))
    committed = [target.ledger.get_tx_validation_code(v[1]) for v in valid]
    if valid and committed[0] is not None:
        for (i, *_), code in zip(valid, committed, strict=True):
            codes[i] = code.value if code is not None else tx_pb.INVALID_OTHER_REASON
    else:
        codes = _apply(target.ledger, valid, codes)
    log.warning(
        "channel %s: block %d was left pending by a crash; finished it",
        target.store.channel_id,
        block.header.number,
    )
    target.store.finish(bytes(codes))
