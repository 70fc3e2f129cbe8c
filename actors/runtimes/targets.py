"""Where a configured chaincode's code is, settled and checked when the configuration is loaded
rather than at its first invoke.

Fabric counterpart: none for system and process chaincode (Fabric builds chaincode from a
package at install); the package check is what Fabric's ``peer lifecycle chaincode install``
reports. Paths in a configuration file are relative to the file's directory:

* ``system`` and ``process``: ``workdir`` (default: the file's directory) is where the
  chaincode runs and the first place its ``target`` module is imported from; the peer's own
  import path (installed packages) follows. A ``command`` is looked up in ``workdir`` when it
  names a path, else on ``PATH``.
* ``docker`` and ``package``: ``package``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from actors.config import ChaincodeDefinition, Config, ConfigError
from actors.lifecycle.platforms import PlatformError, docker_platform
from actors.packaging import PackageError, read_package
from actors.shim.loader import missing_module, split_target


def settle_chaincodes(config: Config, base: str | os.PathLike[str] | None) -> Config:
    """``config`` with its chaincodes' paths made absolute against ``base`` (the configuration
    file's directory; the current directory when None). Raises :class:`ConfigError` naming
    every chaincode whose module, program, directory or package cannot be found."""
    root = Path(base if base is not None else os.getcwd()).resolve()
    settled, problems = [], []
    for definition in config.chaincodes:
        definition = _settle(definition, root)
        problem = find_problem(definition)
        if problem is not None:
            problems.append(f"chaincode {definition.name}: {problem}")
        settled.append(definition)
    if problems:
        raise ConfigError(*problems)
    return config.replace(chaincodes=tuple(settled), **_settle_peer_paths(config, root))


def _settle_peer_paths(config: Config, root: Path) -> dict[str, object]:
    """The peer's MSP, TLS and member-organisation paths made absolute against ``root``, as
    Fabric reads relative paths in core.yaml against the directory holding it."""

    def absolute(path: str | None) -> str | None:
        return None if path is None else str(root / path)

    return {
        "msp_config_path": absolute(config.msp_config_path),
        "tls_cert_file": absolute(config.tls_cert_file),
        "tls_key_file": absolute(config.tls_key_file),
        "tls_client_root_files": tuple(str(root / f) for f in config.tls_client_root_files),
        "operations_tls_cert_file": absolute(config.operations_tls_cert_file),
        "operations_tls_key_file": absolute(config.operations_tls_key_file),
        "operations_tls_client_root_files": tuple(
            str(root / f) for f in config.operations_tls_client_root_files
        ),
        "organizations": tuple(
            dataclasses.replace(o, msp_dir=str(root / o.msp_dir)) for o in config.organizations
        ),
        "channel_members": tuple(
            (name, tuple(dataclasses.replace(o, msp_dir=str(root / o.msp_dir)) for o in orgs))
            for name, orgs in config.channel_members
        ),
    }


def _settle(definition: ChaincodeDefinition, root: Path) -> ChaincodeDefinition:
    if definition.runtime in ("system", "process"):
        workdir = root / definition.workdir if definition.workdir else root
        return dataclasses.replace(definition, workdir=str(workdir))
    if definition.runtime in ("docker", "package") and definition.package:
        return dataclasses.replace(definition, package=str(root / definition.package))
    return definition


def find_problem(definition: ChaincodeDefinition) -> str | None:
    """Why ``definition``'s code cannot run, as far as can be told without running it."""
    if definition.runtime in ("system", "process"):
        workdir = definition.workdir or os.getcwd()
        if not Path(workdir).is_dir():
            return f"workdir {workdir} is not a directory"
        if definition.runtime == "process" and definition.command:
            return _missing_program(definition.command[0], workdir, definition.env)
        try:
            module, _ = split_target(definition.target)
        except ValueError as exc:
            return str(exc)
        extra = definition.env.get("PYTHONPATH", "") if definition.runtime == "process" else ""
        path = [workdir, *(str(Path(workdir, p)) for p in extra.split(os.pathsep) if p)]
        missing = missing_module(module, [*path, *sys.path])
        if missing is not None:
            return (
                f"no module named {missing!r} (target {definition.target}; looked in "
                f"{workdir} and the installed packages)"
            )
    if definition.runtime in ("docker", "package") and definition.package:
        try:
            info = read_package(definition.package)
            if definition.runtime == "docker":  # python or node; ccaas is a package's
                docker_platform(info.metadata or {"type": info.type})
        except (PackageError, PlatformError) as exc:
            return str(exc)
    return None


def _missing_program(program: str, workdir: str, env: Mapping[str, str]) -> str | None:
    if os.sep in program:
        path = Path(workdir) / program
        return None if os.access(path, os.X_OK) else f"program {path} is not an executable file"
    if shutil.which(program, path=env.get("PATH") or os.environ.get("PATH")) is None:
        return f"program {program!r} is not on PATH"
    return None
