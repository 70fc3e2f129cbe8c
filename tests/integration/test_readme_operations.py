"""The README's Operations examples, run as written: ``serve --operations`` and its ``curl``
lines over HTTP, then over TLS with ``ccactors crypto``'s certificates."""

from __future__ import annotations

import json
from pathlib import Path

from tests import readme

ANCHOR = "A worked example (run as written by `tests/integration/test_readme_operations.py`)"


def test_the_operations_example_runs_as_written(tmp_path: Path) -> None:
    done = readme.run(readme.block(ANCHOR), tmp_path, ports=(9443, 7051))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    replies = [json.loads(line) for line in lines if line.startswith("{")]
    assert replies[0]["status"] == "OK"
    assert replies[1:] == [{"spec": "warn"}, {"spec": "actors.launcher=debug:warn"}]
    assert 'chaincode_launch_duration_count{chaincode="kv",success="true"} 1' in lines


def test_the_operations_tls_example_runs_as_written(tmp_path: Path) -> None:
    script = readme.block("writes (run as written by the same test)")
    done = readme.run(script, tmp_path, ports=(9443, 7051))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "401" in lines  # /metrics without a client certificate
    assert '{"spec":"warn"}' in lines  # /logspec with the admin's certificate
    assert any(
        line.startswith("ccactors serve:") and "operations https://" in line for line in lines
    )
