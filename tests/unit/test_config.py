"""Config: defaults, file and CORE_ environment loading, and clear errors for bad values."""

from __future__ import annotations

import json

import pytest

from actors.config import ChaincodeDefinition, Config, ConfigError, parse_duration


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [(30, 30.0), ("30", 30.0), ("30s", 30.0), ("500ms", 0.5), ("5m", 300.0), ("1h", 3600.0)],
)
def test_parse_duration(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["", "abc", "10x", True, "-5s"])
def test_parse_duration_rejects(raw: object) -> None:
    with pytest.raises(ConfigError):
        parse_duration(raw)


def test_defaults() -> None:
    config = Config()
    assert config.execute_timeout == 30.0
    assert config.startup_timeout == 60.0
    assert config.keepalive == 0.0
    assert config.mode == "net"
    assert config.max_message_size == 100 * 1024 * 1024


def test_toml_file_then_environment(tmp_path) -> None:
    path = tmp_path / "core.toml"
    path.write_text(
        """
[chaincode]
executetimeout = "10s"
startuptimeout = "20s"
mode = "dev"

[ledger.state]
totalQueryLimit = 500

[[chaincodes]]
name = "kv"
target = "examples.kv:KVChaincode"
execute_timeout = "2s"
"""
    )
    config = Config.load(path, env={"CORE_CHAINCODE_EXECUTETIMEOUT": "7s"})
    assert config.execute_timeout == 7.0  # the environment wins over the file
    assert config.startup_timeout == 20.0
    assert config.mode == "dev"
    assert config.total_query_limit == 500
    assert config.chaincodes == (
        ChaincodeDefinition("kv", target="examples.kv:KVChaincode", execute_timeout=2.0),
    )


def test_json_file(tmp_path) -> None:
    path = tmp_path / "core.json"
    path.write_text(json.dumps({"chaincode": {"keepalive": "15s"}, "peer": {"localMspId": "Org1"}}))
    config = Config.load(path, env={})
    assert config.keepalive == 15.0
    assert config.msp_id == "Org1"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CORE_CHAINCODE_MODE": "prod"}, "chaincode.mode"),
        ({"CORE_CHAINCODE_STARTUPTIMEOUT": "1s"}, "at least 5s"),
        ({"CORE_CHAINCODE_EXECUTETIMEOUT": "soon"}, "cannot parse duration"),
        ({"CORE_LEDGER_HISTORY_ENABLEHISTORYDATABASE": "maybe"}, "expected a boolean"),
        ({"CORE_PEER_MAXRECVMSGSIZE": "0"}, "max_message_size must be positive"),
    ],
)
def test_bad_environment_values(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.load(env=env)


def test_unknown_key_and_unreadable_files(tmp_path) -> None:
    bad_key = tmp_path / "a.toml"
    bad_key.write_text("[chaincode]\nexecutetimeuot = '1s'\n")
    with pytest.raises(ConfigError, match=r"unknown configuration key 'chaincode\.executetimeuot'"):
        Config.load(bad_key, env={})
    broken = tmp_path / "b.toml"
    broken.write_text("[chaincode\n")
    with pytest.raises(ConfigError, match="cannot parse configuration"):
        Config.load(broken, env={})
    with pytest.raises(ConfigError, match="cannot read configuration"):
        Config.load(tmp_path / "missing.toml", env={})


def test_chaincode_definitions_are_checked() -> None:
    with pytest.raises(ConfigError, match="non-empty"):
        ChaincodeDefinition("")
    with pytest.raises(ConfigError, match="unknown runtime"):
        ChaincodeDefinition("kv", runtime="vm", target="a:b")
    with pytest.raises(ConfigError, match="module:Class"):
        ChaincodeDefinition("kv", target="examples.kv")
    with pytest.raises(ConfigError, match="duplicate chaincode names"):
        Config(chaincodes=(ChaincodeDefinition("kv", target="a:B"),) * 2)
