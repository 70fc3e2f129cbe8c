"""The operations service: ``/metrics``, ``/healthz``, ``/logspec`` and ``/version`` on one
HTTP server, and logging configured by Fabric's logging specs and format.

Fabric counterparts: ``core/operations`` (``operations.listenAddress``), fabric-lib-go's
``healthz`` handler (``{"status":"OK","time":...}``, 503 with ``failed_checks``) and
``flogging`` (``FABRIC_LOGGING_SPEC`` such as ``info:actors.launcher=debug``,
``FABRIC_LOGGING_FORMAT``, and ``/logspec`` to read or change the spec while running).

Without TLS anyone who can reach the port can use it, so bind it to a trusted interface. With
``operations.tls`` (Fabric's ``core/operations/tls.go``) it speaks HTTPS, verifies a client
certificate when one is given (requires one with ``clientAuthRequired``), and, as Fabric's
``middleware.RequireCert``, answers ``/metrics`` and ``/logspec`` with 401 unless the client
presented a certificate that chains to ``clientRootCAs``; ``/healthz`` and ``/version`` stay
open. What any client can make the server hold is bounded: ``max_workers`` requests at a
time (more are closed at once); the TLS handshake, done on the request's thread, and then the
whole request (line, headers and body) each within ``request_timeout`` seconds, however slowly
the bytes trickle; request bodies of at most ``MAX_BODY`` bytes; and one thread per health
check, however many ``/healthz`` requests wait for a check that hangs.
"""

from __future__ import annotations

import datetime as dt
import http.server
import io
import itertools
import json
import logging
import os
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actors import __version__
from actors.config import ConfigError
from actors.transports.grpc import ListenError

if TYPE_CHECKING:
    from actors.config import Config
    from actors.images import EngineTLS
    from actors.metrics import Metrics

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request or read the answer
CHECK_TIMEOUT = 30.0  # seconds /healthz waits for its checks (fabric-lib-go's default)

# A health check returns None when healthy, else the reason (Fabric's HealthCheck()).
HealthCheck = Callable[[], "str | None"]


# -- logging specs (flogging) ------------------------------------------------------------------

PAYLOAD = 5  # Fabric's level below debug, for message payloads
_LEVELS = {
    "payload": PAYLOAD,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "dpanic": logging.CRITICAL,
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
_CANONICAL = {"warning": "warn"}
_LOGGER_NAME = re.compile(r"^[\w#-]+(\.[\w#-]+)*\.?$")


class LogSpecError(ValueError):
    """A logging spec that does not parse; the message is Fabric's."""


class LogLevels:
    """Fabric's ``LoggerLevels``: a default level and levels for named loggers.

    A spec is ``:``-separated segments, each a level (the default) or ``name[,name...]=level``.
    A name applies to its logger and the loggers below it (``actors`` covers
    ``actors.launcher``); a name ending in ``.`` applies to that logger only.
    """

    def __init__(self, spec: str = "info") -> None:
        self._lock = threading.Lock()
        self._default = "info"
        self._named: dict[str, str] = {}
        self._cache: dict[str, int] = {}
        self.activate(spec)

    @staticmethod
    def parse(spec: str) -> tuple[str, dict[str, str]]:
        default, named = "info", {}

        def bad(what: str) -> LogSpecError:
            return LogSpecError(f"invalid logging specification '{spec}': {what}")

        for segment in spec.split(":") if spec else ():
            fields = segment.split("=")
            level = fields[-1].lower()
            if len(fields) > 2 or level not in _LEVELS:
                raise bad(f"bad segment '{segment}'")
            level = _CANONICAL.get(level, level)
            if len(fields) == 1:
                default = level
                continue
            if not fields[0]:
                raise bad(f"no logger specified in segment '{segment}'")
            for name in fields[0].split(","):
                if not _LOGGER_NAME.match(name):
                    raise bad(f"bad logger name '{name}'")
                named[name] = level
        return default, named

    def activate(self, spec: str) -> None:
        """Make ``spec`` the current spec; a bad one raises and changes nothing."""
        default, named = self.parse(spec)
        with self._lock:
            self._default, self._named, self._cache = default, named, {}

    def spec(self) -> str:
        """The current spec, as Fabric writes it (named loggers sorted, the default last)."""
        with self._lock:
            return ":".join([*sorted(f"{n}={lv}" for n, lv in self._named.items()), self._default])

    def level(self, logger: str) -> int:
        """The threshold for records of ``logger``: its own name, else its nearest parent's."""
        found = self._cache.get(logger)
        if found is not None:
            return found
        with self._lock:
            named = self._named
            level = named.get(logger + ".")  # exact-only names win for the logger itself
            name = logger
            while level is None and name:
                level = named.get(name)
                name = name.rpartition(".")[0]
            value = _LEVELS[level or self._default]
            if len(self._cache) < 10_000:  # logger names are few; do not grow without bound
                self._cache[logger] = value
        return value

    def lowest(self) -> int:
        with self._lock:
            return min(_LEVELS[lv] for lv in (self._default, *self._named.values()))

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level(record.name)


_GO_TIME = [  # Go reference-time layout tokens -> strftime (longest first)
    ("2006", "%Y"),
    (".000000000", ".{ns}"),
    (".000000", ".{us}"),
    (".000", ".{ms}"),
    ("Z07:00", "{tzc}"),
    ("-0700", "%z"),
    ("MST", "%Z"),
    ("Jan", "%b"),
    ("Mon", "%a"),
    ("01", "%m"),
    ("02", "%d"),
    ("15", "%H"),
    ("03", "%I"),
    ("04", "%M"),
    ("05", "%S"),
    ("PM", "%p"),
]
DEFAULT_FORMAT = (
    "%{color}%{time:2006-01-02 15:04:05.000 MST} [%{module}] %{shortfunc} -> "
    "%{level:.4s} %{id:03x}%{color:reset} %{message}"
)
_DIRECTIVE = re.compile(r"%\{(\w+)(?::([^}]*))?\}")
_COLORS = {
    logging.DEBUG: "\x1b[34m",
    logging.INFO: "\x1b[36m",
    logging.WARNING: "\x1b[33m",
    logging.ERROR: "\x1b[31m",
    logging.CRITICAL: "\x1b[35m",
}


def _go_time(layout: str, when: dt.datetime) -> str:
    out = []
    i = 0
    while i < len(layout):
        for token, code in _GO_TIME:
            if layout.startswith(token, i):
                out.append(code)
                i += len(token)
                break
        else:
            out.append(layout[i].replace("%", "%%"))
            i += 1
    offset = when.strftime("%z")
    tzc = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    text = when.strftime("".join(out))
    micro = when.microsecond
    return text.format(ms=f"{micro // 1000:03d}", us=f"{micro:06d}", ns=f"{micro:06d}000", tzc=tzc)


class FabricFormatter(logging.Formatter):
    """Fabric's log formats: its ``%{...}`` console format (the default) or ``json``."""

    def __init__(self, fmt: str | None = None, *, color: bool = False) -> None:
        super().__init__()
        self.fmt = fmt or DEFAULT_FORMAT
        self.color = color
        self._ids = itertools.count(1)
        if self.fmt != "json":
            for name, _ in _DIRECTIVE.findall(self.fmt):
                if name not in ("color", "time", "module", "shortfunc", "level", "id", "message"):
                    raise LogSpecError(f"invalid logging format: unknown directive %{{{name}}}")

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        when = dt.datetime.fromtimestamp(record.created).astimezone()
        level = "WARN" if record.levelno == logging.WARNING else record.levelname
        if self.fmt == "json":
            return json.dumps(
                {
                    "level": level.lower(),
                    "ts": record.created,
                    "name": record.name,
                    "caller": f"{record.filename}:{record.lineno}",
                    "msg": message,
                }
            )
        seq = next(self._ids)

        def directive(match: re.Match[str]) -> str:
            name, arg = match.group(1), match.group(2)
            if name == "color":
                if not self.color:
                    return ""
                return "\x1b[0m" if arg == "reset" else _COLORS.get(record.levelno, "")
            if name == "time":
                return _go_time(arg or "2006-01-02T15:04:05.000Z07:00", when)
            if name == "module":
                return record.name
            if name == "shortfunc":
                return record.funcName
            if name == "level":
                return _printf(arg, level)
            if name == "id":
                return _printf(arg or "d", seq)
            return message

        return _DIRECTIVE.sub(directive, self.fmt)


def _printf(spec: str | None, value: Any) -> str:
    """A Go printf verb such as ``.4s`` or ``03x`` (Python's % covers these)."""
    try:
        return ("%" + spec) % value if spec else str(value)
    except (TypeError, ValueError):
        return str(value)


_configured: tuple[LogLevels, logging.Handler] | None = None


def configure_logging(spec: str | None = None, fmt: str | None = None) -> LogLevels:
    """Log to stderr by Fabric's rules: ``spec`` (else ``FABRIC_LOGGING_SPEC``, else info)
    chooses levels per logger, ``fmt`` (else ``FABRIC_LOGGING_FORMAT``, else Fabric's
    console format, or ``json``) the lines. Raises :class:`LogSpecError` for a bad one.
    Returns the levels, which ``/logspec`` changes."""
    global _configured
    spec = spec if spec is not None else os.environ.get("FABRIC_LOGGING_SPEC", "info")
    fmt = fmt if fmt is not None else os.environ.get("FABRIC_LOGGING_FORMAT") or None
    levels = LogLevels(spec)
    handler = _StderrHandler()
    handler.setFormatter(FabricFormatter(fmt, color=_is_terminal(handler.stream)))
    handler.addFilter(levels.filter)
    root = logging.getLogger()
    if _configured is not None:
        root.removeHandler(_configured[1])
    root.addHandler(handler)
    # Records below every threshold are not even made; the filter sorts the rest per logger.
    root.setLevel(levels.lowest())
    _configured = (levels, handler)
    return levels


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is when a record comes, as logging's lastResort does. A
    handler holding the stream of its setup outlives a stderr that is swapped and closed
    (pytest's capsys around ``main()``, an embedding's redirect): every later record then
    fails with a "--- Logging error --- ... Call stack:" block on whatever stderr is current."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """Ignored: the handler always writes to the current ``sys.stderr`` (so
        ``setStream`` returns it and leaves it as it was, rather than raising)."""


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# -- health ------------------------------------------------------------------------------------


def docker_check(endpoint: str | None, tls: EngineTLS | None = None) -> HealthCheck:
    """Fabric's Docker health check: the engine answers a ping (over ``vm.docker.tls``)."""

    def check() -> str | None:
        from actors.images import DockerUnavailable, docker_client

        try:
            docker_client(endpoint, timeout=5, tls=tls).close()  # it pings
        except DockerUnavailable as exc:
            return f"failed to ping to Docker daemon: {exc}"
        return None

    return check


class _Check:
    """One component's health check, run at most once at a time on its own thread.

    A request that finds the check running waits for that run instead of starting another, so
    a hung check holds one thread however many requests ask; each request waits only until its
    own deadline (see :meth:`OperationsServer.health`)."""

    def __init__(self, check: HealthCheck) -> None:
        self._check = check
        self._lock = threading.Lock()
        self._run: tuple[threading.Event, list[str | None]] | None = None

    def start(self) -> tuple[threading.Event, list[str | None]]:
        """The run in progress, or a new one if none is."""
        with self._lock:
            if self._run is None or self._run[0].is_set():
                done: threading.Event = threading.Event()
                box: list[str | None] = []
                self._run = (done, box)
                threading.Thread(
                    target=self._execute,
                    args=(done, box),
                    name="ccactors-healthcheck",
                    daemon=True,
                ).start()
            return self._run

    def _execute(self, done: threading.Event, box: list[str | None]) -> None:
        try:
            box.append(self._check())
        except Exception as exc:
            box.append(f"health check failed: {exc!r}")
        done.set()


# -- TLS (Fabric's operations.tls) -------------------------------------------------------------


@dataclass(frozen=True)
class OperationsTLS:
    """``operations.tls``: the server's certificate and key, and how clients are verified."""

    cert_file: str
    key_file: str
    client_auth_required: bool = False
    client_root_files: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> OperationsTLS | None:
        """None unless ``operations.tls.enabled``; a missing file setting is a ConfigError."""
        if not config.operations_tls_enabled:
            return None
        cert, key = config.operations_tls_cert_file, config.operations_tls_key_file
        missing = [
            f"{name}: required when operations.tls.enabled is true"
            for name, value in (
                ("operations.tls.cert.file", cert),
                ("operations.tls.key.file", key),
            )
            if not value
        ]
        if missing:
            raise ConfigError(*missing)
        assert cert is not None and key is not None
        return cls(
            cert, key, config.operations_tls_client_auth, config.operations_tls_client_root_files
        )

    def context(self) -> ssl.SSLContext:
        """The server's SSL context; a file that cannot be loaded is a ConfigError."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # as Fabric's comm package
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"operations.tls.cert.file, operations.tls.key.file: cannot load "
                f"{self.cert_file} with {self.key_file}: {_reason(exc)}"
            ) from None
        for path in self.client_root_files:
            try:
                context.load_verify_locations(cafile=path)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"operations.tls.clientRootCAs.files: cannot load {path}: {_reason(exc)}"
                ) from None
        if self.client_auth_required and not self.client_root_files:
            # Fabric would start and then refuse every client; say so now instead.
            raise ConfigError(
                "operations.tls.clientRootCAs.files: operations.tls.clientAuthRequired needs "
                "the CAs that client certificates chain to"
            )
        # Fabric: RequireAndVerifyClientCert, else VerifyClientCertIfGiven. Without roots no
        # certificate can be verified, so none is asked for (and /metrics, /logspec are 401).
        if self.client_auth_required:
            context.verify_mode = ssl.CERT_REQUIRED
        elif self.client_root_files:
            context.verify_mode = ssl.CERT_OPTIONAL
        return context


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)


# -- the server --------------------------------------------------------------------------------


class _HTTPServer(http.server.HTTPServer):
    # SO_REUSEADDR only lets a new server take a port whose old connections linger in
    # TIME_WAIT: Linux still refuses a port another socket listens on. SO_REUSEPORT, which
    # would not, stays off.
    allow_reuse_address = True
    allow_reuse_port = False

    def __init__(self, address: tuple[str, int], operations: OperationsServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.operations = operations
        self._slots = threading.BoundedSemaphore(operations.max_workers)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # At most max_workers requests at a time, each on its own thread (gone after it).
        # More are closed at once rather than queued: a client cannot pile connections up.
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        threading.Thread(
            target=self._serve, args=(request, client_address), name="ccactors-ops", daemon=True
        ).start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.operations.tls_context
            if tls is not None:
                # The handshake runs here, on the request's thread and under its timeout, so
                # a client that stalls in it holds one slot, never the accepting loop.
                request.settimeout(self.operations.request_timeout)
                request = tls.wrap_socket(request, server_side=True)
            self.finish_request(request, client_address)
        except Exception as exc:
            log.debug("operations request from %s failed: %r", client_address, exc)
        finally:
            self.shutdown_request(request)
            self._slots.release()


class _DeadlineReader(io.RawIOBase):
    """A socket's bytes, until ``timeout`` seconds after the reader is made (when the request's
    handler is set up, so after a TLS handshake, which has a timeout of its own); then
    TimeoutError, which the request handler answers by closing the connection."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self._sock = sock
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"request not received within {self._timeout:g}s")
        self._sock.settimeout(left)
        try:
            return self._sock.recv_into(buffer)
        finally:
            self._sock.settimeout(self._timeout)  # for the answer's writes


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "ccactors-operations"

    def setup(self) -> None:
        # A timeout on every read and write: a client that does not read the answer holds its
        # place only this long; and the whole request (line, headers, body) must arrive
        # within it, so that a byte now and then does not keep a client's place either.
        self.timeout = self.server.operations.request_timeout
        super().setup()
        self.rfile.close()  # the socket stays open: the handler's own reader replaces this one
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, self.timeout))

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("operations %s: " + format, self.client_address[0], *args)

    def _reply(
        self, status: int, body: bytes = b"", content_type: str = "application/json"
    ) -> None:
        self.send_response(status)
        if body:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any, newline: bool = False) -> None:
        # Go's encoding: compact; /logspec's json.Encoder adds a newline, /healthz's Marshal not.
        body = json.dumps(value, separators=(",", ":")) + ("\n" if newline else "")
        self._reply(status, body.encode())

    def _verified_client(self) -> bool:
        """A client certificate was presented and verified (getpeercert() is empty if not)."""
        return isinstance(self.connection, ssl.SSLSocket) and bool(self.connection.getpeercert())

    def _route(self) -> None:
        path = self.path.split("?", 1)[0]
        ops = self.server.operations
        secure = path in ("/metrics", "/logspec")
        if secure and ops.tls_context is not None and not self._verified_client():
            return self._reply(401)  # Fabric's middleware.RequireCert
        if path == "/metrics" and ops.metrics is not None:
            if self.command != "GET":
                return self._reply(405)
            return self._reply(
                200, ops.metrics.exposition(), "text/plain; version=0.0.4; charset=utf-8"
            )
        if path == "/healthz":
            if self.command != "GET":
                return self._reply(405)
            status, report = ops.health()
            return self._reply(status) if report is None else self._json(status, report)
        if path == "/logspec":
            return self._logspec(ops)
        if path == "/version":
            if self.command != "GET":
                return self._reply(405)
            return self._json(200, {"CommitSHA": "development build", "Version": __version__})
        return self._reply(404, b"404 page not found\n", "text/plain; charset=utf-8")

    def _logspec_json(self, status: int, value: Any) -> None:
        self._json(status, value, newline=True)

    def _logspec(self, ops: OperationsServer) -> None:
        if self.command == "GET":
            return self._logspec_json(200, {"spec": ops.levels.spec()})
        if self.command != "PUT":
            return self._logspec_json(400, {"error": f"invalid request method: {self.command}"})
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return self._logspec_json(400, {"error": "invalid Content-Length"})
        if length < 0 or length > MAX_BODY:
            return self._logspec_json(413, {"error": f"request body larger than {MAX_BODY} bytes"})
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            return self._logspec_json(400, {"error": f"invalid JSON: {exc}"})
        spec = body.get("spec", "") if isinstance(body, dict) else None
        if not isinstance(spec, str):
            return self._logspec_json(400, {"error": 'expected a JSON object {"spec": "..."}'})
        try:
            ops.set_spec(spec)
        except LogSpecError as exc:
            return self._logspec_json(400, {"error": str(exc)})
        log.info("logging spec set to %s", ops.levels.spec())
        return self._reply(204)

    def do_GET(self) -> None:
        self._route()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET


class OperationsServer:
    """The operations HTTP(S) server. ``address`` may end in ``:0`` to pick a free port.

    Raises :class:`~actors.transports.grpc.ListenError` when the address is taken or bad, and
    :class:`~actors.config.ConfigError` when a TLS file cannot be loaded.
    """

    def __init__(
        self,
        address: str,
        *,
        metrics: Metrics | None = None,
        levels: LogLevels | None = None,
        max_workers: int = 8,
        request_timeout: float = REQUEST_TIMEOUT,
        check_timeout: float = CHECK_TIMEOUT,
        tls: OperationsTLS | None = None,
    ) -> None:
        self.metrics = metrics
        self.tls_context = tls.context() if tls is not None else None
        self.scheme = "https" if tls is not None else "http"
        self.request_timeout = request_timeout
        self.levels = levels or (_configured[0] if _configured else LogLevels())
        self.max_workers = max_workers
        self.check_timeout = check_timeout
        # /healthz needs no certificate: requests waiting for checks take at most half the
        # slots, so a hung check never keeps /metrics and /logspec out for check_timeout.
        self._health_waiters = threading.BoundedSemaphore(max(1, max_workers // 2))
        self._checks: dict[str, _Check] = {}
        self._checks_lock = threading.Lock()
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ListenError(address, "expected HOST:PORT with a port from 0 to 65535")
        try:
            self._server = _HTTPServer((host.strip("[]") or "0.0.0.0", int(port)), self)
        except OSError as exc:
            raise ListenError(address, exc.strerror or str(exc)) from exc
        bound_port = self._server.server_address[1]
        self.address = f"{host}:{bound_port}"
        self._thread: threading.Thread | None = None

    def register_checker(self, component: str, check: HealthCheck) -> None:
        with self._checks_lock:
            if component in self._checks:
                raise ValueError(f"'{component}' is already registered")
            self._checks[component] = _Check(check)

    def health(self) -> tuple[int, dict[str, Any] | None]:
        """Fabric's health report and its HTTP status. The checks run at once; if one is not
        done within ``check_timeout`` seconds the answer is fabric-lib-go's: 408 Request
        Timeout without a body (and the log names the checks still running). While half the
        server's slots already wait for checks, the answer comes at once: 408 if a check is
        still running."""
        with self._checks_lock:
            checks = sorted(self._checks.items())
        runs = [(component, check.start()) for component, check in checks]
        waiting = self._health_waiters.acquire(blocking=False)
        deadline = time.monotonic() + (self.check_timeout if waiting else 0.0)
        failed = []
        hung = []
        try:
            for component, (done, box) in runs:
                if not done.wait(max(0.0, deadline - time.monotonic())):
                    hung.append(component)
                elif box[0] is not None:
                    failed.append({"component": component, "reason": box[0]})
        finally:
            if waiting:
                self._health_waiters.release()
        if hung:
            log.warning("health checks not done after %gs: %s", self.check_timeout, ", ".join(hung))
            return 408, None
        report: dict[str, Any] = {
            "status": "Service Unavailable" if failed else "OK",
            "time": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        }
        if failed:
            report["failed_checks"] = failed
        return (503 if failed else 200), report

    def set_spec(self, spec: str) -> None:
        self.levels.activate(spec)
        if _configured is not None and _configured[0] is self.levels:
            logging.getLogger().setLevel(self.levels.lowest())

    def start(self) -> OperationsServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ccactors-operations", daemon=True
        )
        self._thread.start()
        log.info("operations server on %s://%s", self.scheme, self.address)
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()
