"""Create ``.venv-fabric`` and (re)record ``tests/wire/golden.json`` from PyPI fabric protos.

    python tools/record_wire_golden.py               create/refresh the venv, rewrite golden.json
    python tools/record_wire_golden.py --venv-only   only create/refresh the venv (CI, make test)
    python tools/record_wire_golden.py --check       exit 1 if golden.json would change

``.venv-fabric`` holds ``hyperledger-fabric-protos`` (pinned below; it pins protobuf < 6, which
is why it cannot share ``.venv`` with our protobuf 7) and nothing else. The venv is rebuilt when
its installed version differs from the pin. Needs only the standard library.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-fabric"
PYTHON = VENV / "bin" / "python"
GOLDEN = ROOT / "tests" / "wire" / "golden.json"
FABRIC_SIDE = ROOT / "tests" / "wire" / "fabric_side.py"
# newest on PyPI when recorded (a .dev pre-release, hence --pre); bump and re-record together
FABRIC_PROTOS_VERSION = "0.3.7.dev349689853811"


def _installed_version() -> str | None:
    if not PYTHON.exists():
        return None
    probe = "import importlib.metadata as m; print(m.version('hyperledger-fabric-protos'))"
    r = subprocess.run([str(PYTHON), "-c", probe], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def ensure_venv() -> None:
    if _installed_version() == FABRIC_PROTOS_VERSION:
        return
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "--pre", f"hyperledger-fabric-protos=={FABRIC_PROTOS_VERSION}"], check=True
    )
    if _installed_version() != FABRIC_PROTOS_VERSION:
        raise SystemExit(
            f"{VENV}: hyperledger-fabric-protos {FABRIC_PROTOS_VERSION} not importable"
        )


def record() -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    r = subprocess.run(
        [str(PYTHON), str(FABRIC_SIDE), "record"],
        capture_output=True,
        text=True,
        env=env,
        cwd=FABRIC_SIDE.parent,
    )
    if r.returncode != 0:
        raise SystemExit(f"fabric_side.py record failed:\n{r.stderr}")
    return r.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--venv-only", action="store_true", help="only create/refresh .venv-fabric")
    group.add_argument("--check", action="store_true", help="fail if golden.json is out of date")
    args = ap.parse_args()
    ensure_venv()
    if args.venv_only:
        return 0
    text = record()
    if args.check:
        if GOLDEN.exists() and GOLDEN.read_text() == text:
            print(f"{GOLDEN.relative_to(ROOT)} is up to date")
            return 0
        print(f"{GOLDEN.relative_to(ROOT)} is stale: run python tools/record_wire_golden.py")
        return 1
    GOLDEN.write_text(text)
    print(f"wrote {GOLDEN.relative_to(ROOT)} (hyperledger-fabric-protos {FABRIC_PROTOS_VERSION})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
