"""The README's "Your own chaincode on each runtime": the chaincode block saved where the README
says, then each runtime's example run as written (system, process, docker, external with
``python -m actors.shim server``), and the shim's service mode in its ``--help``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import readme
from tests.helpers import docker_engine

ANCHOR = "### Your own chaincode on each runtime"


def _example(runtime: str, tmp_path: Path, ports: tuple[int, ...] = ()) -> None:
    (tmp_path / "cc").mkdir()
    (tmp_path / "cc" / "counter.py").write_text(readme.block(ANCHOR, "python"))
    marker = f"**`{runtime}`**"
    script = readme.block(marker)
    done = readme.run(script, tmp_path, ports=ports, default_peer=True)
    assert done.returncode == 0, done.stdout + done.stderr
    payloads = [line for line in done.stdout.splitlines() if line.startswith("payload:")]
    assert payloads == ["payload: 1", "payload: 2"], done.stdout + done.stderr


def test_system(tmp_path: Path) -> None:
    _example("system", tmp_path)


def test_process(tmp_path: Path) -> None:
    _example("process", tmp_path)


@pytest.mark.slow
def test_docker(tmp_path: Path) -> None:
    docker_engine().close()  # the engine and base image, or a skip saying why (a failure in CI)
    _example("docker", tmp_path)


def test_external(tmp_path: Path) -> None:
    _example("external", tmp_path, ports=(9999,))


def test_the_shims_help_shows_its_service_mode() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "actors.shim", "--help"], capture_output=True, text=True, timeout=30
    )
    assert shown.returncode == 0
    assert "python -m actors.shim server --chaincode-address" in " ".join(shown.stdout.split())
