"""Per-channel membership: ``[[channels.organizations]]`` under a ``[[channels]]`` table names
that channel's member organisations (beside the peer's own); a channel without it has the
``[[organizations]]`` of every channel. The Gateway admits a creator only on the channels its
organisation is a member of."""

from __future__ import annotations

import textwrap
from pathlib import Path

import grpc
import pytest

from actors.config import Config, ConfigError, Organization
from actors.gateway.client import GatewayClient
from actors.gateway.command import error_details
from actors.support import ChaincodeSupport
from tests.gateway_peer import ident, make_crypto, member_dir


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_crypto(tmp_path_factory.mktemp("crypto"), "Org1MSP,Org2MSP,Org3MSP")


def core_toml(crypto: Path) -> str:
    peer0 = member_dir(crypto, 1, "peer0")
    return textwrap.dedent(
        f"""
        [peer]
        localMspId = "Org1MSP"
        mspConfigPath = "{peer0 / "msp"}"

        [[organizations]]
        mspid = "Org3MSP"
        msp_dir = "peerOrganizations/org3.example.com/msp"

        [[channels]]
        name = "shared"

        [[channels.organizations]]
        mspid = "Org2MSP"
        msp_dir = "peerOrganizations/org2.example.com/msp"

        [[channels]]
        name = "private"
        organizations = []

        [[channels]]
        name = "default"

        [[chaincodes]]
        name = "kv"
        runtime = "system"
        target = "examples.kv:KVChaincode"
        """
    )


def test_channels_organizations_are_read_and_settled(crypto: Path) -> None:
    (crypto / "core.toml").write_text(core_toml(crypto))
    config = Config.load(crypto / "core.toml")
    assert config.channels == ("shared", "private", "default")
    org2 = Organization("Org2MSP", str(crypto / "peerOrganizations/org2.example.com/msp"))
    org3 = Organization("Org3MSP", str(crypto / "peerOrganizations/org3.example.com/msp"))
    assert config.channel_organizations("shared") == (org2,)  # paths relative to the file
    assert config.channel_organizations("private") == ()
    assert config.channel_organizations("default") == (org3,)  # falls back to the global list
    assert Config(channel_members={"x": [{"mspid": "A", "msp_dir": "a"}]}).channel_organizations(
        "x"
    ) == (Organization("A", "a"),)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('organizations = [{ mspid = "Org2MSP" }]', "expected a table with mspid and msp_dir"),
        ('organizations = "Org2MSP"', "expected a list of tables"),
        ("members = []", "unknown keys ['members']"),
    ],
)
def test_bad_channel_organizations_are_refused(tmp_path: Path, entry: str, problem: str) -> None:
    (tmp_path / "core.toml").write_text(f'[[channels]]\nname = "ch"\n{entry}\n')
    with pytest.raises(ConfigError) as caught:
        Config.load(tmp_path / "core.toml")
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_the_gateway_admits_each_org_on_its_channels_only(crypto: Path) -> None:
    (crypto / "core.toml").write_text(core_toml(crypto))
    config = Config.load(crypto / "core.toml")
    with ChaincodeSupport(config) as support:
        address = support.peer.start_gateway("127.0.0.1:0")
        stack = support.peer.gateway
        assert stack is not None
        members = {ch: sorted(m.msp_id for m in stack.channel_msps(ch)) for ch in config.channels}
        assert members == {
            "shared": ["Org1MSP", "Org2MSP"],
            "private": ["Org1MSP"],
            "default": ["Org1MSP", "Org3MSP"],
        }
        outcomes = {}
        for org in (1, 2, 3):
            with GatewayClient(address, ident(crypto, org, "User1@")) as client:
                for channel in config.channels:
                    try:
                        assert client.evaluate(channel, "kv", [b"range", b"a", b"b"]) == b"{}"
                        outcomes[org, channel] = "admitted"
                    except grpc.RpcError as error:
                        messages = [d["message"] for d in error_details(error)]
                        assert any("creator org unknown" in m for m in messages), messages
                        outcomes[org, channel] = "refused"
        assert outcomes == {
            (1, "shared"): "admitted", (1, "private"): "admitted", (1, "default"): "admitted",
            (2, "shared"): "admitted", (2, "private"): "refused", (2, "default"): "refused",
            (3, "shared"): "refused", (3, "private"): "refused", (3, "default"): "admitted",
        }  # fmt: skip


@pytest.mark.parametrize(
    ("tls", "reason"),
    [({"tls_enabled": False}, "peer.tls.enabled is false"), ({}, "peer.tls.cert.file not set")],
)
def test_a_plaintext_gateway_says_why(
    crypto: Path, tls: dict[str, bool], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    import dataclasses

    (crypto / "core.toml").write_text(core_toml(crypto))
    config = Config.load(crypto / "core.toml")
    if tls:  # a certificate configured, TLS turned off
        server = member_dir(crypto, 1, "peer0") / "tls"
        config = dataclasses.replace(
            config,
            **tls,
            tls_cert_file=str(server / "server.crt"),
            tls_key_file=str(server / "server.key"),
        )
    with ChaincodeSupport(config) as support, caplog.at_level("WARNING"):
        support.peer.start_gateway("127.0.0.1:0")
    assert f"the Gateway at 127.0.0.1:0 speaks plaintext ({reason})" in caplog.text
