"""Finding and making the chaincode a shim runs, from its target ``module:Class``.

Fabric counterpart: none (a Go or Node chaincode is a program with its own ``main``); this is
what ``python -m actors.shim`` and the system runtime's child run instead. The import path is
the chaincode's working directory first, then the interpreter's own path, so where a target
comes from does not depend on how the peer was started.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from collections.abc import Sequence
from typing import Any


def split_target(target: str) -> tuple[str, str]:
    """``"pkg.mod:Class"`` -> ``("pkg.mod", "Class")``; ValueError if it is not of that form."""
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise ValueError(f"chaincode target must be 'module:Class', got {target!r}")
    return module, attr


def load_chaincode(target: str, workdir: str | None = None) -> Any:
    """Instantiate ``module:Class`` (or ``module:factory``), importing from ``workdir`` first."""
    module_name, attr = split_target(target)
    if workdir is not None and workdir not in sys.path:
        sys.path.insert(0, workdir)
    return getattr(importlib.import_module(module_name), attr)()


def missing_module(module: str, path: Sequence[str]) -> str | None:
    """The first part of dotted ``module`` that cannot be found on ``path`` (then installed
    packages), or None when all are found. Nothing is imported, so no chaincode code runs."""
    parts = module.split(".")
    top = parts[0]
    spec = importlib.machinery.PathFinder.find_spec(top, list(path))
    for finder in sys.meta_path:  # builtins, editable installs
        if spec is not None:
            break
        find_spec = getattr(finder, "find_spec", None)
        if finder is not importlib.machinery.PathFinder and find_spec is not None:
            spec = find_spec(top, None)
    for depth in range(1, len(parts) + 1):
        if spec is None:
            return ".".join(parts[:depth])
        if depth == len(parts):
            break
        locations = spec.submodule_search_locations
        if locations is None:  # a plain module has no submodules
            return ".".join(parts[: depth + 1])
        spec = importlib.machinery.PathFinder.find_spec(
            ".".join(parts[: depth + 1]), list(locations)
        )
    return None
