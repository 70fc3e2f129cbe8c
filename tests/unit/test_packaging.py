"""Fabric 2.x chaincode packages: deterministic ids, round trips, and clear errors."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from actors.cli import main as cli_main
from actors.packaging import (
    PackageError,
    check_label,
    code_files,
    create_package,
    package_id,
    read_package,
)
from tests.helpers import tar_gz

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TARGET = "examples.kv:KVChaincode"


def names_in(code: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(code), mode="r:gz") as tar:
        return tar.getnames()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small Python package directory named ``mycc``."""
    root = tmp_path / "src" / "mycc"
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "contract.py").write_text("class C:\n    pass\n")
    (root / "data").mkdir()
    (root / "data" / "table.json").write_text("{}")
    return root


# -- ids -----------------------------------------------------------------------------------------


def test_package_id_is_label_and_sha256_of_the_file(tmp_path: Path) -> None:
    out = tmp_path / "kv.tar.gz"
    info = create_package(EXAMPLES, "kv", target=TARGET, out=out)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert info.id == f"kv:{digest}" == package_id(out)
    assert info.digest == digest


def test_same_source_gives_the_same_id(tmp_path: Path, source: Path) -> None:
    first = create_package(source, "mycc", target="mycc.contract:C", out=tmp_path / "a.tgz")
    # Different mtimes, a different output path and a stray __pycache__ change nothing.
    os.utime(source / "contract.py", (1_000_000, 1_000_000))
    (source / "__pycache__").mkdir()
    (source / "__pycache__" / "contract.cpython-311.pyc").write_bytes(b"junk")
    (source / ".hidden").write_text("secret")
    (source / "stale.pyc").write_bytes(b"junk")
    second = create_package(source, "mycc", target="mycc.contract:C", out=tmp_path / "b.tgz")
    assert first.id == second.id
    assert (tmp_path / "a.tgz").read_bytes() == (tmp_path / "b.tgz").read_bytes()


def test_a_changed_source_or_label_changes_the_id(tmp_path: Path, source: Path) -> None:
    base = create_package(source, "mycc", target="mycc.contract:C", out=tmp_path / "a.tgz")
    relabelled = create_package(source, "mycc2", target="mycc.contract:C", out=tmp_path / "b.tgz")
    (source / "contract.py").write_text("class C:\n    x = 1\n")
    edited = create_package(source, "mycc", target="mycc.contract:C", out=tmp_path / "c.tgz")
    assert len({base.digest, relabelled.digest, edited.digest}) == 3


def test_entries_are_normalised(tmp_path: Path, source: Path) -> None:
    (source / "run.sh").write_text("#!/bin/sh\n")
    (source / "run.sh").chmod(0o700)
    info = create_package(source, "mycc", target="mycc.contract:C", out=tmp_path / "p.tgz")
    with tarfile.open(fileobj=io.BytesIO(info.code), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    for member in members:
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (
            0,
            0,
            0,
            "",
            "",
        )
    modes = {m.name: m.mode for m in members}
    assert modes["src/mycc/run.sh"] == 0o755
    assert modes["src/mycc/contract.py"] == 0o644
    # The outer gzip has no timestamp either.
    assert (tmp_path / "p.tgz").read_bytes()[4:8] == b"\0\0\0\0"


# -- round trip ----------------------------------------------------------------------------------


def test_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "kv.tar.gz"
    created = create_package(EXAMPLES, "kv", target=TARGET, out=out)
    read = read_package(out)
    assert read == created
    assert (read.label, read.type, read.target, read.path) == ("kv", "python", TARGET, "examples")
    assert "src/examples/kv.py" in names_in(read.code)
    with tarfile.open(out, "r:gz") as tar:
        assert tar.getnames() == ["metadata.json", "code.tar.gz"]
        meta = json.loads(tar.extractfile("metadata.json").read())  # type: ignore[union-attr]
    assert meta == {"label": "kv", "path": "examples", "target": TARGET, "type": "python"}


def test_a_plain_directory_is_the_top_level(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "pkg" / "__init__.py").write_text("")
    (project / "single.py").write_text("class C: pass\n")
    info = create_package(project, "proj", target="single:C", out=tmp_path / "p.tgz")
    assert names_in(info.code) == ["src/pkg/__init__.py", "src/single.py"]
    create_package(project, "proj", target="pkg:C", out=tmp_path / "q.tgz")


def test_meta_inf_goes_to_the_archive_root(tmp_path: Path) -> None:
    """As Fabric's packagers put it, where the peer looks for state DB indexes."""
    project = tmp_path / "project"
    indexes = project / "META-INF" / "statedb" / "couchdb" / "indexes"
    indexes.mkdir(parents=True)
    (indexes / "owner.json").write_text('{"index":{"fields":["owner"]}}')
    (project / "single.py").write_text("class C: pass\n")
    info = create_package(project, "proj", target="single:C", out=tmp_path / "p.tgz")
    index = "META-INF/statedb/couchdb/indexes/owner.json"
    assert names_in(info.code) == [index, "src/single.py"]
    assert code_files(info.code, "META-INF/statedb/couchdb/indexes/") == {
        index: b'{"index":{"fields":["owner"]}}'
    }


def test_default_output_is_label_tar_gz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    info = create_package(EXAMPLES, "kv", target=TARGET)
    assert package_id(tmp_path / "kv.tar.gz") == info.id


def test_other_types_need_no_target(tmp_path: Path, source: Path) -> None:
    info = create_package(source, "gocc", type="golang", out=tmp_path / "g.tgz")
    assert (info.type, info.target) == ("golang", "")
    assert read_package(tmp_path / "g.tgz").type == "golang"


# -- bad inputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["kv", "KV1", "1kv", "kv_1.0+build-2", "a"])
def test_good_labels(label: str) -> None:
    assert check_label(label) == label


@pytest.mark.parametrize(
    "label", ["", "-kv", "_kv", ".kv", "k v", "kv/1", "kv:1", "kvé", "kv\n", None, 3]
)
def test_bad_labels(label: object, tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="invalid label"):
        create_package(EXAMPLES, label, target=TARGET, out=tmp_path / "x.tgz")  # type: ignore[arg-type]


@pytest.mark.parametrize("target", ["examples.kv", "examples.kv:", ":KV", "a-b:C", "a:b:c", ""])
def test_bad_targets(target: str, tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="invalid target"):
        create_package(EXAMPLES, "kv", target=target, out=tmp_path / "x.tgz")


def test_python_needs_a_target_that_exists(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="needs a target"):
        create_package(EXAMPLES, "kv", out=tmp_path / "x.tgz")
    with pytest.raises(PackageError, match=r"module not found .*src/examples/nope\.py"):
        create_package(EXAMPLES, "kv", target="examples.nope:C", out=tmp_path / "x.tgz")
    with pytest.raises(PackageError, match="module not found"):
        create_package(EXAMPLES, "kv", target="kv:KVChaincode", out=tmp_path / "x.tgz")


def test_bad_source_directories(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="not a directory"):
        create_package(tmp_path / "missing", "kv", target=TARGET, out=tmp_path / "x.tgz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PackageError, match="no files"):
        create_package(empty, "kv", type="golang", out=tmp_path / "x.tgz")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "real.py").write_text("")
    (linked / "link.py").symlink_to(linked / "real.py")
    with pytest.raises(PackageError, match="symbolic links"):
        create_package(linked, "kv", type="golang", out=tmp_path / "x.tgz")


def test_missing_package(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"chaincode package .*nope\.tgz not found"):
        read_package(tmp_path / "nope.tgz")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a package at all", "not a valid tar.gz"),
        (gzip.compress(b"gzip but not a tar" * 50), "not a valid tar.gz"),
        (tar_gz({"code.tar.gz": tar_gz({"src/a.py": b""})}), "no metadata.json"),
        (tar_gz({"metadata.json": b'{"label":"kv","type":"golang"}'}), "no code.tar.gz"),
        (
            tar_gz({"metadata.json": b"{not json", "code.tar.gz": b""}),
            "metadata.json is not valid JSON",
        ),
        (
            tar_gz({"metadata.json": b"[1, 2]", "code.tar.gz": b""}),
            "must be a JSON object",
        ),
        (
            tar_gz(
                {
                    "metadata.json": b'{"label":"bad label","type":"golang"}',
                    "code.tar.gz": tar_gz({"a": b""}),
                }
            ),
            "invalid label",
        ),
        (
            tar_gz({"metadata.json": b'{"label":"kv"}', "code.tar.gz": tar_gz({"a": b""})}),
            "no chaincode type",
        ),
        (
            tar_gz(
                {
                    "metadata.json": b'{"label":"kv","type":"python"}',
                    "code.tar.gz": tar_gz({"a": b""}),
                }
            ),
            "invalid target",
        ),
        (
            tar_gz({"metadata.json": b'{"label":"kv","type":"golang"}', "code.tar.gz": b"garbage"}),
            "code.tar.gz is not a valid tar.gz",
        ),
        (
            tar_gz(
                {
                    "metadata.json": b'{"label":"kv","type":"golang"}',
                    "code.tar.gz": tar_gz({"../escape.py": b""}),
                }
            ),
            "absolute or escaping path",
        ),
    ],
)
def test_corrupt_packages(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.tgz"
    path.write_bytes(content)
    with pytest.raises(PackageError, match=message):
        read_package(path)


def test_fabric_style_package_reads(tmp_path: Path) -> None:
    """A package as `peer lifecycle chaincode package` makes one (no target, golang)."""
    data = tar_gz(
        {
            "metadata.json": b'{"path":"github.com/x/cc","type":"golang","label":"mycc_1"}',
            "code.tar.gz": tar_gz({"src/github.com/x/cc/main.go": b"package main\n"}),
        }
    )
    path = tmp_path / "mycc.tar.gz"
    path.write_bytes(data)
    info = read_package(path)
    assert (info.label, info.type, info.target, info.path) == (
        "mycc_1",
        "golang",
        "",
        "github.com/x/cc",
    )
    assert info.id == "mycc_1:" + hashlib.sha256(data).hexdigest()


# -- command line --------------------------------------------------------------------------------


def test_cli_package_prints_the_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "kv.tar.gz"
    argv = ["package", "--label", "kv", "--path", str(EXAMPLES), "--target", TARGET]
    assert cli_main([*argv, "-o", str(out)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == package_id(out)
    assert (
        cli_main(["package", "--label", "k v", "--path", str(EXAMPLES), "-t", TARGET]) == 2
    )  # a usage mistake
    assert "invalid label" in capsys.readouterr().err


def _entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"x", link: str = "") -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return raw.getvalue()


UNSAFE = [
    pytest.param(_entry("../up.py"), "absolute or escaping path '../up.py'", id="traversal"),
    pytest.param(_entry("src/../../up.py"), "absolute or escaping path", id="inner-traversal"),
    pytest.param(_entry("/etc/cron.d/x"), "absolute or escaping path '/etc/cron.d/x'", id="abs"),
    pytest.param(_entry("src/l", tarfile.SYMTYPE, link="/etc"), "invalid file type '2'", id="sym"),
    pytest.param(_entry("src/h", tarfile.LNKTYPE, link="a"), "invalid file type '1'", id="hard"),
    pytest.param(_entry("src/d", tarfile.CHRTYPE), "invalid file type '3'", id="device"),
    pytest.param(_entry("src/big", data=b"\0" * 70000), "larger than 65536 bytes", id="size"),
    pytest.param(tar_gz({"a": b"\0" * 40000, "b": b"\0" * 40000}), "larger than", id="sum"),
    pytest.param(gzip.compress(b"not a tar" * 100), "not a valid tar.gz", id="garbage"),
    pytest.param(_entry("src/c", tarfile.CONTTYPE), "invalid file type '7'.*'src/c'", id="contig"),
    pytest.param(_entry("src/s", tarfile.GNUTYPE_SPARSE), "invalid file type 'S'", id="sparse"),
    # cut off in the middle of a file's data: the error comes while the caller reads it
    pytest.param(
        _entry("connection.json", data=os.urandom(60000))[:30000],
        "not a valid tar.gz",
        id="truncated-body",
    ),
]


@pytest.mark.parametrize(("code", "message"), UNSAFE)
def test_every_reader_of_a_code_archive_walks_it_with_the_same_checks(
    tmp_path: Path, code: bytes, message: str
) -> None:
    """One iterator (``code_entries``) for install, builders, the Docker and node builds and
    the ccaas reader: each refuses what the others refuse, before writing anything."""
    from actors.errors import LifecycleError
    from actors.lifecycle.builders import BuildError, declared_size, safe_extract
    from actors.lifecycle.lifecycle import runtime_definition
    from actors.lifecycle.packages import InstalledPackage
    from actors.packaging import PackageInfo, code_entries
    from actors.runtimes.docker import DockerRuntimeError, _under

    limit = 64 << 10  # (the stream is read a 10 KiB tar record at a time)
    with pytest.raises(PackageError, match=message):
        list(code_entries(code, max_bytes=limit))
    with pytest.raises(PackageError, match=message):
        code_files(code, "", max_bytes=limit)
    with pytest.raises(BuildError, match=message):
        safe_extract(code, tmp_path / "out", limit)
    assert not any(tmp_path.rglob("up.py")) and not (tmp_path / "out" / "src" / "l").exists()
    with pytest.raises(BuildError, match=message):
        declared_size(code, limit)
    with pytest.raises(DockerRuntimeError, match=message):
        _under("input", code, limit)
    if "larger than" not in message:  # the ccaas reader has the install limit (128 MiB)
        info = PackageInfo("cc", "ccaas", "", "cc:0", code)
        with pytest.raises(LifecycleError, match=message):
            runtime_definition(InstalledPackage("cc:0", "cc", "ccaas", "p"), info)


def test_code_entries_give_normal_relative_paths() -> None:
    from actors.lifecycle.builders import declared_size
    from actors.packaging import code_entries

    code = tar_gz({"./src/a.py": b"a", "src//b.py": b"b", "META-INF/x.json": b"{}"})
    entries = {entry.path: entry.read() for entry in code_entries(code)}
    assert entries == {"src/a.py": b"a", "src/b.py": b"b", "META-INF/x.json": b"{}"}
    assert declared_size(code) == 4
