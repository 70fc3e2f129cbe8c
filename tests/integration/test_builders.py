"""External builders and the built-in ccaas builder, with real scripts and real chaincode.

The builders are shell scripts written by the tests into a temporary directory; the peer runs
their ``bin/detect``, ``bin/build``, ``bin/release`` and ``bin/run`` exactly as Fabric's peer
does (arguments, directory layout, environment), and the chaincode they release or run is our
Python shim, which the peer then invokes.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import signal
import stat
import sys
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.config import ChaincodeDefinition, Config, ConfigError
from actors.errors import LaunchError, LifecycleError
from actors.ledger import ValidationCode
from actors.lifecycle.builders import (
    CCAAS_CONFIG_ENV,
    BuildError,
    CcaasBuilder,
    Detector,
    ExternalBuilder,
    PackageRuntime,
    ccaas_package_bytes,
    parse_builders,
    render_template,
    safe_extract,
    sanitize_ccid_path,
)
from actors.lifecycle.definitions import Definition
from actors.lifecycle.platforms import PlatformError
from actors.packaging import create_package, read_package
from actors.runtimes.external import ConnectionInfo, connection_from_json
from actors.support import ChaincodeSupport
from tests.helpers import ServiceProcess, free_port, wait_for

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CHANNEL = "buildchannel"
WAIT = 30.0


# -- helpers -----------------------------------------------------------------------------------


def write_builder(root: Path, name: str, scripts: dict[str, str]) -> ExternalBuilder:
    """A builder directory ``root/name/bin/<script>`` with executable shell scripts."""
    bin_dir = root / name / "bin"
    bin_dir.mkdir(parents=True)
    for script, body in scripts.items():
        path = bin_dir / script
        path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
        path.chmod(0o755)
    return ExternalBuilder(name, str(root / name))


def tar_gz(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    raw = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        for info, data in entries:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return raw.getvalue()


def file_entry(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def package_file(
    path: Path, metadata: dict[str, Any], code: list[tuple[tarfile.TarInfo, bytes]]
) -> Path:
    outer = [
        file_entry("metadata.json", json.dumps(metadata).encode()),
        file_entry("code.tar.gz", tar_gz(code)),
    ]
    path.write_bytes(tar_gz(outer))
    return path


def kv_package(tmp_path: Path, kind: str = "python", label: str = "kvb") -> Path:
    """The kv example as a package of ``kind`` (a builder claims it by that type)."""
    out = tmp_path / f"{label}.tar.gz"
    create_package(EXAMPLES, label, type=kind, target="examples.kv:KVChaincode", out=out)
    return out


def make_support(
    runtime: PackageRuntime, *definitions: ChaincodeDefinition, **config: Any
) -> ChaincodeSupport:
    # plaintext unless a test asks for TLS (the net mode default): the scripts keep short
    values: dict[str, Any] = {
        "startup_timeout": 20.0,
        "execute_timeout": 20.0,
        "tls_enabled": False,
    }
    values.update(config)
    support = ChaincodeSupport(
        Config(channels=(CHANNEL,), chaincodes=definitions, **values), runtimes={"docker": runtime}
    )
    runtime.peer_address = support.peer_address
    runtime.msp_id = support.config.msp_id
    runtime.tls = support.client_tls
    return support


def put_get(support: ChaincodeSupport, name: str) -> None:
    put = support.execute_async(CHANNEL, None, name, ["put", "k", "v1"]).result(WAIT)
    assert put.response.status == 200, put.response
    assert support.commit(CHANNEL, put) is ValidationCode.VALID
    got = support.execute_async(CHANNEL, None, name, ["get", "k"]).result(WAIT)
    assert got.response.payload == b"v1"


@pytest.fixture
def supports() -> Iterator[list[ChaincodeSupport]]:
    made: list[ChaincodeSupport] = []
    yield made
    for support in made:
        support.shutdown()


# -- configuration -----------------------------------------------------------------------------


def test_builder_configuration_as_core_yaml_writes_it() -> None:
    builders = parse_builders(
        [
            {"name": "one", "path": "/opt/one", "propagateEnvironment": ["HOME", "GOPATH"]},
            {"Name": "two", "Path": "/opt/two", "environmentWhitelist": ["X"]},
        ]
    )
    assert builders[0] == ExternalBuilder("one", "/opt/one", ("HOME", "GOPATH"))
    assert builders[1].propagate_environment == ("X",)
    with pytest.raises(ConfigError, match="has no name attribute"):
        parse_builders([{"path": "/opt/x"}])
    with pytest.raises(ConfigError, match="path attribute missing"):
        parse_builders([{"name": "x"}])
    with pytest.raises(ConfigError, match="must be absolute"):
        parse_builders([{"name": "x", "path": "relative/dir"}])
    with pytest.raises(ConfigError, match="duplicate builder names"):
        parse_builders([{"name": "x", "path": "/a"}, {"name": "x", "path": "/b"}])
    with pytest.raises(ConfigError, match="must be a list"):
        parse_builders([{"name": "x", "path": "/a", "propagateEnvironment": 5}])
    with pytest.raises(ConfigError, match="unknown keys"):
        parse_builders([{"name": "x", "path": "/a", "propagateEnv": ["A"]}])
    # Fabric's sample core.yaml, loaded as it is: its ccaas_builder entry is the built-in one
    fabric = Config.load(ROOT / "tests" / "data" / "fabric-2.5-core.yaml", env={})
    detector = Detector.configured(fabric.external_builders, None)
    try:
        assert [type(b) for b in detector.builders] == [CcaasBuilder]
    finally:
        detector.close()
    with pytest.raises(ConfigError, match=r"chaincode\.externalBuilders: expected a list"):
        Config(external_builders={"name": "x"})


def test_sanitized_build_directory_names() -> None:
    assert sanitize_ccid_path('a<b>c:d"e/f\\g|h?i*j&k') == "a-b-c-d-e-f-g-h-i-j-k"


# -- detect, build, release: arguments, layout, environment, order, persistence -----------------


def recording_builder(root: Path, name: str, log: Path, *, claims: bool) -> ExternalBuilder:
    """A builder that records each call's arguments and environment in ``log``."""
    return write_builder(
        root,
        name,
        {
            "detect": f"""\
                echo "{name} detect $@" >> {log}
                test -f "$2/metadata.json" || exit 2
                exit {0 if claims else 1}
            """,
            "build": f"""\
                echo "{name} build $@" >> {log}
                env | sort > "$3/env.txt"
                cp "$2/metadata.json" "$3/metadata-copy.json"
                ls -R "$1" > "$3/source-listing.txt"
                echo "building" >&2
            """,
            "release": f"""\
                echo "{name} release $@" >> {log}
                mkdir -p "$2/statedb/couchdb/indexes"
                echo '{{}}' > "$2/statedb/couchdb/indexes/i.json"
            """,
        },
    )


def test_detect_order_arguments_layout_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "calls.log"
    root = tmp_path / "builders"
    first = recording_builder(root, "declines", log, claims=False)
    second = recording_builder(root, "claims", log, claims=True)
    second = ExternalBuilder(second.name, second.path, ("PROPAGATED", "UNSET_VAR"))
    third = recording_builder(root, "never", log, claims=True)
    monkeypatch.setenv("PROPAGATED", "yes")
    monkeypatch.setenv("NOT_PROPAGATED", "no")
    monkeypatch.setenv("CORE_PEER_ADDRESS", "x")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the scratch directory goes here
    detector = Detector.configured([first, second, third], tmp_path / "builds")
    package = read_package(kv_package(tmp_path))

    built = detector.build(package.id, package.metadata, package.code)

    assert built is not None and built.builder.name == "claims"
    calls = [line.split() for line in log.read_text().splitlines()]
    assert [c[:2] for c in calls] == [
        ["declines", "detect"],
        ["claims", "detect"],
        ["claims", "build"],
        ["claims", "release"],
    ]
    source, metadata = calls[0][2:]
    assert Path(source).name == "src" and Path(metadata).name == "metadata"
    scratch = Path(source).parent
    assert scratch.parent == tmp_path and scratch.name.startswith("fabric-kvb-")
    assert calls[2][2:] == [source, metadata, str(scratch / "bld")]
    assert calls[3][2:] == [str(scratch / "bld"), str(scratch / "release")]
    assert not scratch.exists()  # the scratch directory is removed after the build

    durable = tmp_path / "builds" / sanitize_ccid_path(package.id)
    assert built.bld_dir == durable / "bld" and built.release_dir == durable / "release"
    assert json.loads((durable / "build-info.json").read_text()) == {"builder_name": "claims"}
    assert stat.S_IMODE(durable.stat().st_mode) == 0o700
    # metadata.json is passed as the original bytes; the code is extracted under src/
    assert (durable / "bld" / "metadata-copy.json").read_bytes() == package.metadata
    assert "kv.py" in (durable / "bld" / "source-listing.txt").read_text()
    assert (durable / "release" / "statedb" / "couchdb" / "indexes" / "i.json").is_file()
    env = dict(
        line.split("=", 1) for line in (durable / "bld" / "env.txt").read_text().splitlines()
    )
    assert env["PROPAGATED"] == "yes" and env["PATH"] == os.environ["PATH"]
    assert env["TMPDIR"] == str(tmp_path)
    assert "NOT_PROPAGATED" not in env and "CORE_PEER_ADDRESS" not in env
    assert "UNSET_VAR" not in env
    assert set(env) <= {"PROPAGATED", "PATH", "TMPDIR", "LD_LIBRARY_PATH", "LIBPATH", "PWD"}


def test_build_is_reused_across_detectors_and_a_vanished_builder_is_an_error(
    tmp_path: Path,
) -> None:
    log = tmp_path / "calls.log"
    builder = recording_builder(tmp_path / "b", "claims", log, claims=True)
    package = read_package(kv_package(tmp_path))
    Detector.configured([builder], tmp_path / "builds").build(
        package.id, package.metadata, package.code
    )
    calls = len(log.read_text().splitlines())
    again = Detector.configured([builder], tmp_path / "builds")  # a restarted peer
    built = again.build(package.id, package.metadata, package.code)
    assert built is not None and built.builder.name == "claims"
    assert len(log.read_text().splitlines()) == calls  # no detect or build ran again
    other = recording_builder(tmp_path / "b", "other", log, claims=True)
    with pytest.raises(BuildError, match="already built with builder 'claims', but that builder"):
        Detector.configured([other], tmp_path / "builds").build(
            package.id, package.metadata, package.code
        )


def test_no_builder_claims_and_the_package_type_decides(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    builder = recording_builder(tmp_path / "b", "declines", log, claims=False)
    detector = Detector.configured([builder], tmp_path / "builds")
    golang = package_file(
        tmp_path / "go.tar.gz",
        {"path": "x", "type": "golang", "label": "gocc"},
        [file_entry("src/main.go", b"package main\n")],
    )
    runtime = PackageRuntime(detector, lambda: None)
    with pytest.raises(PlatformError, match="chaincode type 'golang' is not supported"):
        runtime.prepare(ChaincodeDefinition("gocc", runtime="docker", package=str(golang)))
    assert not (tmp_path / "builds").exists() or not any((tmp_path / "builds").iterdir())


def test_build_and_release_failures_say_which_builder_and_why(tmp_path: Path) -> None:
    failing = write_builder(
        tmp_path, "failing", {"detect": "exit 0\n", "build": "echo 'no compiler' >&2\nexit 3\n"}
    )
    package = read_package(kv_package(tmp_path))
    detector = Detector.configured([failing], tmp_path / "builds")
    with pytest.raises(BuildError) as failed:
        detector.build(package.id, package.metadata, package.code)
    message = str(failed.value)
    assert message.startswith(
        "external builder failed to build: external builder 'failing' failed: exit status 3"
    )
    assert "no compiler" in message
    assert not (tmp_path / "builds" / sanitize_ccid_path(package.id)).exists()

    bad_release = write_builder(
        tmp_path, "badrelease", {"detect": "exit 0\n", "build": "exit 0\n", "release": "exit 4\n"}
    )
    with pytest.raises(BuildError, match="failed to release: builder 'badrelease' release failed"):
        Detector.configured([bad_release], tmp_path / "builds").build(
            package.id, package.metadata, package.code
        )


def test_a_hanging_build_is_killed_after_the_timeout(tmp_path: Path) -> None:
    hanging = write_builder(tmp_path, "hangs", {"detect": "exit 0\n", "build": "exec sleep 60\n"})
    package = read_package(kv_package(tmp_path))
    detector = Detector.configured([hanging], tmp_path / "builds", timeout=0.5)
    with pytest.raises(BuildError, match=r"did not finish within 0\.5s and was killed"):
        detector.build(package.id, package.metadata, package.code)


# -- bad packages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (file_entry("../escape.txt", b"x"), "absolute or escaping path '../escape.txt'"),
        (file_entry("src/../../escape.txt", b"x"), "absolute or escaping path"),
        (file_entry("/etc/evil", b"x"), "absolute or escaping path '/etc/evil'"),
    ],
)
def test_extraction_refuses_paths_leaving_the_tree(
    tmp_path: Path, entry: tuple[tarfile.TarInfo, bytes], message: str
) -> None:
    dest = tmp_path / "src"
    dest.mkdir()
    with pytest.raises(BuildError, match=message):
        safe_extract(tar_gz([entry]), dest)
    assert not (tmp_path / "escape.txt").exists()


def test_extraction_refuses_links_devices_and_bombs(tmp_path: Path) -> None:
    dest = tmp_path / "src"
    dest.mkdir()
    link = tarfile.TarInfo("src/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(BuildError, match="invalid file type"):
        safe_extract(tar_gz([(link, b"")]), dest)
    hard = tarfile.TarInfo("src/hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "../../etc/passwd"
    with pytest.raises(BuildError, match="invalid file type"):
        safe_extract(tar_gz([(hard, b"")]), dest)
    fifo = tarfile.TarInfo("src/fifo")
    fifo.type = tarfile.FIFOTYPE
    with pytest.raises(BuildError, match="invalid file type"):
        safe_extract(tar_gz([(fifo, b"")]), dest)
    # 64 MiB of zeros compress to ~64 KiB; the limit stops it after the first 1 MiB
    bomb = tar_gz([file_entry("src/zeros", b"\0" * (64 << 20))])
    assert len(bomb) < 1 << 20
    with pytest.raises(BuildError, match="larger than 1048576 bytes once decompressed"):
        safe_extract(bomb, dest, max_size=1 << 20)
    assert not (dest / "src" / "zeros").exists() or (dest / "src" / "zeros").stat().st_size == 0


def test_a_traversal_package_fails_the_build_and_writes_nothing_outside(tmp_path: Path) -> None:
    builder = write_builder(tmp_path, "any", {"detect": "exit 0\n", "build": "exit 0\n"})
    evil = package_file(
        tmp_path / "evil.tar.gz",
        {"type": "custom", "label": "evil"},
        [file_entry("../../../../../../tmp/ccactors-escape-test", b"x")],
    )
    runtime = PackageRuntime(Detector.configured([builder], tmp_path / "builds"), lambda: None)
    with pytest.raises(BuildError, match=r"absolute or escaping path '\.\./\.\./"):
        runtime.prepare(ChaincodeDefinition("evil", runtime="docker", package=str(evil)))
    assert not Path("/tmp/ccactors-escape-test").exists()


# -- run: a long-lived process the peer supervises ---------------------------------------------


def running_builder(root: Path, record: Path) -> ExternalBuilder:
    """Claims type ``pyrun``; ``bin/run`` starts our shim with what chaincode.json says."""
    python = sys.executable
    read_key = f"{python} -c 'import json,sys; print(json.load(open(sys.argv[2]))[sys.argv[1]])'"
    return write_builder(
        root,
        "pyrunner",
        {
            "detect": f"echo detect >> {record}.detect\n"
            'grep -q \'"type": *"pyrun"\' "$2/metadata.json"\n',
            "build": 'cp -R "$1/src/." "$3/"\n',
            "run": f"""\
                cp "$2/chaincode.json" {record}
                ls -l "$2/chaincode.json" > {record}.mode
                echo $$ > {record}.pid
                ID=$({read_key} chaincode_id "$2/chaincode.json")
                ADDR=$({read_key} peer_address "$2/chaincode.json")
                cd "$1"
                CORE_CHAINCODE_ID_NAME="$ID" PYTHONPATH="$1:{ROOT}" {python} -m actors.shim \\
                    --peer.address "$ADDR" examples.kv:KVChaincode &
                echo $! > {record}.child
                wait
                echo "run ended" >&2
            """,
        },
    )


def test_run_is_a_supervised_process_with_fabrics_run_metadata(
    tmp_path: Path, supports: list[ChaincodeSupport]
) -> None:
    record = tmp_path / "chaincode.json"
    builder = running_builder(tmp_path / "b", record)
    package = kv_package(tmp_path, kind="pyrun", label="runcc")
    ccid = read_package(package).id
    runtime = PackageRuntime(Detector.configured([builder], tmp_path / "builds"), lambda: None)
    definition = ChaincodeDefinition(ccid, runtime="docker", package=str(package))
    support = make_support(runtime, definition, msp_id="Org1MSP")
    supports.append(support)
    support.listen("127.0.0.1:0")

    put_get(support, ccid)

    config = json.loads(record.read_text())
    assert list(config) == [
        "chaincode_id",
        "peer_address",
        "client_cert",
        "client_key",
        "root_cert",
        "mspid",
    ]
    assert config["chaincode_id"] == ccid
    assert config["peer_address"] == support.peer_address()
    assert config["mspid"] == "Org1MSP"
    assert config["client_cert"] == config["client_key"] == config["root_cert"] == ""
    assert (tmp_path / "chaincode.json.mode").read_text().startswith("-rw-------")
    run_pid = int((tmp_path / "chaincode.json.pid").read_text())
    child_pid = int((tmp_path / "chaincode.json.child").read_text())
    assert "pid" in support.instances()[ccid]

    support.stop(ccid)
    # stop ends the run process and what it started (its process group)
    for pid in (run_pid, child_pid):
        wait_for(lambda pid=pid: not _alive(pid), timeout=10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_run_gets_tls_material_when_the_peer_uses_tls(
    tmp_path: Path, supports: list[ChaincodeSupport]
) -> None:
    record = tmp_path / "chaincode.json"
    builder = write_builder(
        tmp_path / "b",
        "tlsrunner",
        {
            "detect": "exit 0\n",
            "build": "exit 0\n",
            "run": f'cp "$2/chaincode.json" {record}\nexec sleep 30\n',
        },
    )
    package = kv_package(tmp_path, kind="anything", label="tlscc")
    ccid = read_package(package).id
    runtime = PackageRuntime(Detector.configured([builder], tmp_path / "builds"), lambda: None)
    definition = ChaincodeDefinition(ccid, runtime="docker", package=str(package))
    support = make_support(runtime, definition, tls_enabled=True, startup_timeout=5.0)
    supports.append(support)
    support.listen("127.0.0.1:0")
    with pytest.raises(LaunchError):  # the sleeper never registers
        support.launch(ccid, timeout=WAIT)
    config = json.loads(record.read_text())
    assert config["client_cert"].startswith("-----BEGIN CERTIFICATE")
    assert "PRIVATE KEY" in config["client_key"]
    assert config["root_cert"].startswith("-----BEGIN CERTIFICATE")
    assert support.tls is not None and support.tls.chaincode_for(config["client_cert"].encode())


def test_run_exit_is_reported_with_its_stderr(
    tmp_path: Path, supports: list[ChaincodeSupport]
) -> None:
    builder = write_builder(
        tmp_path / "b",
        "dies",
        {"detect": "exit 0\n", "build": "exit 0\n", "run": "echo 'cannot start' >&2\nexit 7\n"},
    )
    package = kv_package(tmp_path, kind="anything", label="diecc")
    ccid = read_package(package).id
    runtime = PackageRuntime(Detector.configured([builder], tmp_path / "builds"), lambda: None)
    support = make_support(
        runtime, ChaincodeDefinition(ccid, runtime="docker", package=str(package))
    )
    supports.append(support)
    support.listen("127.0.0.1:0")
    # its stderr is in the error (support.logs may already show a restarted instance's)
    with pytest.raises(LaunchError, match=r"exited with code 7; last log lines: .*cannot start"):
        support.launch(ccid, timeout=WAIT)


# -- release naming a service: chaincode as a service ------------------------------------------


class Service(ServiceProcess):
    """Our shim serving ``protos.Chaincode/Connect`` in its own process."""

    def __init__(self, chaincode_id: str) -> None:
        super().__init__()
        self.chaincode_id = chaincode_id
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"

    def start(self) -> Service:
        self.launch(
            [
                sys.executable, "-m", "actors.shim", "server",
                "--chaincode-address", self.address, "--chaincode-id", self.chaincode_id,
                "examples.kv:KVChaincode",
            ],
            lambda line: "serving on" in line,
            what="service",
            timeout=20,
            cwd=ROOT,
        )  # fmt: skip
        return self


def test_release_with_connection_json_means_the_peer_dials(
    tmp_path: Path, supports: list[ChaincodeSupport]
) -> None:
    port = free_port()
    builder = write_builder(
        tmp_path / "b",
        "svc",
        {
            "detect": "exit 0\n",
            "build": "exit 0\n",
            "release": f"""\
                mkdir -p "$2/chaincode/server"
                echo '{{"address": "127.0.0.1:{port}", "dial_timeout": "2s"}}' \\
                    > "$2/chaincode/server/connection.json"
            """,
        },
    )
    package = kv_package(tmp_path, kind="external-svc", label="svccc")
    ccid = read_package(package).id
    service = Service(ccid)
    service.port, service.address = port, f"127.0.0.1:{port}"
    service.start()
    try:
        runtime = PackageRuntime(Detector.configured([builder], tmp_path / "builds"), lambda: None)
        support = make_support(
            runtime, ChaincodeDefinition(ccid, runtime="docker", package=str(package))
        )
        supports.append(support)
        put_get(support, ccid)
        assert f"chaincode service at 127.0.0.1:{port}" in support.instances()[ccid]
    finally:
        service.kill()


# -- the built-in ccaas builder ----------------------------------------------------------------


def test_ccaas_package_is_dialled_with_templates_from_the_builder_config(
    tmp_path: Path, supports: list[ChaincodeSupport], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv(CCAAS_CONFIG_ENV, json.dumps({"host": "127.0.0.1", "port": port}))
    connection = {"address": "{{.host}}:{{.port}}", "dial_timeout": "5s", "tls_required": False}
    path = tmp_path / "ccaas.tar.gz"
    path.write_bytes(ccaas_package_bytes("basic_1.0", connection))
    ccid = read_package(path).id
    service = Service(ccid)
    service.port, service.address = port, f"127.0.0.1:{port}"
    service.start()
    try:
        runtime = PackageRuntime(Detector.configured([], tmp_path / "builds"), lambda: None)
        support = make_support(
            runtime, ChaincodeDefinition(ccid, runtime="docker", package=str(path))
        )
        supports.append(support)
        put_get(support, ccid)
    finally:
        service.kill()
    durable = tmp_path / "builds" / sanitize_ccid_path(ccid)
    released = json.loads((durable / "release/chaincode/server/connection.json").read_text())
    assert released == {
        "address": f"127.0.0.1:{port}",
        "dial_timeout": "5s",
        "tls_required": False,
        "client_auth_required": False,
        "root_cert": "",
        "client_key": "",
        "client_cert": "",
    }
    assert json.loads((durable / "build-info.json").read_text()) == {
        "builder_name": "ccaas_builder"
    }


def test_ccaas_builder_errors(tmp_path: Path) -> None:
    builder = CcaasBuilder(environ={})
    source, meta, out = tmp_path / "src", tmp_path / "meta", tmp_path / "out"
    for d in (source, meta, out):
        d.mkdir()
    (meta / "metadata.json").write_text('{"type": "CCaaS", "label": "x"}')
    assert builder.detect(source, meta)  # the type is matched case-insensitively
    with pytest.raises(BuildError, match=r"connection\.json not found"):
        builder.build(source, meta, out)
    (source / "connection.json").write_text('{"address": "{{.missing}}:1"}')
    with pytest.raises(BuildError, match="map has no entry for key 'missing'"):
        builder.build(source, meta, out)
    with pytest.raises(BuildError, match="unsupported template"):
        render_template("{{range .x}}", {}, "address")
    (source / "connection.json").write_text('{"address": "h:1", "tls_required": "true"}')
    with pytest.raises(BuildError, match="tls_required must be true or false"):
        builder.build(source, meta, out)
    # checked as the peer will read it, at build (install) time rather than at launch
    (source / "connection.json").write_text('{"address": "h:1", "dial_timeout": "soon"}')
    with pytest.raises(BuildError, match='dial_timeout: time: invalid duration "soon"'):
        builder.build(source, meta, out)
    (source / "connection.json").write_text('{"address": "h:1", "tls_required": true}')
    with pytest.raises(BuildError, match="chaincode tls root cert not provided"):
        builder.build(source, meta, out)
    # no dial_timeout: none released (Fabric's builder writes "", which its peer refuses)
    (source / "connection.json").write_text('{"address": "h:1"}')
    builder.build(source, meta, out)
    assert connection_from_json((out / "connection.json").read_bytes()).dial_timeout == 3.0
    (meta / "metadata.json").write_text('{"type": "node", "label": "x"}')
    assert not builder.detect(source, meta)


def test_connection_json_is_read_as_fabric_reads_it() -> None:
    info = connection_from_json(b'{"address": "h:1", "dial_timeout": "1m30s", "other": 1}')
    assert info.address == "h:1" and info.dial_timeout == 90.0
    # a JSON number is nanoseconds (Go's time.Duration), truncated to whole ones
    assert connection_from_json(b'{"address": "h:1", "dial_timeout": 2000000000}').dial_timeout == 2
    assert connection_from_json(b'{"address": "h:1", "dial_timeout": 1.5e9}').dial_timeout == 1.5
    # not seconds: 7200 is 7.2 microseconds, as in Fabric
    assert connection_from_json(b'{"address": "h:1", "dial_timeout": 7200}').dial_timeout == 7.2e-6
    assert connection_from_json(b'{"address": "h:1", "dial_timeout": "0"}').dial_timeout == 3.0
    assert connection_from_json(b'{"address": "h:1"}').dial_timeout == 3.0
    for bad, message in [
        (b'{"dial_timeout": "1s"}', "chaincode address not provided"),
        (b'{"address": "h:1", "dial_timeout": "soon"}', 'time: invalid duration "soon"'),
        (b'{"address": "h:1", "dial_timeout": "10"}', 'time: missing unit in duration "10"'),
        (b'{"address": "h:1", "dial_timeout": "-1s"}', "between 0 and 3600s"),
        (b'{"address": "h:1", "dial_timeout": 3e13}', "a number is nanoseconds"),
        (b'{"address": "h:1", "dial_timeout": NaN}', "invalid duration"),
        (b'{"address": "h:1", "dial_timeout": true}', "invalid duration"),
        (b'{"address": "h:1", "dial_timeout": null}', "invalid duration"),
        (b'{"address": "h:1", "dial_timeout": ""}', 'give a duration, e.g. "10s"'),
        (b'{"address": "h:1", "tls_required": "true"}', "JSON boolean"),
        (b'{"address": "h:1", "tls_required": true}', "chaincode tls root cert not provided"),
        (
            b'{"address": "h:1", "tls_required": true, "client_auth_required": true,'
            b' "root_cert": "x"}',
            "chaincode tls key not provided",
        ),
        (b"[1]", "expected a JSON object"),
        (b"{", "Expecting"),
    ]:
        with pytest.raises(ConfigError, match=message):
            connection_from_json(bad, "connection.json")


def test_unreachable_ccaas_service_is_a_clear_launch_error(
    tmp_path: Path, supports: list[ChaincodeSupport]
) -> None:
    port = free_port()
    path = tmp_path / "ccaas.tar.gz"
    path.write_bytes(
        ccaas_package_bytes("gone", {"address": f"127.0.0.1:{port}", "dial_timeout": "300ms"})
    )
    ccid = read_package(path).id
    runtime = PackageRuntime(Detector.configured([], tmp_path / "builds"), lambda: None)
    support = make_support(runtime, ChaincodeDefinition(ccid, runtime="docker", package=str(path)))
    supports.append(support)
    with pytest.raises(LaunchError, match=f"cannot reach chaincode service 127.0.0.1:{port}"):
        support.launch(ccid, timeout=WAIT)


def test_ccaas_package_over_mutual_tls(tmp_path: Path, supports: list[ChaincodeSupport]) -> None:
    """tls_required with the PEMs in connection.json: the peer dials over mutual TLS."""
    from concurrent import futures

    import grpc

    from actors.shim.__main__ import _ChaincodeServicer
    from actors.tls import CertificateAuthority
    from examples.kv import KVChaincode
    from protos.peer import chaincode_shim_pb2_grpc

    ca = CertificateAuthority("chaincode CA")
    server_pair = ca.issue("kv service", server=True, hosts=("127.0.0.1",))
    client_pair = ca.issue("peer0", server=False)
    port = free_port()
    connection = {
        "address": f"127.0.0.1:{port}",
        "dial_timeout": "5s",
        "tls_required": True,
        "client_auth_required": True,
        "root_cert": ca.cert_pem.decode(),
        "client_cert": client_pair.cert_pem.decode(),
        "client_key": client_pair.key_pem.decode(),
    }
    path = tmp_path / "tls.tar.gz"
    path.write_bytes(ccaas_package_bytes("tlssvc", connection))
    ccid = read_package(path).id
    server = grpc.server(futures.ThreadPoolExecutor(8))
    chaincode_shim_pb2_grpc.add_ChaincodeServicer_to_server(
        _ChaincodeServicer(KVChaincode(), ccid), server
    )
    server.add_secure_port(
        f"127.0.0.1:{port}",
        grpc.ssl_server_credentials(
            [(server_pair.key_pem, server_pair.cert_pem)],
            root_certificates=ca.cert_pem,
            require_client_auth=True,
        ),
    )
    server.start()
    try:
        runtime = PackageRuntime(Detector.configured([], tmp_path / "builds"), lambda: None)
        support = make_support(
            runtime, ChaincodeDefinition(ccid, runtime="docker", package=str(path))
        )
        supports.append(support)
        put_get(support, ccid)
    finally:
        server.stop(0)
    released = json.loads(
        (tmp_path / "builds" / sanitize_ccid_path(ccid) / "release/chaincode/server")
        .joinpath("connection.json")
        .read_text()
    )
    assert released["client_key"] == connection["client_key"]  # kept with TLS on


def test_a_dead_run_process_is_restarted_by_its_supervisor(
    tmp_path: Path, supports: list[ChaincodeSupport]
) -> None:
    record = tmp_path / "chaincode.json"
    builder = running_builder(tmp_path / "b", record)
    package = kv_package(tmp_path, kind="pyrun", label="restartcc")
    ccid = read_package(package).id
    runtime = PackageRuntime(Detector.configured([builder], tmp_path / "builds"), lambda: None)
    support = make_support(
        runtime, ChaincodeDefinition(ccid, runtime="docker", package=str(package))
    )
    supports.append(support)
    support.listen("127.0.0.1:0")
    put_get(support, ccid)
    first = int((tmp_path / "chaincode.json.pid").read_text())
    os.killpg(first, signal.SIGKILL)
    wait_for(lambda: (tmp_path / "chaincode.json.pid").read_text().strip() != str(first), 20)
    wait_for(lambda: support.status().get(ccid) == "ready", 20)
    got = support.execute_async(CHANNEL, None, ccid, ["get", "k"]).result(WAIT)
    assert got.response.payload == b"v1"  # the relaunched run serves the same state
    # detect and build ran once: the relaunch reused the build
    assert (tmp_path / "chaincode.json.detect").read_text().splitlines() == ["detect"]


def test_detect_runs_once_per_package_for_docker_built_packages(tmp_path: Path) -> None:
    """A package no builder claims goes to Docker; detect is not rerun at every launch."""
    log = tmp_path / "calls.log"
    builder = recording_builder(tmp_path / "b", "declines", log, claims=False)

    class ImageBuilds:  # records what the router hands to the Docker runtime
        def __init__(self) -> None:
            self.built: list[str] = []

        def build(self, definition: ChaincodeDefinition) -> str:
            self.built.append(definition.name)
            return "image"

    docker = ImageBuilds()
    runtime = PackageRuntime(
        Detector.configured([builder], tmp_path / "builds"), lambda: None, docker=docker
    )
    definition = ChaincodeDefinition("kv", runtime="docker", package=str(kv_package(tmp_path)))
    assert runtime.prepare(definition) == "image"
    assert runtime.prepare(definition) == "image"
    assert docker.built == ["kv", "kv"]
    assert [line.split()[:2] for line in log.read_text().splitlines()] == [["declines", "detect"]]


@pytest.mark.parametrize("tls", [False, True])
def test_the_example_builder_runs_chaincode_as_a_process(
    tmp_path: Path,
    supports: list[ChaincodeSupport],
    monkeypatch: pytest.MonkeyPatch,
    tls: bool,
) -> None:
    """examples/builders/python-process, configured by the README's text, through the peer's
    own runtimes, with and without TLS: its bin/run turns chaincode.json (and its PEMs) into
    the shim's environment."""
    monkeypatch.setenv("CCACTORS_PYTHON", sys.executable)
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- builder-example -->\n```toml\n(.*?)```", readme, re.S)
    assert found, "README.md lacks the builder example"
    package = tmp_path / "kv.tar.gz"
    create_package(
        EXAMPLES, "kvproc", type="python-process", target="examples.kv:KVChaincode", out=package
    )
    ccid = read_package(package).id
    peer_toml = tmp_path / "peer.toml"
    peer_toml.write_text(
        found.group(1).replace("/path/to/ccactors", str(ROOT))
        + f'[[chaincodes]]\nname = "{ccid}"\nruntime = "package"\npackage = "{package}"\n'
    )
    config = Config.load(
        peer_toml,
        overrides={
            "tls_enabled": tls,
            "msp_id": "Org1MSP",
            "startup_timeout": 20.0,
            "channels": (CHANNEL,),
        },
    )
    assert [b.name for b in config.external_builders] == ["python-process"]
    support = ChaincodeSupport(config)
    supports.append(support)
    support.listen("127.0.0.1:0")
    put_get(support, ccid)
    assert "builder 'python-process' run" in support.instances()[ccid]


def test_installed_packages_go_through_the_configured_builders(
    tmp_path: Path, supports: list[ChaincodeSupport], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fabric's install: detect, build and release run then; a type only an external builder
    claims is accepted with it and refused, naming the type, without it; a failed build keeps
    nothing; the installed package runs under its package id through bin/run."""
    monkeypatch.setenv("CCACTORS_PYTHON", sys.executable)
    package = tmp_path / "kv.tar.gz"
    create_package(
        EXAMPLES, "kvinst", type="python-process", target="examples.kv:KVChaincode", out=package
    )
    data = package.read_bytes()
    bare = ChaincodeSupport(Config(tls_enabled=False))
    supports.append(bare)
    with pytest.raises(LifecycleError, match="chaincode type 'python-process' is not supported"):
        bare.install(data)
    assert bare.lifecycle.packages.list() == []

    failing = write_builder(
        tmp_path, "failing", {"detect": "exit 0\n", "build": "echo 'no compiler' >&2; exit 3\n"}
    )
    broken = ChaincodeSupport(Config(tls_enabled=False, external_builders=(failing,)))
    supports.append(broken)
    with pytest.raises(
        LifecycleError, match=r"builder 'failing' failed: exit status 3[\s\S]*no compiler"
    ):
        broken.install(data)
    assert broken.lifecycle.packages.list() == []

    (builder,) = parse_builders(
        [
            {
                "name": "python-process",
                "path": str(EXAMPLES / "builders" / "python-process"),
                "propagateEnvironment": ["CCACTORS_PYTHON"],
            }
        ]
    )
    config = Config(
        channels=(CHANNEL,),
        external_builders=(builder,),
        file_system_path=str(tmp_path / "peer"),
        tls_enabled=False,
        startup_timeout=20.0,
    )
    support = ChaincodeSupport(config)
    supports.append(support)
    ccid = support.install(data).package_id
    built = tmp_path / "peer" / "externalbuilder" / "builds" / sanitize_ccid_path(ccid)
    assert json.loads((built / "build-info.json").read_text()) == {"builder_name": "python-process"}
    support.listen("127.0.0.1:0")
    support.lifecycle.define(CHANNEL, Definition("kv", "1.0", 1, package_id=ccid))
    put_get(support, "kv")
    assert "builder 'python-process' run" in support.instances()[ccid]


def test_the_readme_ccaas_package_installs_as_written(
    tmp_path: Path, supports: list[ChaincodeSupport], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's shell lines, run as written, make a package the peer installs with nothing
    else set; a ``{{.peername}}`` template (fabric-samples' way) is filled from
    CHAINCODE_AS_A_SERVICE_BUILDER_CONFIG, as in Fabric, and refused without it."""
    import subprocess

    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- ccaas-example -->\n```bash\n(.*?)```", readme, re.S)
    assert found, "README.md lacks the ccaas example"
    subprocess.run(["bash", "-euc", found.group(1)], cwd=tmp_path, check=True)
    monkeypatch.delenv(CCAAS_CONFIG_ENV, raising=False)
    support = ChaincodeSupport(Config(file_system_path=str(tmp_path / "peer")))
    supports.append(support)

    def released(ccid: str) -> ConnectionInfo:
        built = tmp_path / "peer" / "externalbuilder" / "builds" / sanitize_ccid_path(ccid)
        path = built / "release" / "chaincode" / "server" / "connection.json"
        return connection_from_json(path.read_bytes())

    ccid = support.install((tmp_path / "basic.tar.gz").read_bytes()).package_id
    assert ccid.startswith("basic_1.0:")
    info = released(ccid)
    assert (info.address, info.dial_timeout, info.tls_required) == ("127.0.0.1:9999", 10.0, False)
    templated = ccaas_package_bytes("basic_2.0", {"address": "{{.peername}}_basic:9999"})
    with pytest.raises(LifecycleError, match="map has no entry for key 'peername'"):
        support.install(templated)  # the template needs its value
    monkeypatch.setenv(CCAAS_CONFIG_ENV, '{"peername": "peer0"}')
    info = released(support.install(templated).package_id)
    assert info.address == "peer0_basic:9999"
