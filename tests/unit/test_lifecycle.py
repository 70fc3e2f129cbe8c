"""The lifecycle model: installed packages, channels, definitions, invocation rules."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tracemalloc
import zlib
from pathlib import Path

import pytest

from actors.config import ChaincodeDefinition, Config, ConfigError
from actors.errors import InvalidInvocation, LifecycleError, UnknownChaincode, UnknownChannel
from actors.ledger import LedgerManager
from actors.lifecycle.channels import Channels
from actors.lifecycle.definitions import Definition, DefinitionStore, normalize_collections
from actors.lifecycle.invocation import INITIALIZED_KEY, Invocations
from actors.lifecycle.packages import InstallStore, calculate_package_id
from actors.packaging import PackageError, create_package, read_package_bytes

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MiB = 1024 * 1024


def tar_gz(entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def package(kind: str = "ccaas", label: str = "basic_1.0", code: bytes | None = None) -> bytes:
    meta = json.dumps({"path": "", "type": kind, "label": label}).encode()
    if code is None:
        code = tar_gz([("connection.json", b'{"address":"cc:9999","dial_timeout":"10s"}')])
    return tar_gz([("metadata.json", meta), ("code.tar.gz", code)])


def inflating(header: tarfile.TarInfo, size: int) -> bytes:
    """A gzip whose tar has ``header`` followed by ``size`` zero bytes: concatenated gzip
    members of one compressed MiB each, so it is small and quick to make, and only a reader
    that trusts the header (or reads it all) pays for the size."""
    first = gzip.compress(header.tobuf(format=tarfile.GNU_FORMAT), mtime=0)
    block = gzip.compress(b"\0" * MiB, compresslevel=9, mtime=0)
    return first + block * (size // MiB)


@pytest.fixture
def store(tmp_path: Path) -> InstallStore:
    return InstallStore(tmp_path / "chaincodes")


# -- installing --------------------------------------------------------------------------------


def test_install_stores_the_package_under_fabrics_id(store: InstallStore) -> None:
    data = package()
    installed = store.install(data)
    digest = hashlib.sha256(data).hexdigest()
    assert installed.package_id == f"basic_1.0:{digest}" == calculate_package_id(data)
    assert (installed.label, installed.type) == ("basic_1.0", "ccaas")
    stored = store.directory / f"basic_1.0.{digest}.tar.gz"
    assert stored.read_bytes() == data
    assert [p.package_id for p in store.list()] == [installed.package_id]
    assert installed.package_id in store
    assert store.load(installed.package_id).code  # the code archive comes back
    with pytest.raises(LifecycleError, match=r"chaincode already successfully installed"):
        store.install(data)


def test_installs_survive_a_restart(tmp_path: Path) -> None:
    first = InstallStore(tmp_path / "cc")
    a = first.install(package(label="a"))
    b = first.install(package(kind="node", label="b"))
    again = InstallStore(tmp_path / "cc")
    assert [p.package_id for p in again.list()] == sorted([a.package_id, b.package_id])


def test_a_corrupt_stored_package_stops_the_store_naming_it(tmp_path: Path) -> None:
    InstallStore(tmp_path / "cc").install(package())
    (stored,) = (tmp_path / "cc").glob("*.tar.gz")
    stored.write_bytes(b"garbage")
    with pytest.raises(
        LifecycleError, match=r"could not parse chaincode with package ID 'basic_1.0:"
    ):
        InstallStore(tmp_path / "cc")


def test_python_packages_install(store: InstallStore, tmp_path: Path) -> None:
    info = create_package(EXAMPLES, "kv", target="examples.kv:KVChaincode", out=tmp_path / "kv")
    assert store.install((tmp_path / "kv").read_bytes()).package_id == info.id


@pytest.mark.parametrize("kind", ["golang", "java", "GOLANG", "cobol"])
def test_unsupported_types_are_refused_at_install_naming_the_type(
    store: InstallStore, kind: str
) -> None:
    with pytest.raises(LifecycleError, match=f"chaincode type '{kind}' is not supported"):
        store.install(package(kind=kind))
    assert store.list() == [] and os.listdir(store.directory) == []


def test_queries(store: InstallStore) -> None:
    with pytest.raises(LifecycleError, match=r"could not find chaincode with package id 'x:1'"):
        store.query("x:1")
    with pytest.raises(LifecycleError, match=r"could not parse as a chaincode install package"):
        calculate_package_id(b"not a package")


# -- bad packages ------------------------------------------------------------------------------


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (("../../escape.txt", b"x"), "absolute or escaping path '../../escape.txt'"),
        (("src/../../escape.txt", b"x"), "absolute or escaping path"),
        (("/etc/cron.d/evil", b"x"), "absolute or escaping path '/etc/cron.d/evil'"),
        (link("src/passwd", "/etc/passwd"), "invalid file type '2'"),
        (link("src/up", "../../.."), "invalid file type '2'"),
        (link("src/hard", "/etc/shadow", tarfile.LNKTYPE), "invalid file type '1'"),
    ],
)
def test_unsafe_code_archives_are_refused_and_nothing_is_written(
    tmp_path: Path, entry: tarfile.TarInfo | tuple[str, bytes], message: str
) -> None:
    store = InstallStore(tmp_path / "a" / "b" / "cc")
    bad = package(code=tar_gz([("src/ok.js", b"1"), entry]))
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(LifecycleError, match=message):
        store.install(bad)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_top_level_entries_must_be_regular_files(store: InstallStore) -> None:
    directory = tarfile.TarInfo("./")
    directory.type = tarfile.DIRTYPE
    bad = tar_gz([directory, ("metadata.json", b'{"type":"ccaas","label":"x"}')])
    with pytest.raises(LifecycleError, match=r"tar entry \. is not a regular file, type 5"):
        store.install(bad)


def test_a_metadata_json_inflating_to_2_gib_is_refused_quickly(store: InstallStore) -> None:
    header = tarfile.TarInfo("metadata.json")
    header.size = 2 * 1024 * MiB
    bomb = inflating(header, 2 * 1024 * MiB)
    assert len(bomb) < 4 * MiB
    tracemalloc.start()
    try:
        with pytest.raises(LifecycleError, match=r"entry 'metadata.json' holds 2147483648 bytes"):
            store.install(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * MiB  # the package itself is 2 MB; nothing near its inflated size


def test_a_code_archive_holding_a_3_gib_file_is_refused(store: InstallStore) -> None:
    header = tarfile.TarInfo("src/big.bin")
    header.size = 3 * 1024 * MiB
    code = inflating(header, 3 * 1024 * MiB)
    tracemalloc.start()
    try:
        with pytest.raises(LifecycleError, match=r"'src/big.bin' holds 3221225472 bytes"):
            store.install(package(code=code))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * MiB
    assert store.list() == []


def test_the_decompressed_size_limit_counts_every_byte(tmp_path: Path) -> None:
    """Many honest entries adding up past the limit: refused by the running count."""
    store = InstallStore(tmp_path / "cc", max_bytes=MiB)
    code = tar_gz([(f"src/f{i}.bin", bytes([65 + i]) * 200 * 1024) for i in range(8)])
    with pytest.raises(LifecycleError, match=r"larger than 1048576 bytes once decompressed"):
        store.install(package(code=code))
    small = InstallStore(tmp_path / "cc2", max_bytes=MiB)
    small.install(package(code=tar_gz([("src/f.bin", os.urandom(100 * 1024))])))


def test_a_deeply_nested_metadata_json_is_a_package_error() -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    data = tar_gz([("metadata.json", deep), ("code.tar.gz", tar_gz([("a", b"")]))])
    with pytest.raises(PackageError, match=r"nested too deeply"):
        read_package_bytes(data)


def test_metadata_keys_match_as_go_does() -> None:
    meta = b'{"Path":"p","TYPE":"ccaas","Label":"x1"}'
    info = read_package_bytes(tar_gz([("metadata.json", meta), ("code.tar.gz", tar_gz([]))]))
    assert (info.label, info.type, info.path, info.metadata) == ("x1", "ccaas", "p", meta)


def test_not_gzip_is_refused(store: InstallStore) -> None:
    with pytest.raises(LifecycleError, match=r"not a valid tar.gz"):
        store.install(zlib.compress(b"hello"))


# -- channels ----------------------------------------------------------------------------------


def test_channels_default_and_unknown() -> None:
    channels = Channels()
    assert channels.names() == ["mychannel"]
    with pytest.raises(UnknownChannel, match=r"^channel 'other' not found$"):
        channels.check("other")
    joined: list[str] = []
    channels = Channels(["a", "b", "a"], on_join=joined.append)
    assert channels.names() == ["a", "b"]
    assert channels.join("c") and not channels.join("c")
    assert joined == ["c"] and channels.check("c") == "c"
    for bad in ["", "Upper", "-x", "x/y", "x" * 250]:
        with pytest.raises(LifecycleError, match=r"channel ID illegal|illegal characters"):
            channels.join(bad)
    with pytest.raises(LifecycleError):
        Channels(["../etc"])


# -- definitions -------------------------------------------------------------------------------


class Peer:
    """A DefinitionStore over real ledgers, as the peer builds it."""

    def __init__(self, path: str | None = None, installed: tuple[str, ...] = ("pkg:1",)) -> None:
        self.ledgers = LedgerManager(path)
        self.installed = set(installed)
        self.dev = False
        self.store = DefinitionStore(self.ledgers.get, lambda p: self.dev or p in self.installed)


def test_define_follows_fabrics_sequence_rules() -> None:
    store = Peer().store
    d = Definition("basic", "1.0", 1, package_id="pkg:1")
    with pytest.raises(LifecycleError, match=r"requested sequence is 0, but first definable"):
        store.define("ch", Definition("basic", "1.0", 0))
    with pytest.raises(LifecycleError, match=r"requested sequence 2 is larger than the next"):
        store.define("ch", Definition("basic", "1.0", 2))
    assert store.define("ch", d) == d
    assert store.get("ch", "basic") == d and store.get("other", "basic") is None
    with pytest.raises(
        LifecycleError,
        match=r"attempted to redefine the current committed sequence \(1\) for namespace basic "
        r"with different parameters: expected Version '1.0' does not match passed Version '2.0'",
    ):
        store.define("ch", Definition("basic", "2.0", 1, package_id="pkg:1"))
    d2 = store.define("ch", Definition("basic", "2.0", 2, package_id="pkg:1", init_required=True))
    with pytest.raises(
        LifecycleError, match=r"currently defined sequence 2 is larger than requested sequence 1"
    ):
        store.define("ch", d)
    assert store.get("ch", "basic") == d2
    assert store.define("ch", d2) == d2  # the same again: nothing changes
    assert store.list("ch") == [d2]


def test_the_current_sequence_may_change_only_the_package_id() -> None:
    peer = Peer(installed=("pkg:1", "pkg:2"))
    peer.store.define("ch", Definition("basic", "1.0", 1, package_id="pkg:1"))
    moved = peer.store.define("ch", Definition("basic", "1.0", 1, package_id="pkg:2"))
    assert peer.store.get("ch", "basic") == moved and moved.package_id == "pkg:2"
    with pytest.raises(LifecycleError, match=r"expected InitRequired 'false' does not match"):
        peer.store.define(
            "ch", Definition("basic", "1.0", 1, package_id="pkg:2", init_required=True)
        )


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            Definition("basic", "1.0", 1, package_id="nope:0"),
            "could not find chaincode with package id 'nope:0'",
        ),
        (Definition("bad name", "1.0", 1), "invalid chaincode name 'bad name'"),
        (Definition("lscc", "1.0", 1), "is the name of a system chaincode"),
        (Definition("basic", "1 0", 1), "invalid chaincode version '1 0'"),
        (
            Definition("basic", "1.0", 1, signature_policy="AND('Org1.member'"),
            "invalid signature policy",
        ),
        (
            Definition(
                "basic",
                "1.0",
                1,
                signature_policy="OR('A.member')",
                channel_config_policy="/Channel/X",
            ),
            "cannot specify both",
        ),
        (
            Definition("basic", "1.0", 1, collections="{not json"),
            "could not parse the collection configuration",
        ),
        (
            Definition(
                "basic",
                "1.0",
                1,
                collections='[{"name":"c","policy":"AND(\'A.member\',\'B.member\')"}]',
            ),
            "not an OR concatenation, NOutOf 2",
        ),
        (
            Definition(
                "basic", "1.0", 1, collections='[{"name":"_c","policy":"OR(\'A.member\')"}]'
            ),
            "invalid collection name '_c'",
        ),
        (
            Definition(
                "basic",
                "1.0",
                1,
                collections='[{"name":"c","policy":"OR(\'A.member\')","requiredPeerCount":2}]',
            ),
            "maximum peer count \\(1\\) cannot be less than the required peer count \\(2\\)",
        ),
        (
            Definition(
                "basic",
                "1.0",
                1,
                collections='[{"name":"c","policy":"OR(\'A.member\')"},{"name":"c","policy":"OR(\'A.member\')"}]',
            ),
            "found duplicate",
        ),
        (
            Definition(
                "basic",
                "1.0",
                1,
                collections='[{"name":"c","policy":"OR(\'A.member\')","blockToLive":"x"}]',
            ),
            "blockToLive must be an integer",
        ),
    ],
)
def test_invalid_definitions_change_nothing(definition: Definition, message: str) -> None:
    peer = Peer()
    height = peer.ledgers.get("ch").height
    with pytest.raises(LifecycleError, match=message):
        peer.store.define("ch", definition)
    assert peer.store.list("ch") == [] and peer.ledgers.get("ch").height == height


def test_collections_are_stored_canonical_and_kept_across_redefinitions() -> None:
    peer = Peer()
    config = (
        '[{"name": "private", "policy": "OR(\'Org1MSP.member\')", "blockToLive": 5, '
        '"maxPeerCount": 2}]'
    )
    d = peer.store.define("ch", Definition("basic", "1.0", 1, collections=config))
    assert json.loads(d.collections) == [
        {
            "name": "private",
            "policy": "OR('Org1MSP.member')",
            "requiredPeerCount": 0,
            "maxPeerCount": 2,
            "blockToLive": 5,
            "memberOnlyRead": False,
            "memberOnlyWrite": False,
        }
    ]
    with pytest.raises(LifecycleError, match=r"does not contain previously defined collections"):
        peer.store.define("ch", Definition("basic", "1.0", 2))
    changed = config.replace('"blockToLive": 5', '"blockToLive": 6')
    with pytest.raises(
        LifecycleError, match=r"BlockToLive in an existing collection \[private\] modified"
    ):
        peer.store.define("ch", Definition("basic", "1.0", 2, collections=changed))
    assert normalize_collections("") == ""


def test_definitions_survive_a_restart_on_sqlite(tmp_path: Path) -> None:
    first = Peer(str(tmp_path))
    d = first.store.define(
        "ch", Definition("basic", "1.0", 1, package_id="pkg:1", signature_policy="OR('A.member')")
    )
    first.ledgers.close()
    second = Peer(str(tmp_path))
    assert second.store.get("ch", "basic") == d
    assert second.store.referencing("pkg:1", ["ch", "other"]) == {"ch": [d]}


# -- invocation --------------------------------------------------------------------------------


def invocations(dev: bool = False, registered: tuple[str, ...] = ()) -> tuple[Invocations, Peer]:
    peer = Peer(installed=("basic_1.0:abc",))
    inv = Invocations(
        channels=Channels(["ch", "ch2"]),
        definitions=peer.store,
        installed=peer.installed.__contains__,
        dev_mode=dev,
        registered=lambda: registered,
    )
    return inv, peer


def test_resolve_by_name_launch_by_package_id() -> None:
    inv, peer = invocations()
    peer.store.define("ch", Definition("basic", "1.0", 1, package_id="basic_1.0:abc"))
    peer.store.define("ch2", Definition("other", "3", 1, package_id="basic_1.0:abc"))
    target = inv.resolve("ch", "basic:9.9")  # a version suffix is ignored
    assert (target.name, target.ccid) == ("basic", "basic_1.0:abc")
    assert inv.resolve("ch2", "other").ccid == target.ccid  # one instance for both
    with pytest.raises(UnknownChannel, match=r"channel 'nope' not found"):
        inv.resolve("nope", "basic")
    with pytest.raises(
        UnknownChaincode, match=r"defined on channel ch2 and try again: chaincode basic not found"
    ):
        inv.resolve("ch2", "basic")
    peer.store.define("ch", Definition("empty", "1", 1))
    with pytest.raises(
        UnknownChaincode,
        match=r"chaincode definition for 'empty' exists, but chaincode is not installed",
    ):
        inv.resolve("ch", "empty")


def test_dev_mode() -> None:
    inv, peer = invocations(dev=True, registered=("mycc:1.0", "two:1", "two:2"))
    peer.dev = True
    # No definition: the registration gives an implicit one on every channel.
    for channel in ("ch", "ch2"):
        for name in ("mycc", "mycc:1.0"):
            target = inv.resolve(channel, name)
            assert (target.name, target.ccid, target.definition.version) == (
                "mycc",
                "mycc:1.0",
                "1.0",
            )
    with pytest.raises(UnknownChaincode, match=r"several dev-mode registrations"):
        inv.resolve("ch", "two")
    # A definition whose package id is not installed runs as name:version (Fabric's rule).
    peer.store.define("ch", Definition("mycc", "1.0", 1, package_id="mycc:1.0", init_required=True))
    assert inv.resolve("ch", "mycc").definition.init_required
    assert inv.resolve("ch2", "mycc").definition.sequence == 0  # still implicit there
    inv.configure("kv")
    assert inv.resolve("ch", "kv").ccid == "kv"


def test_init_rules_as_check_invocation() -> None:
    inv, peer = invocations()
    peer.store.define(
        "ch", Definition("basic", "1.0", 1, package_id="basic_1.0:abc", init_required=True)
    )
    ledger = peer.ledgers.get("ch")
    target = inv.resolve("ch", "basic")

    sim = ledger.new_simulator("t1")
    with pytest.raises(
        InvalidInvocation,
        match=r"^invalid invocation: chaincode 'basic' has not been initialized for this version, "
        r"must call as init first$",
    ):
        inv.check_init(target, sim, is_init=False)
    assert inv.check_init(target, sim, is_init=True) is True
    results = sim.get_results()
    sim.done()
    assert results.writes("basic") == {INITIALIZED_KEY: b"1.0"}
    assert ledger.commit("t1", results).name == "VALID"

    sim = ledger.new_simulator("t2")
    assert inv.check_init(target, sim, is_init=False) is False
    with pytest.raises(
        InvalidInvocation, match=r"chaincode 'basic' is already initialized but called as init"
    ):
        inv.check_init(target, sim, is_init=True)
    sim.done()

    # A new sequence with the same version needs no new Init; a new version does.
    peer.store.define(
        "ch", Definition("basic", "1.0", 2, package_id="basic_1.0:abc", init_required=True)
    )
    sim = ledger.new_simulator("t3")
    assert inv.check_init(inv.resolve("ch", "basic"), sim, is_init=False) is False
    peer.store.define(
        "ch", Definition("basic", "2.0", 3, package_id="basic_1.0:abc", init_required=True)
    )
    with pytest.raises(InvalidInvocation, match=r"has not been initialized for this version"):
        inv.check_init(inv.resolve("ch", "basic"), sim, is_init=False)
    sim.done()

    peer.store.define("ch", Definition("free", "1", 1, package_id="basic_1.0:abc"))
    sim = ledger.new_simulator("t4")
    with pytest.raises(
        InvalidInvocation,
        match=r"chaincode 'free' does not require initialization but called as init",
    ):
        inv.check_init(inv.resolve("ch", "free"), sim, is_init=True)
    assert inv.check_init(inv.resolve("ch", "free"), sim, is_init=False) is False
    assert sim.get_results().reads("free") == {}  # the marker is not even read
    sim.done()


def test_a_definition_committed_during_an_invoke_fails_it_by_mvcc() -> None:
    inv, peer = invocations()
    peer.store.define("ch", Definition("basic", "1.0", 1, package_id="basic_1.0:abc"))
    ledger = peer.ledgers.get("ch")
    target = inv.resolve("ch", "basic")
    sim = ledger.new_simulator("during")
    inv.read_definition(target, sim)
    sim.put_state("basic", "k", b"v")
    results = sim.get_results()
    sim.done()
    assert list(results.reads("_lifecycle")) == ["namespaces/basic"]
    peer.store.define("ch", Definition("basic", "1.1", 2, package_id="basic_1.0:abc"))
    assert ledger.commit("during", results).name == "MVCC_READ_CONFLICT"
    # Implicit definitions live in no ledger: nothing is read.
    inv.configure("kv")
    sim = ledger.new_simulator("implicit")
    inv.read_definition(inv.resolve("ch", "kv"), sim)
    assert sim.get_results().reads("_lifecycle") == {}
    sim.done()


def test_config_channels_and_install_dir(tmp_path: Path) -> None:
    file = tmp_path / "peer.toml"
    file.write_text(
        '[[channels]]\nname = "ch1"\n[[channels]]\nname = "ch2"\n'
        '[chaincode]\ninstallDir = "/srv/cc"\nmaxPackageSize = 1024\n'
    )
    config = Config.load(file, env={})
    assert (config.channels, config.install_dir, config.max_package_bytes) == (
        ("ch1", "ch2"),
        "/srv/cc",
        1024,
    )
    file.write_text('[[channels]]\nnom = "x"\n')
    with pytest.raises(ConfigError, match="each entry needs a name"):
        Config.load(file, env={})
    assert Config.load(None, env={"CORE_CHAINCODE_INSTALLDIR": "/x"}).install_dir == "/x"
    with pytest.raises(ConfigError, match="channels: 'My_Channel' contains illegal characters"):
        Config(channels=("My_Channel",))


def test_a_package_that_cannot_be_built_is_not_kept(tmp_path: Path) -> None:
    from actors.support import ChaincodeSupport

    with ChaincodeSupport(Config(install_dir=str(tmp_path / "cc"))) as support:
        no_connection = package(code=tar_gz([("src/readme.txt", b"no connection.json")]))
        with pytest.raises(LifecycleError, match=r"could not build chaincode: .*connection.json"):
            support.install(no_connection)
        assert support.lifecycle.packages.list() == []
        assert os.listdir(tmp_path / "cc") == []
        installed = support.install(package())
        assert support.definitions[installed.package_id].runtime == "package"


def test_the_peer_reports_channels_and_gateway_rules_from_the_lifecycle(tmp_path: Path) -> None:
    from actors.gateway.validator import ChaincodeRules
    from actors.msp.policies import from_string
    from actors.support import ChaincodeSupport
    from protos.peer.policy_pb2 import ApplicationPolicy

    config = Config(channels=("ch1", "ch2"), install_dir=str(tmp_path / "cc"))
    with ChaincodeSupport(config) as support:
        peer = support.peer
        assert peer.channel_names() == ("ch1", "ch2")
        installed = support.install(package())
        assert peer.gateway_rules("ch1", "basic") is None
        policy = "OR('Org1MSP.peer')"
        support.lifecycle.define(
            "ch1",
            Definition("basic", "1.0", 1, package_id=installed.package_id, signature_policy=policy),
        )
        expected = ApplicationPolicy(signature_policy=from_string(policy)).SerializeToString()
        assert peer.gateway_rules("ch1", "basic") == ChaincodeRules("1.0", expected)
        assert peer.gateway_rules("ch2", "basic") is None
        assert peer.gateway_rules("nochannel", "basic") is None
        support.lifecycle.define(
            "ch2", Definition("basic", "2.0", 1, package_id=installed.package_id)
        )
        assert peer.gateway_rules("ch2", "basic") == ChaincodeRules("2.0", b"")
    # Installs survive a restart: the package is registered under its id again.
    with ChaincodeSupport(config) as support:
        assert support.definitions[installed.package_id].runtime == "package"


def test_gateway_rules_are_parsed_once_per_definition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actors.msp import policies
    from actors.support import ChaincodeSupport
    from protos.peer.policy_pb2 import ApplicationPolicy

    parsed: list[str] = []
    from_string = policies.from_string

    def counted(text: str) -> object:
        parsed.append(text)
        return from_string(text)

    monkeypatch.setattr(policies, "from_string", counted)
    config = Config(channels=("ch1",), install_dir=str(tmp_path / "cc"))
    first, second = "OR('Org7MSP.peer', 'Org8MSP.peer')", "AND('Org7MSP.peer', 'Org8MSP.peer')"
    with ChaincodeSupport(config) as support:
        peer = support.peer
        installed = support.install(package())
        define = support.lifecycle.define
        define("ch1", Definition("cached", "1.0", 1, installed.package_id, signature_policy=first))
        parsed.clear()  # what the definition's checks parsed
        rules = [peer.gateway_rules("ch1", "cached") for _ in range(5)]
        assert parsed == [first] and rules == [rules[0]] * 5
        # a new definition (another policy) is answered with its own rules at once
        define("ch1", Definition("cached", "1.0", 2, installed.package_id, signature_policy=second))
        parsed.clear()
        policy = peer.gateway_rules("ch1", "cached").endorsement_policy  # type: ignore[union-attr]
        assert ApplicationPolicy.FromString(policy).signature_policy == from_string(second)
        assert parsed == [second]


def test_a_ccaas_package_cannot_name_a_host_file_for_its_connection() -> None:
    """connection.json comes from a package: only Fabric's fields reach the runtime, never our
    config's ``file`` (a path the peer would read)."""
    from actors.lifecycle.lifecycle import runtime_definition
    from actors.lifecycle.packages import InstalledPackage
    from actors.packaging import read_package_bytes

    fields = {"address": "cc:9999", "dial_timeout": "10s", "file": "/etc/passwd", "extra": 1}
    raw = package(code=tar_gz([("connection.json", json.dumps(fields).encode())]))
    info = read_package_bytes(raw, "p.tar.gz")
    installed = InstalledPackage(info.id, info.label, info.type, "p.tar.gz")
    definition = runtime_definition(installed, info)
    assert definition is not None
    assert dict(definition.connection) == {"address": "cc:9999", "dial_timeout": "10s"}


def test_a_ccaas_packages_connection_is_read_as_fabric_reads_it() -> None:
    """One reader for every connection.json (``parse_connection``): a number is nanoseconds,
    as Fabric's ``Duration`` reads it, whether a builder releases the file or the peer finds
    it in a ccaas package; a bad value is refused with the reader's text."""
    from actors.lifecycle.lifecycle import runtime_definition
    from actors.lifecycle.packages import InstalledPackage
    from actors.packaging import read_package_bytes
    from actors.runtimes.external import resolve_connection

    def definition(connection: bytes, name: str = "connection.json") -> ChaincodeDefinition:
        info = read_package_bytes(package(code=tar_gz([(name, connection)])), "p.tar.gz")
        installed = InstalledPackage(info.id, info.label, info.type, "p.tar.gz")
        found = runtime_definition(installed, info)
        assert found is not None
        return found

    found = definition(b'{"address": "cc:9999", "dial_timeout": 2500000000, "tls_required": false}')
    assert dict(found.connection) == {"address": "cc:9999", "dial_timeout": "2500ms"}
    assert resolve_connection(found.name, found.connection).dial_timeout == 2.5
    assert definition(b'{"address": "cc:1"}', "./connection.json").connection["address"] == "cc:1"
    for bad, message in [
        (b'{"address": "cc:1", "dial_timeout": "10"}', 'missing unit in duration "10"'),
        (b'{"address": "cc:1", "dial_timeout": 4e12}', "a number is nanoseconds"),
        (b'{"address": "cc:1", "tls_required": "yes"}', "tls_required must be true or false"),
        (b'{"dial_timeout": "1s"}', "chaincode address not provided"),
        (b"{", "connection.json: Expecting"),
    ]:
        with pytest.raises(LifecycleError, match=message):
            definition(bad)
    with pytest.raises(LifecycleError, match=r"connection\.json not found at the root"):
        definition(b'{"address": "cc:1"}', "src/connection.json")
