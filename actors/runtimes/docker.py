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
  the container's exit code.

Additions: containers are hardened by default (:class:`Hardening`), the tail of the output is
kept for exit reports, and the chaincode image is rebuilt when the base image changed.
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

from actors.config import ChaincodeDefinition
from actors.images import (
    BASE_IMAGE,
    KIND_LABEL,
    DockerUnavailable,
    docker_client,
    remove_image_quietly,
)
from actors.packaging import PackageError, PackageInfo, read_package
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

CHAINCODE_DOCKERFILE = """\
FROM {base}
ADD code.tar.gz {code_dir}/
RUN ["python3", "-m", "compileall", "-q", "{source_dir}"]
ENV CORE_CHAINCODE_TARGET={target} PYTHONPATH={source_dir}${{PYTHONPATH:+:$PYTHONPATH}}
WORKDIR {source_dir}
CMD ["python3", "-m", "actors.shim"]
"""


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
    cpus: float | None = None
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
        network_mode: str = "host",
        peer_id: str = "peer0",
        network_id: str = "dev",
        hardening: Hardening | None = None,
        peer_host: str | None = None,
        logging_level: str = "info",
        shim_logging_level: str = "warning",
        logging_format: str | None = None,
        msp_id: str | None = None,
        host_config: Mapping[str, Any] | None = None,
        registry: CollectorRegistry | None = None,
        tls: Callable[[str], ClientTLS | None] | None = None,
    ) -> None:
        """``network_mode``: ``host`` (the container dials the listener's 127.0.0.1:port) or
        ``bridge`` (it dials the bridge gateway, or ``peer_host``; the listener must then listen
        on 0.0.0.0). ``host_config`` adds or overrides raw HostConfig arguments."""
        if network_mode not in ("host", "bridge"):
            raise ValueError(f"network_mode must be 'host' or 'bridge', got {network_mode!r}")
        self._peer_address = peer_address
        self.endpoint = endpoint
        self.base_image = base_image
        self.network_mode = network_mode
        self.peer_id = peer_id
        self.network_id = network_id
        self.hardening = hardening if hardening is not None else Hardening()
        self.peer_host = peer_host
        self.logging_level = logging_level
        self.shim_logging_level = shim_logging_level
        self.logging_format = logging_format
        self.msp_id = msp_id
        self.extra_host_config = dict(host_config or {})
        self._tls = tls or (lambda ccid: None)
        self.registry = registry or CollectorRegistry()
        self.build_duration = Histogram(
            "dockercontroller_chaincode_container_build_duration",
            "The time to build a chaincode container image in seconds.",
            ["chaincode", "success"],
            registry=self.registry,
        )
        self.last_build_seconds: dict[str, float] = {}
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._build_locks: dict[str, threading.Lock] = {}
        self._gateway: str | None = None
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
                    self._client = docker_client(self.endpoint)
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
            except PackageError as exc:
                raise DockerRuntimeError(f"chaincode {definition.name}: {exc}") from exc
            if info.type.lower() != "python":
                raise DockerRuntimeError(
                    f"chaincode {definition.name}: package type {info.type!r} is not supported "
                    "by the docker runtime (it runs 'python' packages)"
                )
            self._packages[key] = info
        return info

    def names(self, definition: ChaincodeDefinition, info: PackageInfo) -> tuple[str, str]:
        """(container name, image name) per Fabric's rules."""
        return (
            container_name(definition.name, self.network_id, self.peer_id),
            image_name(info.id, self.network_id, self.peer_id),
        )

    def _dial_address(self, address: str) -> str:
        if self.network_mode == "host":
            return address
        host, _, port = address.rpartition(":")
        if self.peer_host:
            return f"{self.peer_host}:{port}"
        if host not in _LOOPBACK:
            return address
        return f"{self._bridge_gateway()}:{port}"

    def _bridge_gateway(self) -> str:
        if self._gateway is None:
            import ipaddress

            configs = self.client.api.inspect_network("bridge").get("IPAM", {}).get("Config") or []
            for config in configs:
                if config.get("Gateway"):
                    self._gateway = config["Gateway"].split("/")[0]
                    break
                if config.get("Subnet"):
                    self._gateway = str(next(ipaddress.ip_network(config["Subnet"]).hosts()))
                    break
            else:
                raise DockerRuntimeError("cannot find the gateway of Docker's bridge network")
        return self._gateway

    # -- build (Fabric's DockerVM.Build) -----------------------------------------------------

    def build(self, definition: ChaincodeDefinition) -> str:
        """Make sure the chaincode's image exists (building it when missing or when the base
        image changed); returns the image name. ``start`` calls it; a launcher may call it
        ahead so the startup timeout does not include the build."""
        import docker.errors

        info = self.package(definition)
        _, image = self.names(definition, info)
        client = self.client
        try:
            base = client.images.get(self.base_image)
        except docker.errors.ImageNotFound:
            raise DockerRuntimeError(
                f"base image {self.base_image} is missing: build it with `ccactors images build` "
                "(or `bash tools/ensure_docker.sh`)"
            ) from None
        except _engine_errors() as exc:
            raise DockerRuntimeError(f"Docker engine error: {exc}") from exc
        lock = self._build_locks.setdefault(image, threading.Lock())
        with lock:
            previous = None
            try:
                attrs = client.api.inspect_image(image)
                labels = (attrs.get("Config") or {}).get("Labels") or {}
                if labels.get(BASE_ID_LABEL) == base.id:
                    return image
                log.info("image %s was built FROM an older %s: rebuilding", image, self.base_image)
                previous = attrs["Id"]
            except docker.errors.ImageNotFound:
                pass
            self._build_image(definition, info, image, base.id)
            if previous is not None:
                remove_image_quietly(client, previous)
        return image

    def _build_image(
        self, definition: ChaincodeDefinition, info: PackageInfo, image: str, base_id: str
    ) -> None:
        import docker.errors

        dockerfile = CHAINCODE_DOCKERFILE.format(
            base=self.base_image,
            code_dir=CODE_DIR,
            source_dir=SOURCE_DIR,
            target=definition.target or info.target,
        ).encode()
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            for name, data in (("Dockerfile", dockerfile), ("code.tar.gz", info.code)):
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
        started = time.monotonic()
        success = "false"
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
            success = "true"
        except docker.errors.BuildError as exc:
            output = "".join(str(item.get("stream", "")) for item in exc.build_log)
            raise DockerRuntimeError(
                f"building the image of chaincode {definition.name} failed: {exc}\n{output[-2000:]}"
            ) from exc
        except _engine_errors() as exc:
            raise DockerRuntimeError(
                f"building the image of chaincode {definition.name} failed: {exc}"
            ) from exc
        finally:
            elapsed = time.monotonic() - started
            self.build_duration.labels(definition.name, success).observe(elapsed)
            self.last_build_seconds[definition.name] = elapsed
        log.info("built image %s for chaincode %s in %.2f s", image, definition.name, elapsed)

    # -- start (Fabric's DockerVM.Start) -----------------------------------------------------

    def environment(self, definition: ChaincodeDefinition, info: PackageInfo, address: str):
        env = {
            "CORE_CHAINCODE_ID_NAME": definition.name,
            "CORE_PEER_ADDRESS": address,
            "CORE_PEER_TLS_ENABLED": "false",
            "CORE_CHAINCODE_LOGGING_LEVEL": self.logging_level,
            "CORE_CHAINCODE_LOGGING_SHIM": self.shim_logging_level,
            "CORE_CHAINCODE_TARGET": definition.target or info.target,
        }
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
        tls_dir = tempfile.mkdtemp(prefix=f"ccactors-tls-{ccid.replace('/', '-')}-")
        variables = client_tls.write_files(Path(tls_dir))
        if os.geteuid() == 0 and self.hardening.user:
            uid, _, gid = self.hardening.user.partition(":")
            for path in [tls_dir, *Path(tls_dir).iterdir()]:
                os.chown(path, int(uid), int(gid or uid))
        environment.update(
            {key: value.replace(tls_dir, TLS_DIR) for key, value in variables.items()}
        )
        if self.network_mode == "bridge":  # the gateway address is not in the peer's cert
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
        host_config = {"network_mode": self.network_mode, **self.hardening.host_config()}
        host_config.update(self.extra_host_config)
        environment = self.environment(definition, info, address)
        tls_dir = self._tls_files(definition.name, environment, host_config)
        create = dict(
            image=image,
            command=["python3", "-m", "actors.shim", "--peer.address", address],
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
