"""The embedded ordering stage: Fabric's solo orderer inside the peer.

Fabric counterparts: ``orderer/common/broadcast`` and ``msgprocessor`` (intake checks: size,
creator expiry, the channel's Writers policy), ``orderer/consensus/solo`` (one orderer, blocks
cut as ``blockcutter`` says and on ``BatchTimeout``) and ``multichannel/blockwriter.go`` (blocks
numbered, hash-chained and signed). One actor orders every channel: a submit is one tell,
answered through a future once the envelope is accepted (accepted is not committed, as in
Fabric); cut blocks go on to the committer by tell.

The orderer signs blocks with the peer's own identity: a single-peer network has no separate
orderer organisation, and a client never checks block signatures.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

import pykka
from google.protobuf.message import DecodeError

from actors.gateway import blocks
from actors.gateway.cutter import BatchConfig, BlockCutter
from actors.gateway.validator import channel_policy
from actors.mailbox import ThreadingActor, tell_quietly
from actors.msp.msp import MSPError, MSPManager, SigningIdentity, parse_certificate
from actors.msp.policies import PolicyError, SignedData
from protos.common.common_pb2 import (
    BAD_REQUEST,
    CONFIG,
    CONFIG_UPDATE,
    FORBIDDEN,
    ORDERER_TRANSACTION,
    SUCCESS,
    ChannelHeader,
    Envelope,
    Payload,
    SignatureHeader,
)
from protos.msp.identities_pb2 import SerializedIdentity

log = logging.getLogger(__name__)


class Deadline(Protocol):
    def cancel(self) -> None: ...


CallLater = Callable[[float, Callable[[], None]], Deadline]


@dataclass(frozen=True)
class Broadcast:
    """Order one envelope; ``reply`` gets ``(status, info)`` (Fabric's BroadcastResponse)."""

    envelope: bytes
    reply: Future


@dataclass(frozen=True)
class BatchTimedOut:
    channel: str
    generation: int


@dataclass(frozen=True)
class CommitBlock:
    """To the committer: a block the orderer cut (already signed)."""

    channel: str
    block: Any  # common.Block


@dataclass
class _Chain:
    cutter: BlockCutter
    number: int
    previous_hash: bytes
    timer: Deadline | None = None
    generation: int = 0


@dataclass(frozen=True)
class ChannelOrdering:
    """A channel as the orderer knows it: its members, its height, its last header hash."""

    msps: MSPManager
    height: int
    previous_hash: bytes


class Orderer(ThreadingActor):
    """Intake, block cutting and block writing for every channel of the peer."""

    def __init__(
        self,
        *,
        channels: Callable[[str], ChannelOrdering | None],
        committer: pykka.ActorRef[Any],
        signer: SigningIdentity,
        call_later: CallLater,
        batch: BatchConfig,
    ) -> None:
        super().__init__()
        self._channels = channels
        self._committer = committer
        self._signer = signer
        self._call_later = call_later
        self._batch = batch
        self._chains: dict[str, _Chain] = {}

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Broadcast):
            self._broadcast(message)
        elif isinstance(message, BatchTimedOut):
            chain = self._chains.get(message.channel)
            if chain is not None and chain.generation == message.generation:
                chain.timer = None
                batch = chain.cutter.cut()
                if batch:
                    self._write(message.channel, chain, batch)
        return None

    def on_stop(self) -> None:
        for chain in self._chains.values():
            if chain.timer is not None:
                chain.timer.cancel()

    # --- intake ------------------------------------------------------------------------------

    def _broadcast(self, message: Broadcast) -> None:
        try:
            channel, status, info = self._check(message.envelope)
        except Exception as exc:
            log.exception("ordering failed")
            message.reply.set_result((500, f"ordering failed: {exc}"))
            return
        if status != SUCCESS:
            message.reply.set_result((status, info))
            return
        message.reply.set_result((SUCCESS, ""))
        chain = self._chain(channel)
        batches, pending = chain.cutter.ordered(message.envelope)
        for batch in batches:
            self._write(channel, chain, batch)
        if not pending and chain.timer is not None:
            chain.timer.cancel()
            chain.timer = None
        elif pending and chain.timer is None:
            chain.generation += 1
            generation = chain.generation
            me = self.actor_ref
            chain.timer = self._call_later(
                self._batch.batch_timeout,
                lambda: tell_quietly(me, BatchTimedOut(channel, generation)),
            )

    def _check(self, raw: bytes) -> tuple[str, int, str]:
        """Fabric's broadcast checks, in Fabric's order, with its statuses and texts: the
        broadcast handler finds the channel from the channel header (``BroadcastChannelSupport``)
        and refuses config messages, then the standard channel's filters run (``ProcessNormalMsg``:
        empty, size, creator expiry, the channel's Writers policy)."""
        try:
            envelope = Envelope.FromString(raw)
            payload = Payload.FromString(envelope.payload)
        except DecodeError as exc:
            return "", BAD_REQUEST, f"could not determine channel ID: {exc}"
        if not payload.HasField("header"):
            return "", BAD_REQUEST, "could not determine channel ID: header not set"
        if not payload.header.channel_header:
            return "", BAD_REQUEST, "could not determine channel ID: channel header not set"
        try:
            header = ChannelHeader.FromString(payload.header.channel_header)
        except DecodeError as exc:
            return "", BAD_REQUEST, f"could not determine channel ID: {exc}"
        channel = header.channel_id
        ordering = self._channels(channel)
        if ordering is None:
            return (
                "",
                BAD_REQUEST,
                (
                    "channel creation request not allowed because the orderer system channel is "
                    "not defined"
                ),
            )
        if header.type in (CONFIG, ORDERER_TRANSACTION):
            return channel, BAD_REQUEST, "message is of type that cannot be processed directly"
        # ProcessNormalMsg's filters (CONFIG_UPDATE passes the same ones first)
        if not envelope.payload:
            return channel, BAD_REQUEST, "Message was empty"
        size = len(envelope.payload) + len(envelope.signature)
        if size > self._batch.absolute_max_bytes:
            return (
                channel,
                BAD_REQUEST,
                (
                    f"message payload is {size} bytes and exceeds maximum allowed "
                    f"{self._batch.absolute_max_bytes} bytes"
                ),
            )
        try:
            signature_header = SignatureHeader.FromString(payload.header.signature_header)
        except DecodeError as exc:
            return channel, BAD_REQUEST, f"could not convert message to signedData: {exc}"
        if _expired(signature_header.creator):
            return channel, BAD_REQUEST, "broadcast client identity expired"
        signed = [SignedData(envelope.payload, signature_header.creator, envelope.signature)]
        try:
            channel_policy("/Channel/Writers", signed, ordering.msps)
        except PolicyError as exc:
            return channel, FORBIDDEN, f"{exc}: permission denied"
        if header.type == CONFIG_UPDATE:
            return (
                channel,
                BAD_REQUEST,
                f"error applying config update to existing channel '{channel}': this peer's "
                "embedded orderer has no channel configuration to update",
            )
        return channel, SUCCESS, ""

    # --- blocks ------------------------------------------------------------------------------

    def _chain(self, channel: str) -> _Chain:
        chain = self._chains.get(channel)
        if chain is None:
            ordering = self._channels(channel)
            assert ordering is not None  # checked at intake
            chain = _Chain(BlockCutter(self._batch), ordering.height, ordering.previous_hash)
            self._chains[channel] = chain
        return chain

    def _write(self, channel: str, chain: _Chain, batch: list[bytes]) -> None:
        block = blocks.new_block(chain.number, chain.previous_hash, batch)
        blocks.sign_block(block, self._signer)
        chain.number += 1
        chain.previous_hash = blocks.header_hash(block.header)
        tell_quietly(self._committer, CommitBlock(channel, block))


def _expired(creator: bytes) -> bool:
    """Whether the creator's certificate has expired, read from the serialized identity alone
    as Fabric's ``crypto.ExpiresAt`` reads it: what cannot be read does not expire here (the
    Writers policy refuses it)."""
    try:
        cert = parse_certificate(SerializedIdentity.FromString(creator).id_bytes)
    except (DecodeError, MSPError):
        return False
    return cert.not_valid_after_utc <= dt.datetime.now(dt.UTC)
