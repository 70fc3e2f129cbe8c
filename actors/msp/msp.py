"""Membership service providers: identities in Fabric's MSP folder layout, validated as Fabric does.

Fabric counterpart: ``msp/mspimpl.go``, ``mspimplsetup.go``, ``mspimplvalidate.go``,
``msp/identities.go``, ``msp/configbuilder.go`` (the folder layout and ``config.yaml``) and
``msp/mgmt`` (the manager that maps an MSP id to its MSP). An MSP folder holds
``cacerts/``, ``intermediatecerts/``, ``admincerts/``, ``crls/``, ``signcerts/``, ``keystore/``,
``tlscacerts/``, ``tlsintermediatecerts/`` and an optional ``config.yaml`` with NodeOUs.

Validation follows Fabric 2.5 (MSP version 1.4.3 behaviour), including its quirks, because a
client or a peer built on Fabric expects exactly these answers:

- the chain is verified at the leaf's NotBefore + 1 s, so the MSP never checks expiry (the
  endorser's expiration filter does, see :meth:`Identity.expired`);
- a leaf may not be a CA, the chain must reach one of the MSP's roots through its intermediates,
  and the leaf's issuer may not be an inner node of the MSP's CA tree;
- with NodeOUs enabled an identity carries exactly one of the client/peer/admin/orderer OUs;
- admins are the certificates in ``admincerts/`` or, with NodeOUs, identities with the admin OU.

What we do not do: Go's legacy name-constraint rule and multiple-chain detection (we take the
first chain found); the identity id hashes the certificate as given (Fabric first rewrites the
issuer's signature to low-S, which changes the id only for high-S issuer signatures).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.protobuf.message import DecodeError

from actors.msp.signatures import PrivateKey, PublicKey, SignatureError, sign, verify
from protos.msp import identities_pb2
from protos.msp.msp_principal_pb2 import (
    CombinedPrincipal,
    MSPIdentityAnonymity,
    MSPPrincipal,
    MSPRole,
    OrganizationUnit,
)

ROLES = ("client", "peer", "admin", "orderer")
_NODE_OU_KEYS = {
    "client": "ClientOUIdentifier",
    "peer": "PeerOUIdentifier",
    "admin": "AdminOUIdentifier",
    "orderer": "OrdererOUIdentifier",
}
_MAX_CHAIN = 10
_MAX_PEM = 64 * 1024  # one certificate; Fabric has no limit, a peer should
_VALID_CACHE = 4096  # identities whose validation is remembered


class MSPError(ValueError):
    """An MSP folder is unusable, or an identity is not valid for an MSP (Fabric's texts)."""


@dataclass(frozen=True)
class Identity:
    """An X.509 identity of one MSP: what a SignatureHeader's ``creator`` names."""

    msp_id: str
    cert: x509.Certificate
    pem: bytes

    @property
    def serialized(self) -> bytes:
        return identities_pb2.SerializedIdentity(
            mspid=self.msp_id, id_bytes=self.pem
        ).SerializeToString()

    @property
    def id(self) -> str:
        """Fabric's identity identifier: hex SHA-256 of the certificate's DER."""
        return hashlib.sha256(self.cert.public_bytes(serialization.Encoding.DER)).hexdigest()

    @property
    def public_key(self) -> PublicKey:
        key = self.cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            raise MSPError(f"unsupported public key type {type(key).__name__}")
        return key

    @property
    def organizational_units(self) -> list[str]:
        return [
            str(a.value)
            for a in self.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        ]

    def expired(self, now: dt.datetime | None = None) -> bool:
        """Whether NotAfter has passed (Fabric's endorser: ``proposal client identity expired``)."""
        now = now or dt.datetime.now(dt.UTC)
        return self.cert.not_valid_after_utc < now

    def verify(self, message: bytes, signature: bytes) -> None:
        """Raise :class:`SignatureError` unless ``signature`` over ``message`` is ours."""
        verify(self.public_key, message, signature)


@dataclass(frozen=True)
class SigningIdentity(Identity):
    """An identity with its private key: the peer's own, or a client's in tests and tools."""

    key: PrivateKey = field(repr=False, default=None)  # type: ignore[assignment]

    def sign(self, message: bytes) -> bytes:
        return sign(self.key, message)


@dataclass(frozen=True)
class NodeOU:
    ou: str
    certifiers_id: bytes | None  # None: any issuer of this MSP


def parse_certificate(pem: bytes) -> x509.Certificate:
    if len(pem) > _MAX_PEM:
        raise MSPError(f"certificate of {len(pem)} bytes is larger than {_MAX_PEM}")
    if b"-----BEGIN" not in pem:
        raise MSPError("could not decode the PEM structure")
    try:
        cert = x509.load_pem_x509_certificate(pem)
        # cryptography parses extensions lazily: a malformed one must fail here, as Go's
        # x509.ParseCertificate fails, and not later inside a thread that must not die
        cert.extensions  # noqa: B018
    except Exception as exc:  # ValueError, DuplicateExtension, ...: all from outside
        raise MSPError(f"parseCertificate failed: {exc}") from None
    return cert


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError, x509.DuplicateExtension):
        return False


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _eku_allows_server_auth(cert: x509.Certificate) -> bool:
    # Go's x509.Verify with no KeyUsages asks for serverAuth: a certificate in the chain that
    # restricts its extended key usage must allow serverAuth or anything.
    try:
        ekus = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    except (ValueError, x509.DuplicateExtension):
        return False
    return (
        ExtendedKeyUsageOID.SERVER_AUTH in ekus
        or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in ekus
    )


def _valid_at(cert: x509.Certificate, when: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= when <= cert.not_valid_after_utc


class MSP:
    """One organisation's trust roots, and the rules that make an identity a member of it."""

    def __init__(
        self,
        *,
        msp_id: str,
        root_certs: Iterable[x509.Certificate],
        intermediate_certs: Iterable[x509.Certificate] = (),
        admin_certs: Iterable[x509.Certificate] = (),
        crls: Iterable[x509.CertificateRevocationList] = (),
        node_ous: Mapping[str, NodeOU] | None = None,
        ou_identifiers: Iterable[NodeOU] = (),
        tls_root_certs: Iterable[x509.Certificate] = (),
        tls_intermediate_certs: Iterable[x509.Certificate] = (),
    ) -> None:
        if not msp_id:
            raise MSPError("the MSP id must not be empty")
        self.msp_id = msp_id
        self.roots = list(root_certs)
        if not self.roots:
            raise MSPError(f"MSP {msp_id}: expected at least one CA certificate (cacerts/)")
        self.intermediates = list(intermediate_certs)
        self.crls = list(crls)
        self.node_ous = dict(node_ous or {})
        self.ou_identifiers = list(ou_identifiers)
        self.tls_roots = list(tls_root_certs)
        self.tls_intermediates = list(tls_intermediate_certs)
        for cert in self.roots + self.intermediates:
            if not _is_ca(cert):
                raise MSPError(
                    f"MSP {msp_id}: CA certificate {cert.subject.rfc4514_string()} has no "
                    "Basic Constraint CA=true"
                )
        # Inner nodes of the CA tree: certificates that issued one of our intermediates. A leaf
        # issued directly by one of them is refused (Fabric: "should be a leaf of the
        # certification tree").
        self._inner = {
            _der(p)
            for i in self.intermediates
            for p in self.roots + self.intermediates
            if p is not i and p.subject == i.issuer and _issued_by(i, p)
        }
        self._admins = {_der(c) for c in admin_certs}
        # Fabric caches validation per identity: a client sends the same certificate with every
        # proposal, and checking its chain costs a signature verification or more.
        self._valid: dict[bytes, list[x509.Certificate]] = {}
        self._valid_lock = threading.Lock()
        if not self._admins and "admin" not in self.node_ous:
            raise MSPError(
                f"MSP {msp_id}: administrators must be declared when no admin ou "
                "classification is set"
            )

    # --- identities -------------------------------------------------------------------------

    def identity(self, pem: bytes) -> Identity:
        """Parse a PEM certificate as an identity of this MSP (not yet validated)."""
        return Identity(self.msp_id, parse_certificate(pem), pem)

    def chain(self, identity: Identity) -> list[x509.Certificate]:
        """The validation chain ``[leaf, issuer, ..., root]`` (Fabric's
        ``getCertificationChainForBCCSPIdentity``)."""
        leaf = identity.cert
        if _is_ca(leaf):
            raise MSPError(
                "An X509 certificate with Basic Constraint: Certificate Authority equals true "
                "cannot be used as an identity"
            )
        when = leaf.not_valid_before_utc + dt.timedelta(seconds=1)
        chain = [leaf]
        current = leaf
        roots = {_der(r) for r in self.roots}
        while len(chain) <= _MAX_CHAIN:
            parent = next(
                (
                    p
                    for p in self.roots + self.intermediates
                    if p.subject == current.issuer
                    and _issued_by(current, p)
                    and _valid_at(p, when)
                    and _eku_allows_server_auth(p)
                ),
                None,
            )
            if parent is None:
                raise MSPError(
                    "could not obtain certification chain: the supplied identity is not valid: "
                    "x509: certificate signed by unknown authority"
                )
            chain.append(parent)
            if _der(parent) in roots:
                break
            current = parent
        else:
            raise MSPError("could not obtain certification chain: chain too long")
        if not _eku_allows_server_auth(leaf):
            raise MSPError(
                "could not obtain certification chain: the supplied identity is not valid: "
                "x509: certificate specifies an incompatible key usage"
            )
        if _der(chain[1]) in self._inner:
            raise MSPError(
                "could not validate identity against certification chain: invalid validation "
                "chain. Parent certificate should be a leaf of the certification tree"
            )
        return chain

    def validate(self, identity: Identity) -> list[x509.Certificate]:
        """Raise :class:`MSPError` unless ``identity`` is a valid member; return its chain."""
        if identity.msp_id != self.msp_id:
            raise MSPError(
                f"the supplied identity does not belong to this msp (expected {self.msp_id}, "
                f"got {identity.msp_id})"
            )
        der = _der(identity.cert)
        cached = self._valid.get(der)
        if cached is not None:
            return cached
        chain = self.chain(identity)
        self._check_revocation(identity.cert, chain[1])
        self._check_ous(identity, chain)
        with self._valid_lock:
            if len(self._valid) >= _VALID_CACHE:
                self._valid.clear()  # bounded: an unauthenticated peer cannot grow it
            self._valid[der] = chain
        return chain

    def _check_revocation(self, leaf: x509.Certificate, issuer: x509.Certificate) -> None:
        for crl in self.crls:
            if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):
                continue
            if crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None:
                raise MSPError(
                    "could not validate identity against certification chain: "
                    "The certificate has been revoked"
                )

    def _check_ous(self, identity: Identity, chain: list[x509.Certificate]) -> None:
        certifiers = _certifiers_id(chain[1:])
        ous = identity.organizational_units
        if self.ou_identifiers:
            if not ous:
                raise MSPError(
                    "could not validate identity's OUs: the identity certificate does not "
                    "contain an Organizational Unit (OU)"
                )
            if not any(
                o.ou in ous and (o.certifiers_id is None or o.certifiers_id == certifiers)
                for o in self.ou_identifiers
            ):
                raise MSPError(
                    f"could not validate identity's OUs: none of the identity's organizational "
                    f"units {ous} are in MSP {self.msp_id}"
                )
        if not self.node_ous:
            return
        matched = [(role, ou) for role, ou in self.node_ous.items() if ou.ou in ous]
        if not matched:
            raise MSPError(
                "could not validate identity's OUs: the identity does not have an OU that "
                f"resolves to client, peer, orderer, or admin role. OUs: {ous}, MSP: "
                f"[{self.msp_id}]"
            )
        if len(matched) > 1:
            raise MSPError(
                "could not validate identity's OUs: the identity must be a client, a peer, an "
                "orderer or an admin identity to be valid, not a combination of them. OUs: "
                f"{ous}, MSP: [{self.msp_id}]"
            )
        node_ou = matched[0][1]
        if node_ou.certifiers_id is not None and node_ou.certifiers_id != certifiers:
            raise MSPError(
                "could not validate identity's OUs: certifiersIdentifier does not match: "
                f"{ous}, MSP: [{self.msp_id}]"
            )

    def roles(self, identity: Identity) -> set[str]:
        """The NodeOU roles of a valid identity (empty when NodeOUs are off)."""
        ous = identity.organizational_units
        return {role for role, ou in self.node_ous.items() if ou.ou in ous}

    def is_admin(self, identity: Identity) -> bool:
        if _der(identity.cert) in self._admins:
            return True
        return "admin" in self.node_ous and "admin" in self.roles(identity)

    # --- principals -------------------------------------------------------------------------

    def satisfies_principal(self, identity: Identity, principal: MSPPrincipal) -> None:
        """Raise :class:`MSPError` unless ``identity`` satisfies ``principal`` (Fabric's
        ``SatisfiesPrincipal``)."""
        kind = principal.principal_classification
        try:
            if kind == MSPPrincipal.COMBINED:
                combined = CombinedPrincipal.FromString(principal.principal)
                if not combined.principals:
                    raise MSPError("no principals in CombinedPrincipal")
                for sub in combined.principals:
                    self.satisfies_principal(identity, sub)
                return
            if kind == MSPPrincipal.ROLE:
                self._satisfies_role(identity, MSPRole.FromString(principal.principal))
                return
            if kind == MSPPrincipal.IDENTITY:
                other = identities_pb2.SerializedIdentity.FromString(principal.principal)
                if other.mspid != identity.msp_id or _der(
                    parse_certificate(other.id_bytes)
                ) != _der(identity.cert):
                    raise MSPError("The identities do not match")
                self.validate(identity)
                return
            if kind == MSPPrincipal.ORGANIZATION_UNIT:
                unit = OrganizationUnit.FromString(principal.principal)
                if unit.msp_identifier != self.msp_id:
                    raise MSPError(
                        f"the identity is a member of a different MSP (expected "
                        f"{unit.msp_identifier}, got {self.msp_id})"
                    )
                chain = self.validate(identity)
                if unit.organizational_unit_identifier not in identity.organizational_units or (
                    unit.certifiers_identifier != _certifiers_id(chain[1:])
                ):
                    raise MSPError("The identities do not match")
                return
            if kind == MSPPrincipal.ANONYMITY:
                anon = MSPIdentityAnonymity.FromString(principal.principal)
                if anon.anonymity_type != MSPIdentityAnonymity.NOMINAL:
                    raise MSPError("Principal is anonymous, but X.509 MSP does not support it")
                return
        except DecodeError as exc:
            raise MSPError(f"could not unmarshal principal: {exc}") from None
        raise MSPError(f"invalid principal type {kind}")

    def _satisfies_role(self, identity: Identity, role: MSPRole) -> None:
        if role.msp_identifier != self.msp_id:
            raise MSPError(
                f"the identity is a member of a different MSP (expected {role.msp_identifier}, "
                f"got {self.msp_id})"
            )
        if role.role == MSPRole.MEMBER:
            self.validate(identity)
            return
        if role.role == MSPRole.ADMIN:
            if _der(identity.cert) in self._admins:
                return
            if "admin" in self.node_ous:
                self.validate(identity)
                if "admin" in self.roles(identity):
                    return
            raise MSPError("This identity is not an admin")
        wanted = {MSPRole.CLIENT: "client", MSPRole.PEER: "peer", MSPRole.ORDERER: "orderer"}.get(
            role.role
        )
        if wanted is None or (wanted == "orderer" and not self.node_ous):
            raise MSPError(f"invalid MSP role type {role.role}")
        if not self.node_ous:
            raise MSPError("NodeOUs not activated. Cannot tell apart identities.")
        self.validate(identity)
        if wanted not in self.roles(identity):
            raise MSPError(
                f"The identity is not a [{wanted.upper()}] under this MSP [{self.msp_id}]"
            )

    # --- loading ----------------------------------------------------------------------------

    @classmethod
    def from_dir(cls, path: str | Path, msp_id: str) -> MSP:
        """Load an MSP folder as Fabric lays it out (``msp/configbuilder.go``)."""
        root = Path(path)
        if not root.is_dir():
            raise MSPError(f"MSP {msp_id}: {root} is not a directory")
        roots = _read_certs(root / "cacerts")
        intermediates = _read_certs(root / "intermediatecerts")
        everything = roots + intermediates
        node_ous, ou_ids = _read_config_yaml(root, everything, msp_id)
        return cls(
            msp_id=msp_id,
            root_certs=roots,
            intermediate_certs=intermediates,
            admin_certs=_read_certs(root / "admincerts"),
            crls=_read_crls(root / "crls"),
            node_ous=node_ous,
            ou_identifiers=ou_ids,
            tls_root_certs=_read_certs(root / "tlscacerts"),
            tls_intermediate_certs=_read_certs(root / "tlsintermediatecerts"),
        )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, Exception):  # InvalidSignature is not a ValueError
        return False
    return True


def _certifiers_id(chain: list[x509.Certificate]) -> bytes:
    digest = hashlib.sha256()
    for cert in chain:
        digest.update(_der(cert))
    return digest.digest()


def _pem_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _read_certs(folder: Path) -> list[x509.Certificate]:
    certs = []
    for path in _pem_files(folder):
        data = path.read_bytes()
        try:
            certs.extend(x509.load_pem_x509_certificates(data))
        except ValueError as exc:
            raise MSPError(f"{path}: not a PEM certificate ({exc})") from None
    return certs


def _read_crls(folder: Path) -> list[x509.CertificateRevocationList]:
    crls = []
    for path in _pem_files(folder):
        try:
            crls.append(x509.load_pem_x509_crl(path.read_bytes()))
        except ValueError as exc:
            raise MSPError(f"{path}: not a PEM CRL ({exc})") from None
    return crls


def _read_config_yaml(
    root: Path, ca_certs: list[x509.Certificate], msp_id: str
) -> tuple[dict[str, NodeOU], list[NodeOU]]:
    path = root / "config.yaml"
    if not path.is_file():
        return {}, []
    import yaml  # only MSP folders with a config.yaml need it

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MSPError(f"{path}: cannot parse ({exc})") from None
    if not isinstance(data, dict):
        raise MSPError(f"{path}: expected a mapping at the top level")

    def ou_entry(entry: Any, where: str) -> NodeOU | None:
        if not isinstance(entry, dict):
            raise MSPError(f"{path}: {where} must be a mapping")
        ou = entry.get("OrganizationalUnitIdentifier") or ""
        if not isinstance(ou, str):
            raise MSPError(f"{path}: {where}.OrganizationalUnitIdentifier must be a string")
        if not ou:
            return None  # Fabric drops entries with an empty OU
        cert_path = entry.get("Certificate")
        if not cert_path:
            return NodeOU(ou, None)
        if not isinstance(cert_path, str):
            raise MSPError(f"{path}: {where}.Certificate must be a path")
        target = (root / cert_path).resolve()
        if not target.is_relative_to(root.resolve()) or not target.is_file():
            raise MSPError(
                f"{path}: {where}.Certificate {cert_path!r} is not a file in the MSP folder"
            )
        cert = parse_certificate(target.read_bytes())
        if all(_der(cert) != _der(c) for c in ca_certs):
            raise MSPError(
                f"Failed adding OU. Certificate [{cert_path}] not in root or intermediate certs."
            )
        return NodeOU(ou, _certifiers_id(_ca_chain(cert, ca_certs)))

    node_ous: dict[str, NodeOU] = {}
    section = data.get("NodeOUs")
    if section is not None:
        if not isinstance(section, dict):
            raise MSPError(f"{path}: NodeOUs must be a mapping")
        if section.get("Enable") is True:
            for role, key in _NODE_OU_KEYS.items():
                if key in section and section[key] is not None:
                    entry = ou_entry(section[key], f"NodeOUs.{key}")
                    if entry is not None:
                        node_ous[role] = entry
    ou_ids = []
    listed = data.get("OrganizationalUnitIdentifiers") or []
    if not isinstance(listed, list):
        raise MSPError(f"{path}: OrganizationalUnitIdentifiers must be a list")
    for i, entry in enumerate(listed):
        item = ou_entry(entry, f"OrganizationalUnitIdentifiers[{i}]")
        if item is not None:
            ou_ids.append(item)
    return node_ous, ou_ids


def _ca_chain(cert: x509.Certificate, ca_certs: list[x509.Certificate]) -> list[x509.Certificate]:
    """A CA certificate and its issuers up to a self-signed root."""
    chain = [cert]
    while len(chain) <= _MAX_CHAIN and chain[-1].issuer != chain[-1].subject:
        parent = next(
            (c for c in ca_certs if c.subject == chain[-1].issuer and _issued_by(chain[-1], c)),
            None,
        )
        if parent is None:
            break
        chain.append(parent)
    return chain


def load_signing_identity(path: str | Path, msp_id: str) -> SigningIdentity:
    """The signing identity in an MSP folder: ``signcerts/`` and the matching key in
    ``keystore/`` (any file name: cryptogen writes ``priv_sk``, Fabric CA ``<ski>_sk``)."""
    root = Path(path)
    certs = _pem_files(root / "signcerts")
    if not certs:
        raise MSPError(f"{root / 'signcerts'}: no signing certificate")
    pem = certs[0].read_bytes()
    cert = parse_certificate(pem)
    wanted = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for key_path in _pem_files(root / "keystore"):
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (ValueError, TypeError):
            continue
        if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            continue
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if spki == wanted:
            return SigningIdentity(msp_id, cert, pem, key)
    raise MSPError(f"{root / 'keystore'}: no private key matches {certs[0].name}")


class MSPManager:
    """The MSPs a channel trusts, by id (Fabric's ``MSPManager``); deserialises creators."""

    def __init__(self, msps: Iterable[MSP] = ()) -> None:
        self._msps = {m.msp_id: m for m in msps}

    def __contains__(self, msp_id: object) -> bool:
        return msp_id in self._msps

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._msps.values())

    def get(self, msp_id: str) -> MSP:
        try:
            return self._msps[msp_id]
        except KeyError:
            raise MSPError(f"MSP {msp_id} is not defined on channel") from None

    def deserialize(self, serialized: bytes) -> tuple[Identity, MSP]:
        """``SerializedIdentity`` bytes -> (identity, its MSP); raises :class:`MSPError`."""
        try:
            sid = identities_pb2.SerializedIdentity.FromString(serialized)
        except DecodeError:
            raise MSPError("could not deserialize a SerializedIdentity") from None
        msp = self.get(sid.mspid)
        return msp.identity(sid.id_bytes), msp


__all__ = [
    "MSP",
    "Identity",
    "MSPError",
    "MSPManager",
    "NodeOU",
    "SignatureError",
    "SigningIdentity",
    "load_signing_identity",
    "parse_certificate",
]
