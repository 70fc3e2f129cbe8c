"""Configuration: one object for the peer's settings, each key declared once, with Fabric's names.

Counterpart of Fabric's ``core/chaincode/config.go`` (and the other readers of ``core.yaml``).
Every setting is a field of :class:`Config` declared with :func:`setting`: its core.yaml key,
the parser that reads and validates a value (from a file, a ``CORE_`` variable or Python), its
default and a line of documentation. The key table, the environment names and the README table
(``python -m actors.config``) are all derived from those declarations.

Adding a key is one declaration in :class:`Config`::

    drain_timeout: float = setting(
        "chaincode.drainTimeout", 10.0, Duration(positive=True), "what it bounds, in a line"
    )

The scalar parsers (Duration, Integer, Number, Boolean, Text, Address) also read the key's
``CORE_`` variable; a table or list needs a parser of its own (a callable raising ConfigError,
with a ``show(value)`` for the README, or ``shown=`` in the declaration). After adding one,
regenerate the README table with ``python -m actors.config``; a test compares them.

``Config.load`` reads a YAML (Fabric's own core.yaml loads), TOML or JSON file, then ``CORE_``
variables (``CORE_CHAINCODE_EXECUTETIMEOUT=10s``). Keys of Fabric's core.yaml that ccactors does
not use are reported once, as ignored; a key close to one of ours is refused as a typo. Every
problem found is reported at once, one line each, in one :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
import os
import re
import shlex
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.corekeys import is_fabric_key
from actors.policy import DuringRestart, Restart, RestartPolicy

log = logging.getLogger(__name__)

# Fabric's sample core.yaml says 300 s because image builds happen inside that window. Our
# launcher times builds separately, so the window only covers process start -> READY, which takes
# well under a second here; 60 s still tolerates a loaded machine without leaving a caller
# blocked for five minutes behind a chaincode that will never register.
DEFAULT_STARTUP_TIMEOUT = 60.0
DEFAULT_EXECUTE_TIMEOUT = 30.0
MIN_STARTUP_TIMEOUT = 5.0  # Fabric's minimumStartupTimeout
MIN_EXECUTE_TIMEOUT = 1.0  # Fabric replaces an executetimeout below 1 s with its 30 s default
# No timeout, interval or delay may exceed a day: beyond that a value is a mistake, and it must
# stay far below what a timer thread can represent (1e10 s overflowed the scheduler once).
MAX_DURATION = 86400.0
MAX_FILE_BYTES = 4 * 1024 * 1024  # Fabric's core.yaml is 35 KB
MAX_NESTING = 32
MAX_CHAINCODES = 1000
MAX_ENTRIES = 10_000  # keys in one file, counted through YAML aliases (core.yaml has ~200)

RUNTIMES = ("system", "process", "docker", "external", "package")

# The largest write set one transaction may make: Fabric's sample orderer refuses a transaction
# over BatchSize.AbsoluteMaxBytes (99 MB in configtx.yaml), so a bigger one could never commit.
DEFAULT_MAX_WRITE_SET = 99 * 1024 * 1024
# sqlite's PRAGMA synchronous levels (what each guarantees: actors.ledger.storage). Not imported
# from there: the shim imports this module inside chaincode images, which have no ledger.
SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


def default_file_system_path(env: Mapping[str, str] | None = None) -> str:
    """Where ``ccactors serve`` keeps its data by default: ``$XDG_DATA_HOME/ccactors``, i.e.
    ``~/.local/share/ccactors`` (Fabric's peer uses ``/var/hyperledger/production``, which a
    user's process usually cannot write)."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "ccactors")


class ConfigError(ValueError):
    """One or more configuration values are missing or malformed: one line per problem."""

    def __init__(self, *problems: str) -> None:
        self.problems: tuple[str, ...] = problems or ("invalid configuration",)
        super().__init__("; ".join(self.problems))


# -- parsers: raw value (file, environment or Python) -> checked value, or ConfigError ----------

_GO_UNITS = {
    **{"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6},  # micro: u, the micro sign, Greek mu
    **{"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0},
}
_GO_TERM = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")


def _seconds(value: Any) -> float:
    """Seconds from a number or from text in Go's ``time.ParseDuration`` syntax (``1m30s``,
    ``1h2m3.5s``, ``300ms``, ``10us``); a plain number means seconds (Viper reads it as
    nanoseconds; nobody means that)."""
    if isinstance(value, bool):
        raise ConfigError(f"expected a duration, got {_kind(value)}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("-"):
            raise ConfigError(f"must not be negative, got {_kind(value)}")
        text = text.removeprefix("+")
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        else:
            seconds, position = 0.0, 0
            for match in _GO_TERM.finditer(text):
                number = match.group(1)
                if match.start() != position or not number.strip("."):
                    break
                seconds += float(number) * _GO_UNITS[match.group(2)]
                position = match.end()
            if position != len(text) or not text:
                raise ConfigError(
                    f"cannot parse duration {_kind(value)} (use e.g. 30s, 1m30s, 500ms)"
                )
    else:
        raise ConfigError(f"expected a duration, got {_kind(value)}")
    if not math.isfinite(seconds):
        raise ConfigError(f"must be a finite duration, got {_kind(value)}")
    if seconds < 0:
        raise ConfigError(f"must not be negative, got {_kind(value)}")
    return seconds


def parse_duration(value: Any, key: str = "duration") -> float:
    """Seconds from ``30``, ``"30s"``, ``"1m30s"``, ``"500ms"`` (Go's syntax); ConfigError
    naming ``key`` otherwise."""
    try:
        return _seconds(value)
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def format_duration(seconds: float) -> str:
    if seconds == 0:
        return "0"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def _kind(value: Any) -> str:
    """A value as an error message shows it: short, one line."""
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Duration:
    """A duration in seconds within [low, high]; ``positive`` excludes 0."""

    low: float = 0.0
    high: float = MAX_DURATION
    positive: bool = False
    why_low: str = ""  # appended to the error for a value below ``low``

    def __call__(self, raw: Any) -> float:
        seconds = _seconds(raw)
        if self.positive and seconds == 0:
            raise ConfigError("must be positive")
        if seconds < self.low:
            raise ConfigError(
                f"must be at least {format_duration(self.low)}, got {format_duration(seconds)}"
                + (f" ({self.why_low})" if self.why_low else "")
            )
        if seconds > self.high:
            raise ConfigError(
                f"must be at most {format_duration(self.high)}, got {format_duration(seconds)}"
            )
        return seconds

    def show(self, value: float) -> str:
        return format_duration(value)


@dataclass(frozen=True)
class Integer:
    """A whole number within [low, high] (text of digits is read too; 1.5 and 1e11 are not)."""

    low: int = 0
    high: int = 2**31 - 1

    def __call__(self, raw: Any) -> int:
        if isinstance(raw, bool):
            raise ConfigError(f"expected a whole number, got {_kind(raw)}")
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if isinstance(raw, str) and re.fullmatch(r"\s*[-+]?[0-9]{1,19}\s*", raw):
            raw = int(raw)
        if not isinstance(raw, int):
            raise ConfigError(f"expected a whole number, got {_kind(raw)}")
        if not self.low <= raw <= self.high:
            raise ConfigError(f"must be between {self.low} and {self.high}, got {raw}")
        return raw

    def show(self, value: int) -> str:
        return str(value)


@dataclass(frozen=True)
class Number:
    """A finite number within [low, high]."""

    low: float = 0.0
    high: float = 1e9

    def __call__(self, raw: Any) -> float:
        if isinstance(raw, str):
            try:
                raw = float(raw)
            except ValueError:
                raise ConfigError(f"expected a number, got {_kind(raw)}") from None
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ConfigError(f"expected a number, got {_kind(raw)}")
        if not math.isfinite(raw) or not self.low <= raw <= self.high:
            raise ConfigError(f"must be between {self.low:g} and {self.high:g}, got {_kind(raw)}")
        return float(raw)

    def show(self, value: float) -> str:
        return f"{value:g}"


@dataclass(frozen=True)
class Boolean:
    """true/false (also 1/0, yes/no, on/off, t/f, as Go's strconv.ParseBool and more)."""

    def __call__(self, raw: Any) -> bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower() if isinstance(raw, str | int) else None
        if text in ("1", "t", "true", "yes", "on", "enable", "enabled"):
            return True
        if text in ("0", "f", "false", "no", "off", "disable", "disabled"):
            return False
        raise ConfigError(f"expected true or false, got {_kind(raw)}")

    def show(self, value: bool) -> str:
        return "true" if value else "false"


@dataclass(frozen=True)
class Text:
    """A string (non-empty unless ``optional``, then None or empty means unset)."""

    optional: bool = False
    choices: tuple[str, ...] = ()
    max_length: int = 4096

    def __call__(self, raw: Any) -> str | None:
        if raw is None or raw == "":
            if self.optional:
                return None
            raise ConfigError("must not be empty")
        if not isinstance(raw, str):
            raise ConfigError(f"expected a string, got {_kind(raw)}")
        if len(raw) > self.max_length or any(ord(c) < 32 for c in raw):
            raise ConfigError(f"not a usable value: {_kind(raw)}")
        if self.choices and raw not in self.choices:
            raise ConfigError(f"must be one of {', '.join(self.choices)}; got {_kind(raw)}")
        return raw

    def show(self, value: str | None) -> str:
        return value or ""


@dataclass(frozen=True)
class _SqliteLevel(Text):
    """One of :data:`SYNCHRONOUS_LEVELS`, in any case."""

    choices: tuple[str, ...] = SYNCHRONOUS_LEVELS

    def __call__(self, raw: Any) -> str:
        value = super().__call__(raw.strip().upper() if isinstance(raw, str) else raw)
        assert value is not None  # not optional
        return value


_HOST = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]*)"


@dataclass(frozen=True)
class Address:
    """``HOST:PORT`` to listen on or dial (port 0: any free port)."""

    def __call__(self, raw: Any) -> str:
        if not isinstance(raw, str):
            raise ConfigError(f"expected HOST:PORT, got {_kind(raw)}")
        match = re.fullmatch(_HOST + r":([0-9]{1,5})", raw.strip())
        if match is None:
            raise ConfigError(f"expected HOST:PORT, got {_kind(raw)}")
        if int(match.group(2)) > 65535:
            raise ConfigError(f"port must be at most 65535, got {_kind(raw)}")
        return raw.strip()

    def show(self, value: str) -> str:
        return value


class _Files:
    """A list of file paths (one path is read as a list of one)."""

    def __call__(self, raw: Any) -> tuple[str, ...]:
        if raw is None or raw == "":
            return ()
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple) or len(items) > 100:
            raise ConfigError(f"expected a list of file paths, got {_kind(raw)}")
        return tuple(Text()(item) for item in items)

    def show(self, value: tuple[str, ...]) -> str:
        return ", ".join(value)


class _OptionalBoolean(Boolean):
    """true, false, or unset (None)."""

    def __call__(self, raw: Any) -> bool | None:  # type: ignore[override]
        return None if raw is None or raw == "" else super().__call__(raw)

    def show(self, value: bool | None) -> str:  # type: ignore[override]
        return "" if value is None else super().show(value)


class _OptionalAddress(Address):
    """``HOST:PORT``, or unset."""

    def __call__(self, raw: Any) -> str | None:  # type: ignore[override]
        return None if raw is None or raw == "" else super().__call__(raw)

    def show(self, value: str | None) -> str:  # type: ignore[override]
        return value or ""


# -- structured values: restart policies, Docker host config, chaincode definitions ------------

_POLICY_FIELDS: dict[str, Callable[[Any], Any]] = {
    "restart": Text(choices=tuple(Restart)),
    "max_restarts": Integer(0, 1_000_000),
    "within": Duration(positive=True),
    "backoff_initial": Duration(),
    "backoff_max": Duration(positive=True),
    "backoff_factor": Number(1, 100),
    "jitter": Number(0, 0.99),
    "reset_after": Duration(positive=True),
    "shutdown_timeout": Duration(positive=True),
    "during_restart": Text(choices=tuple(DuringRestart)),
}


@dataclass(frozen=True)
class _Policy:
    """A RestartPolicy from a table ``{restart = "permanent", max_restarts = 5, within = "60s",
    ...}``, or from just the restart type (``restart = "permanent"``)."""

    def __call__(self, raw: Any) -> RestartPolicy:
        if isinstance(raw, RestartPolicy):
            raw = dataclasses.asdict(raw)
        elif isinstance(raw, str):
            raw = {"restart": raw}
        values = _table(raw, _POLICY_FIELDS, "")
        try:
            return RestartPolicy(**values)
        except ValueError as exc:  # relations between fields, e.g. backoff_initial > _max
            raise ConfigError(str(exc).removeprefix("restart policy: ")) from None

    def show(self, value: RestartPolicy) -> str:
        return f"{value.restart}, {value.max_restarts} in {format_duration(value.within)}"


def _under(where: str, problem: str) -> str:
    """``where: problem``, or ``where.field: ...`` / ``where[2] ...`` for a problem inside it."""
    if not where:
        return problem
    if problem.startswith((".", "[")):
        return where + problem
    return f"{where}: {problem}"


def _table(raw: Any, fields: Mapping[str, Callable[[Any], Any]], where: str) -> dict[str, Any]:
    """Each entry of the table ``raw`` read by its field's parser; problems named ``.field``."""
    if not isinstance(raw, Mapping):
        raise ConfigError(_under(where, f"expected a table, got {_kind(raw)}"))
    values, problems = {}, []
    for name, value in raw.items():
        parse = fields.get(name) if isinstance(name, str) else None
        if parse is None:
            problems.append(
                _under(where, f"unknown key {_kind(name)} (known: {', '.join(fields)})")
            )
            continue
        try:
            values[name] = parse(value)
        except ConfigError as exc:
            problems.extend(_under(f"{where}.{name}", p) for p in exc.problems)
    if problems:
        raise ConfigError(*problems)
    return values


@dataclass(frozen=True)
class LogConfig:
    """Docker's LogConfig: the logging driver and its options."""

    type: str
    config: Mapping[str, str] = field(default_factory=dict)


_NETWORK = re.compile(r"host|bridge|none|container:[A-Za-z0-9_.-]+|[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class HostConfig:
    """``vm.docker.hostConfig``: what the user sets of a chaincode container's HostConfig, with
    Docker's (and Fabric's core.yaml) field names. None: keep the runtime's hardened default."""

    memory: int | None = None  # Memory: bytes
    nano_cpus: int | None = None  # NanoCpus: 1e9 = one CPU
    cpu_shares: int | None = None  # CpuShares: relative weight
    pids_limit: int | None = None  # PidsLimit: -1 = unlimited
    network_mode: str | None = None  # NetworkMode: bridge, host, container:ID, a network
    log_config: LogConfig | None = None  # LogConfig: {Type, Config}
    dns: tuple[str, ...] = ()  # Dns: servers
    # Fields Docker has but ccactors does not apply (a core.yaml may set them for Fabric).
    ignored: tuple[str, ...] = ()

    def docker_kwargs(self) -> dict[str, Any]:
        """The fields set, as keyword arguments of docker-py's ``containers.create``."""
        kwargs: dict[str, Any] = {}
        for name, value in (
            ("mem_limit", self.memory),
            ("nano_cpus", self.nano_cpus),
            ("cpu_shares", self.cpu_shares),
            ("pids_limit", self.pids_limit),
            ("network_mode", self.network_mode),
        ):
            if value is not None:
                kwargs[name] = value
        if self.log_config is not None:
            kwargs["log_config"] = {
                "type": self.log_config.type,
                "config": dict(self.log_config.config),
            }
        if self.dns:
            kwargs["dns"] = list(self.dns)
        return kwargs


def _log_config(raw: Any) -> LogConfig:
    if isinstance(raw, LogConfig):
        raw = {"Type": raw.type, "Config": raw.config}
    fields = _table(
        _lower(raw, ""),
        {"type": Text(), "config": lambda v: v},
        "",
    )
    options = fields.get("config") or {}
    if not isinstance(options, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str | int) and not isinstance(v, bool)
        for k, v in options.items()
    ):
        raise ConfigError(".Config: expected a table of strings")
    if "type" not in fields:
        raise ConfigError(".Type: must be set")
    return LogConfig(fields["type"], {k: str(v) for k, v in options.items()})


def _network_mode(raw: Any) -> str:
    mode = Text()(raw)
    assert mode is not None
    if not _NETWORK.fullmatch(mode):
        raise ConfigError(f"not a network mode: {_kind(mode)} (host, bridge, or a network)")
    if mode == "none":
        raise ConfigError("network mode 'none': chaincode must reach the peer")
    return mode


def _dns(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list | tuple) or not all(isinstance(s, str) and s for s in raw):
        raise ConfigError(f"expected a list of addresses, got {_kind(raw)}")
    return tuple(raw)


_HOST_CONFIG_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "memory": ("memory", Integer(6 * 1024 * 1024, 2**62)),  # Docker's minimum is 6 MiB
    "nanocpus": ("nano_cpus", Integer(10_000_000, 1024 * 10**9)),  # at least 0.01 CPU
    "cpushares": ("cpu_shares", Integer(2, 262_144)),  # Docker's bounds
    "pidslimit": ("pids_limit", Integer(-1, 4_194_304)),
    "networkmode": ("network_mode", _network_mode),
    "logconfig": ("log_config", _log_config),
    "dns": ("dns", _dns),
}


def _lower(raw: Any, where: str) -> Any:
    """A table with its keys lower-cased (Viper's keys are case-insensitive)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(_under(where, f"expected a table, got {_kind(raw)}"))
    if not all(isinstance(k, str) for k in raw):
        raise ConfigError(_under(where, "keys must be strings"))
    return {k.lower(): v for k, v in raw.items()}


@dataclass(frozen=True)
class _HostConfigParser:
    def __call__(self, raw: Any) -> HostConfig:
        ignored: tuple[str, ...] = ()
        if isinstance(raw, HostConfig):  # checked like a table: the embedding API is outside
            ignored = raw.ignored
            raw = {
                key: getattr(raw, attribute)
                for key, (attribute, _) in _HOST_CONFIG_FIELDS.items()
                if getattr(raw, attribute) not in (None, ())
            }
        if raw is None:
            return HostConfig()
        if not isinstance(raw, Mapping):
            raise ConfigError(f"expected a table, got {_kind(raw)}")
        values: dict[str, Any] = {}
        problems: list[str] = []
        unknown: list[str] = []
        for key, value in raw.items():
            if not isinstance(key, str):
                problems.append(f"{_kind(key)}: keys must be strings")
                continue
            if key.lower() not in _HOST_CONFIG_FIELDS:
                unknown.append(key)
                continue
            if value is None or value == []:  # Fabric's sample leaves Dns empty
                continue
            attribute, parse = _HOST_CONFIG_FIELDS[key.lower()]
            try:
                values[attribute] = parse(value)
            except ConfigError as exc:
                problems.extend(_under(f".{key}", p) for p in exc.problems)
        if problems:
            raise ConfigError(*problems)
        return HostConfig(**values, ignored=ignored or tuple(unknown))

    def show(self, value: HostConfig) -> str:
        return "the runtime's hardened defaults"


def parse_host_config(raw: Any) -> HostConfig:
    """``vm.docker.hostConfig`` as Fabric's table (any case) or a HostConfig, checked;
    ConfigError naming the key otherwise."""
    try:
        return _HostConfigParser()(raw)
    except ConfigError as exc:
        raise ConfigError(*(_under("vm.docker.hostConfig", p) for p in exc.problems)) from None


_NAME = Text(max_length=256)


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
    # Python shim running ``target``. A string is split as a shell would. ``workdir`` is where
    # it runs.
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
        problems, failed = [], set()
        try:
            who = f"chaincode {_NAME(self.name)}"
        except ConfigError as exc:
            who = "chaincode"
            problems.append(f"chaincode name must be a non-empty string: {exc}")
        for attribute, parse in _DEFINITION_FIELDS.items():
            value = getattr(self, attribute)
            if value is None and attribute in _OPTIONAL:
                continue
            try:
                object.__setattr__(self, attribute, parse(value))
            except ConfigError as exc:
                failed.add(attribute)
                problems.extend(_under(f"{who}: {attribute}", p) for p in exc.problems)
        if not failed & {"runtime", "target", "command", "package", "connection"}:
            problems.extend(f"{who}: {p}" for p in self._runtime_problems())
        if problems:
            raise ConfigError(*problems)

    def _runtime_problems(self) -> Iterator[str]:
        if self.runtime == "system" and ":" not in self.target:
            yield f"a system chaincode needs target 'module:Class', got {_kind(self.target)}"
        if self.runtime == "process" and not self.command and ":" not in self.target:
            yield "a process chaincode needs a command or a target 'module:Class', got neither"
        if self.runtime in ("docker", "package") and not self.package:
            yield f"a {self.runtime} chaincode needs a package path"
        if self.runtime == "external" and not (
            self.connection.get("address") or self.connection.get("file")
        ):
            yield (
                "an external chaincode needs connection.address "
                "(or connection.file, a connection.json)"
            )


def _command(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        try:
            raw = shlex.split(raw)
        except ValueError as exc:
            raise ConfigError(f"cannot split {_kind(raw)}: {exc}") from None
    if not isinstance(raw, list | tuple) or not all(isinstance(p, str) and p for p in raw):
        raise ConfigError(f"expected a list of strings, got {_kind(raw)}")
    return tuple(raw)


def _strings(raw: Any) -> Mapping[str, str]:
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and k and "=" not in k and isinstance(v, str) for k, v in raw.items()
    ):
        raise ConfigError('expected a table of NAME = "value" strings')
    return raw


def _connection(raw: Any) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) for k in raw):
        raise ConfigError(f"expected a table of connection.json fields, got {_kind(raw)}")
    for key in ("address", "file"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ConfigError(f".{key}: expected a string, got {_kind(raw[key])}")
    if raw.get("address"):
        Address()(str(raw["address"]).removeprefix("grpc://").removeprefix("grpcs://"))
    if raw.get("dial_timeout") not in (None, "", 0):
        Duration(positive=True, high=3600.0)(raw["dial_timeout"])
    return raw


_DEFINITION_FIELDS: dict[str, Callable[[Any], Any]] = {
    "runtime": Text(choices=RUNTIMES),
    "target": lambda raw: Text(optional=True)(raw) or "",
    "execute_timeout": Duration(positive=True),
    "env": _strings,
    "command": _command,
    "workdir": Text(optional=True),
    "package": Text(optional=True),
    "connection": _connection,
    "restart": _Policy(),
}
_OPTIONAL = frozenset({"execute_timeout", "restart"})


@dataclass(frozen=True)
class _Chaincodes:
    """The ``[[chaincodes]]`` list: tables with ChaincodeDefinition's fields."""

    def __call__(self, raw: Any) -> tuple[ChaincodeDefinition, ...]:
        if not isinstance(raw, list | tuple):
            raise ConfigError(f"expected a list of tables, got {_kind(raw)}")
        if len(raw) > MAX_CHAINCODES:
            raise ConfigError(f"more than {MAX_CHAINCODES} chaincodes")
        known = [f.name for f in dataclasses.fields(ChaincodeDefinition)]
        definitions, problems = [], []
        for index, entry in enumerate(raw):
            if isinstance(entry, ChaincodeDefinition):
                definitions.append(entry)
                continue
            if not isinstance(entry, Mapping):
                problems.append(f"[{index}]: expected a table, got {_kind(entry)}")
                continue
            unknown = sorted(_kind(k) for k in entry if k not in known)
            if unknown:
                problems.append(
                    f"[{index}]: unknown keys {', '.join(unknown[:5])} (known: {', '.join(known)})"
                )
                continue
            if "name" not in entry:
                problems.append(f"[{index}]: a chaincode needs a name")
                continue
            try:
                definitions.append(ChaincodeDefinition(**entry))
            except ConfigError as exc:
                problems.extend(f"[{index}] {p}" for p in exc.problems)
        names = [d.name for d in definitions]
        if len(names) != len(set(names)):
            twice = sorted({n for n in names if names.count(n) > 1})
            problems.append(f"duplicate chaincode names in configuration: {', '.join(twice)}")
        if problems:
            raise ConfigError(*problems)
        return tuple(definitions)

    def show(self, value: tuple[ChaincodeDefinition, ...]) -> str:
        return "none"


# -- the declarations --------------------------------------------------------------------------

_KEY = "ccactors.key"
_SCALARS = (Duration, Integer, Number, Boolean, Text, Address)


@dataclass(frozen=True)
class Key:
    """One configuration key: its core.yaml name (Fabric's spelling where Fabric has one), how
    a value is read and checked, and what the README says about it."""

    name: str
    parse: Callable[[Any], Any]
    doc: str
    shown_default: str | None = None  # README's default column, when the value does not say

    @property
    def env(self) -> str | None:
        """Its ``CORE_`` variable (Viper's rule: dots become underscores, upper case); only
        single values can be set from the environment."""
        if not isinstance(self.parse, _SCALARS):
            return None
        return "CORE_" + self.name.upper().replace(".", "_")


def setting(
    name: str,
    default: Any,
    parse: Callable[[Any], Any],
    doc: str,
    *,
    shown: str | None = None,
) -> Any:
    """Declare a Config field as the key ``name``: the one place a setting is described.

    ``default`` may be a zero-argument callable for mutable values; ``shown`` is the README's
    default when ``parse.show(default)`` does not say it well."""
    metadata = {_KEY: Key(name, parse, doc, shown)}
    if callable(default):
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


class _Channels:
    """The ``[[channels]]`` list: tables with a ``name`` (plain names are read too), each a
    valid channel id (Fabric's ``configtx.ValidateChannelID``)."""

    def __call__(self, raw: Any) -> tuple[str, ...]:
        from actors.lifecycle.channels import check_channel_name

        if not isinstance(raw, list | tuple):
            raise ConfigError(
                f'expected a list of tables ([[channels]] name = "..."), got {_kind(raw)}'
            )
        if len(raw) > 1000:
            raise ConfigError("more than 1000 channels")
        names, problems = [], []
        for index, entry in enumerate(raw):
            name = entry.get("name") if isinstance(entry, Mapping) else entry
            if not isinstance(name, str) or not name:
                problems.append(f"[{index}]: each entry needs a name, got {_kind(entry)}")
                continue
            # `organizations` is the channel's members: read by _ChannelOrganizations
            if isinstance(entry, Mapping) and set(entry) - {"name", "organizations"}:
                unknown = sorted(set(entry) - {"name", "organizations"})
                problems.append(f"[{index}]: unknown keys {unknown}")
                continue
            try:
                names.append(check_channel_name(name))
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ConfigError(*problems)
        return tuple(dict.fromkeys(names))

    def show(self, value: tuple[str, ...]) -> str:
        return "`mychannel`"


@dataclass(frozen=True)
class Organization:
    """A member organisation of the peer's channels: its MSP id and MSP folder."""

    mspid: str
    msp_dir: str


class _Organizations:
    """The ``[[organizations]]`` list: tables with ``mspid`` and ``msp_dir``."""

    def __call__(self, raw: Any) -> tuple[Organization, ...]:
        if not isinstance(raw, list | tuple):
            raise ConfigError(f"expected a list of tables, got {_kind(raw)}")
        if len(raw) > 100:
            raise ConfigError("more than 100 organizations")
        out, problems = [], []
        for index, entry in enumerate(raw):
            if isinstance(entry, Organization):
                out.append(entry)
                continue
            if not isinstance(entry, Mapping) or set(entry) != {"mspid", "msp_dir"}:
                problems.append(f"[{index}]: expected a table with mspid and msp_dir")
                continue
            try:
                out.append(Organization(Text()(entry["mspid"]), Text()(entry["msp_dir"])))
            except ConfigError as exc:
                problems.extend(f"[{index}] {p}" for p in exc.problems)
        ids = [o.mspid for o in out]
        if len(ids) != len(set(ids)):
            problems.append("an MSP id is listed twice")
        if problems:
            raise ConfigError(*problems)
        return tuple(out)

    def show(self, value: tuple[Organization, ...]) -> str:
        return "the peer's own"


ChannelOrganizations = tuple[tuple[str, tuple[Organization, ...]], ...]


class _ChannelOrganizations:
    """``[[channels.organizations]]`` under a ``[[channels]]`` table (read from the channels
    list by :meth:`Config.load`), or a mapping channel -> organisations: each channel's member
    organisations as ``((channel, (Organization, ...)), ...)``."""

    def __call__(self, raw: Any) -> ChannelOrganizations:
        if isinstance(raw, Mapping):
            raw = tuple(raw.items())
        if not isinstance(raw, list | tuple):
            raise ConfigError(f"expected channel names with their organizations, got {_kind(raw)}")
        from actors.lifecycle.channels import check_channel_name

        out, problems = [], []
        for entry in raw:
            if not isinstance(entry, list | tuple) or len(entry) != 2:
                problems.append(f"expected (channel, organizations), got {_kind(entry)}")
                continue
            name, organizations = entry
            try:
                check_channel_name(name)
                out.append((name, _Organizations()(organizations)))
            except (ConfigError, ValueError, TypeError) as exc:
                details = exc.problems if isinstance(exc, ConfigError) else (str(exc),)
                problems.extend(f"channel {name}: {p}" for p in details)
        if len({name for name, _ in out}) != len(out):
            problems.append("a channel is listed twice")
        if problems:
            raise ConfigError(*problems)
        return tuple(out)

    def show(self, value: ChannelOrganizations) -> str:
        return "`organizations`"


def _channel_organizations(raw: Any) -> dict[str, Any]:
    """The ``organizations`` of each ``[[channels]]`` table of a file (what
    :class:`_ChannelOrganizations` reads); malformed entries are _Channels' to report."""
    if not isinstance(raw, list | tuple):
        return {}
    return {
        entry["name"]: entry["organizations"]
        for entry in raw
        if isinstance(entry, Mapping)
        and isinstance(entry.get("name"), str)
        and entry.get("organizations") is not None
    }


class _ExternalBuilders:
    """``chaincode.externalBuilders``: tables with name, path, propagateEnvironment."""

    def __call__(self, raw: Any) -> tuple[Any, ...]:
        from actors.lifecycle.builders import CCAAS_BUILDER, ExternalBuilder, parse_builders

        if isinstance(raw, list | tuple) and all(isinstance(b, ExternalBuilder) for b in raw):
            return tuple(raw)
        if not isinstance(raw, list | tuple):
            raise ConfigError(f"expected a list of tables, got {_kind(raw)}")
        if len(raw) > 100:
            raise ConfigError("more than 100 external builders")
        builders = parse_builders(raw)
        # A missing directory would otherwise surface only at install, as "chaincode type ...
        # not supported"; a ``ccaas_builder`` without bin/detect is the built-in one (Detector).
        problems = [
            f"builder {b.name}: {Path(b.path, 'bin', 'detect')} does not exist"
            for b in builders
            if b.name != CCAAS_BUILDER and not Path(b.path, "bin", "detect").is_file()
        ]
        if problems:
            raise ConfigError(*problems)
        return builders

    def show(self, value: tuple[Any, ...]) -> str:
        return "none (the built-in `ccaas_builder` always)"


@dataclass(frozen=True)
class Config:
    """The peer's settings. Each field is one key: see :func:`setting` and ``KEYS``."""

    startup_timeout: float = setting(
        "chaincode.startuptimeout",
        DEFAULT_STARTUP_TIMEOUT,
        Duration(MIN_STARTUP_TIMEOUT, why_low="Fabric raises smaller values to 5s"),
        "process start → READY. Fabric's sample says 300s because image builds happen in "
        "that window; ours are timed apart",
    )
    execute_timeout: float = setting(
        "chaincode.executetimeout",
        DEFAULT_EXECUTE_TIMEOUT,
        Duration(MIN_EXECUTE_TIMEOUT, why_low="Fabric silently uses 30s instead"),
        "per chaincode: `execute_timeout` in its definition (no minimum there)",
    )
    install_timeout: float = setting(
        "chaincode.installTimeout", 300.0, Duration(positive=True), "bounds an image build"
    )
    keepalive: float = setting(
        "chaincode.keepalive",
        0.0,
        Duration(),
        "0: off. Keep it off for Node chaincode: fabric-shim 2.5.8 exits on KEEPALIVE",
        shown="0 (off)",
    )
    mode: str = setting(
        "chaincode.mode",
        "net",
        Text(choices=("net", "dev")),
        "`dev` accepts chaincode that registers without being launched",
    )
    listen_address: str = setting(
        "peer.chaincodeListenAddress",
        "0.0.0.0:7052",
        Address(),
        "where `serve` listens for chaincode",
    )
    max_message_size: int = setting(
        "peer.maxRecvMsgSize",
        100 * 1024 * 1024,
        Integer(1024, 2**31 - 1),
        "bytes; message limit on pipes and gRPC streams",
        shown="100 MiB",
    )
    total_query_limit: int = setting(
        "ledger.state.totalQueryLimit",
        10000,
        Integer(1, 10**7),
        "results per query",
    )
    query_batch_size: int = setting(
        "ledger.state.queryBatchSize",
        100,
        Integer(1, 10**5),
        "results per QUERY_RESPONSE batch (Fabric's fixed maxResultLimit)",
    )
    history: bool = setting(
        "ledger.history.enableHistoryDatabase", True, Boolean(), "keep key history"
    )
    file_system_path: str | None = setting(
        "peer.fileSystemPath",
        None,
        Text(optional=True),
        "the peer's data directory; the ledger goes to its `ledgersData/` (`serve`: "
        "`--data-dir`, or `--ephemeral` for none)",
        shown="in memory (`serve`: `$XDG_DATA_HOME/ccactors`)",
    )
    ledger_path: str | None = setting(
        "ledger.path",
        None,
        Text(optional=True),
        "the ledger's own directory: one sqlite file per channel, survives restarts",
        shown="`peer.fileSystemPath`/ledgersData",
    )
    ledger_synchronous: str = setting(
        "ledger.sqlite.synchronous",
        "FULL",
        _SqliteLevel(),
        "OFF, NORMAL, FULL or EXTRA: FULL (as Fabric) syncs each block, so it survives a "
        "power loss; NORMAL may lose the last blocks then (see The ledger)",
    )
    max_write_set_size: int = setting(
        "ledger.state.maxWriteSetSize",
        DEFAULT_MAX_WRITE_SET,
        Integer(0, 2**40),
        "bytes of keys, values and metadata one transaction may write (0: no limit)",
        shown="99 MiB",
    )
    msp_id: str = setting(
        "peer.localMspId", "SampleOrg", Text(), "MSP id of the identity of built proposals"
    )
    sign_proposals: bool = setting(
        "chaincode.signproposals", True, Boolean(), "sign the proposals the peer builds"
    )
    tls_enabled: bool | None = setting(
        "peer.tls.enabled",
        None,
        _OptionalBoolean(),
        "mutual TLS on the chaincode listener (unset: on in net mode, off in dev mode, as "
        "Fabric; false is --insecure), and TLS on the Gateway (peer.tls.cert.file)",
        shown="net mode: on",
    )
    registration_timeout: float = setting(
        "peer.limits.registrationTimeout",
        10.0,
        Duration(positive=True),
        "a chaincode stream must REGISTER within this",
    )
    unregistered_message_size: int = setting(
        "peer.limits.unregisteredMessageSize",
        64 * 1024,
        Integer(1, 2**31 - 1),
        "bytes: the largest message a stream may send before REGISTER",
    )
    max_unregistered_streams: int = setting(
        "peer.limits.unregisteredStreams", 64, Integer(1, 100_000), "streams waiting to register"
    )
    max_unregistered_per_host: int = setting(
        "peer.limits.unregisteredStreamsPerAddress",
        16,
        Integer(1, 100_000),
        "of those, from one address",
    )
    max_event_subscribers: int = setting(
        "peer.limits.eventSubscribers", 16, Integer(1, 10_000), "admin Events streams at once"
    )
    operations_address: str | None = setting(
        "operations.listenAddress",
        None,
        _OptionalAddress(),
        "the operations server: /metrics, /healthz, /logspec (`serve --operations`)",
        shown="off",
    )
    operations_tls_enabled: bool = setting(
        "operations.tls.enabled",
        False,
        Boolean(),
        "HTTPS on the operations server; then /metrics and /logspec need a verified client "
        "certificate (Fabric's rule), /healthz and /version do not",
    )
    operations_tls_cert_file: str | None = setting(
        "operations.tls.cert.file", None, Text(optional=True), "its certificate (PEM)"
    )
    operations_tls_key_file: str | None = setting(
        "operations.tls.key.file", None, Text(optional=True), "its private key (PEM)"
    )
    operations_tls_client_auth: bool = setting(
        "operations.tls.clientAuthRequired",
        False,
        Boolean(),
        "refuse a TLS handshake without a client certificate (else one is verified if given)",
    )
    operations_tls_client_root_files: tuple[str, ...] = setting(
        "operations.tls.clientRootCAs.files",
        (),
        _Files(),
        "the CAs operations client certificates must chain to",
        shown="none",
    )
    max_inbound_backlog: int = setting(
        "chaincode.maxinboundbacklog",
        10000,
        Integer(1, 10**7),
        "messages a chaincode may have waiting; beyond, its connection is closed as a flood",
    )
    max_inbound_rate: float = setting(
        "chaincode.maxinboundrate",
        100_000.0,
        Number(0, 1e9),
        "messages per second a chaincode may send (0: no limit); beyond, closed as a flood",
    )
    # Fabric 3.x's chaincode.runtimeParams, announced to every shim in READY. Fabric's code
    # reads an absent useWriteBatch as false; its sample core.yaml (what a peer ships with)
    # sets both to true, as we do. A size of 0 means Fabric's default, 1000.
    use_write_batch: bool = setting(
        "chaincode.runtimeParams.useWriteBatch",
        True,
        Boolean(),
        "READY tells shims they may send their writes as one WRITE_BATCH_STATE",
    )
    max_size_write_batch: int = setting(
        "chaincode.runtimeParams.maxSizeWriteBatch",
        1000,
        Integer(0, 2**32 - 1),
        "writes per WRITE_BATCH_STATE announced in READY (0: 1000)",
    )
    use_get_multiple_keys: bool = setting(
        "chaincode.runtimeParams.useGetMultipleKeys",
        True,
        Boolean(),
        "READY tells shims they may read several keys with one GET_STATE_MULTIPLE",
    )
    max_size_get_multiple_keys: int = setting(
        "chaincode.runtimeParams.maxSizeGetMultipleKeys",
        1000,
        Integer(0, 2**32 - 1),
        "keys per GET_STATE_MULTIPLE announced in READY (0: 1000)",
    )
    docker_endpoint: str = setting(
        "vm.endpoint", "unix:///var/run/docker.sock", Text(), "the Docker engine"
    )
    docker_host_config: HostConfig = setting(
        "vm.docker.hostConfig",
        HostConfig,
        _HostConfigParser(),
        "table: Memory, NanoCpus, CpuShares, PidsLimit, NetworkMode, LogConfig, Dns of "
        "chaincode containers, over the hardened defaults",
    )
    docker_tls_enabled: bool = setting(
        "vm.docker.tls.enabled", False, Boolean(), "mutual TLS to a `tcp://` `vm.endpoint`"
    )
    docker_tls_ca_file: str | None = setting(
        "vm.docker.tls.ca.file", None, Text(optional=True), "the engine's CA (PEM)", shown="unset"
    )
    docker_tls_cert_file: str | None = setting(
        "vm.docker.tls.cert.file",
        None,
        Text(optional=True),
        "our client certificate",
        shown="unset",
    )
    docker_tls_key_file: str | None = setting(
        "vm.docker.tls.key.file", None, Text(optional=True), "its key", shown="unset"
    )
    external_builders: tuple[Any, ...] = setting(
        "chaincode.externalBuilders",
        (),
        _ExternalBuilders(),
        "list of tables: `name`, `path` (absolute, holding `bin/detect`, `build`, `release`, "
        "`run`), `propagateEnvironment` (see External builders)",
    )
    node_install: str = setting(
        "chaincode.node.npmInstall",
        "container",
        Text(choices=("container", "host")),
        "where a node package's `npm install` runs: a build container (Fabric's way; it must "
        "reach the registry) or `host` (this machine's npm, the result copied in)",
    )
    base_image: str = setting(
        "chaincode.baseimage",
        "ccactors/python-shim:latest",
        Text(),
        "the image Python chaincode packages are built FROM",
    )
    chaincodes: tuple[ChaincodeDefinition, ...] = setting(
        "chaincodes",
        (),
        _Chaincodes(),
        "list of tables: name, runtime, target, command, package, connection, env, "
        "execute_timeout, restart",
    )
    restart: RestartPolicy = setting(
        "chaincode.restart",
        RestartPolicy,
        _Policy(),
        "the default restart policy table (see Supervision); per chaincode: `restart = {...}`",
    )
    hung_after: int = setting(
        "chaincode.hungafter",
        2,
        Integer(0, 1000),
        "silent through this many timed-out transactions in a row: hung, replaced (0: never)",
    )
    channels: tuple[str, ...] = setting(
        "channels",
        (),
        _Channels(),
        'list of tables `[[channels]] name = "..."`: the channels this peer has joined; any '
        "other channel is unknown",
    )
    install_dir: str | None = setting(
        "chaincode.installDir",
        None,
        Text(optional=True),
        "where installed chaincode packages are kept (Fabric: "
        "`peer.fileSystemPath`/lifecycle/chaincodes)",
        shown="`peer.fileSystemPath`/lifecycle/chaincodes, else `ledger.path`/lifecycle, else "
        "a temporary directory",
    )
    max_package_bytes: int = setting(
        "chaincode.maxPackageSize",
        128 * 1024 * 1024,
        Integer(1, 2**40),
        "decompressed bytes a chaincode package may hold, counted while it is read (not Fabric's)",
        shown="128 MiB",
    )
    # -- the client-facing peer: identity, the Gateway and Endorser services, ordering --------
    msp_config_path: str | None = setting(
        "peer.mspConfigPath",
        None,
        Text(optional=True),
        "the peer's MSP folder (signcerts/, keystore/, cacerts/...): its identity; the "
        "Gateway needs it",
        shown="none",
    )
    gateway_address: str | None = setting(
        "peer.listenAddress",
        None,
        _OptionalAddress(),
        "where the Gateway and Endorser services listen (`serve --gateway`)",
        shown="off",
    )
    tls_cert_file: str | None = setting(
        "peer.tls.cert.file",
        None,
        Text(optional=True),
        "the TLS certificate (PEM) of the Gateway and the admin API (which then takes only "
        "admins of peer.localMspId)",
    )
    tls_key_file: str | None = setting(
        "peer.tls.key.file",
        None,
        Text(optional=True),
        "its private key (PEM): with the certificate, the Gateway speaks TLS",
    )
    tls_client_root_files: tuple[str, ...] = setting(
        "peer.tls.clientRootCAs.files",
        (),
        _Files(),
        "with peer.tls.clientAuthRequired: the CAs client certificates must chain to",
        shown="none",
    )
    tls_client_auth: bool = setting(
        "peer.tls.clientAuthRequired", False, Boolean(), "the Gateway requires client TLS"
    )
    organizations: tuple[Organization, ...] = setting(
        "organizations",
        (),
        _Organizations(),
        "list of tables: mspid, msp_dir — the other member orgs of the peer's channels",
    )
    channel_members: ChannelOrganizations = setting(
        "channels.organizations",
        (),
        _ChannelOrganizations(),
        "under a `[[channels]]` table, tables of mspid, msp_dir: that channel's member orgs "
        "beside the peer's own, instead of `organizations`",
    )
    endorsement_timeout: float = setting(
        "peer.gateway.endorsementTimeout", 30.0, Duration(positive=True), "per endorsement"
    )
    broadcast_timeout: float = setting(
        "peer.gateway.broadcastTimeout", 30.0, Duration(positive=True), "per submit to ordering"
    )
    gateway_concurrency: int = setting(
        "peer.limits.concurrency.gatewayService",
        500,
        Integer(1, 10_000),
        "Gateway calls in flight (CommitStatus waits included); more are refused",
    )
    endorser_concurrency: int = setting(
        "peer.limits.concurrency.endorserService",
        500,
        Integer(1, 10_000),
        "ProcessProposal calls in flight (Fabric: 2500; each is a thread here)",
    )
    deliver_concurrency: int = setting(
        "peer.limits.concurrency.deliverService",
        100,
        Integer(1, 10_000),
        "Deliver streams open (Fabric: 2500; each is a thread here)",
    )
    auth_time_window: float = setting(
        "peer.authentication.timewindow",
        900.0,
        Duration(positive=True),
        "how far a Deliver request's timestamp may be from the peer's clock",
    )
    batch_timeout: float = setting(
        "orderer.batchTimeout",
        2.0,
        Duration(positive=True),
        "the embedded orderer cuts a block this long after its first transaction (configtx)",
    )
    batch_max_messages: int = setting(
        "orderer.batchSize.maxMessageCount", 500, Integer(1, 100_000), "transactions per block"
    )
    batch_preferred_bytes: int = setting(
        "orderer.batchSize.preferredMaxBytes",
        2 * 1024 * 1024,
        Integer(1, 2**31 - 1),
        "a block is cut before it grows past this",
    )
    batch_absolute_bytes: int = setting(
        "orderer.batchSize.absoluteMaxBytes",
        10 * 1024 * 1024,
        Integer(1, 2**31 - 1),
        "a larger transaction is refused",
    )

    def channel_organizations(self, channel: str) -> tuple[Organization, ...]:
        """The member organisations of ``channel`` beside the peer's own: its
        ``[[channels.organizations]]``, else the ``[[organizations]]`` of every channel."""
        for name, organizations in self.channel_members:
            if name == channel:
                return organizations
        return self.organizations

    @property
    def tls(self) -> bool:
        """Whether the chaincode listener uses mutual TLS (see ``tls_enabled``)."""
        return self.mode == "net" if self.tls_enabled is None else self.tls_enabled

    @property
    def ledger_directory(self) -> str | None:
        """Where the channel ledgers live (None: in memory)."""
        if self.ledger_path is not None:
            return self.ledger_path
        if self.file_system_path is not None:
            return os.path.join(self.file_system_path, "ledgersData")
        return None

    @property
    def install_directory(self) -> str | None:
        """Where installed packages live (None: a temporary directory of the peer's own)."""
        if self.install_dir is not None:
            return self.install_dir
        if self.file_system_path is not None:
            return os.path.join(self.file_system_path, "lifecycle", "chaincodes")
        if self.ledger_path is not None:
            return os.path.join(self.ledger_path, "lifecycle")
        return None

    @property
    def build_directory(self) -> str | None:
        """Where external builders' output is kept (Fabric:
        ``peer.fileSystemPath``/externalbuilder/builds; None: a temporary directory)."""
        if self.file_system_path is not None:
            return os.path.join(self.file_system_path, "externalbuilder", "builds")
        return None

    @property
    def docker_tls(self) -> Any:
        """``vm.docker.tls.*`` as an :class:`actors.images.EngineTLS` (None when off)."""
        if not self.docker_tls_enabled:
            return None
        from actors.images import EngineTLS

        return EngineTLS(
            self.docker_tls_ca_file or "",
            self.docker_tls_cert_file or "",
            self.docker_tls_key_file or "",
        )

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
        problems, failed = [], set()
        for name, key in KEYS.items():
            try:
                object.__setattr__(self, name, key.parse(getattr(self, name)))
            except ConfigError as exc:
                failed.add(name)
                problems.extend(_under(key.name, p) for p in exc.problems)
        # Checks across keys run whenever the keys they read are good, so that one load
        # reports every problem.
        engine = {"docker_endpoint", *(n for n in KEYS if n.startswith("docker_tls_"))}
        if not failed & engine and self.docker_tls_enabled:
            problems.extend(self._engine_tls_problems())
        if problems:
            raise ConfigError(*problems)

    def _engine_tls_problems(self) -> Iterator[str]:
        if not self.docker_endpoint.startswith(("tcp://", "https://")):
            yield f"vm.docker.tls.enabled: needs a tcp:// vm.endpoint, got {self.docker_endpoint}"
        for name in ("ca", "cert", "key"):
            path = getattr(self, f"docker_tls_{name}_file")
            if not path:
                yield f"vm.docker.tls.{name}.file: must be set with vm.docker.tls.enabled"
            elif not os.path.isfile(path):
                yield f"vm.docker.tls.{name}.file: no such file {path}"

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Config:
        """Defaults, then the file (YAML, TOML or JSON), then ``CORE_`` environment variables,
        then ``overrides`` (field name -> value). Raises one ConfigError listing every problem;
        logs one WARNING listing the keys it ignored."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        ignored: list[str] = []
        if path is not None:
            try:
                values, problems, ignored = _walk(_read_file(Path(path)))
            except ConfigError as exc:
                problems.extend(exc.problems)
        members = _channel_organizations(values.get("channels"))
        if members:
            values["channel_members"] = members
        values.update(_from_env(os.environ if env is None else env))
        values.update(overrides or {})
        try:
            config: Config | None = cls(**values)
        except ConfigError as exc:
            problems.extend(exc.problems)
            config = _good_part(cls, values)
        if config is not None:
            # Chaincode paths are relative to the file; code that cannot be found is reported now
            # (for the chaincodes that parsed, even when other keys did not).
            from actors.runtimes.targets import settle_chaincodes

            try:
                config = settle_chaincodes(config, None if path is None else Path(path).parent)
            except ConfigError as exc:
                problems.extend(exc.problems)
        if problems or config is None:
            raise ConfigError(*problems)
        ignored.extend(f"vm.docker.hostConfig.{k}" for k in config.docker_host_config.ignored)
        if ignored:
            more = f" and {len(ignored) - 300} more" if len(ignored) > 300 else ""
            log.warning(
                "%s: ignoring %d key(s) ccactors does not use: %s%s",
                path,
                len(ignored),
                ", ".join(_kind(k).strip("'") for k in ignored[:300]),
                more,
            )
        return config


def _good_part(cls: type[Config], values: dict[str, Any]) -> Config | None:
    """The chaincodes entries of ``values`` that parse, alone in a Config, so that their code
    is still looked for when other keys are wrong; None if there are none."""
    raw = values.get("chaincodes")
    if not isinstance(raw, list | tuple):
        return None
    good = [entry for entry in raw if _parses("chaincodes", [entry])]
    try:
        return cls(chaincodes=good) if good else None
    except ConfigError:  # e.g. two with one name: reported already
        return None


def _parses(name: str, raw: Any) -> bool:
    try:
        KEYS[name].parse(raw)
    except ConfigError:
        return False
    return True


KEYS: dict[str, Key] = {f.name: f.metadata[_KEY] for f in dataclasses.fields(Config)}
_BY_KEY: dict[str, str] = {key.name.lower(): name for name, key in KEYS.items()}
_SECTIONS = {".".join(k.split(".")[:i]) for k in _BY_KEY for i in range(1, k.count(".") + 1)}


def _walk(data: Any) -> tuple[dict[str, Any], list[str], list[str]]:
    """Our keys in a parsed file (field -> raw value), found case-insensitively; the problems;
    the keys ignored (Fabric's that we do not use, and unknown ones not close to ours)."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    ignored: list[str] = []
    entries = 0

    def visit(node: Any, prefix: str) -> None:
        nonlocal entries
        if not isinstance(node, Mapping):
            where = prefix.rstrip(".") or "the file"
            raise ConfigError(f"{where}: expected a table, got {_kind(node)}")
        if prefix.count(".") >= MAX_NESTING:
            raise ConfigError(f"{prefix.rstrip('.')}: nested too deeply")
        for raw_key, value in node.items():
            entries += 1  # YAML aliases can make a small file a huge tree
            if entries > MAX_ENTRIES:
                raise ConfigError(f"more than {MAX_ENTRIES} entries: not a configuration")
            if not isinstance(raw_key, str):
                problems.append(f"{prefix}{_kind(raw_key)}: keys must be strings")
                continue
            key = f"{prefix}{raw_key}"
            lowered = key.lower()
            if lowered in _BY_KEY:
                if value is not None:  # an empty core.yaml value means unset, as in Viper
                    values[_BY_KEY[lowered]] = value
            elif isinstance(value, Mapping):
                visit(value, key + ".")
            elif lowered in _SECTIONS:
                problems.append(f"{key}: expected a table, got {_kind(value)}")
            elif is_fabric_key(lowered):
                ignored.append(key)
            else:
                close = difflib.get_close_matches(lowered, _BY_KEY, n=1, cutoff=0.85)
                if close:
                    name = KEYS[_BY_KEY[close[0]]].name
                    problems.append(f"unknown key {_kind(key)} (did you mean {name}?)")
                else:
                    ignored.append(key)

    visit(data, "")
    return values, problems, ignored


def _read_file(path: Path) -> Any:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"configuration {path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
        if path.suffix == ".json":
            parsed = json.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml  # only for YAML files: it is the slowest import of a CLI start

            try:
                parsed = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ValueError(str(exc)) from None
        else:
            parsed = tomllib.loads(text)
    except RecursionError:
        raise ConfigError(f"cannot parse configuration {path}: nested too deeply") from None
    except ValueError as exc:  # TOML and JSON errors are ValueErrors
        detail = " ".join(str(exc).split())
        raise ConfigError(f"cannot parse configuration {path}: {detail}") from None
    return {} if parsed is None else parsed


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """``CORE_CHAINCODE_EXECUTETIMEOUT=10s`` and so on; an empty variable is unset (Viper)."""
    return {
        name: env[key.env] for name, key in KEYS.items() if key.env is not None and env.get(key.env)
    }


def markdown_table() -> str:
    """The README's table of keys, derived from the declarations."""
    defaults = Config()
    lines = ["| key | default | |", "|---|---|---|"]
    for name, key in KEYS.items():
        shown = key.shown_default
        if shown is None:
            value = getattr(defaults, name)
            show = getattr(key.parse, "show", None)
            shown = show(value) if show is not None else str(value)
        lines.append(f"| `{key.name}` | {shown} | {key.doc} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
