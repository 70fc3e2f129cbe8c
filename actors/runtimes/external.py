"""Chaincode as a service: the peer dials a chaincode that is already running.

Fabric counterpart: ``core/container/externalbuilder`` (``ChaincodeServerUserData`` read from
the ``connection.json`` a builder's ``release`` step leaves) and ``core/chaincode/extcc``
(``ExternalChaincodeRuntime.Stream``: dial, open ``protos.Chaincode/Connect``, then serve the
stream exactly like a ``Register`` stream; when it ends the launch state says "connection to X
terminated"). The chaincode still sends REGISTER first, so the same Handler serves it.

Nothing is started here: an instance is one gRPC stream to the service. ``wait`` returns when
that stream ends, which reaches the launcher as an exited instance, and the next launch dials
again: restarting the service is how a chaincode-as-a-service is "restarted".
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import grpc

from actors.config import ChaincodeDefinition, ConfigError
from actors.runtimes import Connect, ExitStatus
from actors.transports import ConnectionClosed
from actors.transports.grpc import DEFAULT_MAX_MESSAGE, GrpcStream, dial
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage

DEFAULT_DIAL_TIMEOUT = 3.0  # Fabric's externalbuilder.DialTimeout
MAX_DIAL_TIMEOUT = 3600.0  # ours: a dial that may block the launch lane for longer is a mistake

# connection.json as Fabric's peer reads it (``ChaincodeServerUserData``); other keys ignored.
FABRIC_KEYS = (
    "address",
    "dial_timeout",
    "tls_required",
    "client_auth_required",
    "client_key",
    "client_cert",
    "root_cert",
)
# a [[chaincodes]] connection table takes those plus ``domain`` (the TLS server name, when the
# address is not the name in the service's certificate) and ``file`` (a connection.json to read)
CONNECTION_KEYS = frozenset({*FABRIC_KEYS, "domain", "file"})

_GO_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9}
_GO_UNITS |= {"m": 60 * 10**9, "h": 3600 * 10**9}
_ABSENT = object()
_TEXT_UNITS = (("s", 10**9), ("ms", 10**6), ("us", 10**3), ("ns", 1))
_GO_TERM = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)"  # linear: no nesting


def go_duration(text: str) -> float:
    """Seconds from Go's ``time.ParseDuration`` syntax (``10s``, ``1m30s``, ``500ms``; a bare
    number other than 0 has no unit and is refused, as in Go). ValueError with Go's text."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if len(body) > 100:
        raise ValueError(f"time: invalid duration of {len(text)} characters")
    if body == "0":
        return 0.0
    if not body or not re.fullmatch(f"(?:{_GO_TERM})+", body):
        missing = re.fullmatch(r"[0-9]*\.?[0-9]*", body) and body.strip(".")
        raise ValueError(f'time: {"missing unit in" if missing else "invalid"} duration "{text}"')
    # Go counts whole nanoseconds, each term's fraction truncated ("0.5ns" is 0, which Fabric
    # then replaces by its 3 s default)
    nanos = 0
    for number, unit in re.findall(_GO_TERM, body):
        whole, _, fraction = number.partition(".")
        nanos += int(whole or 0) * _GO_UNITS[unit]
        nanos += int(Fraction(int(fraction or 0), 10 ** len(fraction)) * _GO_UNITS[unit])
    return (-nanos if text.startswith("-") else nanos) / 1e9


def _dial_timeout(raw: Any, where: str) -> float:
    """Fabric's ``Duration.UnmarshalJSON``: a JSON number is nanoseconds (Go's time.Duration),
    a string a Go duration; 0 or absent means Fabric's 3 s (JSON null is invalid there)."""
    if raw is _ABSENT:
        return DEFAULT_DIAL_TIMEOUT
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ConfigError(f"{where}: dial_timeout: invalid duration {raw!r}")
    if raw == "":
        raise ConfigError(f'{where}: dial_timeout: empty (give a duration, e.g. "10s")')
    if isinstance(raw, str):
        try:
            seconds = go_duration(raw)
        except ValueError as exc:
            raise ConfigError(f'{where}: dial_timeout: {exc} (e.g. "10s", "500ms")') from None
    elif not math.isfinite(raw):
        raise ConfigError(f"{where}: dial_timeout: invalid duration {raw!r}")
    else:
        seconds = int(raw) / 1e9  # Go truncates the float64 to whole nanoseconds
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_DIAL_TIMEOUT:
        raise ConfigError(
            f"{where}: dial_timeout must be between 0 and {MAX_DIAL_TIMEOUT:g}s, got {raw!r}"
            + (" (a number is nanoseconds, as in Fabric)" if not isinstance(raw, str) else "")
        )
    return seconds or DEFAULT_DIAL_TIMEOUT


@dataclass(frozen=True)
class ConnectionInfo:
    """What the peer needs to dial a chaincode service (Fabric's ``ChaincodeServerInfo``)."""

    address: str
    dial_timeout: float = DEFAULT_DIAL_TIMEOUT
    tls_required: bool = False
    client_auth_required: bool = False
    client_key: bytes | None = None
    client_cert: bytes | None = None
    root_cert: bytes | None = None
    domain: str | None = None

    def credentials(self) -> grpc.ChannelCredentials | None:
        if not self.tls_required:
            return None
        if self.client_auth_required:
            return grpc.ssl_channel_credentials(self.root_cert, self.client_key, self.client_cert)
        return grpc.ssl_channel_credentials(self.root_cert)

    def channel_options(self) -> list[tuple[str, Any]]:
        if self.tls_required and self.domain:
            return [("grpc.ssl_target_name_override", self.domain)]
        return []


def parse_connection(fields: Mapping[str, Any], where: str = "connection.json") -> ConnectionInfo:
    """The one reader of ``connection.json`` fields, Fabric's ``ChaincodeServerUserData`` and
    its ``ChaincodeServerInfo`` (texts included): ``address`` required, ``dial_timeout`` a Go
    duration string or a number of nanoseconds (0 or absent: 3 s), the two flags JSON
    booleans, the PEM fields strings; other keys ignored. Errors are ConfigErrors naming
    ``where``. Used for packages, builder releases and the peer's configuration alike."""
    for key in ("address", "root_cert", "client_key", "client_cert"):
        if not isinstance(fields.get(key, ""), str):
            raise ConfigError(f"{where}: {key} must be a string")
    for key in ("tls_required", "client_auth_required"):
        if not isinstance(fields.get(key, False), bool):
            raise ConfigError(f"{where}: {key} must be true or false (a JSON boolean)")
    info = ConnectionInfo(
        address=fields.get("address", "").removeprefix("grpc://").removeprefix("grpcs://"),
        dial_timeout=_dial_timeout(fields.get("dial_timeout", _ABSENT), where),
        tls_required=fields.get("tls_required", False),
        client_auth_required=fields.get("client_auth_required", False),
        client_key=fields.get("client_key", "").encode() or None,
        client_cert=fields.get("client_cert", "").encode() or None,
        root_cert=fields.get("root_cert", "").encode() or None,
    )
    if not info.address:
        raise ConfigError(f"{where}: chaincode address not provided")
    if info.tls_required:
        if info.client_auth_required and not info.client_key:
            raise ConfigError(f"{where}: chaincode tls key not provided")
        if info.client_auth_required and not info.client_cert:
            raise ConfigError(f"{where}: chaincode tls cert not provided")
        if not info.root_cert:
            raise ConfigError(f"{where}: chaincode tls root cert not provided")
    return info


def connection_from_json(data: bytes | str, where: str = "connection.json") -> ConnectionInfo:
    """A ``connection.json`` file's bytes through :func:`parse_connection`."""
    try:
        fields = json.loads(data)
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply") from None
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not isinstance(fields, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    return parse_connection(fields, where)


def connection_fields(info: ConnectionInfo) -> dict[str, Any]:
    """``info`` as the connection table of a ChaincodeDefinition: Fabric's keys only (the
    flags when true, the PEMs when given), the timeout as a duration string (a number there
    would be read as seconds, as every duration of the configuration)."""
    nanos = round(info.dial_timeout * 1e9)
    unit, size = next((u, n) for u, n in _TEXT_UNITS if nanos % n == 0)
    fields: dict[str, Any] = {"address": info.address, "dial_timeout": f"{nanos // size}{unit}"}
    for key in ("tls_required", "client_auth_required", "client_key", "client_cert", "root_cert"):
        value = getattr(info, key)
        if value:
            fields[key] = value.decode() if isinstance(value, bytes) else value
    return fields


def load_connection_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a Fabric ``connection.json`` (checked by :func:`parse_connection`) into a dict for
    ``ChaincodeDefinition.connection``. A PEM field may also name a file next to it."""
    path = Path(path)
    data = _connection_file_fields(path)
    fields = connection_fields(parse_connection(data, f"chaincode connection file {path}"))
    if isinstance(data.get("domain"), str) and data["domain"]:
        fields["domain"] = data["domain"]
    return fields


def _connection_file_fields(path: Path) -> dict[str, Any]:
    """A ``connection.json``'s fields, unchecked, with the PEM fields that name a file next to
    it read (a number for ``dial_timeout`` stays nanoseconds, as :func:`parse_connection`
    reads it)."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read chaincode connection file {path}: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"cannot parse chaincode connection file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"chaincode connection file {path}: expected a JSON object")
    for key in ("client_key", "client_cert", "root_cert"):
        value = data.get(key)
        if isinstance(value, str) and value and "-----BEGIN" not in value:
            pem = path.parent / value
            if pem.is_file():
                data[key] = pem.read_text()
    return data


def resolve_connection(name: str, connection: Mapping[str, Any]) -> ConnectionInfo:
    """A ``[[chaincodes]]`` connection table: :func:`parse_connection`'s fields plus ``domain``
    and ``file`` (``{"file": "path/connection.json"}`` reads the fields from that file; keys
    given next to it override or complete the file's; the merged fields are checked once).
    As everywhere in the configuration, a number for ``dial_timeout`` here is seconds (the
    file's, as in Fabric, nanoseconds: ours become duration strings before the merge)."""
    fields = dict(connection)
    unknown = set(fields) - CONNECTION_KEYS
    if unknown:
        raise ConfigError(f"chaincode {name}: unknown connection keys {sorted(unknown)}")
    file = fields.pop("file", None)
    timeout = fields.get("dial_timeout")
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        if not (math.isfinite(timeout) and 0 <= timeout <= MAX_DIAL_TIMEOUT):
            raise ConfigError(
                f"chaincode {name}: connection.dial_timeout must be between 0 and "
                f"{MAX_DIAL_TIMEOUT:g}s, got {timeout!r}"
            )
        fields["dial_timeout"] = f"{round(timeout * 1e9)}ns"
    where = f"chaincode {name}: connection"
    if file is not None and not isinstance(file, str):
        raise ConfigError(f"chaincode {name}: connection.file must be a path (a string)")
    if file:
        fields = {**_connection_file_fields(Path(file)), **fields}
        where += f" (with file {file})"
    domain = fields.pop("domain", None)
    if domain is not None and not isinstance(domain, str):
        raise ConfigError(f"chaincode {name}: connection.domain must be a string")
    info = parse_connection(fields, where)
    return dataclasses.replace(info, domain=domain or None)


@dataclass(frozen=True)
class StreamEnded(ExitStatus):
    """How a connection to a chaincode service ended: code 0 when it was closed on purpose
    (by the service or by us), 1 when it broke. ``describe`` completes "chaincode NAME ..."."""

    reason: str = ""

    def describe(self) -> str:
        return self.reason or super().describe()


class _ServiceStream:
    """The dialled stream, watched: the first failure or close becomes the instance's status."""

    def __init__(self, stream: GrpcStream, instance: ExternalInstance) -> None:
        self._stream = stream
        self._instance = instance

    def send(self, msg: ChaincodeMessage) -> None:
        self._stream.send(msg)

    def recv(self) -> ChaincodeMessage:
        try:
            return self._stream.recv()
        except ConnectionClosed as exc:
            self._instance._ended_by_service(exc)
            raise

    def close(self) -> None:
        self._instance._ended_by_peer("was disconnected by the peer")
        self._stream.close()


class ExternalInstance:
    """One stream to a chaincode service: "running" while the stream is open."""

    def __init__(
        self, chaincode: str, address: str, stream: GrpcStream, channel: grpc.Channel
    ) -> None:
        self.chaincode = chaincode
        self.address = address
        self.dial_seconds = 0.0
        self._channel = channel
        self._grpc_stream = stream
        self.stream = _ServiceStream(stream, self)
        self._lock = threading.Lock()
        self._ended = threading.Event()
        self._status: StreamEnded | None = None

    def _end(self, status: StreamEnded) -> None:
        with self._lock:
            if self._status is not None:
                return
            self._status = status
        self._ended.set()
        # A dead stream is never reused (the next launch dials again); let the channel go
        # rather than have it reconnect in the background.
        self._grpc_stream.close()
        self._channel.close()

    def _ended_by_service(self, exc: ConnectionClosed) -> None:
        where = f"chaincode service at {self.address}"
        cause = exc.__cause__
        if isinstance(cause, StopIteration):  # the response stream ended with OK
            self._end(StreamEnded(code=0, reason=f"ended its stream ({where} closed it)"))
            return
        if isinstance(cause, grpc.RpcError) and isinstance(cause, grpc.Call):
            code = cause.code()
            detail = f"{code.name if code is not None else 'UNKNOWN'}: {cause.details()}"
        else:
            detail = str(exc)
        self._end(StreamEnded(code=1, reason=f"lost its connection to {where} ({detail})"))

    def _ended_by_peer(self, what: str) -> None:
        self._end(StreamEnded(code=0, reason=f"{what} (chaincode service at {self.address})"))

    def wait(self) -> ExitStatus:
        self._ended.wait()
        assert self._status is not None
        return self._status

    def exit_status(self, timeout: float = 0.0) -> ExitStatus | None:
        self._ended.wait(timeout)
        return self._status

    def stop(self, timeout: float = 5.0) -> None:
        self._ended_by_peer("was stopped by the peer")
        self._grpc_stream.close()  # both idempotent; _end did them unless it had ended before
        self._channel.close()

    def describe(self) -> str:
        return f"chaincode service at {self.address}"


class ExternalRuntime:
    """Dials chaincode services (``runtime = "external"``) and serves their streams.

    ``keepalive`` is the HTTP/2 ping interval on idle connections (Fabric's client default,
    60 s). A grpcio server with default settings (fabric-chaincode-python's) tolerates pings no
    more often than every 5 minutes and closes the connection after a few more.
    """

    kind = "external"

    def __init__(
        self, max_message_size: int = DEFAULT_MAX_MESSAGE, keepalive: float | None = None
    ) -> None:
        self.max_message_size = max_message_size
        self.keepalive = keepalive

    def start(self, definition: ChaincodeDefinition, connect: Connect) -> ExternalInstance:
        return self.dial(
            definition.name, resolve_connection(definition.name, definition.connection), connect
        )

    def dial(self, chaincode: str, info: ConnectionInfo, connect: Connect) -> ExternalInstance:
        """Dial the service ``info`` names and serve its stream as ``chaincode`` (which must
        be the id it registers with: the package id for an installed package)."""
        options = info.channel_options()
        if self.keepalive is not None:
            options.append(("grpc.keepalive_time_ms", int(self.keepalive * 1000)))
        started = time.monotonic()
        try:
            stream, channel = dial(
                info.address,
                service="Chaincode",
                max_message_size=self.max_message_size,
                credentials=info.credentials(),
                timeout=info.dial_timeout,
                options=options,
            )
        except ConnectionClosed as exc:
            tls = " over TLS" if info.tls_required else ""
            raise ConnectionError(
                f"cannot reach chaincode service {info.address}{tls} within "
                f"{info.dial_timeout:g}s (is the chaincode service running at {info.address}?)"
            ) from exc
        instance = ExternalInstance(chaincode, info.address, stream, channel)
        instance.dial_seconds = time.monotonic() - started
        try:
            connect(instance.stream, instance)
        except BaseException:
            instance.stop()
            raise
        return instance

    def close(self) -> None:
        pass
