"""Chaincode in Docker containers that dial the peer's gRPC chaincode listener.

Fabric counterpart: ``core/container/dockercontroller/dockercontroller.go`` (2.x). What matches
Fabric (reference/protocol.md §8.4):

* names: ``preFormat = network-peer-ccid``; the container name is preFormat with every character
  outside ``[a-zA-Z0-9_.-]`` replaced by ``-``; the image name is
  ``lowercase(sanitized + "-" + sha256hex(preFormat with ":" -> "-"))``. The image's ccid is the
  package id (``label:sha256``), so a changed package gets a new image; the container's is the
  chaincode name it registers as (``CORE_CHAINCODE_ID_NAME``; equal to the package id in Fabric);
* Build: inspect the image; when missing, ``docker build`` FROM the base image with the package's
  code, timed in ``dockercontroller_chaincode_container_build_duration{chaincode,success}``;
* Start: remove a stale container of the same name, create (Env, Cmd = args, HostConfig), attach
  the output to the logger ``peer.chaincode.<name>``, start; Stop = stop + force remove; Wait =
  the container's exit code;
* platforms (``actors.lifecycle.platforms``): ``python`` (ours, FROM the shim image) and
  ``node`` (Fabric's node platform: ``npm ci/install --omit=dev`` in a build container, the
  output ADDed to ``/usr/local/src``, ``npm start -- --peer.address ADDR``);
* ``vm.endpoint`` with ``vm.docker.tls.*`` (:class:`actors.images.EngineTLS`), and
  ``vm.docker.hostConfig`` (:func:`actors.config.parse_host_config`) over our defaults;
* env: ``CORE_CHAINCODE_ID_NAME``, logging, TLS files, ``CORE_PEER_LOCALMSPID``.

Additions: containers are hardened by default (:class:`Hardening`: memory, CPU, pids and
open-file limits, no capabilities, read-only root, non-root user) and sit on Docker's bridge
network rather than the host's (so they reach the chaincode listener but nothing the peer binds
to 127.0.0.1, such as the admin API); the tail of the output is kept for exit reports; the
chaincode image is rebuilt when the base image changed; a code package declaring more than
``max_code_size`` bytes is refused before Docker unpacks it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import os
import re
import shutil
import signal
import tarfile
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

from actors.config import ChaincodeDefinition, HostConfig, parse_host_config
from actors.images import (
    BASE_IMAGE,
    KIND_LABEL,
    NODE_IMAGE,
    DockerUnavailable,
    EngineTLS,
    docker_client,
    ensure_node_image,
    remove_image_quietly,
)
from actors.lifecycle.builders import DEFAULT_MAX_CODE_SIZE, BuildError, declared_size
from actors.lifecycle.platforms import (
    NODE,
    NODE_BUILD_SCRIPT,
    NODE_DOCKERFILE,
    PYTHON_DOCKERFILE,
    PlatformError,
    docker_platform,
)
from actors.packaging import PackageError, PackageInfo, code_entries, read_package
from actors.runtimes import Connect, ExitStatus
from actors.tls import ClientTLS

log = logging.getLogger(__name__)

TLS_DIR = "/etc/hyperledger/fabric"  # where Fabric puts a chaincode's TLS files

LOG_LINES = 200
CODE_DIR = "/chaincode"
SOURCE_DIR = f"{CODE_DIR}/src"
BASE_ID_LABEL = "ccactors.base-image-id"
CHAINCODE_LABEL = "ccactors.chaincode"
PACKAGE_LABEL = "ccactors.package-id"
PEER_LABEL = "ccactors.peer"
_VM_CHARS = re.compile(r"[^a-zA-Z0-9_.-]")  # Fabric: vmRegExp
_IMAGE_NAME = re.compile(r"^[a-z0-9]+(([._-][a-z0-9]+)+)?$")  # Fabric: imageRegExp
_LOOPBACK = ("127.0.0.1", "localhost", "0.0.0.0", "::1", "[::1]")

NETWORK_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
BUILD_CA_PATH = "/etc/ssl/certs/ccactors-build-ca.crt"
MAX_BUILD_OUTPUT = 1 << 30  # bytes of a node build's output (node_modules included)


class DockerRuntimeError(RuntimeError):
    """A Docker chaincode cannot be built or started; the message says why."""


def _engine_errors() -> tuple[type[Exception], ...]:
    """What a failing Docker call raises (imported late: the SDK costs ~50 ms to import)."""
    import docker.errors
    import requests.exceptions

    return (docker.errors.DockerException, requests.exceptions.RequestException)


# -- names (Fabric's rules) --------------------------------------------------------------------


def pre_format(ccid: str, network_id: str = "dev", peer_id: str = "peer0") -> str:
    return "-".join(part for part in (network_id, peer_id, ccid) if part)


def container_name(ccid: str, network_id: str = "dev", peer_id: str = "peer0") -> str:
    return _VM_CHARS.sub("-", pre_format(ccid, network_id, peer_id))


def image_name(ccid: str, network_id: str = "dev", peer_id: str = "peer0") -> str:
    # Pre-2.0 ccids used "-" as the separator, so ":" becomes "-" before hashing (Fabric).
    name = pre_format(ccid, network_id, peer_id).replace(":", "-")
    digest = hashlib.sha256(name.encode()).hexdigest()
    image = f"{_VM_CHARS.sub('-', name)}-{digest}".lower()
    if not _IMAGE_NAME.match(image):
        raise DockerRuntimeError(
            f"chaincode image name {image!r} (from {name!r}) is not a valid Docker repository name"
        )
    return image


# -- hardening ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hardening:
    """Container restrictions, all on by default; ``Hardening.off()`` for none.

    ``init`` runs Docker's tiny init as PID 1, which forwards SIGTERM to the shim and reaps it,
    so a stop does not wait its whole timeout.
    """

    user: str | None = "65534:65534"  # nobody:nogroup
    read_only: bool = True
    tmpfs: Mapping[str, str] = field(
        default_factory=lambda: {"/tmp": "rw,nosuid,nodev,noexec,size=64m"}
    )
    mem_limit: str | None = "512m"
    pids_limit: int | None = 256
    cpus: float | None = 1.0  # one CPU's worth of time, however many the host has
    nofile: int | None = 1024  # open file descriptors (soft and hard limit)
    cap_drop: tuple[str, ...] = ("ALL",)
    security_opt: tuple[str, ...] = ("no-new-privileges",)
    init: bool = True

    @classmethod
    def off(cls) -> Hardening:
        return cls(
            user=None,
            read_only=False,
            tmpfs={},
            mem_limit=None,
            pids_limit=None,
            cpus=None,
            nofile=None,
            cap_drop=(),
            security_opt=(),
            init=True,
        )

    def replace(self, **changes: Any) -> Hardening:
        return replace(self, **changes)

    def host_config(self) -> dict[str, Any]:
        """Keyword arguments for ``APIClient.create_host_config``."""
        config: dict[str, Any] = {"init": self.init, "read_only": self.read_only}
        if self.tmpfs:
            config["tmpfs"] = dict(self.tmpfs)
        if self.mem_limit:
            config["mem_limit"] = self.mem_limit
        if self.pids_limit:
            config["pids_limit"] = self.pids_limit
        if self.cpus:
            config["nano_cpus"] = int(self.cpus * 1e9)
        if self.nofile:
            config["ulimits"] = [{"name": "nofile", "soft": self.nofile, "hard": self.nofile}]
        if self.cap_drop:
            config["cap_drop"] = list(self.cap_drop)
        if self.security_opt:
            config["security_opt"] = list(self.security_opt)
        return config


# -- instances ---------------------------------------------------------------------------------


def exit_status_from_code(code: int | None) -> ExitStatus:
    """Docker reports death by signal N as 128 + N (137 = SIGKILL)."""
    if code is not None and 128 < code <= 128 + 64:
        try:
            return ExitStatus(signal=signal.Signals(code - 128).value)
        except ValueError:
            pass
    return ExitStatus(code=code)


class DockerInstance:
    """One chaincode container, the tail of its output and its exit status."""

    def __init__(
        self,
        client: Any,
        chaincode: str,
        container_id: str,
        name: str,
        image: str,
        tls_dir: str | None = None,
    ) -> None:
        self.chaincode = chaincode
        self._tls_dir = tls_dir
        self.container_id = container_id
        self.name = name
        self.image = image
        self.oom_killed = False
        self.log_tail: deque[str] = deque(maxlen=LOG_LINES)
        self._api = client.api
        self._status: ExitStatus | None = None
        self._exited = threading.Event()
        self._removed = False
        self._lock = threading.Lock()
        self._logs = threading.Thread(
            target=self._follow_logs, name=f"ccactors-dlog-{chaincode}", daemon=True
        )
        self._waiter = threading.Thread(
            target=self._wait_exit, name=f"ccactors-dwait-{chaincode}", daemon=True
        )
        self._logs.start()
        self._waiter.start()

    @property
    def short_id(self) -> str:
        return self.container_id[:12]

    def _follow_logs(self) -> None:
        logger = logging.getLogger(f"peer.chaincode.{self.chaincode}")
        pending = b""
        try:
            for chunk in self._api.logs(self.container_id, stream=True, follow=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._log_line(logger, raw)
        except Exception as exc:  # engine gone, client closed, container removed
            log.debug("log stream of %s ended: %s", self.name, exc)
        if pending:
            self._log_line(logger, pending)

    def _log_line(self, logger: logging.Logger, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip()
        self.log_tail.append(line)
        logger.info("%s", line)

    def _wait_exit(self) -> None:
        code: int | None = None
        try:
            code = self._api.wait(self.container_id)["StatusCode"]
            try:
                state = self._api.inspect_container(self.container_id)["State"]
                self.oom_killed = bool(state.get("OOMKilled"))
            except Exception:
                pass
        except Exception as exc:  # removed behind our back, or the engine went away
            log.warning("cannot get the exit code of container %s: %s", self.name, exc)
        status = exit_status_from_code(code)
        if self.oom_killed:
            self.log_tail.append("[ccactors] container killed by the OOM killer (memory limit)")
            log.warning("chaincode container %s was killed by the OOM killer", self.name)
        if not self._removed:  # it ended on its own: say how, with its last words
            self._logs.join(1)
            tail = "\n".join(f"  | {line}" for line in self.last_lines(10))
            log.log(
                logging.INFO if status == ExitStatus(code=0) else logging.WARNING,
                "chaincode container %s %s%s",
                self.name,
                status.describe(),
                "\n" + tail if tail else "",
            )
        self._status = status
        self._exited.set()

    def last_lines(self, count: int = 10) -> list[str]:
        return list(self.log_tail)[-count:]

    def wait(self) -> ExitStatus:
        self._exited.wait()
        self._logs.join(1)  # so the tail holds the last words
        self._remove_tls_files()
        assert self._status is not None
        return self._status

    def exit_status(self, timeout: float = 0.0) -> ExitStatus | None:
        return self._status if self._exited.wait(timeout) else None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (through the init) and SIGKILL after ``timeout``, then remove."""
        import docker.errors

        with self._lock:
            if self._removed:
                return
            self._removed = True
        if not self._exited.is_set():
            try:
                self._api.stop(self.container_id, timeout=max(0, math.ceil(timeout)))
            except docker.errors.NotFound:
                pass
            except Exception as exc:
                log.warning("stopping container %s failed: %s", self.name, exc)
        # Let the waiter read the exit code before the container disappears.
        self._exited.wait(min(timeout, 5.0) + 5.0)
        with contextlib.suppress(docker.errors.NotFound):
            self._api.remove_container(self.container_id, force=True)
        self._remove_tls_files()

    def _remove_tls_files(self) -> None:
        # The chaincode's private key: gone with its container, whoever notices first (the
        # waiter thread, or a stop that must not return before it is gone).
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)

    def kill(self, sig: str | int = "SIGKILL") -> None:
        """Fault injection: signal the container (default SIGKILL, like ``docker kill``)."""
        self._api.kill(self.container_id, signal=sig)

    def inspect(self) -> dict[str, Any]:
        return self._api.inspect_container(self.container_id)

    def describe(self) -> str:
        return f"container {self.short_id} ({self.name})"


# -- the runtime -------------------------------------------------------------------------------


class DockerRuntime:
    """Builds chaincode images from packages and runs them as hardened containers."""

    kind = "docker"

    def __init__(
        self,
        peer_address: Callable[[], str | None],
        endpoint: str | None = None,
        base_image: str = BASE_IMAGE,
        *,
        network_mode: str = "bridge",
        peer_id: str = "peer0",
        network_id: str = "dev",
        hardening: Hardening | None = None,
        peer_host: str | None = None,
        logging_level: str = "info",
        shim_logging_level: str = "warning",
        logging_format: str | None = None,
        msp_id: str | None = None,
        host_config: HostConfig | Mapping[str, Any] | None = None,
        engine_tls: EngineTLS | None = None,
        node_image: str = NODE_IMAGE,
        node_install: str = "container",
        build_ca_bundle: str | None = HOST_CA_BUNDLE,
        build_timeout: float = 300.0,
        max_code_size: int = DEFAULT_MAX_CODE_SIZE,
        registry: CollectorRegistry | None = None,
        on_build: Callable[[str, bool, float], None] | None = None,
        tls: Callable[[str], ClientTLS | None] | None = None,
    ) -> None:
        """``network_mode``: ``bridge`` (default; the container dials the bridge's gateway, or
        ``peer_host``; the listener must listen on 0.0.0.0 or that address, and a peer port
        bound to 127.0.0.1, such as the admin API's, is out of the container's reach), ``host``
        (the container shares the host's network and dials 127.0.0.1), or the name of a
        user-defined Docker network. ``host_config`` is Fabric's ``vm.docker.hostConfig``
        (its table, or the config's :class:`~actors.config.HostConfig`); where it sets a key,
        it overrides ``hardening`` and ``network_mode``.
        ``engine_tls``: Fabric's ``vm.docker.tls`` for a ``tcp://`` ``endpoint``.

        Node packages: ``node_install="container"`` runs ``npm install`` in a build container
        (Fabric's way; it must reach the npm registry, trusting ``build_ca_bundle``, which is
        mounted into it and named by ``NODE_EXTRA_CA_CERTS``), ``"host"`` runs it with this
        machine's npm and copies the result in. ``on_build(chaincode, success, seconds)``
        observes every image build (Fabric's ``chaincode_container_build_duration``)."""
        if node_install not in ("container", "host"):
            raise ValueError(f"node_install must be 'container' or 'host', got {node_install!r}")
        self._peer_address = peer_address
        self.endpoint = endpoint
        self.engine_tls = engine_tls
        self.base_image = base_image
        self.node_image = node_image
        self.node_install = node_install
        self.build_ca_bundle = build_ca_bundle
        self.build_timeout = build_timeout
        self.max_code_size = max_code_size
        self.peer_id = peer_id
        self.network_id = network_id
        self.hardening = hardening if hardening is not None else Hardening()
        self.peer_host = peer_host
        self.logging_level = logging_level
        self.shim_logging_level = shim_logging_level
        self.logging_format = logging_format
        self.msp_id = msp_id
        # Fabric's table as it is, or the config's parsed HostConfig
        self.fabric_host_config = parse_host_config(host_config).docker_kwargs()
        self.network_mode = self.fabric_host_config.get("network_mode", network_mode)
        if self.network_mode == "none" or not NETWORK_NAME.fullmatch(self.network_mode):
            raise ValueError(
                f"network mode must be 'bridge', 'host' or a Docker network name, got "
                f"{self.network_mode!r} (chaincode must reach the peer)"
            )
        self._tls = tls or (lambda ccid: None)
        self.registry = registry or CollectorRegistry()
        self.build_duration = Histogram(
            "dockercontroller_chaincode_container_build_duration",
            "The time to build a chaincode container image in seconds.",
            ["chaincode", "success"],
            registry=self.registry,
        )
        self._on_build = on_build
        self.last_build_seconds: dict[str, float] = {}
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._build_locks: dict[str, threading.Lock] = {}
        self._gateways: dict[str, str] = {}
        self._reachable: set[str] = set()
        self._packages: dict[tuple[str, int, int], PackageInfo] = {}
        self._latest: dict[str, DockerInstance] = {}

    def instance(self, chaincode: str) -> DockerInstance | None:
        """The most recently started instance of ``chaincode`` (running or not)."""
        return self._latest.get(chaincode)

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The docker client, made on first use (so a peer without Docker still starts)."""
        with self._client_lock:
            if self._client is None:
                try:
                    self._client = docker_client(self.endpoint, tls=self.engine_tls)
                except DockerUnavailable as exc:
                    raise DockerRuntimeError(str(exc)) from exc
            return self._client

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def package(self, definition: ChaincodeDefinition) -> PackageInfo:
        if not definition.package:
            raise DockerRuntimeError(f"chaincode {definition.name}: no package configured")
        path = Path(definition.package)
        try:
            st = path.stat()
        except OSError as exc:
            raise DockerRuntimeError(
                f"chaincode {definition.name}: chaincode package {path} not found ({exc})"
            ) from exc
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        info = self._packages.get(key)
        if info is None:
            try:
                info = read_package(path)
                docker_platform({"type": info.type})
                declared_size(info.code, self.max_code_size)
            except (PackageError, PlatformError, BuildError) as exc:
                raise DockerRuntimeError(f"chaincode {definition.name}: {exc}") from exc
            self._packages[key] = info
        return info

    def names(self, definition: ChaincodeDefinition, info: PackageInfo) -> tuple[str, str]:
        """(container name, image name) per Fabric's rules: both from the ccid. The container
        is named for the id the chaincode registers with (the package id when the lifecycle
        launches it), the image for the package id (a changed package, a new image)."""
        return (
            container_name(definition.name, self.network_id, self.peer_id),
            image_name(info.id, self.network_id, self.peer_id),
        )

    def host_config(self) -> dict[str, Any]:
        """``create_host_config`` arguments of a chaincode container: the hardened defaults,
        the network, then ``vm.docker.hostConfig`` where it sets a key."""
        config = {"network_mode": self.network_mode, **self.hardening.host_config()}
        config.update(self.fabric_host_config)
        return config

    def _dial_address(self, address: str) -> str:
        """The listener's address as seen from a container on this runtime's network."""
        if self.network_mode == "host":
            return address
        host, _, port = address.rpartition(":")
        if self.peer_host:
            return f"{self.peer_host}:{port}"
        if host not in _LOOPBACK:
            return address
        dial = f"{self._gateway(self.network_mode)}:{port}"
        self._check_reachable(address, dial)
        return dial

    def gateway(self) -> str:
        """The host's address on this runtime's Docker network (e.g. 172.17.0.1)."""
        return self._gateway(self.network_mode)

    def _gateway(self, network: str) -> str:
        if network not in self._gateways:
            import ipaddress

            import docker.errors

            try:
                attrs = self.client.api.inspect_network(network)
            except docker.errors.NotFound:
                raise DockerRuntimeError(
                    f"Docker network {network!r} does not exist (docker network create {network})"
                ) from None
            for config in (attrs.get("IPAM") or {}).get("Config") or []:
                if config.get("Gateway"):
                    self._gateways[network] = config["Gateway"].split("/")[0]
                    break
                if config.get("Subnet"):
                    subnet = ipaddress.ip_network(config["Subnet"])
                    self._gateways[network] = str(next(subnet.hosts()))
                    break
            else:
                raise DockerRuntimeError(f"cannot find the gateway of Docker network {network!r}")
        return self._gateways[network]

    def _check_reachable(self, listen: str, dial: str) -> None:
        """A listener bound to 127.0.0.1 cannot be reached from a bridge: say so at once
        rather than let the launch run into its startup timeout."""
        if dial in self._reachable:
            return
        import socket

        host, _, port = dial.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
        except OSError as exc:
            raise DockerRuntimeError(
                f"containers on Docker network {self.network_mode!r} would dial the chaincode "
                f"listener at {dial}, but it does not answer there ({exc}): the listener "
                f"({listen}) must listen on 0.0.0.0 or {host} (peer.chaincodeListenAddress), "
                "or use network mode 'host'"
            ) from None
        self._reachable.add(dial)

    # -- build (Fabric's DockerVM.Build) -----------------------------------------------------

    def build(self, definition: ChaincodeDefinition) -> str:
        """Make sure the chaincode's image exists (building it when missing or when the base
        image changed); returns the image name. ``start`` calls it; a launcher may call it
        ahead so the startup timeout does not include the build."""
        import docker.errors

        info = self.package(definition)
        _, image = self.names(definition, info)
        client = self.client
        node = info.type.lower() == NODE
        base_name = self.node_image if node else self.base_image
        try:
            if node:
                base = ensure_node_image(client, self.node_image)
            else:
                base = client.images.get(self.base_image)
        except docker.errors.ImageNotFound:
            raise DockerRuntimeError(
                f"base image {self.base_image} is missing: build it with `ccactors images build` "
                "(or `bash tools/ensure_docker.sh`)"
            ) from None
        except _engine_errors() as exc:
            raise DockerRuntimeError(f"Docker engine error: {exc}") from exc
        except Exception as exc:  # the Node image's mmdebstrap or import failed
            raise DockerRuntimeError(f"cannot build the base image {base_name}: {exc}") from exc
        lock = self._build_locks.setdefault(image, threading.Lock())
        with lock:
            previous = None
            try:
                attrs = client.api.inspect_image(image)
                labels = (attrs.get("Config") or {}).get("Labels") or {}
                if labels.get(BASE_ID_LABEL) == base.id:
                    return image
                log.info("image %s was built FROM an older %s: rebuilding", image, base_name)
                previous = attrs["Id"]
            except docker.errors.ImageNotFound:
                pass
            self._timed_build(definition, info, image, base_name, base.id)
            if previous is not None:
                remove_image_quietly(client, previous)
        return image

    def _timed_build(
        self,
        definition: ChaincodeDefinition,
        info: PackageInfo,
        image: str,
        base_name: str,
        base_id: str,
    ) -> None:
        started = time.monotonic()
        success = False
        try:
            if info.type.lower() == NODE:
                files = {
                    "Dockerfile": NODE_DOCKERFILE.format(base=base_name).encode(),
                    "binpackage.tar": self._node_binpackage(definition, info),
                }
            else:
                dockerfile = PYTHON_DOCKERFILE.format(
                    base=base_name,
                    code_dir=CODE_DIR,
                    source_dir=SOURCE_DIR,
                    target=definition.target or info.target,
                )
                files = {"Dockerfile": dockerfile.encode(), "code.tar.gz": info.code}
            self._build_image(definition, info, image, base_id, files)
            success = True
        finally:
            elapsed = time.monotonic() - started
            self.build_duration.labels(definition.name, str(success).lower()).observe(elapsed)
            if self._on_build is not None:
                self._on_build(definition.name, success, elapsed)
            self.last_build_seconds[definition.name] = elapsed
        log.info("built image %s for chaincode %s in %.2f s", image, definition.name, elapsed)

    def _build_image(
        self,
        definition: ChaincodeDefinition,
        info: PackageInfo,
        image: str,
        base_id: str,
        files: Mapping[str, bytes],
    ) -> None:
        import docker.errors

        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            for name, data in files.items():
                entry = tarfile.TarInfo(name)
                entry.size = len(data)
                entry.mode = 0o644
                tar.addfile(entry, io.BytesIO(data))
        context.seek(0)
        labels = {
            KIND_LABEL: "chaincode",
            CHAINCODE_LABEL: definition.name,
            PACKAGE_LABEL: info.id,
            PEER_LABEL: self.peer_id,
            BASE_ID_LABEL: base_id,
        }
        try:
            self.client.images.build(
                fileobj=context,
                custom_context=True,
                tag=image,
                labels=labels,
                rm=True,
                forcerm=True,
                pull=False,
            )
        except docker.errors.BuildError as exc:
            output = "".join(str(item.get("stream", "")) for item in exc.build_log)
            raise DockerRuntimeError(
                f"building the image of chaincode {definition.name} failed: {exc}\n{output[-2000:]}"
            ) from exc
        except _engine_errors() as exc:
            raise DockerRuntimeError(
                f"building the image of chaincode {definition.name} failed: {exc}"
            ) from exc

    # -- node: Fabric's platforms/node build step ---------------------------------------------

    def _node_binpackage(self, definition: ChaincodeDefinition, info: PackageInfo) -> bytes:
        """The package's ``src/`` with its production dependencies installed, as a tar."""
        if self.node_install == "host":
            return _node_install_on_host(definition.name, info.code, self.build_timeout)
        return self._node_install_in_container(definition, info)

    def _node_install_in_container(
        self, definition: ChaincodeDefinition, info: PackageInfo
    ) -> bytes:
        import docker.errors

        api = self.client.api
        env = {
            "HOME": "/tmp",
            "npm_config_cache": "/tmp/.npm",
            "npm_config_update_notifier": "false",
        }
        for name in ("npm_config_registry", "NPM_CONFIG_REGISTRY"):
            if os.environ.get(name):
                env["npm_config_registry"] = os.environ[name]
        host_config: dict[str, Any] = {
            "network_mode": self.network_mode,
            "mem_limit": self.hardening.mem_limit or None,
            "pids_limit": 1024,
        }
        if self.build_ca_bundle and Path(self.build_ca_bundle).is_file():
            # npm trusts its own CA list only; a TLS-inspecting proxy's CA must be added.
            host_config["binds"] = {self.build_ca_bundle: {"bind": BUILD_CA_PATH, "mode": "ro"}}
            env["NODE_EXTRA_CA_CERTS"] = BUILD_CA_PATH
        script = NODE_BUILD_SCRIPT + "cd /chaincode/output && tar cf /chaincode/binpackage.tar .\n"
        container = api.create_container(
            self.node_image,
            command=["/bin/sh", "-c", "mkdir -p /chaincode/output && " + script],
            environment=env,
            labels={PEER_LABEL: self.peer_id, CHAINCODE_LABEL: definition.name},
            host_config=api.create_host_config(**{k: v for k, v in host_config.items() if v}),
        )["Id"]
        try:
            api.put_archive(container, "/", _under("chaincode/input", info.code))
            api.start(container)
            try:
                code = api.wait(container, timeout=self.build_timeout)["StatusCode"]
            except Exception as exc:
                raise DockerRuntimeError(
                    f"the node build of chaincode {definition.name} did not finish within "
                    f"{self.build_timeout:g}s: {exc}"
                ) from exc
            output = api.logs(container).decode("utf-8", "replace")
            if code != 0:
                hint = ""
                if "SELF_SIGNED_CERT" in output or "UNABLE_TO_GET_ISSUER" in output:
                    hint = (
                        "\n(npm does not trust the registry's certificate: set the build CA "
                        "bundle, or install dependencies on the host: node_install='host')"
                    )
                raise DockerRuntimeError(
                    f'Error returned from build: {code} "{output[-3000:]}"{hint}'
                )
            stream, _ = api.get_archive(container, "/chaincode/binpackage.tar")
            return _single_file_from_tar(b"".join(stream), "binpackage.tar")
        finally:
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(container, force=True)

    # -- start (Fabric's DockerVM.Start) -----------------------------------------------------

    def environment(self, definition: ChaincodeDefinition, info: PackageInfo, address: str):
        env = {
            "CORE_CHAINCODE_ID_NAME": definition.name,
            "CORE_PEER_ADDRESS": address,
            "CORE_PEER_TLS_ENABLED": "false",
            "CORE_CHAINCODE_LOGGING_LEVEL": self.logging_level,
            "CORE_CHAINCODE_LOGGING_SHIM": self.shim_logging_level,
        }
        if info.type.lower() != NODE:
            env["CORE_CHAINCODE_TARGET"] = definition.target or info.target
        if self.logging_format:
            env["CORE_CHAINCODE_LOGGING_FORMAT"] = self.logging_format
        if self.msp_id:
            env["CORE_PEER_LOCALMSPID"] = self.msp_id
        env.update(definition.env)
        return env

    def _tls_files(
        self, ccid: str, environment: dict[str, str], host_config: dict[str, Any]
    ) -> str | None:
        """With TLS on: this launch's client certificate and the peer's root, in a private
        host directory mounted read-only where Fabric puts them (/etc/hyperledger/fabric; the
        root filesystem is read-only, so they cannot be copied in as Fabric does)."""
        client_tls = self._tls(ccid)
        if client_tls is None:
            return None
        # no ":" (a package id has one): Docker's bind syntax splits on it
        tls_dir = tempfile.mkdtemp(prefix=f"ccactors-tls-{_VM_CHARS.sub('-', ccid)}-")
        variables = client_tls.write_files(Path(tls_dir))
        if os.geteuid() == 0 and self.hardening.user:
            uid, _, gid = self.hardening.user.partition(":")
            for path in [tls_dir, *Path(tls_dir).iterdir()]:
                os.chown(path, int(uid), int(gid or uid))
        environment.update(
            {key: value.replace(tls_dir, TLS_DIR) for key, value in variables.items()}
        )
        if self.network_mode != "host":  # the gateway address is not in the peer's cert
            environment["CORE_PEER_TLS_SERVERHOSTOVERRIDE"] = "localhost"
        host_config["binds"] = {tls_dir: {"bind": TLS_DIR, "mode": "ro"}}
        return tls_dir

    def start(self, definition: ChaincodeDefinition, connect: Connect) -> DockerInstance:
        import docker.errors

        listen = self._peer_address()
        if not listen:
            raise DockerRuntimeError(
                "no chaincode listener is running: call ChaincodeSupport.listen() first"
            )
        image = self.build(definition)
        info = self.package(definition)
        name, _ = self.names(definition, info)
        address = self._dial_address(listen)
        api = self.client.api
        host_config = self.host_config()
        environment = self.environment(definition, info, address)
        tls_dir = self._tls_files(definition.name, environment, host_config)
        platform = docker_platform({"type": info.type})
        create = dict(
            image=image,
            command=platform.command(address, definition.target or info.target),
            name=name,
            environment=environment,
            labels={
                CHAINCODE_LABEL: definition.name,
                PACKAGE_LABEL: info.id,
                PEER_LABEL: self.peer_id,
            },
            host_config=api.create_host_config(**host_config),
            user=self.hardening.user or "",
            detach=True,
        )
        try:
            try:
                container_id = api.create_container(**create)["Id"]
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: a container of that name exists
                    raise
                log.info("removing stale container %s", name)
                api.remove_container(name, force=True)
                container_id = api.create_container(**create)["Id"]
            try:
                api.start(container_id)
            except Exception:
                api.remove_container(container_id, force=True)
                raise
        except _engine_errors() as exc:
            if tls_dir is not None:
                shutil.rmtree(tls_dir, ignore_errors=True)
            raise DockerRuntimeError(
                f"cannot start a container for chaincode {definition.name}: {exc}"
            ) from exc
        log.info("started container %s (%s) for %s", container_id[:12], name, definition.name)
        instance = DockerInstance(
            self.client, definition.name, container_id, name, image, tls_dir=tls_dir
        )
        self._latest[definition.name] = instance
        return instance


# -- tar helpers for the node build -----------------------------------------------------------


def _under(prefix: str, code: bytes, max_size: int = MAX_BUILD_OUTPUT) -> bytes:
    """The entries of ``code.tar.gz`` re-rooted under ``prefix`` as a plain tar (what
    ``put_archive`` to / extracts to /chaincode/input); each checked by
    :func:`actors.packaging.code_entries` (files and directories with safe names, at most
    ``max_size`` bytes)."""
    out = io.BytesIO()
    try:
        with tarfile.open(fileobj=out, mode="w") as target:
            for entry in code_entries(code, max_bytes=max_size):
                member = entry.member
                member.name = f"{prefix}/{entry.path}" if entry.path else prefix
                member.uid = member.gid = 0
                member.mode = (member.mode & 0o755) | (0o755 if member.isdir() else 0o644)
                target.addfile(member, entry.open() if member.isfile() else None)
    except PackageError as exc:
        raise DockerRuntimeError(str(exc)) from None
    return out.getvalue()


def _single_file_from_tar(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.getmember(name)
        extracted = tar.extractfile(member)
        if extracted is None:
            raise DockerRuntimeError(f"{name} is missing from the build output")
        return extracted.read()


def _node_install_on_host(chaincode: str, code: bytes, timeout: float) -> bytes:
    """``npm install --omit=dev`` with this machine's npm (for a container that cannot reach
    the registry), then the result as a tar."""
    import subprocess

    from actors.lifecycle.builders import safe_extract

    npm = shutil.which("npm")
    if npm is None:
        raise DockerRuntimeError(
            "node_install='host' needs npm on this machine (install Node.js and npm)"
        )
    with tempfile.TemporaryDirectory(prefix="ccactors-node-") as tmp:
        root = Path(tmp, "input")
        root.mkdir()
        try:
            safe_extract(code, root, MAX_BUILD_OUTPUT)
        except BuildError as exc:
            raise DockerRuntimeError(str(exc)) from exc
        source = root / "src"
        if not (source / "package.json").is_file():
            raise DockerRuntimeError(
                f"chaincode {chaincode}: a node package needs src/package.json in code.tar.gz"
            )
        lock = (source / "package-lock.json").is_file()
        command = [npm, "ci" if lock else "install", "--omit=dev", "--no-audit", "--no-fund"]
        try:
            result = subprocess.run(
                command, cwd=source, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise DockerRuntimeError(f"npm install did not finish within {timeout:g}s") from None
        if result.returncode != 0:
            raise DockerRuntimeError(
                f'Error returned from build: {result.returncode} "{result.stderr[-3000:]}"'
            )
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            tar.add(source, arcname=".", filter=_owned_by_root)
        return out.getvalue()


def _owned_by_root(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if member.issym() or member.islnk():
        # npm links package binaries under node_modules/.bin; they stay inside the tree.
        target = Path(member.name).parent / member.linkname
        if Path(member.linkname).is_absolute() or ".." in Path(os.path.normpath(target)).parts:
            return None
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    # extracted privately (0600/0700) on the host; the container's user must read it all
    executable = member.isdir() or member.mode & 0o111
    member.mode = 0o755 if executable else 0o644
    return member
