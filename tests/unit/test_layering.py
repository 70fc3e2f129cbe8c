"""Layers point one way (issue 10): the chaincode side (``actors/shim`` and the transports it
rides on) imports nothing of the peer, and nothing under ``actors/`` imports the developer
tooling in ``bench/`` (the bench, the fault tool) or the tests.

Imports are read from the source with :mod:`ast`, so lazy imports inside functions and
``TYPE_CHECKING`` blocks count as much as those at the top of a module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ACTORS = ROOT / "actors"

CHAINCODE_SIDE = ("actors.shim", "actors.transports")
"""What a chaincode process loads; it may import these, ``protos``, the standard library and
third-party packages (grpc, protobuf, msgpack, greenlet), and the bare ``actors`` package (its
``__init__`` only holds the version)."""
TOOLING = ("bench", "tests")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(source: str, module: str, is_package: bool = False) -> Iterator[str]:
    """Every module ``source`` imports, anywhere in it, as an absolute dotted name."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # `from pkg import mod` may import the submodule pkg.mod
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def actors_modules() -> list[object]:
    found = sorted((module_name(p), p) for p in ACTORS.rglob("*.py"))
    return [pytest.param(name, path, id=name) for name, path in found]


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    found = []
    for name in imports(source, module, is_package):
        if within(name, TOOLING):
            found.append(f"{module} imports {name} (developer tooling or tests)")
        elif (
            within(module, CHAINCODE_SIDE)
            and within(name, ("actors",))
            and name != "actors"
            and not within(name, CHAINCODE_SIDE)
        ):
            found.append(f"{module} imports {name} (the peer side)")
    return found


def test_the_import_reader_sees_lazy_relative_and_type_checking_imports() -> None:
    source = """
from __future__ import annotations
from typing import TYPE_CHECKING
from . import stub
from ..runtimes.system import load_chaincode
if TYPE_CHECKING:
    from actors.support import ChaincodeSupport
def later():
    import bench.workloads
    from bench.faults import run
"""
    found = set(imports(source, "actors.shim.handler"))
    assert {
        "actors.shim.stub",
        "actors.runtimes.system",
        "actors.support",
        "bench.workloads",
        "bench.faults",
    } <= found
    problems = " ".join(violations(source, "actors.shim.handler"))
    for name in ("actors.runtimes.system", "actors.support", "bench.workloads", "bench.faults"):
        assert name in problems
    assert "actors.shim.stub" not in problems  # its own package is allowed
    assert violations(source, "actors.support") == [
        "actors.support imports bench.workloads (developer tooling or tests)",
        "actors.support imports bench.faults (developer tooling or tests)",
        "actors.support imports bench.faults.run (developer tooling or tests)",
    ]


@pytest.mark.parametrize(("module", "path"), actors_modules())
def test_layers_point_one_way(module: str, path: Path) -> None:
    assert violations(path.read_text(), module, path.name == "__init__.py") == []
