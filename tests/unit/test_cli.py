"""The command line in process: global options anywhere, defaults in --help, one flag name for
the peer, validated timeouts, one error prefix, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from actors.cli import build_parser, main
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


def _errors(err: str) -> list[str]:
    lines = err.strip().splitlines()
    assert lines, "expected an error on stderr"
    assert all(line.startswith("ccactors: error: ") for line in lines), lines
    assert "Traceback" not in err
    return [line.removeprefix("ccactors: error: ") for line in lines]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("ccactors ")


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [(["list"], False), (["-v", "list"], True), (["list", "-v"], True), (["serve", "-v"], True)],
)
def test_global_options_after_the_subcommand(argv: list[str], verbose: bool) -> None:
    assert build_parser().parse_args(argv).verbose is verbose


def test_one_peer_flag_with_the_old_spelling_hidden(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for command in ("invoke", "query", "list", "launch", "stop", "logs", "events", "serve"):
        extra = ["kv"] if command in ("invoke", "query", "launch", "stop", "logs") else []
        assert parser.parse_args([command, "--peer", "h:1", *extra]).peer == "h:1"
        assert parser.parse_args([command, "--admin", "h:2", *extra]).peer == "h:2"
        default = "127.0.0.1:7051" if command == "serve" else None  # clients: actors.peerenv
        assert parser.parse_args([command, *extra]).peer == default
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert "--peer HOST:PORT" in out and "--admin" not in out


def test_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["invoke", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: $CORE_PEER_ADDRESS, else 127.0.0.1:7051)" in out
    assert "(default: mychannel)" in out
    assert "(default: None)" not in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["query", "--timeout", "inf", "kv"], "argument --timeout: cannot parse duration 'inf'"),
        (["query", "--timeout", "nan", "kv"], "argument --timeout: cannot parse duration 'nan'"),
        (["invoke", "--timeout", "100000", "kv"], "argument --timeout: must be at most 86400s"),
        (["invoke", "--timeout", "0", "kv"], "argument --timeout: must be positive"),
        (["launch", "--timeout=-1s", "kv"], "argument --timeout: must not be negative"),
        (["faults", "--duration", "nan"], "argument --duration: cannot parse duration"),
        (["faults", "--execute-timeout", "1e400"], "argument --execute-timeout: cannot parse"),
        (["logs", "--tail=-5", "kv"], "argument --tail: must be between 1 and 1000, got -5"),
        (["demo", "--clients", "0"], "argument --clients: must be between 1 and 1024, got 0"),
        (["nonsense"], "argument COMMAND: invalid choice: 'nonsense'"),
        (["serve", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    (line,) = _errors(capsys.readouterr().err)
    assert message in line


def test_serve_reports_every_startup_problem_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "core.yaml"
    config.write_text(
        "chaincode:\n  executetimeout: 1m30\n  executetimeuot: 5s\n"
        "peer:\n  maxRecvMsgSize: 1.5\n"
        "chaincodes:\n  - name: p\n    runtime: process\n    command: 7\n"
    )
    argv = ["serve", "--listen", "7062", "--metrics", "127.0.0.1", "--config", str(config)]
    assert main(argv) == 2
    assert _errors(capsys.readouterr().err) == [
        "--listen: expected HOST:PORT, got '7062'",
        "--metrics: expected HOST:PORT, got '127.0.0.1'",
        "unknown key 'chaincode.executetimeuot' (did you mean chaincode.executetimeout?)",
        "chaincode.executetimeout: cannot parse duration '1m30' (use e.g. 30s, 1m30s, 500ms)",
        "peer.maxRecvMsgSize: expected a whole number, got 1.5",
        "chaincodes[0] chaincode p: command: expected a list of strings, got 7",
    ]


def test_serve_refuses_an_external_builder_that_is_not_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    present = tmp_path / "present"
    (present / "bin").mkdir(parents=True)
    (present / "bin" / "detect").write_text("#!/bin/sh\nexit 1\n")
    config = tmp_path / "core.yaml"
    config.write_text(
        "chaincode:\n  executetimeout: 1m30\n  externalBuilders:\n"
        f"    - {{name: missing, path: {tmp_path / 'missing'}}}\n"
        f"    - {{name: nodetect, path: {tmp_path}}}\n"
        f"    - {{name: present, path: {present}}}\n"
    )
    assert main(["serve", "--listen", "127.0.0.1:0", "--config", str(config)]) == 2
    assert _errors(capsys.readouterr().err) == [
        "chaincode.executetimeout: cannot parse duration '1m30' (use e.g. 30s, 1m30s, 500ms)",
        f"chaincode.externalBuilders: builder missing: {tmp_path}/missing/bin/detect does not "
        "exist",
        f"chaincode.externalBuilders: builder nodetect: {tmp_path}/bin/detect does not exist",
    ]


def test_client_failures_exit_1_with_the_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    assert main(["list", "--peer", nobody]) == 1
    (line,) = _errors(capsys.readouterr().err)
    # not the chaincode's error, and no TLS hint: nothing answered at all
    assert line == f"PeerUnavailable: nothing is listening at {nobody}"
    assert main(["stop", "--peer", nobody, "--json", "kv"]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "PeerUnavailable"
    assert main(["list", "--peer", "nowhere"]) == 2
    assert _errors(capsys.readouterr().err) == ["--peer: expected HOST:PORT, got 'nowhere'"]


def test_define_help_marks_what_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["define", "--help"])
    out = capsys.readouterr().out
    required = out[out.index("\nrequired:\n") :]
    for flag in ("--channel", "--name", "--version", "--sequence"):
        assert f"{flag} " in required and "(required)" in required.split(flag, 1)[1][:120]
    assert "--package-id" not in required


def test_invoke_help_says_the_admin_path_skips_ordering_and_policy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["invoke", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "no ordering, no block, no endorsement-policy check" in text
    assert "Use --gateway (with --msp-dir, --msp-id) for Fabric's path" in text


def test_an_empty_list_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from actors.admin import AdminClient
    from protos.admin import admin_pb2

    monkeypatch.setattr(AdminClient, "list", lambda self: admin_pb2.ChaincodeList())
    assert main(["list"]) == 0
    assert capsys.readouterr().out == (
        "no chaincodes: none is defined, configured or running on this peer\n"
    )
    assert main(["list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_package_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "kv.tar.gz"
    argv = ["package", "-l", "kv", "-p", str(ROOT / "examples"), "-t", "examples.kv:KVChaincode"]
    assert main([*argv, "-o", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["label"] == "kv" and printed["file"] == str(out)
    assert printed["package_id"].startswith("kv:") and out.is_file()
    for mistake, message in (
        (["-l", "bad label!"], "package: invalid label 'bad label!'"),
        (["-p", str(tmp_path / "nonexist")], f"package: chaincode source {tmp_path}/nonexist "),
        (["-t", "nocolon"], "package: invalid target 'nocolon'"),
    ):
        assert main([*argv, "-o", str(out), *mistake]) == 2, mistake
        (line,) = _errors(capsys.readouterr().err)
        assert line.startswith(message), line


def test_images_build_json_keeps_progress_off_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import actors.images as images

    def build(endpoint: str | None, *, tag: str, force: bool, progress: Any) -> Any:
        progress("step 1/2: debian")  # what the real builder reports as it goes
        return images.BuiltImages("sha256:d", "sha256:b", 1.25)

    monkeypatch.setattr(images, "build_images", build)
    assert main(["images", "build", "--json", "--tag", "x/y:1"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"tag": "x/y:1", "id": "sha256:b", "seconds": 1.2}
    assert "step 1/2" in captured.err
    assert main(["images", "build", "--tag", "x/y:1"]) == 0
    assert capsys.readouterr().out == "step 1/2: debian\nbase images ready in 1.2 s\n"


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:7051", True),
        ("127.0.0.2:7051", True),
        ("localhost:7051", True),
        ("[::1]:7051", True),
        ("0.0.0.0:7051", False),
        (":7051", False),  # every interface
        ("[::]:7051", False),
        ("10.0.0.5:7051", False),
        ("peer0.example.com:7051", False),  # a name may resolve anywhere
    ],
)
def test_only_loopback_addresses_take_a_plaintext_admin_api(address: str, loopback: bool) -> None:
    from actors.cli import _loopback

    assert _loopback(address) is loopback


# -- Fabric's invoke flags and the lifecycle verbs ------------------------------------------------


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """What `invoke`/`query` hand the admin client (which is not called over the network)."""
    from actors.admin import AdminClient
    from protos.admin import admin_pb2
    from protos.peer.proposal_response_pb2 import Response

    calls: list[tuple[Any, ...]] = []

    def invoke(self: Any, channel: str, chaincode: str, args: Any, **kw: Any) -> Any:
        calls.append((channel, chaincode, list(args), kw["transient"], kw["is_init"]))
        return admin_pb2.InvokeReply(
            txid="t", response=Response(status=200, payload=b"ok"), validation="VALID"
        )

    monkeypatch.setattr(AdminClient, "invoke", invoke)
    return calls


def test_invoke_takes_fabrics_flags_or_name_and_arguments(
    sent: list[tuple[Any, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    ctor = '{"function":"init","Args":["a"]}'
    argv = ["invoke", "-C", "ch", "-n", "kv", "--isInit", "-c", ctor, "--transient", '{"k":"dg=="}']
    assert main(argv) == 0
    assert main(["query", "kv", "get", "a"]) == 0
    assert main(["query", "-n", "kv", "get", "a"]) == 0
    assert main(["query", "-n", "kv", "-c", '{"args":["get","a"]}']) == 0  # Go's JSON keys
    assert sent == [
        ("ch", "kv", [b"init", b"a"], {"k": b"v"}, True),
        *[("mychannel", "kv", [b"get", b"a"], None, False)] * 3,
    ]
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["invoke", "-n", "kv"], "empty JSON chaincode parameters must contain"),
        (["invoke", "kv"], "empty JSON chaincode parameters must contain"),
        (["query", "-n", "kv", "-c", "{}"], "-c: empty JSON chaincode parameters must contain"),
        (
            ["invoke", "-n", "kv", "-c", '{"Args":[]}'],
            "-c: chaincode argument error: Args is empty",
        ),
        (["invoke", "-n", "kv", "-c", '{"function":"f"}'], "-c: non-empty JSON chaincode"),
        (["invoke", "-n", "kv", "-c", '{"Args":["a"],"x":1}'], "-c: non-empty JSON chaincode"),
        (
            ["invoke", "-n", "kv", "-c", '{"function":"f","Args":[],"x":1}'],
            "-c: non-empty JSON chaincode",
        ),
    ],
)
def test_empty_chaincode_arguments_are_refused_as_fabric_does(
    sent: list[tuple[Any, ...]], argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert line.startswith(message)
    if "JSON chaincode" in message:  # Fabric's text
        assert "must contain the following keys: 'Args' or 'Function' and 'Args'" in line
    assert sent == []  # nothing reached the peer


def test_a_grpc_server_that_is_not_the_admin_api_is_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """CORE_PEER_ADDRESS at a Gateway port: UNIMPLEMENTED is said as the address's fault."""
    from concurrent import futures

    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        address = f"127.0.0.1:{port}"
        assert main(["query", "--peer", address, "kv", "get", "a"]) == 1
        (line,) = _errors(capsys.readouterr().err)
        assert line == (
            f"PeerUnavailable: {address} answers gRPC but is not a ccactors admin API (is it the "
            "--gateway address? use --gateway ADDR for Fabric's Gateway path, or --peer with "
            "the admin address)"
        )
        # `wait` does not wait for it to become one
        assert main(["wait", "--peer", address, "--timeout", "1m"]) == 1
        (line,) = _errors(capsys.readouterr().err)
        assert "is not a ccactors admin API" in line and "did not answer" not in line
    finally:
        server.stop(None)


def test_invoke_takes_channelID_and_flags_between_name_and_arguments(
    sent: list[tuple[Any, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["invoke", "--channelID", "ch", "kv", "put", "a", "1"]) == 0
    assert main(["query", "kv", "--peer", "127.0.0.1:7051", "get", "--json", "a"]) == 0
    assert sent == [
        ("ch", "kv", [b"put", b"a", b"1"], None, False),
        ("mychannel", "kv", [b"get", b"a"], None, False),
    ]
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["invoke", "kv", "--bogus", "get"], "invoke: unrecognized arguments: --bogus"),
        (["channel", "list", "--bogus"], "channel list: unrecognized arguments: --bogus"),
    ],
)
def test_unknown_flags_point_to_the_subcommands_help(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    (line,) = _errors(capsys.readouterr().err)
    assert message in line
    assert line.endswith(f"(see `ccactors {message.split(':')[0]} --help`)")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-n", "kv", "-c", "{bad"], "-c: chaincode argument error: Expecting"),
        (["-n", "kv", "-c", "[1]"], 'expected {"Args": [...]}'),
        (["-n", "kv", "-c", '{"Args":[1]}'], "Args must be a list of strings"),
        (["-n", "kv", "-c", '{"function":1,"Args":[]}'], "function must be a string"),
        (["-n", "kv", "get", "-c", '{"Args":[]}'], "either after the name or with -c"),
        ([], "a chaincode name is needed"),
        (["kv", "init", "--gateway", "127.0.0.1:1", "--isInit"], "not --gateway"),
    ],
)
def test_bad_invoke_flags_are_usage_errors(
    argv: list[str], message: str, sent: list[tuple[Any, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["invoke", *argv]) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert message in line
    assert sent == []  # refused before any peer contact


def test_lifecycle_verbs_without_a_peer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from actors.packaging import create_package

    package = tmp_path / "kv.tar.gz"
    info = create_package(ROOT / "examples", "kv_1", target="examples.kv:KVChaincode", out=package)
    assert main(["calculatepackageid", str(package)]) == 0
    assert capsys.readouterr().out.strip() == info.id
    assert main(["calculatepackageid", "--json", str(package)]) == 0
    assert json.loads(capsys.readouterr().out) == {"package_id": info.id}
    (tmp_path / "junk.tgz").write_bytes(b"not a package")
    assert main(["calculatepackageid", "--json", str(tmp_path / "junk.tgz")]) == 2
    (line,) = _errors(capsys.readouterr().err)
    assert line.startswith(f"{tmp_path / 'junk.tgz'}: could not parse as a chaincode install")
    assert main(["install", str(tmp_path / "missing.tgz")]) == 2
    assert _errors(capsys.readouterr().err) == [
        f"failed to read chaincode package at '{tmp_path / 'missing.tgz'}': [Errno 2] No such "
        f"file or directory: '{tmp_path / 'missing.tgz'}'"
    ]
    assert main(["define", "-C", "ch", "-n", "kv", "-v", "1"]) == 2
    assert _errors(capsys.readouterr().err) == [
        "The required parameter 'sequence' is empty. Rerun the command with --sequence flag"
    ]
    nobody = f"127.0.0.1:{free_port()}"
    assert main(["querycommitted", "--peer", nobody, "-C", "ch", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "PeerUnavailable"


def test_wait_gives_up_after_its_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens
    assert main(["wait", "--peer", address, "--timeout", "300ms"]) == 1
    (line,) = _errors(capsys.readouterr().err)
    assert line == (
        f"PeerUnavailable: {address} did not answer within 300ms: nothing is listening at {address}"
    )
    assert main(["wait", "--peer", address, "--timeout", "300ms", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "PeerUnavailable"


def test_logging_writes_to_the_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's log handler must not keep the stderr of its setup: once that is closed (here
    a replaced stream, in the suite pytest's capsys of an earlier test) each record would be a
    "--- Logging error ---" block with a bare "Call stack:" line."""
    import contextlib
    import io
    import logging

    earlier = io.StringIO()
    with contextlib.redirect_stderr(earlier):
        assert main(["calculatepackageid", "/nonexistent.tar.gz"]) == 2  # sets logging up
    earlier.close()
    logging.getLogger("actors.test").warning("logged later")
    err = capsys.readouterr().err
    assert "Logging error" not in err and "Call stack" not in err
    assert "logged later" in err


def test_pasted_fabric_lines_beyond_invoke(
    sent: list[tuple[Any, ...]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The newcomer's lines: orderer/TLS flags on every client verb, --output json, the
    `lifecycle chaincode` and `chaincode` prefixes, the output file of `package` positional."""
    nobody = f"127.0.0.1:{free_port()}"
    orderer = ["-o", "localhost:7050", "--tls", "--cafile", "ca.pem", "--peerAddresses", nobody]
    for argv in (
        ["querycommitted", "-C", "mychannel", *orderer, "--output", "json"],
        ["lifecycle", "chaincode", "querycommitted", "-C", "ch", *orderer, "-O", "json"],
        ["lifecycle", "chaincode", "queryinstalled", *orderer, "--output", "json"],
        ["channel", "list", *orderer, "-O", "json"],
        ["-v", "chaincode", "list", *orderer],
    ):
        assert main(argv) == 1, argv
        captured = capsys.readouterr()
        note, *error = captured.err.splitlines()
        assert note.startswith("ccactors: note: --orderer, --tls, --cafile ignored: "), argv
        if "json" in argv:  # --output json is --json: the failure is a JSON object
            assert json.loads(captured.out)["error"] == "PeerUnavailable", argv
            assert error == []
        else:
            assert error == [f"ccactors: error: PeerUnavailable: nothing is listening at {nobody}"]
    with pytest.raises(SystemExit) as info:
        main(["queryinstalled", "--output", "yaml"])
    assert info.value.code == 2
    assert "--output: the only format is json (got 'yaml')" in capsys.readouterr().err
    # `peer chaincode invoke` as pasted, --waitForEventTimeout noted on the admin path
    ctor = '{"Args":["put","a","1"]}'
    argv = ["chaincode", "invoke", "-n", "kv", "-c", ctor, "--waitForEventTimeout", "30s"]
    assert main(argv) == 0
    assert sent == [("mychannel", "kv", [b"put", b"a", b"1"], None, False)]
    assert "--waitForEventTimeout ignored: through the admin API" in capsys.readouterr().err
    assert build_parser().parse_args(argv[1:]).wait_for_event_timeout == 30.0
    # Fabric's two-step definition: one line pointing to define
    for verb in ("approveformyorg", "commit", "checkcommitreadiness"):
        assert main(["lifecycle", "chaincode", verb, "-C", "ch", "-n", "kv"]) == 2
        (line,) = _errors(capsys.readouterr().err)
        assert line.startswith(f"{verb}: ccactors has no separate {verb}: `ccactors define` ")
    # `peer lifecycle chaincode package OUT --path --lang --label`
    out = tmp_path / "kv.tar.gz"
    source = ["--path", str(ROOT / "examples"), "--lang", "python", "--label", "kv"]
    target = ["-t", "examples.kv:KVChaincode"]
    assert main(["lifecycle", "chaincode", "package", str(out), *source, *target]) == 0
    assert capsys.readouterr().out.startswith("kv:") and out.is_file()
    assert main(["package", str(out), *source, *target, "-o", str(tmp_path / "other")]) == 2
    assert _errors(capsys.readouterr().err)[0].startswith("package: give the file once")


def test_help_shows_durations_and_fabric_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, shown in (
        (["wait", "--help"], "give up after this long (default: 60s)"),
        (["launch", "--help"], "(default: 10m)"),
        (["invoke", "--help"], "(default: $CORE_PEER_MSPCONFIGPATH)"),
        (["query", "--help"], "(default: $CORE_PEER_LOCALMSPID)"),
        (["list", "--help"], "CORE_PEER_ADDRESS names the admin API here"),
    ):
        with pytest.raises(SystemExit):
            main(argv)
        assert shown in " ".join(capsys.readouterr().out.split()), argv


def test_wait_for_event_timeout_bounds_the_gateways_commit_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from actors.gateway.client import GatewayClient, Submitted
    from tests.gateway_peer import make_crypto, member_dir

    crypto = make_crypto(tmp_path / "crypto", "Org1MSP")
    capsys.readouterr()
    waits: list[tuple[float, float | None]] = []

    def submit(self: Any, *args: Any, timeout: float, commit_timeout: Any, **kw: Any) -> Any:
        waits.append((timeout, commit_timeout))
        return Submitted("t", b"ok", 0, 1)

    monkeypatch.setattr(GatewayClient, "submit", submit)
    msp = ["--msp-dir", str(member_dir(crypto, 1, "User1@") / "msp"), "--msp-id", "Org1MSP"]
    argv = ["invoke", "--gateway", f"127.0.0.1:{free_port()}", *msp, "kv", "put", "a", "1"]
    assert main([*argv, "--waitForEventTimeout", "2m"]) == 0
    assert main([*argv, "--timeout", "5s"]) == 0
    assert waits == [(60.0, 120.0), (5.0, None)]
    assert "waitForEventTimeout" not in capsys.readouterr().err  # used, so no note
