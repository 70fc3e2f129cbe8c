"""``ccactors serve`` and ``ccactors invoke|query --transient``: private data through the admin
API, acting as a client of the peer's org (``peer.localMspId``), kept across a restart."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import cli, free_port

CONFIG = """
[peer]
localMspId = "Org1MSP"

[[chaincodes]]
name = "pvt"
runtime = "system"
target = "examples.private_data:PrivateData"
"""
COLL = "_implicit_org_Org1MSP"


@contextmanager
def serve(tmp_path: Path) -> Iterator[str]:
    config = tmp_path / "peer.toml"
    config.write_text(CONFIG)
    admin = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "actors.cli", "serve", "--listen", "127.0.0.1:0",
            "--admin", admin, "--config", str(config), "--data-dir", str(tmp_path / "data"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    banner = process.stdout.readline()
    assert "ccactors serve:" in banner, banner
    try:
        yield admin
    finally:
        process.terminate()
        process.wait(30)


def call(admin: str, verb: str, *args: str, transient: dict[str, bytes] | None = None) -> dict:
    extra = []
    if transient is not None:
        encoded = {k: base64.b64encode(v).decode() for k, v in transient.items()}
        extra = ["--transient", json.dumps(encoded)]
    done = cli(verb, "--peer", admin, "--json", *extra, "pvt", *args)
    return {"rc": done.returncode, "err": done.stderr, **json.loads(done.stdout or "{}")}


def test_transient_input_private_write_and_restart(tmp_path: Path) -> None:
    with serve(tmp_path) as admin:
        put = call(admin, "invoke", "put", COLL, "k", transient={"value": b"s3cret"})
        assert put["rc"] == 0 and put["validation"] == "VALID", put
        got = call(admin, "query", "get", COLL, "k")
        assert got["payload"] == "s3cret", got
        missing = call(admin, "invoke", "put", COLL, "j")
        assert missing["rc"] == 1 and "transient map" in missing["message"]
        bad = cli("invoke", "--peer", admin, "--transient", "{not json", "pvt", "get")
        assert bad.returncode == 2 and "--transient" in bad.stderr
    with serve(tmp_path) as admin:
        got = call(admin, "query", "hash", COLL, "k")
        assert got["payload"] == hashlib.sha256(b"s3cret").hexdigest()
        assert call(admin, "query", "get", COLL, "k")["payload"] == "s3cret"
