"""Regenerate the Python modules for every .proto under ``protos/`` (``make protos``).

Usage: ``python -m protos.generate [OUT_DIR]``. OUT_DIR defaults to the repository root, so the
modules land next to their sources; tests pass a temporary directory to check for staleness.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sources() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protos").rglob("*.proto"))


def generate(out_dir: Path = ROOT) -> None:
    import grpc_tools
    from grpc_tools import protoc

    include = str(Path(grpc_tools.__file__).parent / "_proto")
    grpc_sources = [s for s in sources() if "service " in (ROOT / s).read_text()]
    out = str(out_dir)
    args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}"]
    if protoc.main(args + sources()) != 0:
        raise SystemExit("protoc failed")
    if grpc_sources and protoc.main([*args[:3], f"--grpc_python_out={out}", *grpc_sources]) != 0:
        raise SystemExit("protoc (grpc) failed")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
