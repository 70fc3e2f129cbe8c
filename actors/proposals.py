"""Signed proposals for transactions whose caller brought none.

In Fabric the client builds and signs the proposal and the endorser hands it to the chaincode.
A peer prototype embedding us often has no client, yet real contract chaincode (Node
fabric-contract-api) fails every transaction without a creator identity. So we build Fabric's
shape: ChannelHeader(ENDORSER_TRANSACTION, channel, txid, timestamp, chaincode extension),
SignatureHeader(creator = SerializedIdentity(MSP id, PEM X.509), nonce), a non-empty
ChaincodeProposalPayload, signed with a local P-256 key made once per process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from protos.common import common_pb2
from protos.msp import identities_pb2
from protos.peer import chaincode_pb2, proposal_pb2


@dataclass(frozen=True)
class Identity:
    """A local signing identity: MSP id, PEM certificate and its private key."""

    msp_id: str
    cert_pem: bytes
    key: ec.EllipticCurvePrivateKey

    @property
    def serialized(self) -> bytes:
        """``msp.SerializedIdentity`` bytes, what a SignatureHeader carries as ``creator``."""
        return _serialized(self.msp_id, self.cert_pem)

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def verify(self, data: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this identity's over ``data`` (an empty one never is)."""
        if not signature:
            return False
        try:
            self.key.public_key().verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):  # ValueError: not a DER signature
            return False
        return True


@lru_cache(maxsize=64)
def _serialized(msp_id: str, cert_pem: bytes) -> bytes:
    return identities_pb2.SerializedIdentity(mspid=msp_id, id_bytes=cert_pem).SerializeToString()


_identities: dict[str, Identity] = {}
_identities_lock = threading.Lock()


def local_identity(msp_id: str = "SampleOrg", common_name: str = "peer-client") -> Identity:
    """The process-wide identity for ``msp_id``, created on first use (EC P-256, self-signed)."""
    with _identities_lock:
        found = _identities.get(msp_id)
        if found is None:
            found = _identities[msp_id] = _make_identity(msp_id, common_name)
        return found


def _make_identity(msp_id: str, common_name: str) -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, msp_id),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return Identity(msp_id, cert.public_bytes(serialization.Encoding.PEM), key)


@lru_cache(maxsize=1024)
def _header_extension(chaincode: str) -> bytes:
    return proposal_pb2.ChaincodeHeaderExtension(
        chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode)
    ).SerializeToString()


def compute_txid(nonce: bytes, creator: bytes) -> str:
    """Fabric's ``protoutil.ComputeTxID``: hex(SHA-256(nonce || creator))."""
    return hashlib.sha256(nonce + creator).hexdigest()


_NONCE_SIZE = 24
_nonce_lock = threading.Lock()
_nonces = b""  # random bytes drawn 4 KiB at a time, handed out 24 at a time
_nonce_at = 0


def _forget_nonces() -> None:
    # A forked child (the fork server's chaincode launches) must not hand out its parent's nonces.
    # Its lock may have been held by another thread at the fork: a fresh one.
    global _nonces, _nonce_at, _nonce_lock
    _nonces, _nonce_at, _nonce_lock = b"", 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_nonces)


def new_nonce() -> bytes:
    """24 random bytes. One ``os.urandom`` per ~170 nonces: each call releases the GIL, which
    under many concurrent callers costs a thread switch per transaction."""
    global _nonces, _nonce_at
    with _nonce_lock:
        at = _nonce_at
        if at + _NONCE_SIZE > len(_nonces):
            _nonces, at = os.urandom(4080), 0
        _nonce_at = at + _NONCE_SIZE
        return _nonces[at : at + _NONCE_SIZE]


def build_signed_proposal(
    identity: Identity,
    channel_id: str,
    txid: str,
    chaincode: str,
    args: Sequence[bytes],
    transient: Mapping[str, bytes] | None = None,
    *,
    nonce: bytes | None = None,
    is_init: bool = False,
    sign: bool = True,
    timestamp: float | None = None,
) -> proposal_pb2.SignedProposal:
    """Build a Fabric-shaped SignedProposal for one chaincode invocation.

    On every transaction's path: nested messages are filled in place (a constructor copies the
    messages it is given) and the chaincode's header extension is built once per chaincode.
    """
    seconds = time.time() if timestamp is None else timestamp
    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.ENDORSER_TRANSACTION,
        channel_id=channel_id,
        tx_id=txid,
        extension=_header_extension(chaincode),
    )
    timestamp = channel_header.timestamp
    timestamp.seconds = int(seconds)
    timestamp.nanos = int((seconds % 1) * 1e9)
    signature_header = common_pb2.SignatureHeader(
        creator=identity.serialized, nonce=nonce if nonce is not None else new_nonce()
    )
    header = common_pb2.Header(
        channel_header=channel_header.SerializeToString(),
        signature_header=signature_header.SerializeToString(),
    )
    invocation = chaincode_pb2.ChaincodeInvocationSpec()
    spec = invocation.chaincode_spec
    spec.type = chaincode_pb2.ChaincodeSpec.GOLANG
    spec.chaincode_id.name = chaincode
    spec.input.args.extend(args)
    spec.input.is_init = is_init
    payload = proposal_pb2.ChaincodeProposalPayload(input=invocation.SerializeToString())
    if transient:
        payload.TransientMap.update(transient)
    proposal_bytes = proposal_pb2.Proposal(
        header=header.SerializeToString(),
        payload=payload.SerializeToString(deterministic=True),
    ).SerializeToString()
    return proposal_pb2.SignedProposal(
        proposal_bytes=proposal_bytes, signature=identity.sign(proposal_bytes) if sign else b""
    )
