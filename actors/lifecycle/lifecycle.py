"""The lifecycle as a peer embeds it: one object holding the install store, the channels, the
definitions and the invocation rules, built once with its dependencies.

Fabric counterpart: ``core/chaincode/lifecycle/lifecycle.go`` (``Resources`` +
``ExternalFunctions``: install, query installed, approve/commit, query definitions) and the
``_lifecycle`` system chaincode's functions, which the admin API and the CLI expose with
Fabric's verbs (``install``, ``queryinstalled``, ``calculatepackageid``, ``define`` =
``approveformyorg`` + ``commit``, ``querycommitted``).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from actors.config import ChaincodeDefinition, ConfigError
from actors.errors import LifecycleError
from actors.ledger import Ledger, LedgerManager
from actors.ledger.richquery import INDEX_DIR, IndexDefinitionError, parse_index_definition
from actors.lifecycle.channels import Channels, check_channel_name
from actors.lifecycle.definitions import Definition, DefinitionStore
from actors.lifecycle.invocation import Invocations
from actors.lifecycle.packages import InstalledPackage, InstallStore
from actors.packaging import (
    CODE,
    DEFAULT_MAX_BYTES,
    PackageError,
    PackageInfo,
    code_entries,
    code_files,
)
from actors.runtimes.external import connection_fields, connection_from_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstalledInfo:
    """``queryinstalled``: a package and the definitions that use it, by channel."""

    package: InstalledPackage
    references: dict[str, list[Definition]]


MAX_CONNECTION_JSON = 1024 * 1024  # bytes of a ccaas package's connection.json


def runtime_definition(package: InstalledPackage, info: PackageInfo) -> ChaincodeDefinition | None:
    """How the peer runs an installed package, launched under its package id.

    Python packages are built into an image (Docker runtime); ``ccaas`` packages are dialled at
    the address of the ``connection.json`` at the root of their code archive. Other types are
    the platforms layer's (external builders, node); None until it provides them."""
    kind = info.type.lower()
    if kind == "python":
        return ChaincodeDefinition(package.package_id, runtime="docker", package=package.path)
    if kind != "ccaas":
        return None
    where = f"ccaas package {package.package_id}"
    data = None
    try:
        for entry in code_entries(info.code, f"{where}: {CODE}"):
            if entry.path == "connection.json" and entry.member.isreg():
                if entry.member.size > MAX_CONNECTION_JSON:
                    raise LifecycleError(
                        f"{where}: connection.json is {entry.member.size} bytes, more than "
                        f"{MAX_CONNECTION_JSON}"
                    )
                data = entry.read()
    except PackageError as exc:
        raise LifecycleError(str(exc)) from None
    if data is None:
        raise LifecycleError(f"{where}: connection.json not found at the root of code.tar.gz")
    try:
        connection = connection_from_json(data, f"{where}: connection.json")
    except ConfigError as exc:
        raise LifecycleError(str(exc)) from None
    # Fabric's fields only, as Fabric's reader read them: our config's extras (``file``: read
    # a host path) must not be reachable from a package's contents.
    return ChaincodeDefinition(
        package.package_id, runtime="external", connection=connection_fields(connection)
    )


def index_files(package_id: str, info: PackageInfo) -> dict[str, bytes]:
    """The package's rich-query indexes (``META-INF/statedb/couchdb/indexes/*.json`` in its
    code archive), each checked as Fabric checks them at install (``ccmetadata``)."""
    try:
        files = code_files(info.code, INDEX_DIR)
    except PackageError as exc:
        raise LifecycleError(f"could not parse as a chaincode install package: {exc}") from None
    indexes = {path: data for path, data in files.items() if path.endswith(".json")}
    for path, data in indexes.items():
        try:
            parse_index_definition(data, path)
        except IndexDefinitionError as exc:
            raise LifecycleError(
                f"chaincode package {package_id}: invalid index content: {exc}"
            ) from None
    return indexes


class Lifecycle:
    """Installed packages, channels, definitions and invocation rules of one peer."""

    def __init__(
        self,
        *,
        ledgers: LedgerManager,
        channels: Iterable[str] = (),
        install_dir: str | None = None,
        max_package_bytes: int = DEFAULT_MAX_BYTES,
        dev_mode: bool = False,
        registered: Callable[[], Iterable[str]] = tuple,
        check_platform: Callable[[PackageInfo], None] | None = None,
    ) -> None:
        """``channels`` are the declared ones; ledgers an earlier run left on disk join them
        (with none at all the peer has ``mychannel``). ``install_dir`` None keeps installs in a
        temporary directory removed by :meth:`close` (an in-memory peer keeps nothing)."""
        self.ledgers = ledgers
        self._temporary = install_dir is None
        if install_dir is None:
            install_dir = tempfile.mkdtemp(prefix="ccactors-install-")
        self.packages = InstallStore(
            install_dir, max_bytes=max_package_bytes, check_platform=check_platform
        )
        on_disk = [name for name in ledgers.channels() if _valid_channel(name)]
        self.channels = Channels([*channels, *on_disk], on_join=self._open_ledger)
        for name in self.channels.names():  # joined channels have their ledgers open
            self._open_ledger(name)
        self.dev_mode = dev_mode
        self.definitions = DefinitionStore(self.ledger, self._package_known)
        self.invocations = Invocations(
            channels=self.channels,
            definitions=self.definitions,
            installed=self.packages.__contains__,
            dev_mode=dev_mode,
            registered=registered,
        )

    def _open_ledger(self, channel: str) -> None:
        self.ledgers.get(channel)

    def _package_known(self, package_id: str) -> bool:
        # Dev mode: Fabric runs a definition whose package is not installed as name:version.
        # A configured chaincode counts as installed under its name.
        return (
            self.dev_mode
            or package_id in self.packages
            or self.invocations.is_configured(package_id)
        )

    def ledger(self, channel: str) -> Ledger:
        """A joined channel's ledger (never creates a channel)."""
        return self.ledgers.get(self.channels.check(channel))

    # -- Fabric's verbs ----------------------------------------------------------------------

    def install(self, data: bytes) -> InstalledPackage:
        return self.packages.install(data)

    def query_installed(self, package_id: str | None = None) -> list[InstalledInfo]:
        packages = [self.packages.query(package_id)] if package_id else self.packages.list()
        channels = self.channels.names()
        return [
            InstalledInfo(p, self.definitions.referencing(p.package_id, channels)) for p in packages
        ]

    def define(self, channel: str, definition: Definition) -> Definition:
        self.channels.check(channel)
        return self.definitions.define(channel, definition)

    def query_committed(self, channel: str, name: str = "") -> list[Definition]:
        """Every definition on ``channel``, or the one named (Fabric's 404 text if none)."""
        self.channels.check(channel)
        if not name:
            return self.definitions.list(channel)
        definition = self.definitions.get(channel, name)
        if definition is None:
            raise LifecycleError(f"namespace {name} is not defined")
        return [definition]

    def join(self, channel: str) -> bool:
        return self.channels.join(channel)

    def is_defined(self, name: str) -> bool:
        """Whether chaincode ``name`` has a definition on some joined channel."""
        return any(self.definitions.get(c, name) is not None for c in self.channels.names())

    def close(self) -> None:
        if self._temporary:
            shutil.rmtree(self.packages.directory, ignore_errors=True)


def _valid_channel(name: str) -> bool:
    try:
        check_channel_name(name)
    except LifecycleError:
        log.warning("ledger %s on disk is not a valid channel name; not joined", name)
        return False
    return True


def definition_json(definition: Definition) -> dict[str, Any]:
    """A definition as ``querycommitted --json`` prints it (Fabric's field names)."""
    return {
        "name": definition.name,
        "sequence": definition.sequence,
        "version": definition.version,
        "package_id": definition.package_id,
        "endorsement_plugin": definition.endorsement_plugin,
        "validation_plugin": definition.validation_plugin,
        "validation_parameter": definition.endorsement_policy,
        "init_required": definition.init_required,
        "collections": json.loads(definition.collections) if definition.collections else [],
    }
