"""The admin API guarded (issue 12, item 4): with the peer's TLS configured it speaks TLS and
takes only admin identities of the peer's organisation, presented as the client certificate;
launch and stop act only on chaincodes the configuration names. Identities come from
``ccactors crypto`` (tests/gateway_peer)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.admin import MAX_INSTALLS, AdminClient, AdminTLS, serve_admin
from actors.config import ChaincodeDefinition, Config, Organization
from actors.errors import (
    ChaincodeError,
    LifecycleError,
    PeerMismatch,
    PermissionDenied,
    UnknownChaincode,
)
from actors.support import ChaincodeSupport
from actors.tls import client_credentials
from tests.gateway_peer import make_crypto, member_dir

KV = ChaincodeDefinition("kv", target="examples.kv:KVChaincode")


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_crypto(tmp_path_factory.mktemp("crypto"))


def peer_config(crypto: Path, **extra: object) -> Config:
    peer0 = member_dir(crypto, 1, "peer0")
    return Config(
        chaincodes=(KV,),
        msp_id="Org1MSP",
        msp_config_path=str(peer0 / "msp"),
        tls_cert_file=str(peer0 / "tls/server.crt"),
        tls_key_file=str(peer0 / "tls/server.key"),
        organizations=(
            Organization("Org2MSP", str(crypto / "peerOrganizations/org2.example.com/msp")),
        ),
    ).replace(**extra)


@pytest.fixture(scope="module")
def admin_api(crypto: Path) -> Iterator[str]:
    config = peer_config(crypto)
    tls = AdminTLS.from_config(config)
    assert tls is not None
    with ChaincodeSupport(config) as support:
        server, address = serve_admin(support, "127.0.0.1:0", tls=tls)
        yield address
        server.stop(None)


def client(
    crypto: Path, address: str, org: int, name: str | None, *, root_org: int = 1, host: str = ""
) -> AdminClient:
    """A client presenting ``name``'s MSP signing certificate (None: no certificate), trusting
    ``root_org``'s TLS CA, dialling ``host`` (empty: the address's)."""
    cert = key = None
    if name is not None:
        msp = member_dir(crypto, org, name) / "msp"
        [cert] = [str(p) for p in (msp / "signcerts").iterdir()]
        key = str(msp / "keystore/priv_sk")
    root = str(member_dir(crypto, root_org, "peer0") / "tls/ca.crt")
    credentials, options = client_credentials(root, cert, key, host or None)
    return AdminClient(
        address,
        timeout=20,
        credentials=credentials,
        options=tuple(options),
        client_cert=cert is not None,
        root_source="CORE_PEER_TLS_ROOTCERT_FILE",
    )


def test_an_admin_of_the_peers_org_may_call_it(crypto: Path, admin_api: str) -> None:
    admin = client(crypto, admin_api, 1, "Admin@")
    assert [c.name for c in admin.list().chaincodes] == ["kv"]
    reply = admin.invoke("mychannel", "kv", [b"put", b"k", b"v"])
    assert reply.validation == "VALID"
    assert admin.invoke("mychannel", "kv", [b"get", b"k"], commit=False).response.payload == b"v"


@pytest.mark.parametrize(
    ("org", "name", "why"),
    [
        (1, "User1@", "is not an admin of Org1MSP"),  # a client of the org
        (1, "peer0", "is not an admin of Org1MSP"),  # the org's own peer
        (2, "Admin@", "is not an identity of Org1MSP"),  # another member org's admin
    ],
)
def test_other_identities_are_refused_with_the_reason(
    crypto: Path, admin_api: str, org: int, name: str, why: str
) -> None:
    other = client(crypto, admin_api, org, name)
    with pytest.raises(PermissionDenied, match=why):
        other.list()
    with pytest.raises(PermissionDenied, match=why):
        other.invoke("mychannel", "kv", [b"put", b"k", b"stolen"])
    with pytest.raises(PermissionDenied, match=why):
        next(iter(other.events()))  # streaming calls are guarded the same way
    assert (
        client(crypto, admin_api, 1, "Admin@")
        .invoke("mychannel", "kv", [b"get", b"k"], commit=False)
        .response.payload
        != b"stolen"
    )


def test_no_client_certificate_no_plaintext(crypto: Path, admin_api: str) -> None:
    """Each way of reaching the TLS admin API wrongly is said as what to change (the issue's
    newcomer: no hint appended to everything, the variable the user set named)."""
    with pytest.raises(PeerMismatch) as info:
        client(crypto, admin_api, 1, None).list()
    assert str(info.value) == (
        f"{admin_api} closed the connection during the TLS handshake: the admin API requires "
        "an admin's client certificate: set CORE_PEER_MSPCONFIGPATH to an admin MSP (or "
        "--tls-cert/--tls-key)"
    )
    with pytest.raises(PeerMismatch, match=r"it may require TLS \(set CORE_PEER_TLS_ENABLED="):
        AdminClient(admin_api, timeout=5).list()
    with pytest.raises(PeerMismatch) as info:  # another org's CA
        client(crypto, admin_api, 1, "Admin@", root_org=2).list()
    message = str(info.value)
    assert message.startswith(f"TLS handshake with {admin_api} failed: ")
    assert "CERTIFICATE_VERIFY_FAILED" in message and ": OK" not in message
    assert message.endswith("(is CORE_PEER_TLS_ROOTCERT_FILE the peer's TLS CA?)")
    with pytest.raises(PeerMismatch, match=r"--tls-host NAME \(Fabric's CORE_PEER_TLS_SERVERHOST"):
        client(crypto, admin_api, 1, "Admin@", host="elsewhere.example.com").list()


def test_tls_against_a_plaintext_admin_api_is_named(crypto: Path) -> None:
    with ChaincodeSupport(Config(chaincodes=(KV,))) as support:
        server, address = serve_admin(support, "127.0.0.1:0")
        try:
            with pytest.raises(PeerMismatch) as info:
                client(crypto, address, 1, "Admin@").list()
        finally:
            server.stop(None)
    assert str(info.value) == (
        f"{address} does not speak TLS: unset CORE_PEER_TLS_ENABLED / drop the TLS flags "
        "(--tls-root-cert, --tlsRootCertFiles)"
    )


def test_admin_event_streams_pass_the_guard(crypto: Path, admin_api: str) -> None:
    admin = client(crypto, admin_api, 1, "Admin@")
    done = threading.Event()

    def churn() -> None:  # events until the stream has heard one
        while not done.is_set():
            admin.launch("kv")
            admin.stop("kv")

    events = admin.events("kv")
    worker = threading.Thread(target=churn)
    worker.start()
    try:
        assert next(iter(events)).chaincode == "kv"
    finally:
        done.set()
        worker.join(30)
        events.close()


class CountingRelay:
    """A TCP relay to ``target`` that counts the bytes its clients send the server."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.target = (host, int(port))
        self.sent = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        try:
            while data := source.recv(65536):
                if count:
                    with self._lock:
                        self.sent += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()


def test_a_refused_install_is_not_read(crypto: Path, admin_api: str) -> None:
    """An identity the guard refuses cannot make the peer read (and hold) its package: of N
    concurrent installs of 24 MiB, the peer takes little more than gRPC's flow-control window
    each before it answers PERMISSION_DENIED."""
    relay = CountingRelay(admin_api)
    package = os.urandom(24 * 1024 * 1024)
    results: list[BaseException | None] = []

    def install(org: int, name: str) -> None:
        try:
            client(crypto, relay.address, org, name).install(package)
            results.append(None)
        except ChaincodeError as exc:
            results.append(exc)

    callers = [(1, "User1@"), (1, "peer0"), (2, "Admin@"), (2, "User1@")]
    threads = [threading.Thread(target=install, args=caller) for caller in callers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        relay.close()
    assert len(results) == len(callers)
    assert all(isinstance(result, PermissionDenied) for result in results), results
    assert relay.sent < len(callers) * 8 * 1024 * 1024, relay.sent


def test_installs_at_once_are_bounded(crypto: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = peer_config(crypto)
    tls = AdminTLS.from_config(config)
    assert tls is not None
    release = threading.Event()
    entered = threading.Semaphore(0)

    def held_install(package: bytes) -> object:
        entered.release()
        release.wait(30)
        raise LifecycleError("not a package")

    with ChaincodeSupport(config) as support:
        monkeypatch.setattr(support, "install", held_install)
        server, address = serve_admin(support, "127.0.0.1:0", tls=tls)
        admin = client(crypto, address, 1, "Admin@")
        held = [threading.Thread(target=lambda: admin_install(admin)) for _ in range(MAX_INSTALLS)]
        try:
            for thread in held:
                thread.start()
            for _ in held:
                assert entered.acquire(timeout=30)
            with pytest.raises(ChaincodeError, match=f"{MAX_INSTALLS} installs are in progress"):
                admin.install(b"package")
            assert [c.name for c in admin.list().chaincodes] == ["kv"]  # other calls go on
            release.set()
            for thread in held:
                thread.join(30)
            with pytest.raises(LifecycleError, match="not a package"):
                admin.install(b"package")  # the slots came back
        finally:
            release.set()
            server.stop(None)


def admin_install(admin: AdminClient) -> None:
    with contextlib.suppress(LifecycleError):
        admin.install(b"package")


def test_launch_and_stop_take_only_configured_chaincodes(crypto: Path, admin_api: str) -> None:
    admin = client(crypto, admin_api, 1, "Admin@")
    for name in ("/bin/sh", "sh -c id", "python", "kv2"):
        with pytest.raises(UnknownChaincode, match=r"definition for .* not found"):
            admin.launch(name)
        with pytest.raises(UnknownChaincode, match=r"definition for .* not found"):
            admin.stop(name)
    assert admin.launch("kv") >= 0


def test_the_admin_tls_comes_from_the_peers_tls_settings(crypto: Path) -> None:
    assert AdminTLS.from_config(Config()) is None  # no certificate: plaintext
    assert AdminTLS.from_config(peer_config(crypto, tls_enabled=False)) is None
    # peer.tls.enabled alone is the chaincode listener's TLS (its own CA): no admin TLS
    assert AdminTLS.from_config(Config(tls_enabled=True)) is None
    from actors.config import ConfigError

    with pytest.raises(ConfigError, match=r"peer\.mspConfigPath"):
        AdminTLS.from_config(peer_config(crypto, msp_config_path=None))
    with pytest.raises(ConfigError, match=r"peer\.tls"):
        AdminTLS.from_config(peer_config(crypto, tls_key_file=str(crypto / "missing.key")))


def test_a_client_certificate_needs_its_key_and_a_root() -> None:
    with pytest.raises(ValueError, match="--tls-cert and --tls-key go together"):
        client_credentials("root.pem", "cert.pem", None)
    with pytest.raises(ValueError, match="needs --tls-root-cert"):
        client_credentials(None, "cert.pem", "key.pem")
    with pytest.raises(ValueError, match="--tls-root-cert: "):
        client_credentials("/nonexistent/root.pem")
    assert client_credentials(None) == (None, [])
