"""The operations server over TLS, as Fabric's ``operations.tls``: HTTPS, a client certificate
verified when given (required with ``clientAuthRequired``), ``/metrics`` and ``/logspec`` only
for a verified client (401 otherwise), ``/healthz`` and ``/version`` for anyone; and every
misconfiguration refused in one line when ``serve`` starts."""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from actors.config import Config, ConfigError
from actors.metrics import Metrics
from actors.operations import LogLevels, OperationsServer, OperationsTLS
from actors.tls import CertificateAuthority
from tests.helpers import free_port

# What a refused handshake looks like to urllib: an SSL alert, a reset, or a closed connection.
REFUSED = (ssl.SSLError, ConnectionError, urllib.error.URLError, http.client.HTTPException)


@dataclass(frozen=True)
class Files:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # a client certificate from a CA the server does not trust
    stranger_key: Path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    out = tmp_path_factory.mktemp("opstls")
    ca, other = CertificateAuthority("ops CA"), CertificateAuthority("someone else")
    server = ca.issue("operations", server=True, hosts=("127.0.0.1", "localhost"))
    client = ca.issue("admin", server=False)
    stranger = other.issue("admin", server=False)
    written = {
        "ca": ca.cert_pem,
        "server_cert": server.cert_pem,
        "server_key": server.key_pem,
        "client_cert": client.cert_pem,
        "client_key": client.key_pem,
        "stranger_cert": stranger.cert_pem,
        "stranger_key": stranger.key_pem,
    }
    for name, data in written.items():
        (out / f"{name}.pem").write_bytes(data)
    return Files(**{name: out / f"{name}.pem" for name in written})


def _client(files: Files, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(files.ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def _get(url: str, context: ssl.SSLContext | None, method: str = "GET", body: Any = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _server(tls: OperationsTLS) -> OperationsServer:
    return OperationsServer(
        "127.0.0.1:0", metrics=Metrics(), levels=LogLevels("info"), request_timeout=2, tls=tls
    ).start()


@pytest.fixture
def https(files: Files) -> Iterator[OperationsServer]:
    server = _server(
        OperationsTLS(str(files.server_cert), str(files.server_key), False, (str(files.ca),))
    )
    try:
        yield server
    finally:
        server.stop()


def test_metrics_and_logspec_need_a_verified_client(https: OperationsServer, files: Files) -> None:
    base = f"https://{https.address}"
    anonymous = _client(files)
    admin = _client(files, files.client_cert, files.client_key)
    assert https.scheme == "https"
    assert _get(f"{base}/healthz", anonymous) == 200
    assert _get(f"{base}/version", anonymous) == 200
    assert _get(f"{base}/metrics", anonymous) == 401
    assert _get(f"{base}/logspec", anonymous) == 401
    assert _get(f"{base}/logspec", anonymous, "PUT", {"spec": "debug"}) == 401
    assert https.levels.spec() == "info"  # the refused PUT changed nothing
    assert _get(f"{base}/metrics", admin) == 200
    assert _get(f"{base}/logspec", admin, "PUT", {"spec": "debug"}) == 204
    assert https.levels.spec() == "debug"
    # A certificate from a CA the server does not trust is refused in the handshake.
    with pytest.raises(REFUSED):
        _get(f"{base}/healthz", _client(files, files.stranger_cert, files.stranger_key))
    # Plain HTTP gets no answer, and the server goes on serving.
    with pytest.raises(REFUSED):
        _get(f"http://{https.address}/healthz", None)
    assert _get(f"{base}/healthz", anonymous) == 200


def test_client_auth_required_refuses_a_client_without_a_certificate(files: Files) -> None:
    server = _server(
        OperationsTLS(str(files.server_cert), str(files.server_key), True, (str(files.ca),))
    )
    try:
        base = f"https://{server.address}"
        with pytest.raises(REFUSED):
            _get(f"{base}/healthz", _client(files))
        assert _get(f"{base}/metrics", _client(files, files.client_cert, files.client_key)) == 200
    finally:
        server.stop()


def test_a_stalled_handshake_does_not_block_the_others(
    https: OperationsServer, files: Files
) -> None:
    # The handshake runs on the request's thread: a client that connects and never starts
    # one holds its own slot (until the request timeout), not the accepting loop.
    port = int(https.address.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)):
        assert _get(f"https://{https.address}/healthz", _client(files)) == 200


def test_tls_settings_are_checked(files: Files, tmp_path: Path) -> None:
    def load(**keys: Any) -> Config:
        path = tmp_path / "core.json"
        path.write_text(json.dumps({"operations": {"tls": keys}}))
        return Config.load(path, env={})

    assert OperationsTLS.from_config(load(enabled=False, cert={"file": "x"})) is None
    with pytest.raises(ConfigError) as missing:
        OperationsTLS.from_config(load(enabled=True))
    assert missing.value.problems == (
        "operations.tls.cert.file: required when operations.tls.enabled is true",
        "operations.tls.key.file: required when operations.tls.enabled is true",
    )
    tls = OperationsTLS.from_config(
        load(
            enabled=True,
            cert={"file": str(files.server_cert)},
            key={"file": str(files.server_key)},
            clientAuthRequired=True,
            clientRootCAs={"files": [str(files.ca)]},
        )
    )
    assert tls == OperationsTLS(
        str(files.server_cert), str(files.server_key), True, (str(files.ca),)
    )
    # Relative paths are read against the configuration file's directory, as Fabric does.
    relative = load(enabled=True, cert={"file": "c.pem"}, key={"file": "k.pem"})
    assert OperationsTLS.from_config(relative) == OperationsTLS(
        str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    )
    with pytest.raises(ConfigError, match=r"cannot load .*nothing\.pem"):
        OperationsTLS(str(tmp_path / "nothing.pem"), str(files.server_key)).context()
    with pytest.raises(
        ConfigError, match=re.escape("operations.tls.clientRootCAs.files: cannot load")
    ):
        OperationsTLS(
            str(files.server_cert), str(files.server_key), False, (str(tmp_path),)
        ).context()
    with pytest.raises(ConfigError, match="clientAuthRequired needs the CAs"):
        OperationsTLS(str(files.server_cert), str(files.server_key), True).context()
    # the key of another certificate
    with pytest.raises(
        ConfigError, match=re.escape("operations.tls.cert.file, operations.tls.key.file")
    ):
        OperationsTLS(str(files.server_cert), str(files.client_key)).context()


def _serve(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "actors.cli", "serve", "--ephemeral", "--json",
            "--listen", "127.0.0.1:0", "--peer", f"127.0.0.1:{free_port()}",
            "--operations", f"127.0.0.1:{free_port()}", "--config", str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_serve_speaks_https_on_the_operations_port(files: Files, tmp_path: Path) -> None:
    config = tmp_path / "core.yaml"
    config.write_text(
        f"""
operations:
  tls:
    enabled: true
    cert:
      file: {files.server_cert}
    key:
      file: {files.server_key}
    clientRootCAs:
      files:
        - {files.ca}
"""
    )
    peer = _serve(config)
    try:
        assert peer.stdout is not None
        line = peer.stdout.readline()
        assert line, peer.stderr.read() if peer.stderr else ""
        metrics = json.loads(line)["metrics"]
        assert metrics.startswith("https://127.0.0.1:")
        assert _get(metrics, _client(files)) == 401
        assert _get(metrics, _client(files, files.client_cert, files.client_key)) == 200
    finally:
        peer.terminate()
        peer.communicate(timeout=30)


def test_serve_refuses_tls_without_its_files(tmp_path: Path) -> None:
    config = tmp_path / "core.yaml"
    config.write_text(
        f"operations:\n  tls:\n    enabled: true\n    cert:\n      file: {tmp_path}/no.pem\n"
    )
    peer = _serve(config)
    out, err = peer.communicate(timeout=60)
    assert peer.returncode == 2, (out, err)
    assert err.strip().splitlines() == [
        "ccactors: error: operations.tls.key.file: required when operations.tls.enabled is true"
    ]
