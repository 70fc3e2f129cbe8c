"""``ccactors crypto``: MSP folders in Fabric's layout, as Fabric's ``cryptogen`` writes them.

Fabric counterpart: ``internal/cryptogen`` (``cryptogen generate``). For each organisation it
writes a signing CA and a TLS CA (ECDSA P-256), the organisation's MSP folder (``cacerts``,
``tlscacerts``, ``config.yaml`` with NodeOUs on), and for each peer and user an MSP folder
(``signcerts``, ``keystore/priv_sk``) and TLS files (``ca.crt``, ``server.crt``/``client.crt``
and keys). Names follow cryptogen: MSP id ``Org1MSP`` -> domain ``org1.example.com``, peers
``peer0.org1.example.com``, users ``Admin@org1.example.com`` and ``User1@org1.example.com``.
A newcomer needs nothing else to run a peer and a client with real identities; folders made by
``cryptogen``, Fabric CA or openssl load the same way.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from actors.tls import subject_alt_names

_MSP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$")
_VALIDITY = dt.timedelta(days=3650)  # cryptogen: ten years
_NODE_OUS = """NodeOUs:
  Enable: true
  ClientOUIdentifier:
    Certificate: cacerts/{ca}
    OrganizationalUnitIdentifier: client
  PeerOUIdentifier:
    Certificate: cacerts/{ca}
    OrganizationalUnitIdentifier: peer
  AdminOUIdentifier:
    Certificate: cacerts/{ca}
    OrganizationalUnitIdentifier: admin
  OrdererOUIdentifier:
    Certificate: cacerts/{ca}
    OrganizationalUnitIdentifier: orderer
"""


class CryptoError(ValueError):
    """Bad arguments for generating MSP folders."""


@dataclass(frozen=True)
class _CA:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    file_name: str


def domain_for(msp_id: str) -> str:
    """cryptogen's naming: ``Org1MSP`` -> ``org1.example.com``."""
    base = msp_id[:-3] if msp_id.endswith("MSP") and len(msp_id) > 3 else msp_id
    return f"{base.lower()}.example.com"


def _name(domain: str, common_name: str, ou: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "San Francisco"),
    ]
    if ou is None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, domain))
    else:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _new_ca(domain: str, prefix: str, now: dt.datetime) -> _CA:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(domain, f"{prefix}.{domain}")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return _CA(cert, key, f"{prefix}.{domain}-cert.pem")


def _issue(
    ca: _CA,
    domain: str,
    common_name: str,
    now: dt.datetime,
    *,
    ou: str | None = None,
    tls: bool = False,
    hosts: Sequence[str] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(domain, common_name, ou))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=tls,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if tls:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        builder = builder.add_extension(subject_alt_names(hosts), critical=False)
    return builder.sign(ca.key, hashes.SHA256()), key


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)


def _write_msp(
    folder: Path,
    ca: _CA,
    tlsca: _CA,
    *,
    cert: x509.Certificate | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
    cert_name: str = "",
) -> None:
    _write(folder / "cacerts" / ca.file_name, _pem(ca.cert))
    _write(folder / "tlscacerts" / tlsca.file_name, _pem(tlsca.cert))
    _write(folder / "config.yaml", _NODE_OUS.format(ca=ca.file_name).encode())
    if cert is not None and key is not None:
        _write(folder / "signcerts" / f"{cert_name}-cert.pem", _pem(cert))
        _write(folder / "keystore" / "priv_sk", _key_pem(key), private=True)


def generate_org(out: Path, msp_id: str, *, peers: int = 1, users: int = 1) -> dict[str, str]:
    """Write one organisation under ``out/peerOrganizations/<domain>``; return its paths."""
    if not _MSP_ID.match(msp_id):
        raise CryptoError(f"invalid MSP id {msp_id!r}: letters, digits, '.' and '-' only")
    if not 0 <= peers <= 100 or not 0 <= users <= 100:
        raise CryptoError("--peers and --users must be between 0 and 100")
    now = dt.datetime.now(dt.UTC)
    domain = domain_for(msp_id)
    org = out / "peerOrganizations" / domain
    ca = _new_ca(domain, "ca", now)
    tlsca = _new_ca(domain, "tlsca", now)
    _write(org / "ca" / ca.file_name, _pem(ca.cert))
    _write(org / "ca" / "priv_sk", _key_pem(ca.key), private=True)
    _write(org / "tlsca" / tlsca.file_name, _pem(tlsca.cert))
    _write(org / "tlsca" / "priv_sk", _key_pem(tlsca.key), private=True)
    _write_msp(org / "msp", ca, tlsca)
    paths = {"msp_id": msp_id, "msp_dir": str(org / "msp")}

    nodes = [(f"peer{i}.{domain}", "peer", org / "peers") for i in range(peers)]
    nodes.append((f"Admin@{domain}", "admin", org / "users"))
    nodes += [(f"User{i}@{domain}", "client", org / "users") for i in range(1, users + 1)]
    for name, ou, parent in nodes:
        cert, key = _issue(ca, domain, name, now, ou=ou)
        _write_msp(parent / name / "msp", ca, tlsca, cert=cert, key=key, cert_name=name)
        short = name.split(".")[0].split("@")[0]
        tls_cert, tls_key = _issue(
            tlsca, domain, name, now, tls=True, hosts=(name, short, "localhost", "127.0.0.1")
        )
        side = "server" if ou == "peer" else "client"
        _write(parent / name / "tls" / "ca.crt", _pem(tlsca.cert))
        _write(parent / name / "tls" / f"{side}.crt", _pem(tls_cert))
        _write(parent / name / "tls" / f"{side}.key", _key_pem(tls_key), private=True)
        paths[name] = str(parent / name)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m actors.msp.cryptogen``, the same as ``ccactors crypto``."""
    from actors.msp import command

    parser = argparse.ArgumentParser(prog="ccactors crypto", description=__doc__.split("\n\n")[0])
    command.add_arguments(parser)
    return command.run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
