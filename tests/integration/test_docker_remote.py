"""A Docker engine at a ``tcp://`` endpoint over mutual TLS (Fabric's ``vm.endpoint`` with
``vm.docker.tls.*``).

The local engine is the only one here, and it cannot take an extra ``tcp://`` listener without a
restart (``hosts`` is not reloadable), and a second daemon is out of the question; so the test
puts a TLS-terminating forwarder in front of its socket: a server on 127.0.0.1 that demands a
client certificate signed by the test's CA and passes the bytes on to /var/run/docker.sock. To
the docker SDK this is exactly a remote engine started with ``--tlsverify``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from actors.config import ChaincodeDefinition, Config, ConfigError
from actors.errors import LaunchError
from actors.images import DockerUnavailable, EngineTLS, docker_client
from actors.operations import docker_check
from actors.packaging import create_package
from actors.runtimes.docker import PEER_LABEL, DockerRuntime
from actors.support import ChaincodeSupport
from actors.tls import CertificateAuthority
from tests.helpers import docker_engine

pytestmark = pytest.mark.timeout(180)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SOCKET = "/var/run/docker.sock"
PEER_ID = f"remote-{os.getpid()}"


class TLSForwarder:
    """127.0.0.1:PORT (mutual TLS) -> the engine's unix socket, one thread pair per
    connection."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                raw, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            client = self._context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()  # no or wrong client certificate: the handshake fails
            return
        engine = socket.socket(socket.AF_UNIX)
        try:
            engine.connect(SOCKET)
        except OSError:
            client.close()
            return
        threading.Thread(target=_pump, args=(engine, client), daemon=True).start()
        _pump(client, engine)

    def close(self) -> None:
        self._closed = True
        self._server.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    """(endpoint, Fabric's vm.docker.tls table) of the forwarded engine."""
    docker_engine().close()  # skips (fails in CI) when there is no engine or base image
    if not os.path.exists(SOCKET):
        pytest.fail(f"the engine's socket {SOCKET} is missing")
    directory = tmp_path_factory.mktemp("engine-tls")
    ca = CertificateAuthority("test Docker CA")
    server = ca.issue("docker engine", server=True, hosts=("127.0.0.1",))
    client = ca.issue("peer0", server=False)
    files = {
        "ca.pem": ca.cert_pem,
        "server-cert.pem": server.cert_pem,
        "server-key.pem": server.key_pem,
        "cert.pem": client.cert_pem,
        "key.pem": client.key_pem,
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "server-cert.pem", directory / "server-key.pem")
    context.load_verify_locations(directory / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED  # dockerd --tlsverify
    forwarder = TLSForwarder(context)
    tls = {
        "enabled": True,
        "ca": {"file": str(directory / "ca.pem")},
        "cert": {"file": str(directory / "cert.pem")},
        "key": {"file": str(directory / "key.pem")},
    }
    yield f"tcp://127.0.0.1:{forwarder.port}", tls
    forwarder.close()


def core_yaml(path: Path, endpoint: str, tls: dict[str, Any], extra: str = "") -> Path:
    """A core.yaml with Fabric's vm keys, as a Fabric operator writes them."""
    path.write_text(
        "vm:\n"
        f"  endpoint: {endpoint}\n"
        "  docker:\n"
        "    tls:\n"
        f"      enabled: {str(tls['enabled']).lower()}\n"
        f"      ca:\n        file: {tls['ca']['file']}\n"
        f"      cert:\n        file: {tls['cert']['file']}\n"
        f"      key:\n        file: {tls['key']['file']}\n" + extra
    )
    return path


def test_engine_tls_settings_as_core_yaml_writes_them(tmp_path: Path) -> None:
    paths = [str(tmp_path / name) for name in ("ca.pem", "cert.pem", "key.pem")]
    for path in paths:
        Path(path).write_text("x")
    files = {key: {"file": path} for key, path in zip(["ca", "cert", "key"], paths, strict=True)}
    yaml = tmp_path / "core.yaml"
    config = Config.load(core_yaml(yaml, "tcp://h:2376", {"enabled": True, **files}))
    assert config.docker_tls == EngineTLS(*paths)
    assert (
        Config.load(core_yaml(yaml, "tcp://h:2376", {"enabled": False, **files})).docker_tls is None
    )
    files["ca"] = {"file": "/no/ca"}
    with pytest.raises(ConfigError, match=r"vm\.docker\.tls\.ca\.file: no such file /no/ca"):
        Config.load(core_yaml(yaml, "tcp://h:2376", {"enabled": True, **files}))
    with pytest.raises(ConfigError, match=r"needs a tcp:// vm\.endpoint"):
        Config(docker_tls_enabled=True, docker_endpoint="unix:///var/run/docker.sock")
    with pytest.raises(ConfigError, match=r"vm\.docker\.tls\.cert\.file: must be set"):
        Config(docker_tls_enabled=True, docker_endpoint="tcp://h:1", docker_tls_ca_file=paths[0])
    with pytest.raises(DockerUnavailable, match="needs a tcp:// endpoint"):
        docker_client(
            "unix:///var/run/docker.sock",
            tls=EngineTLS(*paths),
        )


def test_chaincode_runs_through_a_tls_engine_endpoint(
    remote: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The peer's own runtimes, configured by vm.endpoint and vm.docker.tls.* in core.yaml."""
    endpoint, tls = remote
    package = tmp_path / "kv.tar.gz"
    label = f"kvremote{os.getpid()}"
    create_package(EXAMPLES, label, target="examples.kv:KVChaincode", out=package)
    chaincodes = (
        "channels:\n  - name: remote\n"
        "chaincode:\n  startuptimeout: 60s\n"
        f"chaincodes:\n  - name: kv\n    runtime: docker\n    package: {package}\n"
    )
    config = Config.load(core_yaml(tmp_path / "core.yaml", endpoint, tls, chaincodes))
    support = ChaincodeSupport(config)
    try:
        support.listen("0.0.0.0:0")
        assert support.invoke("remote", None, "kv", ["put", "where", "tls"]).committed
        got = support.execute("remote", None, "kv", ["get", "where"])
        assert got.response.payload == b"tls"
        runtime = support.runtimes["docker"]
        assert isinstance(runtime, DockerRuntime)
        assert runtime.client.api.base_url == f"https://127.0.0.1:{endpoint.rsplit(':', 1)[1]}"
        # the image build went to the peer's metrics, under Fabric's name
        exposed = support.metrics.exposition().decode()
        assert (
            'dockercontroller_chaincode_container_build_duration_count{chaincode="kv",'
            'success="true"} 1\n' in exposed
        )
    finally:
        support.shutdown()
        with contextlib.closing(docker_client()) as local:
            for image in local.images.list(filters={"label": f"{PEER_LABEL}=peer0"}):
                if any(f"-{label}-" in tag for tag in image.tags):
                    with contextlib.suppress(docker.errors.APIError):
                        local.images.remove(image.id, force=True)


def test_a_client_without_the_right_certificate_is_refused(
    remote: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    endpoint, tls = remote
    stranger = CertificateAuthority("someone else").issue("intruder", server=False)
    (tmp_path / "cert.pem").write_bytes(stranger.cert_pem)
    (tmp_path / "key.pem").write_bytes(stranger.key_pem)
    wrong = EngineTLS(tls["ca"]["file"], str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    with pytest.raises(DockerUnavailable, match=f"cannot reach the Docker engine at {endpoint}"):
        docker_client(endpoint, timeout=10, tls=wrong)
    # the operations server's Docker health check goes the same way
    right = EngineTLS(tls["ca"]["file"], tls["cert"]["file"], tls["key"]["file"])
    assert docker_check(endpoint, right)() is None
    failed = docker_check(endpoint, wrong)()
    assert failed is not None and failed.startswith("failed to ping to Docker daemon")
    package = tmp_path / "kv.tar.gz"
    create_package(EXAMPLES, "kvremote", target="examples.kv:KVChaincode", out=package)
    runtime = DockerRuntime(lambda: "127.0.0.1:1", endpoint, engine_tls=wrong, peer_id=PEER_ID)
    support = ChaincodeSupport(
        Config(chaincodes=(ChaincodeDefinition("kv", runtime="docker", package=str(package)),)),
        runtimes={"docker": runtime},
    )
    try:
        with pytest.raises(LaunchError, match="cannot reach the Docker engine"):
            support.launch("kv", timeout=30)
    finally:
        support.shutdown()
