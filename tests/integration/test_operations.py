"""The operations server as Fabric's peer offers it (/healthz, /logspec, /metrics), Fabric's
logging specs and format, bounded metric labels, and every server refusing a taken port."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import logging
import re
import select
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.metrics import Metrics
from actors.operations import (
    FabricFormatter,
    LogLevels,
    LogSpecError,
    OperationsServer,
    configure_logging,
)
from actors.transports.grpc import ListenError
from tests.helpers import free_port


def _request(url: str, method: str = "GET", body: Any = None) -> tuple[int, bytes, str]:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read(), reply.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


@pytest.fixture
def ops() -> Iterator[OperationsServer]:
    metrics = Metrics()
    server = OperationsServer(
        "127.0.0.1:0", metrics=metrics, levels=LogLevels("info"), max_workers=2, request_timeout=1
    ).start()
    try:
        yield server
    finally:
        server.stop()


def test_healthz_reports_as_fabric_does(ops: OperationsServer) -> None:
    url = f"http://{ops.address}/healthz"
    status, body, kind = _request(url)
    report = json.loads(body)
    assert (status, kind, report["status"]) == (200, "application/json", "OK")
    assert body.startswith(b'{"status":"OK","time":"') and body.endswith(b'"}')  # json.Marshal
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", report["time"])
    assert "failed_checks" not in report
    ops.register_checker("docker", lambda: "failed to ping to Docker daemon: no engine")
    ops.register_checker("ledger", lambda: None)
    status, body, _ = _request(url)
    report = json.loads(body)
    assert status == 503
    assert report["status"] == "Service Unavailable"
    assert report["failed_checks"] == [
        {"component": "docker", "reason": "failed to ping to Docker daemon: no engine"}
    ]
    assert _request(url, "POST", {})[0] == 405
    with pytest.raises(ValueError, match="'docker' is already registered"):
        ops.register_checker("docker", lambda: None)


def test_logspec_reads_and_changes_the_levels(ops: OperationsServer) -> None:
    url = f"http://{ops.address}/logspec"
    assert _request(url)[1] == b'{"spec":"info"}\n'  # Go's json.Encoder: compact, a newline
    status, _, _ = _request(url, "PUT", {"spec": "debug:actors.launcher,actors.handler=warning"})
    assert status == 204
    assert json.loads(_request(url)[1]) == {
        "spec": "actors.handler=warn:actors.launcher=warn:debug"
    }
    assert ops.levels.level("actors.launcher.sub") == logging.WARNING
    assert ops.levels.level("actors.support") == logging.DEBUG
    status, body, _ = _request(url, "PUT", {"spec": "a=broken"})
    assert status == 400
    assert json.loads(body) == {
        "error": "invalid logging specification 'a=broken': bad segment 'a=broken'"
    }
    assert _request(url, "PUT", b"goo")[0] == 400
    status, body, _ = _request(url, "POST", {})
    assert (status, json.loads(body)) == (400, {"error": "invalid request method: POST"})
    assert json.loads(_request(url)[1])["spec"].endswith(":debug")  # unchanged by the errors


def test_metrics_have_fabrics_names_and_bounded_labels(ops: OperationsServer) -> None:
    metrics = ops.metrics
    assert metrics is not None
    metrics.launch_failures.labels("kv").inc()
    metrics.observe_container_build("kv", True, 2.5)
    status, body, kind = _request(f"http://{ops.address}/metrics")
    text = body.decode()
    assert status == 200 and kind.startswith("text/plain; version=0.0.4")
    assert "# TYPE chaincode_launch_failures counter\n" in text
    assert 'chaincode_launch_failures{chaincode="kv"} 1\n' in text
    assert "# TYPE dockercontroller_chaincode_container_build_duration histogram\n" in text
    assert (
        'dockercontroller_chaincode_container_build_duration_bucket{chaincode="kv",'
        'success="true",le="2.5"} 1\n' in text
    )
    assert "_total" not in text and "_created" not in text
    assert _request(f"http://{ops.address}/nothing")[0] == 404
    assert json.loads(_request(f"http://{ops.address}/version")[1])["Version"]


def test_made_up_label_values_collapse() -> None:
    known_channels = {"mychannel"}
    metrics = Metrics(
        known={"channel": known_channels.__contains__, "chaincode": {"kv"}.__contains__}
    )
    for i in range(30_000):
        metrics.shim_request("GET_STATE", f"made-up-{i}", "kv")(True, 0.001)
    metrics.shim_request("GET_STATE", "mychannel", "kv")(True, 0.001)
    metrics.launch_failures.labels("no-such-chaincode").inc()
    text = metrics.exposition().decode()
    assert "made-up" not in text and "no-such-chaincode" not in text
    assert (
        'chaincode_shim_requests_received{chaincode="kv",channel="unknown",type="GET_STATE"}'
        " 30000\n" in text
    )
    assert 'channel="mychannel"' in text
    assert 'chaincode_launch_failures{chaincode="unknown"} 1\n' in text
    assert len(text) < 20_000
    # Without a way to tell, only so many distinct values are kept.
    capped = Metrics(label_limit=10)
    for i in range(100):
        capped.launch_failures.labels(f"cc{i}").inc()
    assert capped.exposition().decode().count("chaincode_launch_failures{") == 11


def test_idle_connections_are_bounded(ops: OperationsServer) -> None:
    host, port = ops.address.rsplit(":", 1)
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(2)]
    try:
        # Both places are held by clients that send nothing: the next one is closed at
        # once, not queued; after the request timeout the places are free again.
        extra = socket.create_connection((host, int(port)), timeout=5)
        assert extra.recv(100) == b""
        extra.close()
        for conn in idle:
            assert conn.recv(100) == b""  # closed by the server after request_timeout
        assert _request(f"http://{ops.address}/healthz")[0] == 200
    finally:
        for conn in idle:
            conn.close()


def test_a_hung_check_holds_one_thread_however_many_ask() -> None:
    """Requests while a check hangs get fabric-lib-go's 408 at their deadline, and share the
    check's one run."""
    # more slots than the client's threads: a 408 without a body lets urlopen return before
    # the server has given its slot back, and a pooled thread's next request may come first
    server = OperationsServer("127.0.0.1:0", max_workers=16, check_timeout=0.2).start()
    release = threading.Event()
    server.register_checker("ledger", lambda: None if release.wait(60) else "never")
    url = f"http://{server.address}/healthz"
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda _: _request(url), range(12)))
        assert [(status, body) for status, body, _ in replies] == [(408, b"")] * 12
        running = [t for t in threading.enumerate() if t.name == "ccactors-healthcheck"]
        assert len(running) == 1
        release.set()
        running[0].join(10)
        assert _request(url)[0] == 200  # a new run once the hung one is over
    finally:
        release.set()
        server.stop()


def test_a_hung_check_keeps_at_most_half_the_slots() -> None:
    """Requests beyond half the slots that find a check running are answered 408 at once, so
    the other endpoints keep their places while a check hangs."""
    server = OperationsServer("127.0.0.1:0", max_workers=4, check_timeout=60).start()
    release = threading.Event()
    server.register_checker("ledger", lambda: None if release.wait(60) else "never")
    url = f"http://{server.address}"
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            asked = [pool.submit(_request, f"{url}/healthz") for _ in range(4)]
            finished = concurrent.futures.as_completed(asked, timeout=20)
            try:
                first = [next(finished).result()[:2] for _ in range(2)]
            except TimeoutError:
                pytest.fail("every /healthz request waited for the hung check")
            assert first == [(408, b"")] * 2
            assert sum(f.done() for f in asked) == 2  # two wait for the check's run...
            assert _request(f"{url}/logspec")[0] == 200  # ...and the others' places are free
            release.set()
            assert sorted(f.result()[0] for f in asked) == [200, 200, 408, 408]
    finally:
        release.set()
        server.stop()


def test_a_slow_request_is_dropped_at_its_deadline(ops: OperationsServer) -> None:
    """A client that sends a byte now and then, each within the socket timeout, is still
    dropped once the request's time (1 s here) is up."""
    host, port = ops.address.rsplit(":", 1)
    request = b"GET /healthz HTTP/1.0\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        for byte in request:
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                break  # reset by the server
            if select.select([conn], [], [], 0.05)[0]:
                break  # the server closed its side
        else:
            pytest.fail("the server took the whole slow request")
        with contextlib.suppress(ConnectionResetError):
            assert conn.recv(100) == b""  # no answer, the connection closed
    assert _request(f"http://{ops.address}/healthz")[0] == 200


def test_operations_refuses_a_taken_port(ops: OperationsServer) -> None:
    with pytest.raises(ListenError, match="in use"):
        OperationsServer(ops.address)
    with pytest.raises(ListenError, match="HOST:PORT"):
        OperationsServer("127.0.0.1")


def test_fabric_log_format(capsys: pytest.CaptureFixture[str]) -> None:
    record = logging.LogRecord(
        "actors.launcher", logging.WARNING, __file__, 1, "launch of %s failed", ("kv",), None
    )
    record.funcName = "fail"
    line = FabricFormatter().format(record)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \S+ \[actors\.launcher\] fail -> WARN 001 "
        r"launch of kv failed",
        line,
    ), line
    as_json = json.loads(FabricFormatter("json").format(record))
    assert (as_json["level"], as_json["name"], as_json["msg"]) == (
        "warn",
        "actors.launcher",
        "launch of kv failed",
    )
    with pytest.raises(LogSpecError):
        configure_logging("info:actors=bogus")
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        levels = configure_logging("warning:actors.launcher=debug")
        assert levels.spec() == "actors.launcher=debug:warn"
        logging.getLogger("actors.launcher.x").debug("shown")
        logging.getLogger("actors.support").info("hidden")
        err = capsys.readouterr().err
        assert "[actors.launcher.x]" in err and "shown" in err and "hidden" not in err
        # the handler always writes to the current stderr: setting its stream is ignored
        (handler,) = (h for h in root.handlers if h not in before[0])
        assert isinstance(handler, logging.StreamHandler)
        assert handler.setStream(io.StringIO()) is sys.stderr
        logging.getLogger("actors.launcher.y").warning("still on stderr")
        assert "still on stderr" in capsys.readouterr().err
    finally:
        for handler in root.handlers[:]:
            if handler not in before[0]:
                root.removeHandler(handler)
        root.setLevel(before[1])


# -- every server refuses a taken port, in one line naming the flag ----------------------------


def _serve(*args: str, config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "actors.cli",
            "serve",
            "--ephemeral",
            "--config",
            str(config),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_second_serve_on_the_same_ports_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "peer.toml"
    config.write_text("")
    listen, admin, operations = (f"127.0.0.1:{free_port()}" for _ in range(3))
    first = _serve("--listen", listen, "--admin", admin, "--operations", operations, config=config)
    try:
        assert first.stdout is not None
        banner = first.stdout.readline()
        assert "ccactors serve:" in banner, first.stderr.read() if first.stderr else ""
        assert f"operations http://{operations}" in banner
        assert "(mode net, TLS)" in banner
        spare = [f"127.0.0.1:{free_port()}" for _ in range(3)]
        for flag, args in (
            ("--listen", ("--listen", listen, "--admin", spare[0])),
            ("--admin", ("--listen", spare[1], "--admin", admin)),
            (
                "--metrics",
                ("--listen", spare[1], "--admin", spare[2], "--metrics", operations),
            ),
        ):
            second = _serve(*args, config=config)
            out, err = second.communicate(timeout=60)
            address = dict(zip(args[::2], args[1::2], strict=True))[flag]
            assert second.returncode == 2, (out, err)
            [line] = err.strip().splitlines()
            shown = "--peer" if flag == "--admin" else flag  # --admin is --peer's old name
            assert line.startswith(f"ccactors: error: {shown}: "), line
            assert address in line and "in use" in line.lower(), line
        status, body, _ = _request(f"http://{operations}/healthz")
        assert (status, json.loads(body)["status"]) == (200, "OK")
    finally:
        first.terminate()
        first.communicate(timeout=30)


def test_serve_names_the_flag_of_a_bad_address(tmp_path: Path) -> None:
    config = tmp_path / "peer.toml"
    config.write_text("")
    proc = _serve("--listen", "7062", config=config)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.strip().splitlines() == [
        "ccactors: error: --listen: expected HOST:PORT, got '7062'"
    ], (out, err)


def test_serve_insecure_warns(tmp_path: Path) -> None:
    config = tmp_path / "peer.toml"
    config.write_text("")
    args = ("--listen", "127.0.0.1:0", "--admin", f"127.0.0.1:{free_port()}", "--insecure")
    peer = _serve(*args, config=config)
    try:
        assert peer.stdout is not None
        assert "(mode net, no TLS)" in peer.stdout.readline()
    finally:
        peer.terminate()
        _, err = peer.communicate(timeout=30)
    assert "WARN" in err and "runs without TLS (insecure)" in err


def test_the_shim_server_refuses_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "actors.shim",
                "server",
                "--chaincode-address",
                address,
                "--chaincode-id",
                "kv",
                "examples.kv:KVChaincode",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2, proc
    assert proc.stderr.strip().splitlines() == [
        f"error: --chaincode-address {address}: Address already in use"
    ]
