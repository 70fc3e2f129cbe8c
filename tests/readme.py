"""The README's examples, run as written: a fenced block found by the sentence before it, run
with this checkout's ``ccactors`` and its fixed ports replaced by free ones."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]

# The commands that reach the admin service, so take --peer.
PEER_COMMANDS = (
    "serve|wait|invoke|query|list|launch|stop|logs|events|install|queryinstalled|define|"
    "querycommitted"
)


def block(anchor: str, language: str = "sh") -> str:
    """The first fenced ``language`` block after ``anchor`` in README.md."""
    text = (ROOT / "README.md").read_text()
    at = text.index(f"```{language}\n", text.index(anchor)) + len(f"```{language}\n")
    return text[at : text.index("```\n", at)]


def run(
    script: str,
    cwd: Path,
    *,
    ports: tuple[int, ...] = (),
    default_peer: bool = False,
    repository: bool = False,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with ``bash -e`` in ``cwd``, with ``ccactors`` and ``python`` this
    checkout's. Each of ``ports`` is replaced by a free port, so that runs in parallel do not
    collide; with ``default_peer``, an example that relies on ``--peer``'s default
    (127.0.0.1:7051) gets a free port instead, passed by the ``ccactors`` on the PATH. With
    ``repository``, ``cwd`` looks like the checkout to an example run "from the repository":
    its ``examples`` and ``tools``, and a ``.venv/bin/activate`` that puts this ``ccactors`` on
    the PATH; ``/tmp/`` in the example is ``cwd``."""
    assert shutil.which("curl") or "curl" not in script, "the README's examples need curl"
    bin_dir = cwd / "bin"
    bin_dir.mkdir(exist_ok=True)
    peer = f"127.0.0.1:{free_port()}"
    wrapper = f'#!/bin/sh\nPY="{sys.executable}"\n'
    if default_peer:
        wrapper += (
            f'case "$1" in {PEER_COMMANDS}) command="$1"; shift; '
            f'exec "$PY" -m actors.cli "$command" --peer {peer} "$@";; esac\n'
        )
    wrapper += 'exec "$PY" -m actors.cli "$@"\n'
    (bin_dir / "ccactors").write_text(wrapper)
    (bin_dir / "ccactors").chmod(0o755)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    if default_peer:
        script = script.replace("127.0.0.1:7051", peer)
    if repository:
        for name in ("examples", "tools"):
            (cwd / name).symlink_to(ROOT / name)
        venv = cwd / ".venv" / "bin"
        venv.mkdir(parents=True)
        (venv / "activate").write_text(f'PATH="{bin_dir}:$PATH"\nexport PATH\n')
        (venv / "python").symlink_to(bin_dir / "python")
        script = script.replace("/tmp/", f"{cwd}/")
    for port in ports:
        assert str(port) in script, f"port {port} is not in the example any more"
        script = script.replace(str(port), str(free_port()))
    # If a step fails, what the example started in the background must not outlive it (it
    # would hold the output pipe open until the timeout).
    script = "trap 'kill $(jobs -p) 2>/dev/null' EXIT\n" + script
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={
            "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "XDG_DATA_HOME": str(cwd / "data"),
            # the chaincode listener on any free port (its default is 0.0.0.0:7052)
            "CORE_PEER_CHAINCODELISTENADDRESS": "0.0.0.0:0",
        },
    )
