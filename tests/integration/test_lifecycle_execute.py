"""Lifecycle rules on the execute path (Fabric's ``ChaincodeEndorsementInfo`` and
``CheckInvocation``), with the kv chaincode in a system-runtime child process: the namespace is
the chaincode name, one instance per package id serves every channel, cc2cc addresses the name,
the init rules, duplicate and unknown-channel refusals, and the rich-query indexes of defined
packages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.config import ChaincodeDefinition, Config
from actors.errors import (
    DuplicateTransaction,
    InvalidInvocation,
    LifecycleError,
    UnknownChaincode,
    UnknownChannel,
)
from actors.lifecycle.definitions import Definition
from actors.lifecycle.invocation import INITIALIZED_KEY
from actors.lifecycle.packages import calculate_package_id
from actors.support import ChaincodeSupport
from actors.txcontexts import ExecuteResult
from tests.helpers import tar_gz

pytestmark = pytest.mark.timeout(120)

KV = "examples.kv:KVChaincode"
WAIT = 30.0
INDEX = "META-INF/statedb/couchdb/indexes/indexOwner.json"
OWNER_INDEX = {"index": {"fields": ["owner"]}, "ddoc": "indexOwnerDoc", "name": "indexOwner"}


@pytest.fixture
def dev_peer() -> Iterator[ChaincodeSupport]:
    """Dev mode, two channels, kv registered as ``kv:1.0`` (a configured system chaincode
    registers with its configured id, as a hand-started one does), and a second chaincode to
    call it."""
    config = Config(
        mode="dev",
        channels=("ch1", "ch2"),
        execute_timeout=20.0,
        chaincodes=(
            ChaincodeDefinition("kv:1.0", target=KV),
            ChaincodeDefinition("caller", target=KV),
        ),
    )
    with ChaincodeSupport(config) as support:
        yield support


def run(support: ChaincodeSupport, channel: str, name: str, *args: str, **kw: Any) -> bytes:
    result = support.execute_async(channel, None, name, list(args), **kw).result(WAIT)
    assert result.response.status == 200, result.response
    return result.response.payload


def submit(support: ChaincodeSupport, channel: str, name: str, *args: str, **kw: Any) -> str:
    outcome = support.invoke(channel, None, name, list(args), **kw)
    assert outcome.committed, (outcome.response, outcome.validation)
    return outcome.result.txid


def namespaces(result: ExecuteResult) -> list[str]:
    assert result.results is not None
    return sorted(result.results.namespaces)


def test_the_name_is_the_namespace_and_one_instance_serves_every_channel(
    dev_peer: ChaincodeSupport,
) -> None:
    submit(dev_peer, "ch1", "kv", "put", "k", "one")
    put = dev_peer.execute("ch2", None, "kv:1.0", ["put", "k", "two"])
    assert namespaces(put) == ["kv"]  # not "kv:1.0"
    assert dev_peer.commit("ch2", put).name == "VALID"
    assert dev_peer.ledgers.get("ch1").get_state("kv", "k") == b"one"
    assert dev_peer.ledgers.get("ch2").get_state("kv", "k") == b"two"
    assert [n for n, s in dev_peer.status().items() if s == "ready"] == ["kv:1.0"]
    # cc2cc by name: a version suffix is ignored, /channel selects the channel.
    assert run(dev_peer, "ch1", "caller", "call", "kv:9.9", "get", "k") == b"one"
    assert run(dev_peer, "ch1", "caller", "call", "kv/ch2", "get", "k") == b"two"
    assert run(dev_peer, "ch1", "caller", "call", "kv:1.0/ch2", "get", "k") == b"two"
    failed = dev_peer.execute("ch1", None, "caller", ["call", "kv/nochannel", "get", "k"])
    assert failed.response.status == 500
    assert "failed to find ledger for channel: nochannel" in failed.response.message


def test_an_unknown_channel_is_refused_and_never_created(tmp_path: Path) -> None:
    config = Config(
        channels=("ch1",),
        chaincodes=(ChaincodeDefinition("kv", target=KV),),
        ledger_path=str(tmp_path / "ledgers"),
    )
    with ChaincodeSupport(config) as support:
        before = sorted(p.name for p in (tmp_path / "ledgers").iterdir())
        for i in range(50):
            with pytest.raises(UnknownChannel, match=f"^channel 'made-up-{i}' not found$"):
                support.execute("made-up-" + str(i), None, "kv", ["get", "k"])
        assert sorted(p.name for p in (tmp_path / "ledgers").iterdir()) == before
        assert support.ledgers.channels() == ["ch1"]
        with pytest.raises(UnknownChaincode, match="defined on channel ch1 and try again"):
            support.execute("ch1", None, "ghost", ["get", "k"])


def test_init_rules_as_fabric_checks_them(dev_peer: ChaincodeSupport) -> None:
    lifecycle = dev_peer.lifecycle
    lifecycle.define("ch1", Definition("kv", "1.0", 1, package_id="kv:1.0", init_required=True))
    with pytest.raises(
        InvalidInvocation,
        match="chaincode 'kv' has not been initialized for this version, must call as init first",
    ):
        dev_peer.execute("ch1", None, "kv", ["get", "k"])
    init = dev_peer.invoke("ch1", None, "kv", ["init"], is_init=True)
    assert init.committed and init.response.message == "kv initialised"
    # The marker is in the chaincode's namespace, its value the definition's version, and the
    # definition was read through the transaction (a redefinition meanwhile fails it by MVCC).
    assert init.result.results is not None
    assert init.result.results.writes("kv") == {INITIALIZED_KEY: b"1.0"}
    assert list(init.result.results.reads("_lifecycle")) == ["namespaces/kv"]
    with pytest.raises(InvalidInvocation, match="is already initialized but called as init"):
        dev_peer.execute("ch1", None, "kv", ["init"], is_init=True)
    submit(dev_peer, "ch1", "kv", "put", "k", "v")
    # A cc2cc callee follows the same rules.
    lifecycle.define("ch2", Definition("kv", "1.0", 1, package_id="kv:1.0", init_required=True))
    called = dev_peer.execute("ch1", None, "caller", ["call", "kv/ch2", "get", "k"])
    assert "must call as init first" in called.response.message
    lifecycle.define("ch2", Definition("kv", "1.1", 2, package_id="kv:1.0"))
    with pytest.raises(InvalidInvocation, match="does not require initialization but called"):
        dev_peer.execute("ch2", None, "kv", ["init"], is_init=True)
    # The same version at a new sequence needs no second Init (the marker holds the version;
    # a new version runs as name:version in dev mode, another chaincode id).
    lifecycle.define("ch1", Definition("kv", "1.0", 2, package_id="kv:1.0", init_required=True))
    assert run(dev_peer, "ch1", "kv", "get", "k") == b"v"


def test_a_committed_txid_is_refused(dev_peer: ChaincodeSupport) -> None:
    outcome = dev_peer.invoke("ch1", "tx-once", "kv", ["put", "k", "v"])
    assert outcome.committed
    creator = dev_peer.identity.serialized.hex()
    with pytest.raises(DuplicateTransaction) as refused:
        dev_peer.execute("ch1", "tx-once", "kv", ["get", "k"])
    assert str(refused.value) == f"duplicate transaction found [tx-once]. Creator [{creator}]"
    # Another channel has transactions of its own.
    assert dev_peer.invoke("ch2", "tx-once", "kv", ["put", "k", "v"]).committed


# -- rich-query indexes of defined packages ----------------------------------------------------


def ccaas_package(label: str, index: dict[str, object] | bytes) -> bytes:
    data = index if isinstance(index, bytes) else json.dumps(index).encode()
    code = tar_gz({"connection.json": b'{"address":"127.0.0.1:1"}', INDEX: data})
    meta = json.dumps({"path": "", "type": "ccaas", "label": label}).encode()
    return tar_gz({"metadata.json": meta, "code.tar.gz": code})


def test_indexes_are_created_at_define_and_again_at_start(tmp_path: Path) -> None:
    config = Config(
        channels=("ch1", "ch2"),
        install_dir=str(tmp_path / "cc"),
        ledger_path=str(tmp_path / "ledgers"),
    )
    with ChaincodeSupport(config) as support:
        installed = support.install(ccaas_package("basic_1.0", OWNER_INDEX))
        rich = support.ledgers.get("ch1").rich_queries
        assert rich.indexes("basic") == []
        support.lifecycle.define("ch1", Definition("basic", "1.0", 1, installed.package_id))
        assert [i.name for i in rich.indexes("basic")] == ["indexOwner"]
        assert support.ledgers.get("ch2").rich_queries.indexes("basic") == []
    with ChaincodeSupport(config) as support:
        indexes = support.ledgers.get("ch1").rich_queries.indexes("basic")
        assert [(i.name, i.fields) for i in indexes] == [("indexOwner", ("owner",))]


def test_indexes_of_a_package_installed_after_its_definition(tmp_path: Path) -> None:
    # Dev mode lets a definition name a package id not installed (yet).
    config = Config(mode="dev", install_dir=str(tmp_path / "cc"))
    package = ccaas_package("basic_1.0", OWNER_INDEX)
    with ChaincodeSupport(config) as support:
        package_id = calculate_package_id(package)
        support.lifecycle.define("mychannel", Definition("basic", "1.0", 1, package_id))
        rich = support.ledgers.get("mychannel").rich_queries
        assert rich.indexes("basic") == []
        support.install(package)
        assert [i.name for i in rich.indexes("basic")] == ["indexOwner"]


def test_a_package_with_a_bad_index_is_refused_at_install(tmp_path: Path) -> None:
    with ChaincodeSupport(Config(install_dir=str(tmp_path / "cc"))) as support:
        bad = {"index": {"fields": []}, "name": "x"}
        with pytest.raises(LifecycleError, match=r"invalid index content: .*indexOwner\.json"):
            support.install(ccaas_package("basic_1.0", bad))
        with pytest.raises(LifecycleError, match="is not a valid JSON"):
            support.install(ccaas_package("basic_1.0", b"{nope"))
        assert support.lifecycle.query_installed() == []
        assert list((tmp_path / "cc").iterdir()) == []
