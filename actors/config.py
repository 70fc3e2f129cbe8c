"""Configuration: one object for the peer's chaincode settings, with Fabric's names.

Counterpart of Fabric's ``core/chaincode/config.go`` reading ``core.yaml``. Load it from a TOML
or JSON file shaped like core.yaml (``[chaincode] startuptimeout = "60s"``) and override with
``CORE_``-style environment variables (``CORE_CHAINCODE_EXECUTETIMEOUT=10s``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.policy import Restart, RestartPolicy

# Fabric's sample core.yaml says 300 s because image builds happen inside that window. Our
# launcher times builds separately, so the window only covers process start -> READY, which takes
# well under a second here; 60 s still tolerates a loaded machine without leaving a caller
# blocked for five minutes behind a chaincode that will never register.
DEFAULT_STARTUP_TIMEOUT = 60.0
DEFAULT_EXECUTE_TIMEOUT = 30.0
MIN_STARTUP_TIMEOUT = 5.0  # Fabric enforces this floor too

RUNTIMES = ("system", "process", "docker", "external")


class ConfigError(ValueError):
    """A configuration value is missing or malformed."""


def parse_duration(value: Any, key: str = "duration") -> float:
    """Seconds from ``30``, ``"30"``, ``"30s"``, ``"500ms"``, ``"5m"`` or ``"1h"``."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*", str(value))
    if not match:
        raise ConfigError(f"{key}: cannot parse duration {value!r} (use e.g. 30s, 500ms, 5m)")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}[match.group(2)]
    return float(match.group(1)) * scale


@dataclass(frozen=True)
class ChaincodeDefinition:
    """What the peer knows about one chaincode before it runs.

    ``name`` is the id the chaincode registers with (Fabric 2.x: the package id or
    ``name:version``). ``target`` depends on the runtime: ``module:Class`` for ``system``.
    """

    name: str
    runtime: str = "system"
    target: str = ""
    execute_timeout: float | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    # process runtime: the program to run (the peer appends --peer.address); empty means our
    # Python shim running ``target``. ``workdir`` is where it runs.
    command: tuple[str, ...] = ()
    workdir: str | None = None
    # docker runtime: path of a Fabric 2.x chaincode package (tar.gz with metadata.json and
    # code.tar.gz); the image is built from it when missing.
    package: str | None = None
    # external runtime (chaincode as a service): Fabric's connection.json fields, e.g.
    # {"address": "host:port", "dial_timeout": "3s", "tls_required": false}
    connection: Mapping[str, Any] = field(default_factory=dict)
    # How its supervisor restarts it; None: the peer's default (Config.restart).
    restart: RestartPolicy | None = None

    def __post_init__(self) -> None:
        if isinstance(self.restart, Mapping):
            object.__setattr__(self, "restart", restart_policy(self.restart, self.name))
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("chaincode name must be a non-empty string")
        if self.runtime not in RUNTIMES:
            raise ConfigError(
                f"chaincode {self.name}: unknown runtime {self.runtime!r} (one of {RUNTIMES})"
            )
        object.__setattr__(self, "command", tuple(self.command))
        if self.runtime == "system" and ":" not in self.target:
            raise ConfigError(
                f"chaincode {self.name}: a system chaincode needs target 'module:Class', "
                f"got {self.target!r}"
            )
        if self.runtime == "process" and not self.command and ":" not in self.target:
            raise ConfigError(
                f"chaincode {self.name}: a process chaincode needs a command or a target "
                f"'module:Class', got neither"
            )
        if self.runtime == "docker" and not self.package:
            raise ConfigError(f"chaincode {self.name}: a docker chaincode needs a package path")
        if self.runtime == "external" and not (
            self.connection.get("address") or self.connection.get("file")
        ):
            raise ConfigError(
                f"chaincode {self.name}: an external chaincode needs connection.address "
                "(or connection.file, a connection.json)"
            )
        if not all(isinstance(part, str) for part in self.command):
            raise ConfigError(f"chaincode {self.name}: command must be a list of strings")
        if self.execute_timeout is not None and self.execute_timeout <= 0:
            raise ConfigError(f"chaincode {self.name}: execute_timeout must be positive")


@dataclass(frozen=True)
class Config:
    """Peer-side chaincode settings (Fabric key in brackets)."""

    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT  # chaincode.startuptimeout
    execute_timeout: float = DEFAULT_EXECUTE_TIMEOUT  # chaincode.executetimeout
    install_timeout: float = 300.0  # chaincode.installTimeout: bounds an image build
    keepalive: float = 0.0  # chaincode.keepalive; 0 = off (Node shim 2.5.8 exits on KEEPALIVE)
    mode: str = "net"  # chaincode.mode: net | dev
    listen_address: str = "0.0.0.0:7052"  # peer.chaincodeListenAddress
    max_message_size: int = 100 * 1024 * 1024  # peer.maxRecvMsgSize / maxSendMsgSize
    total_query_limit: int = 10000  # ledger.state.totalQueryLimit
    query_batch_size: int = 100  # Fabric's QueryResponseGenerator.MaxResultLimit
    history: bool = True  # ledger.history.enableHistoryDatabase
    ledger_path: str | None = None  # None = in memory
    msp_id: str = "SampleOrg"  # peer.localMspId
    sign_proposals: bool = True
    tls_enabled: bool = False  # peer.tls.enabled: mutual TLS on the chaincode listener
    # Messages a chaincode may have waiting in its Handler's mailbox before the connection is
    # closed as a flood (not a Fabric setting).
    max_inbound_backlog: int = 10000
    # ... and messages per second it may send (0 = no limit). A Python peer serves well under
    # this, so only a misbehaving chaincode meets it.
    max_inbound_rate: float = 100_000.0
    docker_endpoint: str = "unix:///var/run/docker.sock"  # vm.endpoint
    base_image: str = "ccactors/python-shim:latest"
    chaincodes: tuple[ChaincodeDefinition, ...] = ()
    # Supervision: the default restart policy of chaincode ([chaincode.restart] table), and
    # liveness: a chaincode silent while this many transactions in a row timed out is
    # declared hung and replaced (0: never).
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    hung_after: int = 2

    def restart_policy(self, definition: ChaincodeDefinition | None) -> RestartPolicy:
        """The policy that applies to ``definition`` (its own, else the default)."""
        if definition is not None and definition.restart is not None:
            return definition.restart
        if definition is not None and definition.runtime == "external":
            # A chaincode service runs on its own: the peer only dials it, so it does not
            # redial on a schedule; the next request does, as in Fabric.
            return dataclasses.replace(self.restart, restart=Restart.TEMPORARY)
        return self.restart

    def __post_init__(self) -> None:
        if self.mode not in ("net", "dev"):
            raise ConfigError(f"chaincode.mode must be 'net' or 'dev', got {self.mode!r}")
        if self.startup_timeout < MIN_STARTUP_TIMEOUT:
            # Fabric silently raises a smaller value to 5 s; we say so instead.
            raise ConfigError(
                f"chaincode.startuptimeout must be at least {MIN_STARTUP_TIMEOUT:g}s, "
                f"got {self.startup_timeout:g}s"
            )
        if self.execute_timeout <= 0:
            raise ConfigError("chaincode.executetimeout must be positive")
        if self.install_timeout <= 0:
            raise ConfigError("chaincode.installTimeout must be positive")
        if self.max_inbound_rate < 0:
            raise ConfigError("chaincode.maxinboundrate must be >= 0")
        if self.keepalive < 0:
            raise ConfigError("chaincode.keepalive must be >= 0")
        if self.hung_after < 0:
            raise ConfigError("chaincode.hungafter must be >= 0")
        if isinstance(self.restart, Mapping):
            object.__setattr__(self, "restart", restart_policy(self.restart))
        for name in (
            "max_message_size",
            "total_query_limit",
            "query_batch_size",
            "max_inbound_backlog",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        names = [d.name for d in self.chaincodes]
        if len(names) != len(set(names)):
            raise ConfigError(f"duplicate chaincode names in configuration: {names}")

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
    ) -> Config:
        """Defaults, then the file (TOML or JSON), then ``CORE_`` environment variables."""
        values: dict[str, Any] = {}
        if path is not None:
            values.update(_from_mapping(_read_file(Path(path))))
        values.update(_from_env(os.environ if env is None else env))
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(str(exc)) from exc


# (section, key) in core.yaml style -> (field, parser)
_KEYS: dict[str, tuple[str, Any]] = {
    "chaincode.startuptimeout": ("startup_timeout", parse_duration),
    "chaincode.executetimeout": ("execute_timeout", parse_duration),
    "chaincode.installtimeout": ("install_timeout", parse_duration),
    "chaincode.keepalive": ("keepalive", parse_duration),
    "chaincode.mode": ("mode", str),
    "peer.chaincodelistenaddress": ("listen_address", str),
    "peer.maxrecvmsgsize": ("max_message_size", int),
    "peer.localmspid": ("msp_id", str),
    "ledger.state.totalquerylimit": ("total_query_limit", int),
    "ledger.history.enablehistorydatabase": ("history", lambda v, k=None: _boolean(v)),
    "ledger.path": ("ledger_path", str),
    "vm.endpoint": ("docker_endpoint", str),
    "chaincode.baseimage": ("base_image", str),
    "chaincode.signproposals": ("sign_proposals", lambda v, k=None: _boolean(v)),
    "peer.tls.enabled": ("tls_enabled", lambda v, k=None: _boolean(v)),
    "chaincode.maxinboundbacklog": ("max_inbound_backlog", int),
    "chaincode.maxinboundrate": ("max_inbound_rate", float),
    "chaincode.hungafter": ("hung_after", int),
}

_POLICY_DURATIONS = (
    "within",
    "backoff_initial",
    "backoff_max",
    "reset_after",
    "shutdown_timeout",
)


def restart_policy(table: Mapping[str, Any], chaincode: str | None = None) -> RestartPolicy:
    """A RestartPolicy from a config table: ``{restart = "permanent", max_restarts = 5,
    within = "60s", backoff_initial = "100ms", ...}``."""
    where = f"chaincode {chaincode}: restart" if chaincode else "chaincode.restart"
    values = dict(table)
    unknown = set(values) - {f.name for f in dataclasses.fields(RestartPolicy)}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    for key in _POLICY_DURATIONS:
        if key in values:
            values[key] = parse_duration(values[key], f"{where}.{key}")
    try:
        return RestartPolicy(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"expected a boolean, got {value!r}")


def _convert(key: str, raw: Any) -> tuple[str, Any]:
    name, parser = _KEYS[key]
    try:
        return name, parser(raw, key) if parser is parse_duration else parser(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}: {exc}") from exc


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}".lower()
        if isinstance(value, Mapping):
            flat.update(_flatten(value, full + "."))
        else:
            flat[full] = value
    return flat


def _from_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    data = dict(data)
    chaincodes = data.pop("chaincodes", [])
    values: dict[str, Any] = {}
    section = data.get("chaincode")
    if isinstance(section, Mapping) and "restart" in section:
        section = dict(section)
        values["restart"] = restart_policy(section.pop("restart"))
        data["chaincode"] = section
    for key, raw in _flatten(data).items():
        if key not in _KEYS:
            raise ConfigError(f"unknown configuration key {key!r}")
        name, value = _convert(key, raw)
        values[name] = value
    if chaincodes:
        defs = []
        for entry in chaincodes:
            entry = dict(entry)
            if "execute_timeout" in entry:
                entry["execute_timeout"] = parse_duration(entry["execute_timeout"])
            try:
                defs.append(ChaincodeDefinition(**entry))
            except TypeError as exc:
                raise ConfigError(f"chaincode entry {entry}: {exc}") from exc
        values["chaincodes"] = tuple(defs)
    return values


def _read_file(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot parse configuration {path}: {exc}") from exc


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """``CORE_CHAINCODE_EXECUTETIMEOUT`` -> ``chaincode.executetimeout`` and so on."""
    values: dict[str, Any] = {}
    by_env = {"CORE_" + key.upper().replace(".", "_"): key for key in _KEYS}
    for var, key in by_env.items():
        if var in env:
            name, value = _convert(key, env[var])
            values[name] = value
    return values
