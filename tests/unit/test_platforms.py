"""Which package types the peer builds (actors.lifecycle.platforms), and Fabric's environment
for every runtime that starts a process."""

from __future__ import annotations

import pytest

from actors.config import ChaincodeDefinition
from actors.lifecycle.platforms import (
    NodePlatform,
    PlatformError,
    check_platform,
    docker_platform,
    package_type,
)
from actors.runtimes.process import ProcessRuntime


@pytest.mark.parametrize(
    ("metadata", "platform"),
    [
        ({"type": "python", "label": "x"}, "python"),
        ({"type": "NODE", "label": "x"}, "node"),
        ({"Type": "ccaas"}, "ccaas"),  # Go's JSON decoding matches keys case-insensitively
        (b'{"path":"","type":"ccaas","label":"basic_1.0"}', "ccaas"),
        ('{"type": " node "}', "node"),
    ],
)
def test_supported_types(metadata: object, platform: str) -> None:
    assert check_platform(metadata) == platform  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"type": "golang"}, "chaincode type 'golang' is not supported by this peer: Go"),
        ({"type": "GOLANG"}, "chaincode type 'GOLANG' is not supported"),
        ({"type": "java"}, "chaincode type 'java' is not supported by this peer: Java"),
        ({"type": "cobol"}, "chaincode type 'cobol' is not supported by this peer: unknown type"),
        ({"type": ""}, "has no chaincode type"),
        ({"label": "x"}, "has no chaincode type"),
        ({"type": 7}, "has no chaincode type"),
        (b"[]", "must be a JSON object"),
        (b"{", "not valid JSON"),
    ],
)
def test_refused_types_name_the_type(metadata: object, message: str) -> None:
    with pytest.raises(PlatformError) as refused:
        check_platform(metadata)  # type: ignore[arg-type]
    assert message in str(refused.value)


def test_refusals_say_what_to_do_instead() -> None:
    with pytest.raises(PlatformError, match=r"ccaas.*externalBuilders"):
        check_platform({"type": "golang"})


def test_ccaas_is_not_an_image() -> None:
    with pytest.raises(PlatformError, match="handled by the ccaas builder"):
        docker_platform({"type": "ccaas"})
    assert isinstance(docker_platform({"type": "node"}), NodePlatform)
    assert package_type({"type": "Node"}) == "Node"


def test_node_container_command_is_fabrics_npm_start() -> None:
    command = NodePlatform().command("172.17.0.1:7052", "")
    assert command[:2] == ["/bin/sh", "-c"] and command[3] == "172.17.0.1:7052"
    assert 'npm start -- --peer.address "$0"' in command[2]
    assert '/chaincode/start.sh --peer.address "$0"' in command[2]


def test_process_runtime_sets_the_local_msp_id() -> None:
    runtime = ProcessRuntime(lambda: "127.0.0.1:7052", base_env={}, msp_id="Org1MSP")
    env = runtime.environment(ChaincodeDefinition("cc", runtime="process", command=("x",)), "a")
    assert env["CORE_PEER_LOCALMSPID"] == "Org1MSP"
    assert env["CORE_CHAINCODE_ID_NAME"] == "cc"
