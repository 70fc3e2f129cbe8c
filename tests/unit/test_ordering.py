"""The ordering stage (actors.gateway.orderer) alone: a fake committer and a hand-driven timer."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from actors.gateway import blocks
from actors.gateway.cutter import BatchConfig
from actors.gateway.orderer import Broadcast, ChannelOrdering, CommitBlock, Orderer
from actors.gateway.proposal import compute_txid
from actors.msp import cryptogen
from actors.msp.msp import MSP, MSPManager, SigningIdentity, load_signing_identity
from protos.common.common_pb2 import (
    BAD_REQUEST,
    CONFIG,
    CONFIG_UPDATE,
    ENDORSER_TRANSACTION,
    FORBIDDEN,
    SUCCESS,
    ChannelHeader,
    Envelope,
    Header,
    Payload,
    SignatureHeader,
)


@dataclass
class FakeTimer:
    delay: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Timers:
    started: list[FakeTimer] = field(default_factory=list)

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(delay, callback)
        self.started.append(timer)
        return timer

    def fire(self) -> None:
        live = [t for t in self.started if not t.cancelled]
        assert len(live) == 1, live
        live[0].cancelled = True
        live[0].callback()


@dataclass
class FakeCommitter:
    received: list[CommitBlock] = field(default_factory=list)

    def tell(self, message: Any) -> None:
        self.received.append(message)


@pytest.fixture(scope="module")
def org(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[MSPManager, SigningIdentity, SigningIdentity]:
    out = tmp_path_factory.mktemp("crypto")
    cryptogen.main(["--orgs", "Org1MSP", "--out", str(out)])
    base = Path(out) / "peerOrganizations/org1.example.com"
    msps = MSPManager([MSP.from_dir(base / "msp", "Org1MSP")])
    user = load_signing_identity(base / "users/User1@org1.example.com/msp", "Org1MSP")
    peer = load_signing_identity(base / "peers/peer0.org1.example.com/msp", "Org1MSP")
    return msps, user, peer


def envelope(
    client: SigningIdentity,
    channel: str = "ch",
    size: int = 0,
    header_type: int = ENDORSER_TRANSACTION,
) -> bytes:
    nonce = os.urandom(24)
    ch = ChannelHeader(
        type=header_type, channel_id=channel, tx_id=compute_txid(nonce, client.serialized)
    )
    header = Header(
        channel_header=ch.SerializeToString(),
        signature_header=SignatureHeader(
            creator=client.serialized, nonce=nonce
        ).SerializeToString(),
    )
    payload = Payload(header=header, data=b"x" * size).SerializeToString()
    return Envelope(payload=payload, signature=client.sign(payload)).SerializeToString()


def _expired_identity() -> SigningIdentity:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=2))
        .not_valid_after(now - dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    return SigningIdentity("Org9MSP", cert, pem, key)


@pytest.fixture
def stage(org: Any) -> Iterator[tuple[Any, Timers, FakeCommitter]]:
    msps, _, peer = org
    timers, committer = Timers(), FakeCommitter()
    ref = Orderer.start(
        channels=lambda c: ChannelOrdering(msps, 5, b"\x07" * 32) if c == "ch" else None,
        committer=committer,
        signer=peer,
        call_later=timers.call_later,
        batch=BatchConfig(
            max_message_count=3,
            preferred_max_bytes=4096,
            absolute_max_bytes=8192,
            batch_timeout=2.0,
        ),
    )
    yield ref, timers, committer
    ref.stop()


def broadcast(ref: Any, raw: bytes) -> tuple[int, str]:
    reply: Future = Future()
    ref.tell(Broadcast(raw, reply))
    return reply.result(timeout=5)


def test_blocks_are_cut_by_count_and_by_timeout(org: Any, stage: Any) -> None:
    _, user, _ = org
    ref, timers, committer = stage
    for _ in range(3):
        assert broadcast(ref, envelope(user)) == (SUCCESS, "")
    ref.ask(None)  # wait for the actor to finish what it was told
    [first] = committer.received
    assert (first.channel, first.block.header.number, len(first.block.data.data)) == ("ch", 5, 3)
    assert first.block.header.previous_hash == b"\x07" * 32  # continues the channel's chain
    assert first.block.header.data_hash == blocks.data_hash(first.block.data.data)
    assert first.block.metadata.metadata[0]  # signed by the orderer (the peer's identity)
    assert broadcast(ref, envelope(user)) == (SUCCESS, "")
    ref.ask(None)
    assert len(committer.received) == 1 and timers.started[-1].delay == 2.0
    timers.fire()  # BatchTimeout: the pending transaction is cut alone
    ref.ask(None)
    second = committer.received[-1].block
    assert (second.header.number, len(second.data.data)) == (6, 1)
    assert second.header.previous_hash == blocks.header_hash(first.block.header)


def test_intake_refuses_what_fabrics_orderer_refuses(org: Any, stage: Any, tmp_path: Path) -> None:
    _, user, _ = org
    ref, _, committer = stage
    assert broadcast(ref, b"\xff\xff")[0] == BAD_REQUEST
    # Fabric's handler reads the channel header before its filters see an empty message
    assert broadcast(ref, Envelope().SerializeToString()) == (
        BAD_REQUEST,
        "could not determine channel ID: header not set",
    )
    status, info = broadcast(ref, envelope(user, size=9000))
    assert status == BAD_REQUEST and "exceeds maximum allowed 8192 bytes" in info
    status, info = broadcast(ref, envelope(user, channel="nochannel"))
    assert status == BAD_REQUEST and "orderer system channel is not defined" in info
    # the channel is looked up before the size filter runs
    status, info = broadcast(ref, envelope(user, channel="nochannel", size=9000))
    assert status == BAD_REQUEST and "orderer system channel is not defined" in info
    assert broadcast(ref, envelope(user, header_type=CONFIG)) == (
        BAD_REQUEST,
        "message is of type that cannot be processed directly",
    )
    status, info = broadcast(ref, envelope(user, header_type=CONFIG_UPDATE))
    assert status == BAD_REQUEST and info.startswith("error applying config update")
    # expiry is read from the certificate alone and checked before the Writers policy, so an
    # expired identity of an unknown MSP hears that it expired
    assert broadcast(ref, envelope(_expired_identity())) == (
        BAD_REQUEST,
        "broadcast client identity expired",
    )
    forged = Envelope.FromString(envelope(user))
    forged.signature = user.sign(b"other")
    status, info = broadcast(ref, forged.SerializeToString())
    assert status == FORBIDDEN and info.endswith("permission denied")
    cryptogen.main(["--orgs", "Org9MSP", "--out", str(tmp_path)])
    stranger = load_signing_identity(
        tmp_path / "peerOrganizations/org9.example.com/users/User1@org9.example.com/msp", "Org9MSP"
    )
    assert broadcast(ref, envelope(stranger))[0] == FORBIDDEN
    ref.ask(None)
    assert committer.received == []  # nothing refused was ordered
