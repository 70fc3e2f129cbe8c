"""Which chaincode package types this peer can build, and how (Fabric's ``platforms``).

Fabric counterpart: ``core/chaincode/platforms`` (``Registry.GenerateDockerBuild``: one
``Platform`` per type, chosen by ``strings.ToUpper(metadata.type)``; an unknown type fails with
``Unknown chaincodeType``) and the built-in ``ccaas`` external builder. Here:

* ``python`` (ours): the code runs under ``python3 -m actors.shim`` FROM the Python shim image;
* ``node``: Fabric's node platform — ``npm install --production`` of the package's
  ``package.json`` in a build container, then ``npm start -- --peer.address ADDR`` in the
  chaincode container (see :class:`NodePlatform`);
* ``ccaas``: no build at all; the ``connection.json`` in ``code.tar.gz`` says where the peer dials
  (``actors.lifecycle.builders``);
* ``golang`` and ``java`` need toolchains and module registries (the Go module proxy, Maven
  Central) this peer does not have: refused with a clear error, as is any other type.

The lifecycle calls :func:`check_platform` at install, after the external builders had their
chance (a type an external builder claims needs no platform; Fabric asks builders first too).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PYTHON = "python"
NODE = "node"
CCAAS = "ccaas"
SUPPORTED = (PYTHON, NODE, CCAAS)

_REFUSED = {
    "golang": "Go chaincode needs the Go toolchain and module proxy, which this peer lacks",
    "java": "Java chaincode needs a JDK and Maven or Gradle repositories, which this peer lacks",
}
_ADVICE = (
    "run it as a chaincode service instead (package it with type 'ccaas' and a connection.json), "
    "or configure an external builder (chaincode.externalBuilders) that claims this type"
)


class PlatformError(ValueError):
    """A package's type cannot be built by this peer; the message names the type."""


def package_type(metadata: Mapping[str, Any] | bytes | str) -> str:
    """The ``type`` of a package's metadata (a parsed ``metadata.json`` or its bytes).

    Fabric decodes metadata.json into a Go struct, so the key matches case-insensitively."""
    if isinstance(metadata, bytes | str):
        try:
            metadata = json.loads(metadata)
        except ValueError as exc:
            raise PlatformError(f"metadata.json is not valid JSON: {exc}") from None
    if not isinstance(metadata, Mapping):
        raise PlatformError("metadata.json must be a JSON object")
    found = [value for key, value in metadata.items() if str(key).lower() == "type"]
    kind = found[-1] if found else None
    if not isinstance(kind, str) or not kind.strip():
        raise PlatformError("metadata.json has no chaincode type ('type' is missing or empty)")
    return kind


def check_platform(metadata: Mapping[str, Any] | bytes | str) -> str:
    """The normalised platform (``python``, ``node`` or ``ccaas``) for a package's metadata, or
    :class:`PlatformError` naming the type when this peer cannot build it."""
    kind = package_type(metadata)
    normal = kind.strip().lower()
    if normal in SUPPORTED:
        return normal
    reason = _REFUSED.get(normal, f"unknown type (this peer builds {', '.join(SUPPORTED)})")
    raise PlatformError(
        f"chaincode type {kind!r} is not supported by this peer: {reason}; {_ADVICE}"
    )


# -- how a platform's image is built and started (used by actors.runtimes.docker) -------------


@dataclass(frozen=True)
class Platform:
    """What the Docker runtime needs to know about one package type."""

    name: str

    def command(self, address: str, target: str) -> list[str]:
        raise NotImplementedError


PYTHON_DOCKERFILE = """\
FROM {base}
ADD code.tar.gz {code_dir}/
RUN ["python3", "-m", "compileall", "-q", "{source_dir}"]
ENV CORE_CHAINCODE_TARGET={target} PYTHONPATH={source_dir}${{PYTHONPATH:+:$PYTHONPATH}}
WORKDIR {source_dir}
CMD ["python3", "-m", "actors.shim"]
"""


@dataclass(frozen=True)
class PythonPlatform(Platform):
    name: str = PYTHON

    def command(self, address: str, target: str) -> list[str]:
        return ["python3", "-m", "actors.shim", "--peer.address", address]


# Fabric's node platform (platforms/node/platform.go): the build container runs this script
# with the package's code at /chaincode/input; the output becomes /usr/local/src of the image.
NODE_BUILD_SCRIPT = """\
set -e
if [ -x /chaincode/build.sh ]; then /chaincode/build.sh; else
  cp -R /chaincode/input/src/. /chaincode/output && cd /chaincode/output
  if [ -f package-lock.json ] || [ -f npm-shrinkwrap.json ]; then
    npm ci --omit=dev --no-audit --no-fund
  else
    npm install --omit=dev --no-audit --no-fund
  fi
fi
"""
NODE_SOURCE_DIR = "/usr/local/src"
NODE_DOCKERFILE = f"""\
FROM {{base}}
ADD binpackage.tar {NODE_SOURCE_DIR}
LABEL org.hyperledger.fabric.chaincode.type="NODE"
WORKDIR {NODE_SOURCE_DIR}
"""


@dataclass(frozen=True)
class NodePlatform(Platform):
    name: str = NODE

    def command(self, address: str, target: str) -> list[str]:
        # Fabric: /chaincode/start.sh when executable, else `npm start -- --peer.address`.
        # HOME and npm's cache point at the tmpfs: the root file system is read-only.
        return [
            "/bin/sh",
            "-c",
            "export HOME=/tmp npm_config_cache=/tmp/.npm npm_config_update_notifier=false; "
            "if [ -x /chaincode/start.sh ]; then exec /chaincode/start.sh --peer.address "
            f'"$0"; else cd {NODE_SOURCE_DIR} && exec npm start -- --peer.address "$0"; fi',
            address,
        ]


PLATFORMS: dict[str, Platform] = {PYTHON: PythonPlatform(), NODE: NodePlatform()}


def docker_platform(metadata: Mapping[str, Any] | bytes | str) -> Platform:
    """The platform that builds this package into an image (python or node)."""
    kind = check_platform(metadata)
    if kind not in PLATFORMS:
        raise PlatformError(
            f"chaincode type {kind!r} is not built into an image: a {kind} package names a "
            "chaincode service the peer dials (it is handled by the ccaas builder)"
        )
    return PLATFORMS[kind]
