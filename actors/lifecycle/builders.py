"""External builders and launchers, the built-in ``ccaas`` builder, and the package router.

Fabric counterpart: ``core/container/externalbuilder`` (``Detector``, ``Builder``,
``BuildContext``, ``Instance``, ``Untar``), ``ccaas_builder/cmd/{detect,build,release}`` and
``core/container`` ``Router`` (external builders first, Docker when none claims the package).
The behaviour follows reference/lifecycle.md §7-8:

* ``chaincode.externalBuilders`` entries (:class:`ExternalBuilder`): ``name``, absolute
  ``path`` (the parent of ``bin/``), ``propagateEnvironment`` (``environmentWhitelist`` when it is
  absent). Scripts see only those variables plus ``LD_LIBRARY_PATH``, ``LIBPATH``, ``PATH`` and
  ``TMPDIR``; their stdout is discarded and every stderr line is logged (and kept for errors).
* :meth:`Detector.build`: a build already persisted under ``<build_dir>/<sanitized ccid>/``
  (``build-info.json``, ``bld/``, ``release/``) is reused; otherwise a scratch directory
  ``$TMPDIR/fabric-<ccid>*`` gets ``src/`` (``code.tar.gz``, safely extracted), ``metadata/``
  (the original ``metadata.json`` bytes), ``bld/`` and ``release/``; ``bin/detect SOURCE
  METADATA`` of each builder in order, the first exit 0 wins; ``bin/build SOURCE METADATA
  OUTPUT``; ``bin/release BUILD RELEASE`` when present; then the result is persisted.
* :meth:`BuiltChaincode.start`: ``release/chaincode/server/connection.json`` present means
  chaincode-as-a-service (the peer dials it through :class:`actors.runtimes.external`);
  otherwise ``bin/run BUILD RUN_METADATA`` is a long-lived process the peer supervises, with
  ``RUN_METADATA/chaincode.json`` = ``chaincode_id``, ``peer_address``, ``client_cert``,
  ``client_key``, ``root_cert``, ``mspid``.
* The ``ccaas`` builder (:class:`CcaasBuilder`) is built in (Fabric ships it as
  ``/opt/hyperledger/ccaas_builder`` and its sample core.yaml lists it): it claims ``type: ccaas``
  packages and releases their ``connection.json``, rendering ``{{.key}}`` templates from the JSON
  object in ``CHAINCODE_AS_A_SERVICE_BUILDER_CONFIG``. It is consulted after the configured
  builders unless one of them is named ``ccaas_builder``.

Wiring (:mod:`actors.peer`): the peer's ``package`` runtime is one :class:`PackageRuntime`
sharing the peer's Docker and external runtimes; the install store calls
:meth:`PackageRuntime.check` before it keeps a package (detect, build and release run there, as
in Fabric), and an installed package is launched as a ``ChaincodeDefinition`` whose ``name`` is
the package id and ``package`` the stored file.

Package extraction here (:func:`safe_extract`) walks the archive with
:func:`actors.packaging.code_entries`: absolute and escaping paths, links and devices, and more
than ``max_size`` bytes once decompressed are refused before anything is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from actors.config import ChaincodeDefinition, ConfigError
from actors.lifecycle.platforms import check_platform, docker_platform, package_type
from actors.packaging import (
    METADATA,
    PackageError,
    PackageInfo,
    check_label,
    code_entries,
    read_package,
)
from actors.runtimes import Connect, ExitStatus, Instance
from actors.runtimes.external import ConnectionInfo, ExternalRuntime, connection_from_json
from actors.tls import ClientTLS

log = logging.getLogger(__name__)

DEFAULT_ENV_WHITELIST = ("LD_LIBRARY_PATH", "LIBPATH", "PATH", "TMPDIR")
CCAAS_BUILDER = "ccaas_builder"
CCAAS_CONFIG_ENV = "CHAINCODE_AS_A_SERVICE_BUILDER_CONFIG"
CONNECTION_PATH = Path("chaincode", "server", "connection.json")
DEFAULT_MAX_CODE_SIZE = 512 * 1024 * 1024  # decompressed bytes of one code.tar.gz
TERM_TIMEOUT = 5.0  # Fabric's Instance.TermTimeout
# detect/build/release are killed after this (chaincode.installTimeout; Fabric has no limit)
DEFAULT_SCRIPT_TIMEOUT = 300.0
LOG_LINES = 200
_CCID_PATH = re.compile(r'[<>:"/\\|?*&]')  # Fabric: pkgIDreg


class BuildError(RuntimeError):
    """A package could not be built (or its build could not be restored); says why."""


def sanitize_ccid_path(ccid: str) -> str:
    """Fabric's ``SanitizeCCIDPath``: ``<>:"/\\|?*&`` become ``-``."""
    return _CCID_PATH.sub("-", ccid)


# -- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExternalBuilder:
    """One ``chaincode.externalBuilders`` entry (a bad one is a :class:`ConfigError`)."""

    name: str
    path: str
    propagate_environment: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"external builder at path {self.path} has no name attribute")
        if not isinstance(self.path, str) or not self.path:
            raise ConfigError(
                "invalid external builder configuration, path attribute missing in one or more "
                "builders"
            )
        if not os.path.isabs(self.path):
            raise ConfigError(f"external builder {self.name}: path {self.path!r} must be absolute")
        names = tuple(self.propagate_environment)
        if not all(isinstance(n, str) and n for n in names):
            raise ConfigError(
                f"external builder {self.name}: propagateEnvironment must be a list of names"
            )
        object.__setattr__(self, "propagate_environment", names)

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> ExternalBuilder:
        """From core.yaml's keys (case-insensitive, as Fabric's viper reads them)."""
        if not isinstance(entry, Mapping):
            raise ConfigError(f"chaincode.externalBuilders: expected a table, got {entry!r}")
        keys = {str(k).lower(): v for k, v in entry.items()}
        unknown = set(keys) - {"name", "path", "propagateenvironment", "environmentwhitelist"}
        if unknown:
            raise ConfigError(f"chaincode.externalBuilders: unknown keys {sorted(unknown)}")
        env = keys.get("propagateenvironment")
        if env is None:
            env = keys.get("environmentwhitelist") or ()
        if not isinstance(env, list | tuple):
            raise ConfigError("chaincode.externalBuilders: propagateEnvironment must be a list")
        return cls(str(keys.get("name") or ""), str(keys.get("path") or ""), tuple(env))


def parse_builders(entries: Iterable[Mapping[str, Any]] | None) -> tuple[ExternalBuilder, ...]:
    """``chaincode.externalBuilders`` as configured; names must be unique."""
    builders = tuple(ExternalBuilder.from_config(e) for e in entries or ())
    names = [b.name for b in builders]
    if len(names) != len(set(names)):
        raise ConfigError(f"chaincode.externalBuilders: duplicate builder names {names}")
    return builders


# -- safe extraction ---------------------------------------------------------------------------


def safe_extract(code: bytes, dest: Path, max_size: int = DEFAULT_MAX_CODE_SIZE) -> None:
    """Extract a ``code.tar.gz`` into ``dest`` (Fabric's ``Untar``), each entry checked by
    :func:`actors.packaging.code_entries` before anything is written: directories and regular
    files only, no absolute or escaping names, at most ``max_size`` bytes in all."""
    dest = dest.resolve()
    try:
        for entry in code_entries(code, max_bytes=max_size):
            target = dest.joinpath(*entry.path.split("/")) if entry.path else dest
            if entry.member.isdir():
                target.mkdir(parents=True, exist_ok=True, mode=0o700)
                continue
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(target, "wb") as out:
                shutil.copyfileobj(entry.open(), out, 1 << 20)
            target.chmod(0o700 if entry.member.mode & 0o111 else 0o600)
    except PackageError as exc:
        raise BuildError(f"could not untar source package: {exc}") from None
    except OSError as exc:
        raise BuildError(f"could not untar source package: {exc}") from exc


def declared_size(code: bytes, max_size: int = DEFAULT_MAX_CODE_SIZE) -> int:
    """The decompressed size a ``code.tar.gz`` declares, refused beyond ``max_size`` as soon as
    a header says so (before Docker's ``ADD`` would unpack it into an image)."""
    try:
        return sum(entry.member.size for entry in code_entries(code, max_bytes=max_size))
    except PackageError as exc:
        raise BuildError(str(exc)) from None


# -- builders ----------------------------------------------------------------------------------


class Builder(Protocol):
    """What the detector runs; :class:`ScriptBuilder` and :class:`CcaasBuilder` are the two."""

    name: str

    def detect(self, source: Path, metadata: Path) -> bool: ...

    def build(self, source: Path, metadata: Path, output: Path) -> None: ...

    def release(self, build: Path, release: Path) -> None: ...

    def run(self, build: Path, run_config: RunConfig) -> BuilderInstance: ...


@dataclass(frozen=True)
class RunConfig:
    """``RUN_METADATA/chaincode.json`` (Fabric's ``runConfig``; key order kept)."""

    chaincode_id: str
    peer_address: str
    client_cert: str = ""
    client_key: str = ""
    root_cert: str = ""
    mspid: str = ""

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()


class _StderrPump:
    """Logs every stderr line of a builder script (Fabric logs them at INFO) and keeps the
    last ones for error messages."""

    def __init__(self, process: subprocess.Popen[bytes], logger: logging.Logger, what: str):
        self.tail: deque[str] = deque(maxlen=LOG_LINES)
        self._process = process
        self._logger = logger
        self._what = what
        self._thread = threading.Thread(target=self._pump, name=f"ccactors-{what}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self._process.stderr is not None
        for raw in self._process.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.tail.append(line)
            self._logger.info("%s command=%s", line, self._what)

    def join(self, timeout: float = 1.0) -> None:
        self._thread.join(timeout)

    def last(self, count: int = 10) -> str:
        lines = list(self.tail)[-count:]
        return "".join(f"\n  | {line}" for line in lines)


def _tmpdir() -> str | None:
    """$TMPDIR as it is now (Go's os.TempDir; Python's tempfile caches the first answer)."""
    return os.environ.get("TMPDIR") or None


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


class ScriptBuilder:
    """An external builder: the executables in ``<path>/bin``."""

    def __init__(self, config: ExternalBuilder, *, timeout: float | None = None) -> None:
        self.config = config
        self.name = config.name
        self.timeout = timeout
        self.logger = logging.getLogger(f"peer.chaincode.externalbuilder.{config.name}")

    def _script(self, name: str) -> Path:
        return Path(self.config.path, "bin", name)

    def environment(self) -> dict[str, str]:
        names = list(self.config.propagate_environment)
        names += [n for n in DEFAULT_ENV_WHITELIST if n not in names]
        return {n: os.environ[n] for n in names if n in os.environ}

    def _spawn(
        self, script: Path, *args: Path | str
    ) -> tuple[subprocess.Popen[bytes], _StderrPump]:
        process = subprocess.Popen(
            [str(script), *map(str, args)],
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its children go with it on a kill
        )
        return process, _StderrPump(process, self.logger, script.name)

    def _run_to_end(self, script: Path, *args: Path | str) -> tuple[int, str]:
        """Run a script to its end (killed after ``timeout``); (exit status, last stderr)."""
        process, pump = self._spawn(script, *args)
        try:
            code = process.wait(self.timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()
            pump.join()
            raise BuildError(
                f"external builder '{self.name}' {script.name} did not finish within "
                f"{self.timeout:g}s and was killed{pump.last()}"
            ) from None
        pump.join()
        return code, pump.last()

    def detect(self, source: Path, metadata: Path) -> bool:
        try:
            code, _ = self._run_to_end(self._script("detect"), source, metadata)
        except OSError as exc:  # missing or not executable: a decline, as in Fabric
            log.debug("builder '%s' detect failed: %s", self.name, exc)
            return False
        return code == 0

    def build(self, source: Path, metadata: Path, output: Path) -> None:
        try:
            code, tail = self._run_to_end(self._script("build"), source, metadata, output)
        except OSError as exc:
            raise BuildError(f"external builder '{self.name}' failed: {exc}") from exc
        if code != 0:
            raise BuildError(f"external builder '{self.name}' failed: exit status {code}{tail}")

    def release(self, build: Path, release: Path) -> None:
        script = self._script("release")
        if not script.exists():
            log.debug("skipping release step of builder '%s': no bin/release", self.name)
            return
        try:
            code, tail = self._run_to_end(script, build, release)
        except OSError as exc:
            raise BuildError(f"builder '{self.name}' release failed: {exc}") from exc
        if code != 0:
            raise BuildError(f"builder '{self.name}' release failed: exit status {code}{tail}")

    def run(self, build: Path, run_config: RunConfig) -> BuilderInstance:
        launch_dir = Path(tempfile.mkdtemp(prefix="fabric-run", dir=_tmpdir()))
        config_file = launch_dir / "chaincode.json"
        config_file.write_bytes(run_config.to_json())
        config_file.chmod(0o600)
        try:
            process, pump = self._spawn(self._script("run"), build, launch_dir)
        except OSError as exc:
            shutil.rmtree(launch_dir, ignore_errors=True)
            raise BuildError(f"builder '{self.name}' run failed to start: {exc}") from exc
        return BuilderInstance(run_config.chaincode_id, self.name, process, pump, launch_dir)


class BuilderInstance:
    """A running ``bin/run``: the chaincode's lifetime is the process's."""

    def __init__(
        self,
        chaincode: str,
        builder: str,
        process: subprocess.Popen[bytes],
        pump: _StderrPump,
        launch_dir: Path,
    ) -> None:
        self.chaincode = chaincode
        self.builder = builder
        self.process = process
        self._pump = pump
        self._launch_dir = launch_dir

    @property
    def log_tail(self) -> deque[str]:
        return self._pump.tail

    def last_lines(self, count: int = 10) -> list[str]:
        return list(self._pump.tail)[-count:]

    def _ended(self, returncode: int) -> ExitStatus:
        self._pump.join()
        shutil.rmtree(self._launch_dir, ignore_errors=True)  # the run metadata holds a key
        return ExitStatus.from_returncode(returncode)

    def wait(self) -> ExitStatus:
        return self._ended(self.process.wait())

    def exit_status(self, timeout: float = 0.0) -> ExitStatus | None:
        try:
            return self._ended(self.process.wait(timeout))
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = TERM_TIMEOUT) -> None:
        """SIGTERM, ``timeout`` of grace, SIGKILL (Fabric's ``Instance.Stop``), to the whole
        process group so that what ``run`` started goes too."""
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait(5)
        _signal_group(self.process, signal.SIGKILL)  # stragglers of a run that exited
        self._ended(self.process.wait())

    def describe(self) -> str:
        return f"builder '{self.builder}' run, pid {self.process.pid}"


# -- the built-in ccaas builder ------------------------------------------------------------------


_TEMPLATE = re.compile(r"\{\{(.*?)\}\}")
_TEMPLATE_KEY = re.compile(r"\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*")


def render_template(text: str, values: Mapping[str, Any], field_name: str) -> str:
    """The ``{{.key}}`` subset of Go's text/template with ``missingkey=error`` (what the ccaas
    builder's templates use); anything else in braces is an error, not copied through."""

    def substitute(match: re.Match[str]) -> str:
        key = _TEMPLATE_KEY.fullmatch(match.group(1))
        if key is None:
            raise BuildError(
                f"connection.json {field_name}: unsupported template {match.group(0)!r} "
                "(only {{.key}} is supported)"
            )
        if key.group(1) not in values:
            raise BuildError(
                f"connection.json {field_name}: map has no entry for key {key.group(1)!r} "
                f"(from {CCAAS_CONFIG_ENV})"
            )
        return str(values[key.group(1)])

    return _TEMPLATE.sub(substitute, text)


class CcaasBuilder:
    """Fabric's ``ccaas_builder`` (detect, build, release; no run), run in the peer."""

    name = CCAAS_BUILDER

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def _type(self, metadata: Path) -> str:
        try:
            return package_type((metadata / "metadata.json").read_bytes()).lower()
        except (OSError, ValueError):
            return ""

    def detect(self, source: Path, metadata: Path) -> bool:
        return self._type(metadata) == "ccaas"

    def _template_values(self) -> dict[str, Any]:
        environ = os.environ if self._environ is None else self._environ
        raw = environ.get(CCAAS_CONFIG_ENV, "")
        if not raw:
            return {}
        try:
            values = json.loads(raw)
        except ValueError as exc:
            raise BuildError(f"{CCAAS_CONFIG_ENV} is not valid JSON: {exc}") from None
        if not isinstance(values, dict):
            raise BuildError(f"{CCAAS_CONFIG_ENV} must be a JSON object")
        return values

    def build(self, source: Path, metadata: Path, output: Path) -> None:
        if self._type(metadata) != "ccaas":
            raise BuildError("ccaas builder: chaincode type is not ccaas")
        shutil.copytree(metadata, output, dirs_exist_ok=True)
        if (source / "META-INF").is_dir():
            shutil.copytree(source / "META-INF", output / "META-INF", dirs_exist_ok=True)
        connection = source / "connection.json"
        if not connection.is_file():
            raise BuildError("ccaas builder: connection.json not found at the top of code.tar.gz")
        try:
            data = json.loads(connection.read_bytes())
        except ValueError as exc:
            raise BuildError(f"ccaas builder: connection.json is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise BuildError("ccaas builder: connection.json must be a JSON object")
        for flag in ("tls_required", "client_auth_required"):
            if not isinstance(data.get(flag, False), bool):
                raise BuildError(f"ccaas builder: connection.json {flag} must be true or false")
        values = self._template_values()
        tls = data.get("tls_required") is True
        out: dict[str, Any] = {}
        for key in ("address", "dial_timeout", "root_cert", "client_key", "client_cert"):
            value = data.get(key, "")
            if key in ("root_cert", "client_key", "client_cert") and not tls:
                value = ""  # the Go builder blanks these without TLS
            if isinstance(value, str):
                value = render_template(value, values, key)
            out[key] = value
        out["tls_required"] = tls
        out["client_auth_required"] = data.get("client_auth_required") is True
        order = (
            "address",
            "dial_timeout",
            "tls_required",
            "client_auth_required",
            "root_cert",
            "client_key",
            "client_cert",
        )
        if "dial_timeout" not in data:
            # Fabric's builder writes "" here, which its peer then fails to parse at launch;
            # left out, the peer's default (3s) applies.
            order = tuple(k for k in order if k != "dial_timeout")
        released = json.dumps({k: out[k] for k in order})
        try:  # what the peer will read at launch, checked now (at install)
            connection_from_json(released, "ccaas builder: connection.json")
        except ConfigError as exc:
            raise BuildError(str(exc)) from None
        (output / "connection.json").write_text(released)

    def release(self, build: Path, release: Path) -> None:
        if (build / "META-INF" / "statedb").is_dir():
            shutil.copytree(build / "META-INF" / "statedb", release / "statedb")
        connection = build / "connection.json"
        if not connection.is_file():
            raise BuildError(f"connection.json not found in source folder: {build}")
        (release / CONNECTION_PATH).parent.mkdir(parents=True, mode=0o750, exist_ok=True)
        shutil.copyfile(connection, release / CONNECTION_PATH)

    def run(self, build: Path, run_config: RunConfig) -> BuilderInstance:
        raise BuildError("builder 'ccaas_builder' has no run step: its release names a service")


# -- detection, build and persistence ------------------------------------------------------------


@dataclass(frozen=True)
class BuiltChaincode:
    """A package built by an external builder, persisted under the build directory."""

    package_id: str
    builder: Builder
    bld_dir: Path
    release_dir: Path

    def connection(self) -> ConnectionInfo | None:
        """The service to dial, when the release names one (chaincode-as-a-service)."""
        path = self.release_dir / CONNECTION_PATH
        if not path.is_file():
            return None
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BuildError(f"cannot read {path}: {exc}") from exc
        return connection_from_json(data, f"malformed chaincode info at '{path}'")


class Detector:
    """Runs detect/build/release and keeps the results (Fabric's ``Detector``)."""

    def __init__(
        self,
        builders: Sequence[Builder],
        build_dir: str | os.PathLike[str] | None,
        *,
        max_code_size: int = DEFAULT_MAX_CODE_SIZE,
    ) -> None:
        """``build_dir`` None: a temporary directory, removed by :meth:`close`."""
        self.builders = list(builders)
        self._temporary = build_dir is None
        if build_dir is None:
            build_dir = tempfile.mkdtemp(prefix="ccactors-builds-")
        self.build_dir = Path(build_dir)
        self.max_code_size = max_code_size
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    @classmethod
    def configured(
        cls,
        builders: Iterable[ExternalBuilder],
        build_dir: str | os.PathLike[str] | None,
        *,
        timeout: float | None = DEFAULT_SCRIPT_TIMEOUT,
        max_code_size: int = DEFAULT_MAX_CODE_SIZE,
    ) -> Detector:
        """The configured builders in order, then the built-in ccaas builder (unless a
        configured one is called ``ccaas_builder``). A configured ``ccaas_builder`` without
        ``bin/detect`` (Fabric's sample core.yaml names ``/opt/hyperledger/ccaas_builder``,
        where Fabric's images ship the binaries) is the built-in one, at its place."""
        scripts: list[Builder] = []
        for config in builders:
            if config.name == CCAAS_BUILDER and not Path(config.path, "bin", "detect").exists():
                scripts.append(CcaasBuilder())
            else:
                scripts.append(ScriptBuilder(config, timeout=timeout))
        if not any(b.name == CCAAS_BUILDER for b in scripts):
            scripts.append(CcaasBuilder())
        return cls(scripts, build_dir, max_code_size=max_code_size)

    def close(self) -> None:
        if self._temporary:
            shutil.rmtree(self.build_dir, ignore_errors=True)

    def _lock(self, ccid: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(ccid, threading.Lock())

    def cached(self, ccid: str) -> BuiltChaincode | None:
        durable = self.build_dir / sanitize_ccid_path(ccid)
        if not durable.exists():
            return None
        info_path = durable / "build-info.json"
        try:
            name = json.loads(info_path.read_bytes())["builder_name"]
        except OSError as exc:
            raise BuildError(f"could not read '{info_path}' for build info: {exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise BuildError(f"malformed build info at '{info_path}': {exc}") from exc
        for builder in self.builders:
            if builder.name == name:
                return BuiltChaincode(ccid, builder, durable / "bld", durable / "release")
        raise BuildError(
            f"chaincode '{ccid}' was already built with builder '{name}', but that builder is "
            "no longer available"
        )

    def build(self, ccid: str, metadata: bytes, code: bytes) -> BuiltChaincode | None:
        """The build of ``ccid`` (reused, or made now), or None when no builder claims it."""
        if not self.builders:
            return None
        with self._lock(ccid):
            try:
                found = self.cached(ccid)
            except BuildError as exc:
                raise BuildError(f"existing build could not be restored: {exc}") from exc
            if found is not None:
                return found
            self.build_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
            scratch = Path(
                tempfile.mkdtemp(prefix=f"fabric-{sanitize_ccid_path(ccid)}", dir=_tmpdir())
            )
            try:
                return self._build(ccid, metadata, code, scratch)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)

    def _build(
        self, ccid: str, metadata: bytes, code: bytes, scratch: Path
    ) -> BuiltChaincode | None:
        source, meta, bld, release = (scratch / d for d in ("src", "metadata", "bld", "release"))
        for directory in (source, meta, bld, release):
            directory.mkdir(mode=0o700)
        try:
            safe_extract(code, source, self.max_code_size)
        except BuildError as exc:
            raise BuildError(f"could not create build context: {exc}") from exc
        (meta / "metadata.json").write_bytes(metadata)
        builder = next((b for b in self.builders if b.detect(source, meta)), None)
        if builder is None:
            log.debug("no external builder detected for %s", ccid)
            return None
        started = time.monotonic()
        try:
            builder.build(source, meta, bld)
        except BuildError as exc:
            raise BuildError(f"external builder failed to build: {exc}") from exc
        try:
            builder.release(bld, release)
        except BuildError as exc:
            raise BuildError(f"external builder failed to release: {exc}") from exc
        durable = self.build_dir / sanitize_ccid_path(ccid)
        try:
            durable.mkdir(mode=0o700)
            info = durable / "build-info.json"
            info.write_text(json.dumps({"builder_name": builder.name}))
            info.chmod(0o600)
            shutil.move(release, durable / "release")
            shutil.move(bld, durable / "bld")
        except OSError as exc:
            shutil.rmtree(durable, ignore_errors=True)
            raise BuildError(f"could not persist the build output in '{durable}': {exc}") from exc
        log.info(
            "external builder '%s' built %s in %.2f s",
            builder.name,
            ccid,
            time.monotonic() - started,
        )
        return BuiltChaincode(ccid, builder, durable / "bld", durable / "release")

    def remove(self, ccid: str) -> None:
        """Forget a build (the package was removed)."""
        with self._lock(ccid):
            shutil.rmtree(self.build_dir / sanitize_ccid_path(ccid), ignore_errors=True)


# -- the router: external builders first, then Docker ---------------------------------------------


@dataclass
class PackageRuntime:
    """Chaincode built from a package: Fabric's container ``Router``.

    ``prepare`` (at install, and before a start) runs the external builders and falls back to
    the Docker platforms (python, node) when none claims the package; ``start`` dials the
    service a release named, runs ``bin/run``, or starts the container. ``definition.package``
    is the package file; ``definition.name`` is the id the chaincode registers with (the
    package id when the lifecycle launches it).

    ``peer_address`` is what ``bin/run`` gets as ``peer_address`` (Fabric: the chaincode
    endpoint, ``peer.chaincodeAddress``; a run that starts chaincode elsewhere needs an address
    reachable from there). ``external`` dials services (give it the peer's message size and
    keepalive); ``msp_id`` and ``tls`` (a client certificate per launch) fill chaincode.json.
    """

    detector: Detector
    peer_address: Callable[[], str | None]
    external: ExternalRuntime = field(default_factory=ExternalRuntime)
    docker: Any = None  # actors.runtimes.docker.DockerRuntime; None: no Docker fallback
    msp_id: str = ""
    tls: Callable[[str], ClientTLS | None] = lambda ccid: None
    kind: str = "package"
    max_package_bytes: int = DEFAULT_MAX_CODE_SIZE
    _packages: dict[tuple[str, int, int], PackageInfo] = field(default_factory=dict)
    # package id -> its external build, or None when no builder claimed it (Fabric's build
    # registry: detect runs once per package in a peer's life, not at every launch)
    _claimed: dict[str, BuiltChaincode | None] = field(default_factory=dict)

    def package(self, definition: ChaincodeDefinition) -> PackageInfo:
        if not definition.package:
            raise BuildError(f"chaincode {definition.name}: no package configured")
        path = Path(definition.package)
        try:
            st = path.stat()
        except OSError as exc:
            raise BuildError(f"chaincode package {path} not found ({exc})") from exc
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        found = self._packages.get(key)
        if found is None:
            try:
                found = read_package(path, max_bytes=self.max_package_bytes)
            except PackageError as exc:
                raise BuildError(str(exc)) from None
            self._packages[key] = found
        return found

    def _external_build(self, package: PackageInfo) -> BuiltChaincode | None:
        if package.id not in self._claimed:
            self._claimed[package.id] = self.detector.build(
                package.id, package.metadata, package.code
            )
        return self._claimed[package.id]

    def check(self, package: PackageInfo) -> None:
        """At install (Fabric builds there too): the external builders' detect, build and
        release, or, when none claims the package, a platform that builds its type
        (:class:`BuildError`, :class:`~actors.lifecycle.platforms.PlatformError` naming it).
        A Docker image is built at the first launch, outside the startup window."""
        if self._external_build(package) is None:
            check_platform(package.metadata)

    def prepare(self, definition: ChaincodeDefinition) -> BuiltChaincode | str:
        """Build the package: its external build, or the Docker image name."""
        package = self.package(definition)
        built = self._external_build(package)
        if built is not None:
            return built
        docker_platform(package.metadata)  # PlatformError names a type nobody builds
        if self.docker is None:
            raise BuildError(
                f"no external builder claims package {package.id} and Docker builds are off"
            )
        return self.docker.build(definition)

    build = prepare  # what the VM controller calls before start (outside the startup window)

    def start(self, definition: ChaincodeDefinition, connect: Connect) -> Instance:
        built = self.prepare(definition)
        if not isinstance(built, BuiltChaincode):
            return self.docker.start(definition, connect)
        info = built.connection()
        if info is not None:
            return self.external.dial(definition.name, info, connect)
        address = self.peer_address()
        if not address:
            raise BuildError("no chaincode listener is running: call ChaincodeSupport.listen()")
        client_tls = self.tls(definition.name)
        run_config = RunConfig(
            chaincode_id=definition.name,
            peer_address=address,
            client_cert=client_tls.pair.cert_pem.decode() if client_tls else "",
            client_key=client_tls.pair.key_pem.decode() if client_tls else "",
            root_cert=client_tls.root_pem.decode() if client_tls else "",
            mspid=self.msp_id,
        )
        return built.builder.run(built.bld_dir, run_config)

    def close(self) -> None:
        self.detector.close()
        self.external.close()
        if self.docker is not None:
            self.docker.close()


def ccaas_package_bytes(label: str, connection: Mapping[str, Any]) -> bytes:
    """A Fabric ``ccaas`` package: ``metadata.json`` ``{"path":"","type":"ccaas","label":…}``
    and a ``code.tar.gz`` holding ``connection.json`` at its root (what fabric-samples make by
    hand with tar). Deterministic bytes, so the same connection gives the same package id."""

    def tar_gz(entries: list[tuple[str, bytes]]) -> bytes:
        raw = io.BytesIO()
        with (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
        ):
            for name, data in entries:
                entry = tarfile.TarInfo(name)
                entry.size, entry.mode = len(data), 0o644
                tar.addfile(entry, io.BytesIO(data))
        return raw.getvalue()

    check_label(label)
    code = tar_gz([("connection.json", json.dumps(dict(connection), indent=2).encode())])
    metadata = json.dumps({"path": "", "type": "ccaas", "label": label}).encode()
    return tar_gz([(METADATA, metadata), ("code.tar.gz", code)])
