"""Signatures as Fabric's software BCCSP makes and checks them.

Fabric counterpart: ``bccsp/sw/ecdsa.go`` and ``bccsp/utils/ecdsa.go``. Fabric signs SHA-256 of
the message with ECDSA (DER ``SEQUENCE{r, s}``) and insists on *low-S* signatures: a verifier
refuses ``s > N/2`` so a signature cannot be rewritten into a second valid one (which would
change a transaction's bytes without its signer). ``cryptography`` neither produces nor checks
low-S, so :func:`sign` normalises and :func:`verify` checks explicitly. Ed25519 keys (Fabric 3.x)
are verified too; they have no malleability to guard against.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

# Group orders of the curves Fabric's MSP accepts (P-256 and P-384).
_ORDERS = {
    "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "secp384r1": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
}


class SignatureError(ValueError):
    """A signature is malformed, high-S, or does not verify (Fabric's texts)."""


def _order(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> int:
    try:
        return _ORDERS[key.curve.name]
    except KeyError:
        raise SignatureError(f"unsupported elliptic curve {key.curve.name}") from None


def sign(key: PrivateKey, message: bytes) -> bytes:
    """Fabric's signature over ``message``: ECDSA-SHA256, DER, low-S (or Ed25519)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    n = _order(key)
    if s > n >> 1:
        s = n - s
    return encode_dss_signature(r, s)


def verify(key: PublicKey, message: bytes, signature: bytes) -> None:
    """Raise :class:`SignatureError` unless ``signature`` is Fabric-valid for ``message``."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        try:
            key.verify(signature, message)
        except InvalidSignature:
            raise SignatureError("The signature is invalid") from None
        return
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureError(f"unsupported public key type {type(key).__name__}")
    try:
        r, s = decode_dss_signature(signature)
    except ValueError as exc:
        raise SignatureError(f"failed unmashalling signature [{exc}]") from None
    if r <= 0 or s <= 0:
        raise SignatureError("invalid signature, R and S must be larger than zero")
    half = _order(key) >> 1
    if s > half:
        raise SignatureError(f"Invalid S. Must be smaller than half the order [{s}][{half}].")
    try:
        key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("The signature is invalid") from None
