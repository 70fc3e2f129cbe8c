"""The README's first worked example, run as written: a docker and a system chaincode behind
``ccactors serve --operations``, driven with ``invoke``, ``query`` and ``list``, and the
operations port read with ``curl``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import readme
from tests.helpers import docker_engine

ANCHOR = "A worked example (run as written by `tests/integration/test_readme_serve.py`)"


@pytest.mark.slow
def test_the_serve_example_runs_as_written(tmp_path: Path) -> None:
    docker_engine().close()  # the engine and base image, or a skip saying why (a failure in CI)
    done = readme.run(
        readme.block(ANCHOR), tmp_path, ports=(7052, 9443), default_peer=True, repository=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "payload: blue" in lines  # the query of the docker chaincode
    transfer = json.loads(next(line for line in lines if line.startswith("{") and "status" in line))
    assert transfer["status"] == 200 and transfer["validation"] == "VALID"
    assert any(line.startswith("kv ") and "ready" in line for line in lines), lines
    launches = [line for line in lines if line.startswith("chaincode_launch_duration_count")]
    assert {line.split("{")[1].split(",")[0] for line in launches} == {
        'chaincode="kv"',
        'chaincode="asset"',
    }
    health = json.loads(next(line for line in lines if line.startswith('{"status"')))
    assert health["status"] == "OK"
