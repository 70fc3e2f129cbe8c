"""Blocks in Fabric's ``common.Block`` format: hash chain, data hash, orderer signatures.

Fabric counterparts: ``protoutil/blockutils.go`` (``NewBlock``, ``BlockHeaderBytes``,
``BlockHeaderHash``, ``ComputeBlockDataHash``) and ``orderer/common/multichannel/blockwriter.go``
(the SIGNATURES and LAST_CONFIG metadata an orderer adds). A block written here is one a Fabric
tool can read: five metadata slots, the header hash over the DER encoding Go's
``encoding/asn1`` produces, the data hash over the plain concatenation of the envelopes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from actors.msp.msp import Identity, SigningIdentity
from actors.msp.signatures import SignatureError
from protos.common.common_pb2 import (
    COMMIT_HASH,
    LAST_CONFIG,
    SIGNATURES,
    TRANSACTIONS_FILTER,
    Block,
    BlockHeader,
    LastConfig,
    Metadata,
    MetadataSignature,
    OrdererBlockMetadata,
    SignatureHeader,
)

METADATA_SLOTS = (
    COMMIT_HASH + 1
)  # SIGNATURES, LAST_CONFIG, TRANSACTIONS_FILTER, ORDERER, COMMIT_HASH


class BlockError(ValueError):
    """A block that does not extend the chain, or whose hashes or signatures are wrong."""


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_integer(n: int) -> bytes:
    # minimal two's complement, as Go's encoding/asn1 writes a uint64 block number
    body = n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True)
    return b"\x02" + _der_length(len(body)) + body


def _der_octets(data: bytes) -> bytes:
    return b"\x04" + _der_length(len(data)) + data


def header_bytes(header: BlockHeader) -> bytes:
    """``BlockHeaderBytes``: DER ``SEQUENCE{number, previous_hash, data_hash}``."""
    body = (
        _der_integer(header.number)
        + _der_octets(header.previous_hash)
        + _der_octets(header.data_hash)
    )
    return b"\x30" + _der_length(len(body)) + body


def header_hash(header: BlockHeader) -> bytes:
    return hashlib.sha256(header_bytes(header)).digest()


def data_hash(data: Sequence[bytes]) -> bytes:
    return hashlib.sha256(b"".join(data)).digest()


def new_block(number: int, previous_hash: bytes, envelopes: Sequence[bytes]) -> Block:
    """An unsigned block of ``envelopes`` (serialized ``common.Envelope`` each)."""
    block = Block()
    block.header.number = number
    block.header.previous_hash = previous_hash
    block.data.data.extend(envelopes)
    block.header.data_hash = data_hash(block.data.data)
    block.metadata.metadata.extend([b""] * METADATA_SLOTS)
    return block


def sign_block(block: Block, signer: SigningIdentity, *, last_config: int = 0) -> None:
    """Add the orderer's SIGNATURES and LAST_CONFIG metadata, as Fabric's block writer does."""
    value = OrdererBlockMetadata(
        last_config=LastConfig(index=last_config),
        consenter_metadata=Metadata().SerializeToString(),
    ).SerializeToString()
    signature_header = SignatureHeader(
        creator=signer.serialized, nonce=os.urandom(24)
    ).SerializeToString()
    signature = signer.sign(value + signature_header + header_bytes(block.header))
    block.metadata.metadata[SIGNATURES] = Metadata(
        value=value,
        signatures=[MetadataSignature(signature_header=signature_header, signature=signature)],
    ).SerializeToString()
    block.metadata.metadata[LAST_CONFIG] = Metadata(
        value=LastConfig(index=last_config).SerializeToString()
    ).SerializeToString()


def transactions_filter(block: Block) -> bytes:
    """The validation code of each transaction (one byte each), once the peer has validated."""
    if len(block.metadata.metadata) <= TRANSACTIONS_FILTER:
        return b""
    return block.metadata.metadata[TRANSACTIONS_FILTER]


def verify_block(
    block: Block, *, previous: BlockHeader | None, orderers: Sequence[Identity]
) -> None:
    """Check that ``block`` extends ``previous`` (None: genesis), that its data hash matches,
    and that one of ``orderers`` signed it. Raises :class:`BlockError`."""
    expected_number = 0 if previous is None else previous.number + 1
    if block.header.number != expected_number:
        raise BlockError(f"expected block {expected_number}, got {block.header.number}")
    expected_previous = b"" if previous is None else header_hash(previous)
    if block.header.previous_hash != expected_previous:
        raise BlockError(f"block {block.header.number}: previous hash does not match")
    if block.header.data_hash != data_hash(block.data.data):
        raise BlockError(f"block {block.header.number}: data hash does not match")
    if len(block.metadata.metadata) < METADATA_SLOTS:
        raise BlockError(f"block {block.header.number}: metadata has fewer than 5 slots")
    try:
        meta = Metadata.FromString(block.metadata.metadata[SIGNATURES])
    except Exception as exc:  # DecodeError: a corrupt block
        raise BlockError(f"block {block.header.number}: bad SIGNATURES metadata: {exc}") from None
    signed = header_bytes(block.header)
    for ms in meta.signatures:
        creator = SignatureHeader.FromString(ms.signature_header).creator
        for orderer in orderers:
            if creator != orderer.serialized:
                continue
            try:
                orderer.verify(meta.value + ms.signature_header + signed, ms.signature)
                return
            except SignatureError:
                continue
    raise BlockError(f"block {block.header.number}: no valid orderer signature")
