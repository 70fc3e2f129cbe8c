"""Installed chaincode packages: the peer's install directory.

Fabric counterpart: ``core/chaincode/persistence`` (``Store``: one file per package named from
its id, written through a temp file and a rename) and the install half of
``core/chaincode/lifecycle`` (``InstallChaincode``, ``QueryInstalledChaincode(s)``). A package
id is ``label:sha256(package file)``; the file is stored as ``<label>.<sha256>.tar.gz``.

Every package is parsed in full at install (:func:`actors.packaging.read_package_bytes`, which
streams and counts), so a path traversal, a link, a non-regular file or a decompression bomb is
refused before anything is written, and nothing is ever written outside the directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from actors.errors import LifecycleError
from actors.lifecycle.platforms import PlatformError, check_platform
from actors.packaging import DEFAULT_MAX_BYTES, PackageError, PackageInfo, read_package_bytes

log = logging.getLogger(__name__)

_STORED = re.compile(r"(.+)\.([0-9a-f]{64})\.tar\.gz")


def check_type(info: PackageInfo) -> None:
    """Refuse at install a package no platform of this peer builds, naming its type (the
    peer's check also asks the external builders first: :meth:`PackageRuntime.check`)."""
    try:
        check_platform(info.metadata or {"type": info.type})
    except PlatformError as exc:
        raise LifecycleError(str(exc)) from None


@dataclass(frozen=True)
class InstalledPackage:
    """One installed package (what ``queryinstalled`` lists)."""

    package_id: str
    label: str
    type: str
    path: str  # the stored file


def calculate_package_id(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Fabric's ``calculatepackageid``: the id the package would get, after parsing it."""
    try:
        return read_package_bytes(data, max_bytes=max_bytes).id
    except PackageError as exc:
        raise LifecycleError(f"could not parse as a chaincode install package: {exc}") from None


def _file_name(package_id: str) -> str:
    label, digest = package_id.rsplit(":", 1)
    return f"{label}.{digest}.tar.gz"


class InstallStore:
    """The install directory: install, list, look up, load. Thread-safe."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        check_platform: Callable[[PackageInfo], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._check_platform = check_platform or check_type
        self._lock = threading.Lock()
        self._packages: dict[str, InstalledPackage] = {}
        try:
            self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        except OSError as exc:
            raise LifecycleError(
                f"cannot create install directory {self.directory}: {exc}"
            ) from exc
        self._load()

    def _load(self) -> None:
        """Index what earlier runs installed (Fabric re-parses each and refuses to start on a
        corrupt one; so do we, naming it)."""
        for entry in sorted(os.listdir(self.directory)):
            match = _STORED.fullmatch(entry)
            if match is None:
                continue
            path = self.directory / entry
            package_id = f"{match.group(1)}:{match.group(2)}"
            try:
                data = path.read_bytes()
                info = read_package_bytes(data, str(path), max_bytes=self.max_bytes)
            except (OSError, PackageError) as exc:
                raise LifecycleError(
                    f"could not parse chaincode with package ID '{package_id}': {exc}"
                ) from None
            if info.id != package_id:
                raise LifecycleError(
                    f"could not parse chaincode with package ID '{package_id}': its content "
                    f"has id '{info.id}'"
                )
            self._packages[package_id] = InstalledPackage(info.id, info.label, info.type, str(path))

    def install(self, data: bytes) -> InstalledPackage:
        """Parse, check and store ``data``; the installed package (its id is Fabric's)."""
        if not isinstance(data, bytes | bytearray):
            raise LifecycleError("a chaincode install package must be bytes")
        if len(data) > self.max_bytes:
            raise LifecycleError(
                f"could not parse as a chaincode install package: {len(data)} bytes is more "
                f"than the peer's package size limit ({self.max_bytes} bytes)"
            )
        data = bytes(data)
        try:
            info = read_package_bytes(data, max_bytes=self.max_bytes)
        except PackageError as exc:
            raise LifecycleError(f"could not parse as a chaincode install package: {exc}") from None
        self._check_platform(info)
        with self._lock:
            if info.id in self._packages:
                raise LifecycleError(
                    f"chaincode already successfully installed (package ID '{info.id}')"
                )
            path = self.directory / _file_name(info.id)
            self._write(path, data)
            installed = InstalledPackage(info.id, info.label, info.type, str(path))
            self._packages[info.id] = installed
        log.info("Successfully installed chaincode with package ID '%s'", info.id)
        return installed

    def _write(self, path: Path, data: bytes) -> None:
        fd, temp = tempfile.mkstemp(prefix=".ccpackage.", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, 0o640)
            os.replace(temp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise LifecycleError(f"could not save cc install package: {exc}") from exc

    def discard(self, package_id: str) -> None:
        """Forget and delete a package whose build failed right after its install (Fabric
        deletes the stored file then too)."""
        with self._lock:
            installed = self._packages.pop(package_id, None)
        if installed is not None:
            with contextlib.suppress(OSError):
                os.unlink(installed.path)

    def get(self, package_id: str) -> InstalledPackage | None:
        return self._packages.get(package_id)  # a dict read: no lock (installs only add)

    def __contains__(self, package_id: object) -> bool:
        return isinstance(package_id, str) and self.get(package_id) is not None

    def query(self, package_id: str) -> InstalledPackage:
        """Fabric's ``QueryInstalledChaincode``."""
        installed = self.get(package_id)
        if installed is None:
            raise LifecycleError(f"could not find chaincode with package id '{package_id}'")
        return installed

    def list(self) -> list[InstalledPackage]:
        with self._lock:
            return sorted(self._packages.values(), key=lambda p: p.package_id)

    def load(self, package_id: str) -> PackageInfo:
        """The parsed package (code included), read back from its file."""
        installed = self.query(package_id)
        try:
            data = Path(installed.path).read_bytes()
        except OSError as exc:
            raise LifecycleError(
                f"could not load cc install package: chaincode install package "
                f"'{package_id}' not found: {exc}"
            ) from None
        if hashlib.sha256(data).hexdigest() != package_id.rsplit(":", 1)[1]:
            raise LifecycleError(f"installed package '{package_id}' changed on disk")
        try:
            return read_package_bytes(data, installed.path, max_bytes=self.max_bytes)
        except PackageError as exc:
            raise LifecycleError(f"could not load cc install package: {exc}") from None
