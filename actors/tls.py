"""TLS for the chaincode listener: a peer CA, per-chaincode client certificates, and the
binding of a certificate to the one chaincode id it was issued for; and the TLS settings the
peer's client-facing services (Gateway, admin API) and the CLI's clients share.

Fabric counterpart: ``core/chaincode/accesscontrol`` (``Authenticator``, ``CertAndPrivKeyPair``,
the 10-minute mapping from certificate hash to chaincode name) and the TLS files the container
runtime hands to chaincode. The peer generates a CA at start, a server certificate for its
listener, and at every launch a client certificate for that chaincode id; a stream whose
client certificate maps to id X may only REGISTER as X.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from actors.config import Config

BINDING_TTL = 600.0  # Fabric keeps a certificate -> chaincode mapping for 10 minutes


@dataclass(frozen=True)
class KeyPair:
    """PEM certificate and PEM private key."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class ClientTLS:
    """What a chaincode needs to dial the peer over mutual TLS."""

    root_pem: bytes
    pair: KeyPair

    def write_files(self, directory: Path) -> dict[str, str]:
        """Write Fabric's five TLS files and return the environment that names them."""
        directory.mkdir(parents=True, exist_ok=True)
        files = {
            "peer.crt": self.root_pem,
            "client_pem.crt": self.pair.cert_pem,
            "client_pem.key": self.pair.key_pem,
            # Fabric's base64-of-PEM convention (CORE_TLS_CLIENT_*_PATH)
            "client.crt": base64.b64encode(self.pair.cert_pem),
            "client.key": base64.b64encode(self.pair.key_pem),
        }
        for name, data in files.items():
            path = directory / name
            path.write_bytes(data)
            path.chmod(0o600)
        return {
            "CORE_PEER_TLS_ENABLED": "true",
            "CORE_PEER_TLS_ROOTCERT_FILE": str(directory / "peer.crt"),
            "CORE_TLS_CLIENT_CERT_FILE": str(directory / "client_pem.crt"),
            "CORE_TLS_CLIENT_KEY_FILE": str(directory / "client_pem.key"),
            "CORE_TLS_CLIENT_CERT_PATH": str(directory / "client.crt"),
            "CORE_TLS_CLIENT_KEY_PATH": str(directory / "client.key"),
        }


def subject_alt_names(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    """A certificate's names for ``hosts``: IP addresses as such, anything else as DNS."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_hash(cert_pem: bytes) -> str:
    """SHA-256 of the DER certificate, the key of the binding (Fabric hashes the raw cert)."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


class CertificateAuthority:
    """A throw-away CA, made when the peer starts, that signs server and client certificates."""

    def __init__(self, name: str = "ccactors peer CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self._name = subject
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str, *, server: bool, hosts: tuple[str, ...] = ()) -> KeyPair:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        # X.509 caps a common name at 64 characters and a package id (label:sha256) is longer;
        # the peer binds a client certificate by its hash, not by its name.
        subject = x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([subject]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if hosts:
            builder = builder.add_extension(subject_alt_names(hosts), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def _interface_addresses() -> tuple[str, ...]:
    """IPv4 addresses of the local interfaces (Linux ``SIOCGIFADDR``; elsewhere none)."""
    try:
        import fcntl
        import struct

        names = [name for _, name in socket.if_nameindex()]
    except (ImportError, OSError, AttributeError):
        return ()
    found: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name in names:
            try:
                request = struct.pack("256s", name[:15].encode())
                reply = fcntl.ioctl(sock.fileno(), 0x8915, request)  # SIOCGIFADDR
            except OSError:  # no IPv4 address on this interface
                continue
            address = socket.inet_ntoa(reply[20:24])
            if address not in found and address != "127.0.0.1":
                found.append(address)
    return tuple(found)


class ChaincodeTLS:
    """The peer side of chaincode TLS: server credentials and the certificate bindings."""

    def __init__(self, hosts: tuple[str, ...] = ()) -> None:
        self.ca = CertificateAuthority()
        # The addresses of this host's interfaces too: a container on a Docker bridge dials
        # the bridge's gateway (172.17.0.1), and the shim checks the name it dialled.
        default_hosts = ("127.0.0.1", "localhost", socket.gethostname(), *_interface_addresses())
        self.server = self.ca.issue("ccactors peer", server=True, hosts=hosts or default_hosts)
        self._bindings: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.server.key_pem, self.server.cert_pem)],
            root_certificates=self.ca.cert_pem,
            require_client_auth=True,
        )

    def client_for(self, ccid: str) -> ClientTLS:
        """Issue a client certificate for ``ccid`` (at launch) and remember the binding."""
        pair = self.ca.issue(ccid, server=False)
        with self._lock:
            now = time.monotonic()
            self._bindings = {h: b for h, b in self._bindings.items() if b[1] > now}
            self._bindings[cert_hash(pair.cert_pem)] = (ccid, now + BINDING_TTL)
        return ClientTLS(self.ca.cert_pem, pair)

    def chaincode_for(self, cert_pem: bytes) -> str | None:
        """The chaincode id a presented client certificate was issued for, if still bound."""
        with self._lock:
            found = self._bindings.get(cert_hash(cert_pem))
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]


# -- TLS of the peer's client-facing services (Gateway, admin API) ----------------------------


def service_tls_enabled(config: Config) -> bool:
    """Whether the Gateway and the admin API speak TLS: Fabric's ``peer.tls.enabled``; left
    unset (on in net mode for the chaincode listener), when ``peer.tls.cert.file`` is set."""
    return bool(
        config.tls_enabled or (config.tls_enabled is None and config.tls_cert_file is not None)
    )


def service_plaintext_reason(config: Config) -> str:
    """Why the Gateway and the admin API speak plaintext (``service_tls_enabled`` is false)."""
    if config.tls_enabled is False:
        return "peer.tls.enabled is false"
    return "peer.tls.cert.file not set"


def service_key_pair(config: Config) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) of ``peer.tls.key.file`` and ``peer.tls.cert.file``; raises
    OSError naming what is missing or unreadable."""
    if not config.tls_key_file or not config.tls_cert_file:
        raise OSError("a TLS file is not set (peer.tls.cert.file, peer.tls.key.file)")
    return Path(config.tls_key_file).read_bytes(), Path(config.tls_cert_file).read_bytes()


def client_credentials(
    root: str | None, cert: str | None = None, key: str | None = None, host: str | None = None
) -> tuple[grpc.ChannelCredentials | None, list[tuple[str, object]]]:
    """A CLI client's TLS from its flags: the peer's TLS root CA (``--tls-root-cert``), and a
    client certificate and key (``--tls-cert``, ``--tls-key``) for mutual TLS; None without a
    root. Raises ValueError naming the flag at fault."""
    if (cert is None) != (key is None):
        raise ValueError("--tls-cert and --tls-key go together (the client's certificate and key)")
    if root is None:
        if cert is not None:
            raise ValueError("--tls-cert needs --tls-root-cert (the peer's TLS root CA)")
        return None, []

    def read(flag: str, path: str | None) -> bytes | None:
        if path is None:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(f"{flag}: {exc}") from None

    credentials = grpc.ssl_channel_credentials(
        read("--tls-root-cert", root), read("--tls-key", key), read("--tls-cert", cert)
    )
    options: list[tuple[str, object]] = []
    if host:
        options.append(("grpc.ssl_target_name_override", host))
    return credentials, options


@dataclass(frozen=True)
class Unreachable:
    """Why a client could not talk to a peer, as one line for the user. ``final``: the peer
    was reached but speaks otherwise (TLS against plaintext, no client certificate): waiting
    or retrying will not change that."""

    message: str
    final: bool


def explain_unavailable(
    details: str,
    *,
    address: str,
    tls: bool,
    client_cert: bool | None = None,
    root_source: str = "--tls-root-cert",
) -> Unreachable:
    """gRPC's UNAVAILABLE ``details`` (its C-core text) said in the user's terms: what failed
    and which flag or variable to look at; the TLS hint only for a handshake that failed.
    ``client_cert``: whether one was presented (None: unknown); ``root_source``: where the TLS
    root CA came from (the flag or the CORE_PEER_* variable the user set)."""
    # "...: OK" is grpc's status of the handshake's last step, not a verdict
    reason = details.removesuffix(": OK").rpartition("last error: ")[2]
    if "Connection refused" in details:
        return Unreachable(f"nothing is listening at {address}", final=False)
    if "WRONG_VERSION_NUMBER" in details:
        return Unreachable(
            f"{address} does not speak TLS: unset CORE_PEER_TLS_ENABLED / drop the TLS flags "
            "(--tls-root-cert, --tlsRootCertFiles)",
            final=True,
        )
    if "Hostname Verification" in details or "Peer name" in details:
        return Unreachable(
            f"{address}'s TLS certificate does not name the host dialled: give the name it "
            "holds with --tls-host NAME (Fabric's CORE_PEER_TLS_SERVERHOSTOVERRIDE)",
            final=True,
        )
    if "CERTIFICATE_VERIFY_FAILED" in details or "handshake failed" in details.lower():
        return Unreachable(
            f"TLS handshake with {address} failed: {reason} (is {root_source} the peer's TLS CA?)",
            final=True,
        )
    if "Socket closed" in details or "Connection reset" in details:
        if not tls:
            return Unreachable(
                f"{address} closed the connection: it may require TLS (set "
                "CORE_PEER_TLS_ENABLED=true and CORE_PEER_TLS_ROOTCERT_FILE, or give "
                "--tls-root-cert PEM)",
                final=True,
            )
        if client_cert is False:
            return Unreachable(
                f"{address} closed the connection during the TLS handshake: the admin API "
                "requires an admin's client certificate: set CORE_PEER_MSPCONFIGPATH to an "
                "admin MSP (or --tls-cert/--tls-key)",
                final=True,
            )
        return Unreachable(
            f"{address} closed the connection during the TLS handshake (is {root_source} the "
            "peer's TLS CA, and --tls-cert a certificate of one of its member organisations?)",
            final=True,
        )
    return Unreachable(f"peer unavailable: {details}", final=False)
