"""Where a configured chaincode's code is (actors.runtimes.targets): paths relative to the
configuration file, and missing code reported when the file is loaded, not at first invoke."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from actors.config import Config, ConfigError
from actors.packaging import create_package
from actors.shim.loader import missing_module

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(tmp_path: Path, chaincodes: str) -> Config:
    path = tmp_path / "peer.toml"
    path.write_text(chaincodes)
    return Config.load(path, env={})


def test_a_missing_system_module_is_reported_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, '[[chaincodes]]\nname = "bank"\ntarget = "bank:Bank"\n')
    assert "chaincode bank: no module named 'bank'" in str(info.value)
    assert str(tmp_path.resolve()) in str(info.value)


def test_the_config_files_directory_is_the_default_workdir(tmp_path: Path) -> None:
    (tmp_path / "bank.py").write_text("raise SystemExit('the check must not import me')\n")
    config = load(tmp_path, '[[chaincodes]]\nname = "bank"\ntarget = "bank:Bank"\n')
    assert config.chaincodes[0].workdir == str(tmp_path.resolve())


def test_a_relative_workdir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "cc" / "bank").mkdir(parents=True)
    (tmp_path / "cc" / "bank" / "__init__.py").write_text("")
    (tmp_path / "cc" / "bank" / "ledger.py").write_text("")
    entry = '[[chaincodes]]\nname = "{name}"\nruntime = "process"\ntarget = "{target}"\n'
    text = entry.format(name="ok", target="bank.ledger:Bank") + 'workdir = "cc"\n'
    config = load(tmp_path, text)
    assert config.chaincodes[0].workdir == str((tmp_path / "cc").resolve())

    text = entry.format(name="sub", target="bank.nope:Bank") + 'workdir = "cc"\n'
    with pytest.raises(ConfigError, match=r"chaincode sub: no module named 'bank\.nope'"):
        load(tmp_path, text)
    with pytest.raises(ConfigError, match=r"chaincode gone: workdir .*elsewhere is not a dir"):
        load(tmp_path, entry.format(name="gone", target="x:Y") + 'workdir = "elsewhere"\n')


def test_installed_packages_are_found(tmp_path: Path) -> None:
    config = load(tmp_path, '[[chaincodes]]\nname = "kv"\ntarget = "examples.kv:KVChaincode"\n')
    assert config.chaincodes[0].target == "examples.kv:KVChaincode"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        '[[chaincodes]]\nname = "a"\ntarget = "nope_a:A"\n'
        '[[chaincodes]]\nname = "b"\nruntime = "process"\ncommand = ["no-such-program-x"]\n'
        '[[chaincodes]]\nname = "c"\nruntime = "process"\ncommand = ["./run.sh"]\n'
        '[[chaincodes]]\nname = "d"\nruntime = "docker"\npackage = "d.tar.gz"\n'
    )
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert "chaincode a: no module named 'nope_a'" in message
    assert "chaincode b: program 'no-such-program-x' is not on PATH" in message
    assert f"chaincode c: program {tmp_path.resolve() / 'run.sh'} is not an executable" in message
    assert f"chaincode d: chaincode package {tmp_path.resolve() / 'd.tar.gz'} not found" in message


def test_a_docker_package_is_read_relative_to_the_config_file(tmp_path: Path) -> None:
    create_package(EXAMPLES, "kv", target="examples.kv:KVChaincode", out=tmp_path / "kv.tgz")
    config = load(tmp_path, '[[chaincodes]]\nname = "kv"\nruntime = "docker"\npackage = "kv.tgz"\n')
    assert config.chaincodes[0].package == str(tmp_path.resolve() / "kv.tgz")
    (tmp_path / "bad.tgz").write_bytes(b"not a package")
    with pytest.raises(ConfigError, match=r"not a valid tar\.gz"):
        load(tmp_path, '[[chaincodes]]\nname = "b"\nruntime = "docker"\npackage = "bad.tgz"\n')
    # a type no Docker platform builds is reported at load, naming the type
    create_package(EXAMPLES, "go", type="golang", target="x:Y", out=tmp_path / "go.tgz")
    with pytest.raises(ConfigError, match="chaincode go: chaincode type 'golang' is not supported"):
        load(tmp_path, '[[chaincodes]]\nname = "go"\nruntime = "docker"\npackage = "go.tgz"\n')
    # the package runtime reads it relative to the file too (an external builder may claim it)
    config = load(tmp_path, '[[chaincodes]]\nname = "g"\nruntime = "package"\npackage = "go.tgz"\n')
    assert config.chaincodes[0].package == str(tmp_path.resolve() / "go.tgz")


def test_missing_module_walks_packages_without_importing(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("raise SystemExit('imported')\n")
    (tmp_path / "pkg" / "mod.py").write_text("")
    (tmp_path / "plain.py").write_text("")
    path = [str(tmp_path)]
    assert missing_module("pkg.mod", path) is None
    assert missing_module("pkg", path) is None
    assert missing_module("pkg.other", path) == "pkg.other"
    assert missing_module("plain.sub", path) == "plain.sub"  # a module has no submodules
    assert missing_module("absent.mod", path) == "absent"
    assert missing_module("json.decoder", [*path, *sys.path]) is None  # the standard library
    assert "pkg" not in sys.modules
