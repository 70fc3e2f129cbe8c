"""The worked example of the README, run as written: MSP folders from ``ccactors crypto``, a
``ccactors serve --gateway`` with the peer's identity and TLS from a core.yaml, and a client
that submits and queries with ``ccactors invoke|query --gateway`` and its own identity."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import cli, free_port

ORG1 = "peerOrganizations/org1.example.com"
ORG2 = "peerOrganizations/org2.example.com"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[dict, Path]]:
    crypto = tmp_path / "crypto"
    made = cli("crypto", "--orgs", "Org1MSP,Org2MSP", "--out", str(crypto))
    assert made.returncode == 0, made.stderr
    peer0 = crypto / ORG1 / "peers/peer0.org1.example.com"
    (tmp_path / "core.yaml").write_text(
        f"""
peer:
  localMspId: Org1MSP
  mspConfigPath: {peer0 / "msp"}
  tls:
    enabled: true
    cert:
      file: {peer0 / "tls/server.crt"}
    key:
      file: {peer0 / "tls/server.key"}
orderer:
  batchTimeout: 100ms
chaincodes:
  - name: kv
    runtime: system
    target: examples.kv:KVChaincode
"""
    )
    process = subprocess.Popen(
        [
            sys.executable, "-m", "actors.cli", "serve", "--json",
            "--listen", "127.0.0.1:0", "--peer", f"127.0.0.1:{free_port()}",
            "--gateway", "127.0.0.1:0", "--config", str(tmp_path / "core.yaml"),
            "--data-dir", str(tmp_path / "data"),  # not the user's: another peer may hold it
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    try:
        assert line, process.stderr.read() if process.stderr else ""
        yield json.loads(line), crypto
    finally:
        process.terminate()
        process.wait(30)


def test_a_client_submits_and_queries_through_serve(serve: tuple[dict, Path]) -> None:
    ready, crypto = serve
    assert ready["ready"] and ready["gateway"].startswith("127.0.0.1:")
    peer0_tls = crypto / ORG1 / "peers/peer0.org1.example.com/tls/ca.crt"
    identity = [
        "--gateway", ready["gateway"], "--tls-root-cert", str(peer0_tls),
        "--tls-host", "peer0.org1.example.com",
        "--msp-dir", str(crypto / ORG1 / "users/User1@org1.example.com/msp"),
        "--msp-id", "Org1MSP", "--json",
    ]  # fmt: skip
    put = cli("invoke", "kv", "put", "colour", "blue", *identity)
    assert put.returncode == 0, put.stderr
    assert json.loads(put.stdout)["validation"] == "VALID"
    got = cli("query", "kv", "get", "colour", *identity)
    assert json.loads(got.stdout) == {"payload": "blue"}
    # Org2 is not a member of this peer's channel: its client is refused
    org2 = [*identity]
    org2[org2.index("--msp-dir") + 1] = str(crypto / ORG2 / "users/User1@org2.example.com/msp")
    org2[org2.index("--msp-id") + 1] = "Org2MSP"
    refused = cli("invoke", "kv", "put", "colour", "red", *org2)
    assert refused.returncode == 1
    answer = json.loads(refused.stdout)
    assert answer["error"] == "ABORTED" and "creator org unknown" in answer["details"][0]["message"]
    # on a terminal: one line, the endorsers' details appended (-v: which endorser said it)
    text = cli("invoke", "kv", "put", "colour", "red", *[a for a in org2 if a != "--json"])
    (line,) = text.stderr.splitlines()
    assert line.startswith("ccactors: error: ABORTED: failed to endorse transaction: ")
    assert "creator org unknown" in line and "see attached details" not in line
    assert "Org1MSP at " not in line
    verbose = cli("invoke", "-v", "kv", "put", "colour", "red", *[a for a in org2 if a != "--json"])
    (line,) = [x for x in verbose.stderr.splitlines() if x.startswith("ccactors: error: ")]
    assert f"Org1MSP at {ready['gateway']}: " in line and "creator org unknown" in line
    plain = [a for a in identity if a not in identity[2:6]]  # no TLS to a TLS Gateway
    unanswered = cli("query", "kv", "get", "colour", *plain)
    assert unanswered.returncode == 1
    answer = json.loads(unanswered.stdout)
    assert answer["error"] == "UNAVAILABLE"
    assert answer["message"].startswith(f"{ready['gateway']} closed the connection: it may require")


def test_the_readme_example_runs_as_written(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    anchor = readme.index(
        "A worked example (run as written by `tests/integration/test_serve_gateway"
    )
    start = readme.index("```sh\n", anchor) + len("```sh\n")
    script = readme[start : readme.index("```\n", start)]
    assert "sleep" not in script and "ccactors wait" in script  # a readiness signal, not a guess
    # `ccactors` is this checkout's; the gateway, admin and chaincode listener ports free ones
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ccactors").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m actors.cli "$@"\n')
    (bin_dir / "ccactors").chmod(0o755)
    assert "--listen 127.0.0.1:7052" in script  # no chaincode listener on every interface
    for port in ("7050", "7051", "7052"):
        script = script.replace(port, str(free_port()))
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        # the default data directory, but this test's: another peer may hold the user's
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    # its own session, so that a serve the script leaves behind when a step fails is stopped
    script_run = subprocess.Popen(
        ["bash", "-e", "-c", script],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = script_run.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(script_run.pid, signal.SIGTERM)
        script_run.wait(30)
    done = subprocess.CompletedProcess(script_run.args, script_run.returncode, stdout, stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Committed chaincode definition for chaincode 'kv' on channel 'mychannel'" in done.stdout
    assert "validation: VALID" in done.stdout
    assert "payload: blue" in done.stdout


def test_serve_refuses_a_gateway_without_an_identity(tmp_path: Path) -> None:
    done = cli(
        "serve", "--listen", "127.0.0.1:0", "--peer", f"127.0.0.1:{free_port()}",
        "--gateway", "127.0.0.1:0", "--ephemeral",
    )  # fmt: skip
    assert done.returncode == 2
    assert "peer.mspConfigPath" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_admin_verbs_present_an_admins_certificate(serve: tuple[dict, Path]) -> None:
    """With the peer's TLS configured the admin API takes only its org's admins: the client
    verbs present one with --tls-cert/--tls-key (an MSP signcert and its key)."""
    ready, crypto = serve
    assert ready["admin_tls"] is True

    def as_(user: str) -> list[str]:
        msp = crypto / ORG1 / f"users/{user}@org1.example.com/msp"
        return [
            "--peer", ready["peer"],
            "--tls-root-cert", str(crypto / ORG1 / "peers/peer0.org1.example.com/tls/ca.crt"),
            "--tls-cert", str(next((msp / "signcerts").iterdir())),
            "--tls-key", str(msp / "keystore/priv_sk"),
        ]  # fmt: skip

    listed = cli("list", "--json", *as_("Admin"))
    assert listed.returncode == 0, listed.stderr
    assert [c["name"] for c in json.loads(listed.stdout)] == ["kv"]
    refused = cli("list", *as_("User1"))
    assert refused.returncode == 1
    assert refused.stderr.startswith("ccactors: error: PermissionDenied: admin API: ")
    assert "is not an admin of Org1MSP" in refused.stderr
    plain = cli("list", "--peer", ready["peer"])  # no TLS at all: the peer does not answer
    assert plain.returncode == 1
    assert plain.stderr == (
        f"ccactors: error: PeerUnavailable: {ready['peer']} closed the connection: it may "
        "require TLS (set CORE_PEER_TLS_ENABLED=true and CORE_PEER_TLS_ROOTCERT_FILE, or give "
        "--tls-root-cert PEM)\n"
    )
    half = cli("list", *as_("Admin")[:4], "--tls-cert", "x.pem")  # a certificate without key
    assert half.returncode == 2 and "--tls-cert and --tls-key go together" in half.stderr


def test_fabric_environment_and_a_pasted_fabric_line(serve: tuple[dict, Path]) -> None:
    """Fabric's CORE_PEER_* variables, as test-network's scripts export them, reach the TLS
    admin API (its admin identity from CORE_PEER_MSPCONFIGPATH) and, for --gateway, sign as
    that MSP; a `peer chaincode invoke` line pasted from test-network runs."""
    ready, crypto = serve
    tls_ca = str(crypto / ORG1 / "peers/peer0.org1.example.com/tls/ca.crt")

    def env(user: str) -> dict[str, str]:
        return {
            **os.environ,
            "CORE_PEER_ADDRESS": ready["peer"],
            "CORE_PEER_TLS_ENABLED": "true",
            "CORE_PEER_TLS_ROOTCERT_FILE": tls_ca,
            "CORE_PEER_MSPCONFIGPATH": str(crypto / ORG1 / f"users/{user}@org1.example.com/msp"),
            "CORE_PEER_LOCALMSPID": "Org1MSP",
        }

    def run(
        *args: str, user: str = "Admin", **changes: str | None
    ) -> subprocess.CompletedProcess[str]:
        environment = {k: v for k, v in {**env(user), **changes}.items() if v is not None}
        return subprocess.run(
            [sys.executable, "-m", "actors.cli", *args],
            capture_output=True, text=True, timeout=60, env=environment,
        )  # fmt: skip

    def error(done: subprocess.CompletedProcess[str]) -> str:
        """The one line a failed verb printed (no gRPC log lines around it)."""
        assert done.returncode == 1, done.stderr
        (line,) = done.stderr.splitlines()
        return line.removeprefix("ccactors: error: ")

    # the newcomer's mistakes, each said as what to change
    assert error(run("list", CORE_PEER_ADDRESS=ready["gateway"])) == (
        f"PeerUnavailable: {ready['gateway']} answers gRPC but is not a ccactors admin API (is "
        "it the --gateway address? use --gateway ADDR for Fabric's Gateway path, or --peer "
        "with the admin address)"
    )
    assert error(run("list", CORE_PEER_MSPCONFIGPATH=None)).endswith(
        "the admin API requires an admin's client certificate: set CORE_PEER_MSPCONFIGPATH to "
        "an admin MSP (or --tls-cert/--tls-key)"
    )
    # plaintext against TLS: `wait` fails at once rather than for its whole timeout
    waited = error(run("wait", "--timeout", "10m", CORE_PEER_TLS_ENABLED="false"))
    assert "did not answer within" not in waited and "it may require TLS" in waited
    wrong_ca = str(
        crypto / "peerOrganizations/org2.example.com/peers/peer0.org2.example.com/tls/ca.crt"
    )
    said = error(run("list", CORE_PEER_TLS_ROOTCERT_FILE=wrong_ca))
    assert "CERTIFICATE_VERIFY_FAILED" in said and ": OK" not in said
    assert said.endswith("(is CORE_PEER_TLS_ROOTCERT_FILE the peer's TLS CA?)")
    unknown = error(run("query", "--gateway", ready["gateway"], "-C", "nochannel", "kv", "get"))
    assert "TLS" not in unknown  # the server answered: no handshake hint

    listed = run("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [c["name"] for c in json.loads(listed.stdout)] == ["kv"]
    refused = run("list", user="User1")  # the variable names the identity presented
    assert refused.returncode == 1 and "is not an admin of Org1MSP" in refused.stderr
    pasted = run(
        "invoke", "-o", "localhost:7050", "--ordererTLSHostnameOverride", "orderer.example.com",
        "--tls", "--cafile", tls_ca, "-C", "mychannel", "-n", "kv",
        "--peerAddresses", ready["peer"], "--tlsRootCertFiles", tls_ca,
        "-c", '{"function":"put","Args":["colour","green"]}',
    )  # fmt: skip
    assert pasted.returncode == 0, pasted.stderr
    assert "validation: VALID" in pasted.stdout
    assert pasted.stderr.startswith("ccactors: note: --orderer, --ordererTLSHostnameOverride")
    through_gateway = run(
        "query", "--gateway", ready["gateway"], "kv", "get", "colour", user="User1"
    )
    assert through_gateway.returncode == 0, through_gateway.stderr
    assert "payload: green" in through_gateway.stdout


def test_serve_refuses_a_plaintext_admin_api_off_loopback(tmp_path: Path) -> None:
    args = ["serve", "--ephemeral", "--listen", "127.0.0.1:0", "--peer", f"0.0.0.0:{free_port()}"]
    done = cli(*args)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("ccactors: error: --peer: ") and "--insecure-admin" in line
    # the explicit opt-out starts, with a warning
    process = subprocess.Popen(
        [sys.executable, "-m", "actors.cli", *args, "--insecure-admin", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        ready = json.loads(process.stdout.readline())
        assert ready["ready"] and ready["admin_tls"] is False
    finally:
        process.terminate()
        process.wait(30)
    assert "ccactors: warning: the admin API on 0.0.0.0:" in process.stderr.read()
