"""The client verbs read Fabric's CORE_PEER_* environment below their flags, and take a pasted
Fabric `peer` line: --peerAddresses/--tlsRootCertFiles as ours, the orderer flags noted as
ignored, and only what contradicts itself refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors import peerenv
from actors.cli import build_parser, main
from actors.config import ConfigError


def _parse(*argv: str) -> Any:
    return build_parser().parse_args(list(argv))


def _resolve(argv: list[str], env: dict[str, str], *, admin: bool = True) -> peerenv.Connection:
    return peerenv.resolve(_parse(*argv), env, admin=admin)


@pytest.fixture
def pem(tmp_path: Path) -> str:
    path = tmp_path / "ca.crt"
    path.write_text("not checked here\n")
    return str(path)


@pytest.fixture
def msp(tmp_path: Path) -> Path:
    folder = tmp_path / "msp"
    (folder / "signcerts").mkdir(parents=True)
    (folder / "keystore").mkdir()
    (folder / "signcerts" / "Admin@org1.example.com-cert.pem").write_text("cert")
    (folder / "keystore" / "priv_sk").write_text("key")
    return folder


def test_the_environment_fills_in_what_no_flag_gives(pem: str, msp: Path) -> None:
    env = {
        "CORE_PEER_ADDRESS": "peer0.org1.example.com:7051",
        "CORE_PEER_TLS_ENABLED": "true",
        "CORE_PEER_TLS_ROOTCERT_FILE": pem,
        "CORE_PEER_MSPCONFIGPATH": str(msp),
        "CORE_PEER_LOCALMSPID": "Org1MSP",
        "CORE_PEER_TLS_SERVERHOSTOVERRIDE": "peer0",
    }
    got = _resolve(["list"], env)
    assert got.peer == "peer0.org1.example.com:7051"
    assert got.tls_root_cert == pem and got.tls_host == "peer0"
    # the admin API authenticates by the TLS client certificate: the MSP's signing identity
    assert got.tls_cert == str(msp / "signcerts" / "Admin@org1.example.com-cert.pem")
    assert got.tls_key == str(msp / "keystore" / "priv_sk")
    # flags win over the environment
    flagged = _resolve(["list", "--peer", "127.0.0.1:9", "--tls-host", "other"], env)
    assert flagged.peer == "127.0.0.1:9" and flagged.tls_host == "other"
    # through a Gateway: the MSP is the signing identity, not a TLS client certificate
    gateway = _resolve(["invoke", "--gateway", "127.0.0.1:8", "kv"], env, admin=False)
    assert (gateway.msp_dir, gateway.msp_id) == (str(msp), "Org1MSP")
    assert gateway.tls_cert is None and gateway.tls_key is None
    flagged = _resolve(["invoke", "--msp-id", "Org2MSP", "--msp-dir", "m", "kv"], env, admin=False)
    assert (flagged.msp_dir, flagged.msp_id) == ("m", "Org2MSP")


def test_without_tls_enabled_the_root_certificate_variable_is_ignored(pem: str) -> None:
    for enabled in (None, "false", "0", "F"):
        env = {"CORE_PEER_TLS_ROOTCERT_FILE": pem}
        if enabled is not None:
            env["CORE_PEER_TLS_ENABLED"] = enabled
        got = _resolve(["list"], env)
        assert got.tls_root_cert is None and got.peer == peerenv.DEFAULT_PEER


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CORE_PEER_ADDRESS": "7051"}, "CORE_PEER_ADDRESS: expected HOST:PORT, got '7051'"),
        ({"CORE_PEER_TLS_ENABLED": "yes"}, "CORE_PEER_TLS_ENABLED: expected true or false"),
        ({"CORE_PEER_TLS_ENABLED": "true"}, "CORE_PEER_TLS_ROOTCERT_FILE is not set"),
        (
            {"CORE_PEER_TLS_ENABLED": "true", "CORE_PEER_TLS_ROOTCERT_FILE": "/nonexistent.pem"},
            "CORE_PEER_TLS_ROOTCERT_FILE: no such file /nonexistent.pem",
        ),
        (
            {"CORE_PEER_TLS_ENABLED": "1", "CORE_PEER_TLS_ROOTCERT_FILE": "PEM",
             "CORE_PEER_MSPCONFIGPATH": "/nonexistent"},
            "CORE_PEER_MSPCONFIGPATH: cannot read signcerts/ of /nonexistent",
        ),
        (
            {"CORE_PEER_TLS_ENABLED": "1", "CORE_PEER_TLS_ROOTCERT_FILE": "PEM",
             "CORE_PEER_TLS_CLIENTAUTHREQUIRED": "true"},
            "CORE_PEER_TLS_CLIENTAUTHREQUIRED is true but CORE_PEER_TLS_CLIENTCERT_FILE is not set",
        ),
    ],
)  # fmt: skip
def test_a_bad_variable_is_a_usage_error_naming_it(
    env: dict[str, str], message: str, pem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {k: pem if v == "PEM" else v for k, v in env.items()}
    with pytest.raises(ConfigError) as info:
        _resolve(["list"], env)
    assert any(message in p for p in info.value.problems), info.value.problems


def test_main_reports_a_bad_variable_as_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CORE_PEER_ADDRESS", "nohostport")
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert err == "ccactors: error: CORE_PEER_ADDRESS: expected HOST:PORT, got 'nohostport'\n"
    monkeypatch.delenv("CORE_PEER_ADDRESS")
    monkeypatch.setenv("CORE_PEER_TLS_ENABLED", "on")  # not Go's ParseBool
    assert main(["query", "kv", "get", "a"]) == 2
    assert "CORE_PEER_TLS_ENABLED: expected true or false, got 'on'" in capsys.readouterr().err


FABRIC_LINE = [
    "invoke", "-o", "localhost:7050", "--ordererTLSHostnameOverride", "orderer.example.com",
    "--tls", "--cafile", "orderer-ca.pem", "-C", "mychannel", "-n", "basic",
    "--peerAddresses", "localhost:7051", "--tlsRootCertFiles", "PEM",
    "-c", '{"function":"InitLedger","Args":[]}',
]  # fmt: skip


def test_a_pasted_fabric_line_is_taken(
    pem: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from actors.admin import AdminClient
    from protos.admin import admin_pb2
    from protos.peer.proposal_response_pb2 import Response

    calls: list[tuple[Any, ...]] = []

    def invoke(self: Any, channel: str, chaincode: str, args: Any, **kw: Any) -> Any:
        calls.append((self.address, self.credentials is not None, channel, chaincode, list(args)))
        return admin_pb2.InvokeReply(txid="t", response=Response(status=200), validation="VALID")

    monkeypatch.setattr(AdminClient, "invoke", invoke)
    for name in ("CORE_PEER_ADDRESS", "CORE_PEER_TLS_ENABLED", "CORE_PEER_MSPCONFIGPATH"):
        monkeypatch.delenv(name, raising=False)
    assert main([pem if a == "PEM" else a for a in FABRIC_LINE]) == 0
    assert calls == [("localhost:7051", True, "mychannel", "basic", [b"InitLedger"])]
    out, err = capsys.readouterr()
    assert "validation: VALID" in out
    (note,) = err.splitlines()
    assert note.startswith(
        "ccactors: note: --orderer, --ordererTLSHostnameOverride, --tls, --cafile"
    )
    assert "ignored: this peer orders its own transactions" in note


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--peerAddresses", "localhost:9051"], "--peerAddresses: ccactors talks to one peer"),
        (["--peer", "localhost:9051"], "--peer localhost:9051 and --peerAddresses localhost:7051"),
        (["--tls-root-cert", "other.pem"], "--tls-root-cert other.pem and --tlsRootCertFiles"),
    ],
)
def test_only_contradictions_are_refused(
    extra: list[str], message: str, pem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        _resolve([pem if a == "PEM" else a for a in FABRIC_LINE] + extra, {})
    (problem,) = info.value.problems
    assert message in problem and "give one" in problem
    # the same value twice is no contradiction
    same = _resolve(
        [pem if a == "PEM" else a for a in FABRIC_LINE] + ["--peer", "localhost:7051"], {}
    )
    assert same.peer == "localhost:7051"


def test_define_keeps_fabrics_v_and_spells_verbose_out(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse("define", "-v", "1.0", "--verbose", "-C", "ch", "-n", "kv", "--sequence", "1")
    assert args.version == "1.0" and args.verbose is True
    assert _parse("-v", "define", "-v", "2.0").verbose is True
    assert _parse("define", "-v", "2.0").verbose is False
    for argv in (["--help"], ["define", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        help_text = " ".join(capsys.readouterr().out.split())
        assert "Fabric's --version" in help_text
