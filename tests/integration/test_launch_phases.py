"""A runtime's build step (an image build) is kept out of the startup timeout and bounded by
chaincode.installTimeout instead."""

from __future__ import annotations

import time

import pytest

from actors.config import ChaincodeDefinition, Config
from actors.errors import StartupTimeout
from actors.runtimes.system import SystemRuntime
from actors.support import ChaincodeSupport


class SlowBuildRuntime(SystemRuntime):
    """The system runtime with a build step that takes ``build_seconds``."""

    def __init__(self, build_seconds: float) -> None:
        super().__init__()
        self.build_seconds = build_seconds
        self.builds = 0

    def build(self, definition: ChaincodeDefinition) -> None:
        self.builds += 1
        time.sleep(self.build_seconds)


def _support(runtime: SlowBuildRuntime, **config: float) -> ChaincodeSupport:
    definition = ChaincodeDefinition("kv", target="examples.kv:KVChaincode")
    return ChaincodeSupport(
        Config(channels=("ch",), chaincodes=(definition,), **config), runtimes={"system": runtime}
    )


def test_a_build_longer_than_the_startup_timeout_still_launches() -> None:
    runtime = SlowBuildRuntime(build_seconds=6.0)
    with _support(runtime, startup_timeout=5.0) as support:
        statuses: list[str] = []
        support.subscribe(lambda event: statuses.append(event.kind))
        started = time.monotonic()
        support.launch("kv", timeout=30)
        assert time.monotonic() - started >= 6.0
        assert runtime.builds == 1
        assert statuses[:3] == ["launching", "building", "built"]
        assert support.invoke("ch", None, "kv", ["put", "a", "b"]).committed
        # The launch duration metric covers start -> READY, not the build.
        total = support.metrics.registry.get_sample_value(
            "chaincode_launch_duration_sum", {"chaincode": "kv", "success": "true"}
        )
        assert total is not None and total < 5.0


def test_a_build_longer_than_the_install_timeout_fails() -> None:
    runtime = SlowBuildRuntime(build_seconds=3.0)
    with _support(runtime, install_timeout=1.0) as support:
        with pytest.raises(StartupTimeout, match="timeout expired while building the image of"):
            support.launch("kv", timeout=30)
        assert support.status() == {}
