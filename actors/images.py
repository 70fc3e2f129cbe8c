"""Base images for Docker chaincode, built locally (no image registry needed).

Two images, both cached (``build_images`` skips what is present and up to date), and a third
for Node chaincode, built lazily (:func:`ensure_node_image`, the first time a ``node`` package
is built; ``ccactors/debian-node:bookworm``: Debian's nodejs and npm, same recipe):

1. ``ccactors/debian-python:bookworm``: a Debian root file system with ``python3`` made by
   ``mmdebstrap --variant=essential`` and turned into an image by ``docker import``.
2. ``ccactors/python-shim:latest`` (``Config.base_image``): FROM the first, plus our runtime
   dependencies (grpcio, protobuf, msgpack; installed on the host with ``pip install --target``
   for the image's Python, so ``docker build`` needs no network) and this repository's
   ``actors`` and ``protos`` packages, with ``PYTHONPATH`` set so ``python3 -m actors.shim``
   works in the container. A label records a hash of what went in; when the sources or the
   pinned versions change, the image is rebuilt.

Chaincode images (``actors.runtimes.docker``) are built FROM the second one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEBIAN_IMAGE = "ccactors/debian-python:bookworm"
BASE_IMAGE = "ccactors/python-shim:latest"
DEBIAN_SUITE = "bookworm"
DEBIAN_GLIBC = "2_36"  # bookworm's glibc: any manylinux wheel up to 2.36 runs there
IMAGE_PYTHON = "3.11"  # bookworm's python3
RUNTIME_REQUIREMENTS = ("grpcio", "protobuf", "msgpack")
# grpcio's extension links against libstdc++.
PYTHON_PACKAGES = ("python3", "ca-certificates", "libstdc++6")
# Fabric's node platform runs on fabric-nodeenv; ours is Debian's nodejs and npm (Node 18).
NODE_IMAGE = "ccactors/debian-node:bookworm"
NODE_PACKAGES = ("nodejs", "npm", "ca-certificates")
LIB_DIR = "/opt/ccactors/lib"
KIND_LABEL = "ccactors.kind"
HASH_LABEL = "ccactors.source-hash"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ccactors"

Progress = Callable[[str], None]
log = logging.getLogger(__name__)


class DockerUnavailable(RuntimeError):
    """The Docker engine cannot be reached (or the docker SDK is missing)."""


class ImageBuildError(RuntimeError):
    """A base image could not be built."""


def _print(message: str) -> None:
    print(message, flush=True)


MIN_API_VERSION = "1.24"  # what the docker SDK needs at least


@dataclass(frozen=True)
class EngineTLS:
    """Fabric's ``vm.docker.tls.*``: mutual TLS to a Docker engine on a TCP endpoint
    (``ca.file``, ``cert.file``, ``key.file``; read and checked by :class:`actors.config.Config`,
    whose ``docker_tls`` makes one when ``enabled``)."""

    ca_file: str
    cert_file: str
    key_file: str

    def sdk_config(self) -> Any:
        import docker.tls

        return docker.tls.TLSConfig(
            client_cert=(self.cert_file, self.key_file), ca_cert=self.ca_file, verify=True
        )


def docker_client(
    endpoint: str | None = None, timeout: float = 120, tls: EngineTLS | None = None
) -> Any:
    """A ``docker.DockerClient`` for ``endpoint`` (None: ``DOCKER_HOST`` or the default socket),
    over mutual TLS when ``tls`` is given (a ``tcp://`` endpoint), checked with a ping;
    :class:`DockerUnavailable` says why when the engine does not answer."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise DockerUnavailable("the docker SDK is not installed (pip install docker)") from exc
    where = endpoint or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if tls is not None and not where.startswith(("tcp://", "https://")):
        raise DockerUnavailable(f"vm.docker.tls needs a tcp:// endpoint, got {where}")
    try:
        if endpoint or tls is not None:
            client = docker.DockerClient(
                base_url=where,
                timeout=int(timeout),
                max_pool_size=64,
                tls=tls.sdk_config() if tls is not None else False,
                # With TLS, the version is asked below, once the session is set up.
                version=MIN_API_VERSION if tls is not None else None,
            )
            if tls is not None:
                # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override the engine's CA
                # (vm.docker.tls.ca.file) unless the session ignores the environment.
                client.api.trust_env = False
                client.api._version = client.version(api_version=False)["ApiVersion"]
        else:
            client = docker.from_env(timeout=int(timeout), max_pool_size=64)
        client.ping()
    except Exception as exc:
        hint = (
            "run `bash tools/ensure_docker.sh` (as root) to install and start it"
            if os.geteuid() == 0
            else "start Docker (as root: `bash tools/ensure_docker.sh`) or join the docker group"
        )
        raise DockerUnavailable(
            f"cannot reach the Docker engine at {where}: {exc}; {hint}"
        ) from exc
    return client


def find_image(client: Any, name: str) -> Any | None:
    import docker.errors

    try:
        return client.images.get(name)
    except docker.errors.ImageNotFound:
        return None


# -- the Debian image ------------------------------------------------------------------------


def _ensure_mmdebstrap(progress: Progress) -> str:
    found = shutil.which("mmdebstrap")
    if found:
        return found
    if os.geteuid() != 0:
        raise ImageBuildError(
            "mmdebstrap is not installed and this user is not root: run "
            "`apt-get install -y mmdebstrap` as root, or build the images on a machine that can"
        )
    progress("installing mmdebstrap (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "mmdebstrap"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise ImageBuildError(f"apt-get install mmdebstrap failed:\n{result.stderr[-2000:]}")
    found = shutil.which("mmdebstrap")
    if not found:
        raise ImageBuildError("mmdebstrap is still not on PATH after installing it")
    return found


def build_debian_image(
    client: Any,
    tag: str = DEBIAN_IMAGE,
    *,
    suite: str = DEBIAN_SUITE,
    mirror: str | None = None,
    force: bool = False,
    progress: Progress = _print,
    packages: tuple[str, ...] = PYTHON_PACKAGES,
    cmd: str = '["python3"]',
    kind: str = "debian",
) -> Any:
    """``mmdebstrap`` a Debian root with ``packages`` and ``docker import`` it as ``tag``."""
    existing = find_image(client, tag)
    if existing is not None and not force:
        progress(f"{tag}: present ({existing.short_id}), skipping")
        return existing
    mmdebstrap = _ensure_mmdebstrap(progress)
    mirror = mirror or os.environ.get("CCACTORS_DEBIAN_MIRROR")
    with tempfile.TemporaryDirectory(prefix="ccactors-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        command = [
            mmdebstrap,
            "--variant=essential",
            "--include=" + ",".join(packages),
            # Documentation and translations are dead weight in a chaincode container.
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
            suite,
            str(rootfs),
        ]
        if mirror:
            command.append(mirror)
        progress(f"{tag}: mmdebstrap {suite} with {', '.join(packages)} (15-90 s) ...")
        started = time.monotonic()
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise ImageBuildError(
                f"mmdebstrap failed (exit {result.returncode}):\n{result.stderr[-3000:]}"
            )
        size = rootfs.stat().st_size / 1e6
        progress(f"{tag}: root file system {size:.0f} MB in {time.monotonic() - started:.1f} s")
        progress(f"{tag}: docker import ...")
        repository, _, image_tag = tag.rpartition(":")
        if not repository or "/" in image_tag:
            repository, image_tag = tag, "latest"
        client.api.import_image_from_file(
            str(rootfs),
            repository=repository,
            tag=image_tag,
            changes=[f"ENV {PATH_ENV}", f"CMD {cmd}", f"LABEL {KIND_LABEL}={kind}"],
        )
    image = find_image(client, tag)
    if image is None:
        raise ImageBuildError(f"docker import did not produce {tag}")
    if existing is not None and existing.id != image.id:
        remove_image_quietly(client, existing.id)
    progress(f"{tag}: built ({image.short_id})")
    return image


def ensure_node_image(
    client: Any, tag: str = NODE_IMAGE, *, progress: Progress | None = None
) -> Any:
    """The Node base image, built on first use only (about a minute, 400 MB) and then reused:
    a peer that never runs a ``node`` package never pays for it."""
    say = progress or (lambda message: log.info("%s", message))
    existing = find_image(client, tag)
    if existing is not None:
        if progress is not None:
            say(f"{tag}: present ({existing.short_id}), skipping")
        return existing
    return build_debian_image(
        client, tag, packages=NODE_PACKAGES, cmd='["node"]', kind="node", progress=say
    )


# -- the shim image --------------------------------------------------------------------------


def _runtime_pins() -> list[str]:
    """The versions installed here, so the container runs what the tests ran."""
    pins = []
    for name in RUNTIME_REQUIREMENTS:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def _source_files() -> list[Path]:
    files: list[Path] = []
    for package in ("actors", "protos"):
        root = REPO_ROOT / package
        if not root.is_dir():
            raise ImageBuildError(f"cannot find the {package} package at {root}")
        files.extend(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    return sorted(files)


def source_hash(debian_id: str = "", pins: Iterable[str] = ()) -> str:
    """What the shim image is made of: our sources, the pinned wheels, the Debian image."""
    digest = hashlib.sha256()
    for item in (debian_id, IMAGE_PYTHON, platform.machine(), *pins):
        digest.update(item.encode() + b"\0")
    for path in _source_files():
        digest.update(path.relative_to(REPO_ROOT).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _install_dependencies(pins: list[str], progress: Progress) -> Path:
    """``pip install --target`` the wheels for the image's Python; cached per pin set."""
    machine = platform.machine()
    key = hashlib.sha256(" ".join([IMAGE_PYTHON, machine, *pins]).encode()).hexdigest()[:16]
    target = CACHE_DIR / f"pydeps-{key}"
    if (target / ".complete").exists():
        progress(f"python dependencies: cached in {target}")
        return target
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    progress(f"python dependencies: pip install {' '.join(pins)} for cp311 {machine} ...")
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(target),
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        IMAGE_PYTHON,
        # pip widens manylinux_2_36 to every older glibc tag; 2014 is the classic name.
        "--platform",
        f"manylinux_{DEBIAN_GLIBC}_{machine}",
        "--platform",
        f"manylinux2014_{machine}",
        *pins,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        raise ImageBuildError(
            f"pip could not fetch the runtime dependencies {pins}:\n{result.stderr[-3000:]}"
        )
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts for the host's Python
    (target / ".complete").write_text("\n".join(pins) + "\n")
    return target


SHIM_DOCKERFILE = f"""\
FROM {{debian}}
COPY lib {LIB_DIR}
RUN ["python3", "-m", "compileall", "-q", "-j", "0", "{LIB_DIR}"]
ENV PYTHONPATH={LIB_DIR} PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /
CMD ["python3", "-m", "actors.shim", "--help"]
"""


def build_shim_image(
    client: Any,
    tag: str = BASE_IMAGE,
    *,
    debian: str = DEBIAN_IMAGE,
    force: bool = False,
    progress: Progress = _print,
) -> Any:
    """Build ``tag`` FROM ``debian`` with our dependencies and packages (see module doc)."""
    import docker.errors

    base = find_image(client, debian)
    if base is None:
        raise ImageBuildError(f"{debian} is missing: build it first (ccactors images build)")
    pins = _runtime_pins()
    wanted = source_hash(base.id, pins)
    existing = find_image(client, tag)
    if existing is not None and not force:
        have = (existing.labels or {}).get(HASH_LABEL)
        if have == wanted:
            progress(f"{tag}: present and up to date ({existing.short_id}), skipping")
            return existing
        progress(f"{tag}: present but out of date (sources or versions changed), rebuilding")
    deps = _install_dependencies(pins, progress)
    with tempfile.TemporaryDirectory(prefix="ccactors-shim-") as tmp:
        context = Path(tmp)
        lib = context / "lib"
        shutil.copytree(deps, lib, ignore=shutil.ignore_patterns(".complete", "__pycache__"))
        for path in _source_files():
            dest = lib / path.relative_to(REPO_ROOT)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        (context / "Dockerfile").write_text(SHIM_DOCKERFILE.format(debian=debian))
        progress(f"{tag}: docker build FROM {debian} ...")
        started = time.monotonic()
        try:
            image, _ = client.images.build(
                path=str(context),
                tag=tag,
                rm=True,
                forcerm=True,
                pull=False,
                labels={KIND_LABEL: "base", HASH_LABEL: wanted},
            )
        except docker.errors.BuildError as exc:
            log_text = "".join(str(item.get("stream", "")) for item in exc.build_log)
            raise ImageBuildError(
                f"docker build of {tag} failed: {exc}\n{log_text[-3000:]}"
            ) from exc
    progress(f"{tag}: built ({image.short_id}) in {time.monotonic() - started:.1f} s")
    _smoke_test(client, tag, progress)
    if existing is not None and existing.id != image.id:
        remove_image_quietly(client, existing.id)
    return image


def remove_image_quietly(client: Any, image_id: str) -> None:
    """Remove a replaced image unless something still uses it (a container, a child image)."""
    try:
        client.images.remove(image_id)
    except Exception as exc:  # in use: it goes when its users go (docker image prune)
        log.debug("keeping replaced image %s: %s", image_id, exc)


def _smoke_test(client: Any, tag: str, progress: Progress) -> None:
    """Import the shim the way a hardened chaincode container will (non-root, read-only)."""
    import docker.errors

    try:
        client.containers.run(
            tag,
            ["python3", "-c", "import actors.shim.__main__, grpc, google.protobuf, msgpack"],
            remove=True,
            user="65534:65534",
            read_only=True,
            network_mode="none",
            stderr=True,
        )
    except docker.errors.ContainerError as exc:
        # Do not leave a broken image behind that a later run would take as up to date.
        client.images.remove(tag, force=True)
        stderr = exc.stderr.decode("utf-8", "replace") if exc.stderr else ""
        raise ImageBuildError(f"{tag} cannot import the shim (image removed):\n{stderr}") from exc
    progress(f"{tag}: python3 -m actors.shim imports fine")


# -- both ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltImages:
    debian: str
    base: str
    seconds: float


def build_images(
    endpoint: str | None = None,
    *,
    tag: str = BASE_IMAGE,
    debian_tag: str = DEBIAN_IMAGE,
    force: bool = False,
    mirror: str | None = None,
    progress: Progress = _print,
) -> BuiltImages:
    """Build (or confirm) the Debian image and the shim image; ``force`` rebuilds both."""
    started = time.monotonic()
    client = docker_client(endpoint)
    try:
        debian = build_debian_image(
            client, debian_tag, mirror=mirror, force=force, progress=progress
        )
        base = build_shim_image(client, tag, debian=debian_tag, force=force, progress=progress)
    finally:
        client.close()
    return BuiltImages(debian.id, base.id, time.monotonic() - started)


def list_images(endpoint: str | None = None) -> list[dict[str, Any]]:
    """Our images: the two base images and every chaincode image (newest first)."""
    client = docker_client(endpoint)
    try:
        rows = []
        for image in client.images.list(filters={"label": KIND_LABEL}):
            labels = image.labels or {}
            rows.append(
                {
                    "tags": image.tags or ["<none>"],
                    "id": image.short_id,
                    "kind": labels.get(KIND_LABEL, "?"),
                    "chaincode": labels.get("ccactors.chaincode", ""),
                    "created": image.attrs.get("Created", ""),
                    "size_mb": round(image.attrs.get("Size", 0) / 1e6, 1),
                }
            )
    finally:
        client.close()
    return sorted(rows, key=lambda row: row["created"], reverse=True)
