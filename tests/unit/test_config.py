"""Config: keys declared once, file (YAML/TOML/JSON) and CORE_ loading, one-line errors for every
bad value, Fabric's own core.yaml, and a property test that nothing but ConfigError escapes."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.config import (
    KEYS,
    ChaincodeDefinition,
    Config,
    ConfigError,
    HostConfig,
    LogConfig,
    markdown_table,
    parse_duration,
)
from actors.policy import Restart, RestartPolicy

ROOT = Path(__file__).resolve().parents[2]
# Fabric v2.5.9 sampleconfig/core.yaml, unmodified (Apache-2.0, its header kept).
FABRIC_CORE_YAML = ROOT / "tests" / "data" / "fabric-2.5-core.yaml"


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        (30, 30.0),
        ("30", 30.0),
        ("1.5", 1.5),
        ("30s", 30.0),
        ("500ms", 0.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1h2m3.5s", 3723.5),
        ("300ms", 0.3),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("1500ns", 1.5e-6),
        (".5s", 0.5),
        ("0", 0.0),
    ],
)
def test_parse_duration_reads_go_syntax(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "raw",
    ["", "abc", "10x", True, "-5s", "1e10", "nan", "inf", float("nan"), float("inf"), "s", "1m s"],
)
def test_parse_duration_rejects(raw: object) -> None:
    with pytest.raises(ConfigError, match=r"^duration: "):
        parse_duration(raw)


def test_defaults() -> None:
    config = Config()
    assert config.execute_timeout == 30.0
    assert config.startup_timeout == 60.0
    assert config.keepalive == 0.0
    assert config.mode == "net"
    assert config.max_message_size == 100 * 1024 * 1024
    assert config.docker_host_config == HostConfig()


def test_every_field_is_one_declared_key_with_its_environment_name() -> None:
    assert set(KEYS) == {f.name for f in dataclasses.fields(Config)}
    names = [key.name.lower() for key in KEYS.values()]
    assert len(names) == len(set(names))
    assert KEYS["execute_timeout"].env == "CORE_CHAINCODE_EXECUTETIMEOUT"
    assert KEYS["listen_address"].env == "CORE_PEER_CHAINCODELISTENADDRESS"
    assert KEYS["chaincodes"].env is None  # a list: file only
    # Every key with an environment name reads its default back from it, and refuses a table.
    for name, key in KEYS.items():
        value = getattr(Config(), name)
        text = key.parse.show(value)  # type: ignore[attr-defined]
        if key.env is None or not text:
            continue
        assert getattr(Config.load(env={key.env: text}), name) == value
        with pytest.raises(ConfigError, match=f"^{re.escape(key.name)}: "):
            Config(**{name: {"a": 1}})


def test_readme_table_is_the_declared_keys() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- config-keys -->\n(.*?)\n<!-- /config-keys -->", readme, re.S)
    assert match, "README.md lacks the <!-- config-keys --> table"
    assert match.group(1).strip() == markdown_table(), (
        "README's key table is stale: regenerate it with `python -m actors.config`"
    )


def test_toml_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "core.toml"
    path.write_text(
        """
[chaincode]
executetimeout = "10s"
startuptimeout = "1m30s"
mode = "dev"

[ledger.state]
totalQueryLimit = 500

[[chaincodes]]
name = "kv"
target = "examples.kv:KVChaincode"
execute_timeout = "2s"
"""
    )
    config = Config.load(path, env={"CORE_CHAINCODE_EXECUTETIMEOUT": "7s"})
    assert config.execute_timeout == 7.0  # the environment wins over the file
    assert config.startup_timeout == 90.0
    assert config.mode == "dev"
    assert config.total_query_limit == 500
    assert config.chaincodes == (
        ChaincodeDefinition(
            "kv",
            target="examples.kv:KVChaincode",
            execute_timeout=2.0,
            workdir=str(tmp_path.resolve()),  # the file's directory (actors.runtimes.targets)
        ),
    )


def test_json_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "core.json"
    path.write_text(json.dumps({"chaincode": {"keepalive": "15s"}, "peer": {"localMspId": "Org1"}}))
    config = Config.load(path, env={}, overrides={"mode": "dev"})
    assert (config.keepalive, config.msp_id, config.mode) == (15.0, "Org1", "dev")


def test_fabric_sample_core_yaml_loads_and_reports_what_it_ignores(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="actors.config"):
        config = Config.load(FABRIC_CORE_YAML, env={})
    assert config.startup_timeout == 300.0 and config.execute_timeout == 30.0
    assert config.install_timeout == 300.0
    assert config.total_query_limit == 100000
    assert config.max_message_size == 104857600
    assert config.msp_id == "SampleOrg" and config.mode == "net" and config.keepalive == 0
    assert config.docker_host_config == HostConfig(
        memory=2147483648,
        network_mode="host",
        log_config=LogConfig("json-file", {"max-size": "50m", "max-file": "5"}),
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # once, listing them all
    assert "ignoring" in warnings[0]
    for key in ("peer.gossip.bootstrap", "peer.BCCSP.Default", "metrics.provider"):
        assert key in warnings[0]
    assert "chaincode.executetimeout" not in warnings[0]


def test_bad_values_in_fabric_yaml_are_reported_together(tmp_path: Path) -> None:
    text = FABRIC_CORE_YAML.read_text()
    text = text.replace("executetimeout: 30s", "executetimeout: 30 seconds")
    text = text.replace("mode: net", "mode: prod")
    text = text.replace("Memory: 2147483648", "Memory: lots")
    path = tmp_path / "core.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Config.load(path, env={})
    problems = info.value.problems
    assert problems == (
        "chaincode.executetimeout: cannot parse duration '30 seconds' (use e.g. 30s, 1m30s, 500ms)",
        "chaincode.mode: must be one of net, dev; got 'prod'",
        "vm.docker.hostConfig.Memory: expected a whole number, got 'lots'",
    )


def test_a_typo_is_refused_and_an_unknown_key_ignored(tmp_path: Path, caplog) -> None:
    typo = tmp_path / "a.toml"
    typo.write_text("[chaincode]\nexecutetimeuot = '1s'\nexecutetimeout = '2s'\n")
    with pytest.raises(ConfigError) as info:
        Config.load(typo, env={})
    assert info.value.problems == (
        "unknown key 'chaincode.executetimeuot' (did you mean chaincode.executetimeout?)",
    )
    other = tmp_path / "b.yaml"
    other.write_text("peer:\n  quantumLedger:\n    entangled: true\n")
    with caplog.at_level(logging.WARNING, logger="actors.config"):
        Config.load(other, env={})
    assert "peer.quantumLedger.entangled" in caplog.text


def test_runtime_params_are_read_as_fabric_3_names_them(tmp_path: Path) -> None:
    path = tmp_path / "core.yaml"
    path.write_text(
        "chaincode:\n  runtimeParams:\n    useWriteBatch: false\n    maxSizeWriteBatch: 5\n"
        "    useGetMultipleKeys: false\n    maxSizeGetMultipleKeys: 0\n"
    )
    config = Config.load(path, env={})
    assert (config.use_write_batch, config.max_size_write_batch) == (False, 5)
    assert (config.use_get_multiple_keys, config.max_size_get_multiple_keys) == (False, 0)
    env = {"CORE_CHAINCODE_RUNTIMEPARAMS_MAXSIZEWRITEBATCH": "-1"}
    with pytest.raises(ConfigError, match="maxSizeWriteBatch"):
        Config.load(None, env=env)


def test_unreadable_files(tmp_path: Path) -> None:
    broken = tmp_path / "b.toml"
    broken.write_text("[chaincode\n")
    with pytest.raises(ConfigError, match="cannot parse configuration"):
        Config.load(broken, env={})
    bad_yaml = tmp_path / "c.yaml"
    bad_yaml.write_text("chaincode: [\n  mode: net\n")
    with pytest.raises(ConfigError, match="cannot parse configuration") as info:
        Config.load(bad_yaml, env={})
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="cannot read configuration"):
        Config.load(tmp_path / "missing.toml", env={})
    deep = tmp_path / "d.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        Config.load(deep, env={})
    not_table = tmp_path / "e.yaml"
    not_table.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a table"):
        Config.load(not_table, env={})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CORE_CHAINCODE_MODE": "prod"}, "chaincode.mode: must be one of net, dev; got 'prod'"),
        (
            {"CORE_CHAINCODE_STARTUPTIMEOUT": "1s"},
            "chaincode.startuptimeout: must be at least 5s, got 1s (Fabric raises smaller "
            "values to 5s)",
        ),
        (
            {"CORE_CHAINCODE_EXECUTETIMEOUT": "500ms"},
            "chaincode.executetimeout: must be at least 1s, got 500ms (Fabric silently uses 30s "
            "instead)",
        ),
        (
            {"CORE_CHAINCODE_EXECUTETIMEOUT": "soon"},
            "chaincode.executetimeout: cannot parse duration 'soon' (use e.g. 30s, 1m30s, 500ms)",
        ),
        (
            {"CORE_CHAINCODE_EXECUTETIMEOUT": "1e10"},
            "chaincode.executetimeout: cannot parse duration '1e10' (use e.g. 30s, 1m30s, 500ms)",
        ),
        ({"CORE_CHAINCODE_KEEPALIVE": "48h"}, "chaincode.keepalive: must be at most 86400s"),
        (
            {"CORE_LEDGER_HISTORY_ENABLEHISTORYDATABASE": "maybe"},
            "ledger.history.enableHistoryDatabase: expected true or false, got 'maybe'",
        ),
        ({"CORE_PEER_MAXRECVMSGSIZE": "0"}, "peer.maxRecvMsgSize: must be between 1024 and"),
        ({"CORE_PEER_MAXRECVMSGSIZE": "1.5"}, "peer.maxRecvMsgSize: expected a whole number"),
        ({"CORE_CHAINCODE_HUNGAFTER": "1.9"}, "chaincode.hungafter: expected a whole number"),
        (
            {"CORE_PEER_CHAINCODELISTENADDRESS": "7062"},
            "peer.chaincodeListenAddress: expected HOST:PORT, got '7062'",
        ),
    ],
)
def test_bad_environment_values(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.load(env=env)
    (problem,) = info.value.problems
    assert problem.startswith(message)
    key = problem.split(":")[0]
    assert str(info.value).count(key) == 1  # the key is named once


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("chaincodes = [1, 2]", "chaincodes[0]: expected a table, got 1"),
        (
            '[[chaincodes]]\nname = "x"\nruntime = "external"\nconnection = "h:1"\n',
            "chaincodes[0] chaincode x: connection: expected a table of connection.json fields",
        ),
        (
            '[[chaincodes]]\nname = "x"\ntarget = "a:B"\nrestart = 5\n',
            "chaincodes[0] chaincode x: restart: expected a table, got 5",
        ),
        (
            '[[chaincodes]]\nname = "x"\ntarget = "a:B"\nrestart = "forever"\n',
            "chaincodes[0] chaincode x: restart.restart: must be one of permanent, transient",
        ),
        (
            '[[chaincodes]]\nname = "x"\ntarget = "a:B"\nexecute_timeout = nan\n',
            "chaincodes[0] chaincode x: execute_timeout: must be a finite duration",
        ),
        (
            '[[chaincodes]]\nname = "x"\ntarget = "a:B"\nexecute_timeout = inf\n',
            "chaincodes[0] chaincode x: execute_timeout: must be a finite duration",
        ),
        (
            '[[chaincodes]]\nname = "x"\nruntime = "process"\ncommand = [1]\n',
            "chaincodes[0] chaincode x: command: expected a list of strings",
        ),
        ('[[chaincodes]]\nname = "x"\ntarget = "a:B"\nbogus = 1\n', "chaincodes[0]: unknown keys"),
        ("[peer]\nmaxrecvmsgsize = 1e11\n", "peer.maxRecvMsgSize: must be between 1024 and"),
        ("[peer]\nmaxrecvmsgsize = 1.5\n", "peer.maxRecvMsgSize: expected a whole number, got 1.5"),
        ("[chaincode]\nexecutetimeout = nan\n", "chaincode.executetimeout: must be a finite"),
        ("[chaincode]\nexecutetimeout = inf\n", "chaincode.executetimeout: must be a finite"),
        ("[chaincode]\nhungafter = 1.9\n", "chaincode.hungafter: expected a whole number"),
        ('[chaincode]\nrestart = {within = "2d"}\n', "chaincode.restart.within: cannot parse"),
        ("[chaincode]\nrestart = {max_restarts = -1}\n", "chaincode.restart.max_restarts"),
        ("[chaincode.restart]\nbackoff_initial = 20\n", "chaincode.restart: backoff_initial"),
        ("chaincode = 5\n", "chaincode: expected a table, got 5"),
        ("[vm.docker.hostConfig]\nNanoCpus = 1.5\n", "vm.docker.hostConfig.NanoCpus: expected"),
        ("[vm.docker.hostConfig]\nPidsLimit = -5\n", "vm.docker.hostConfig.PidsLimit: must be"),
        ("[vm.docker.hostConfig]\nMemory = 1024\n", "vm.docker.hostConfig.Memory: must be"),
        ("[vm.docker.hostConfig]\nCpuShares = 1\n", "vm.docker.hostConfig.CpuShares: must be"),
        ("[vm.docker.hostConfig]\nNetworkMode = 'a b'\n", "vm.docker.hostConfig.NetworkMode"),
        (
            "[vm.docker.hostConfig.LogConfig]\nConfig = {a = []}\n",
            "vm.docker.hostConfig.LogConfig.Config: expected a table of strings",
        ),
        ("[vm.docker]\nhostConfig = 3\n", "vm.docker.hostConfig: expected a table, got 3"),
    ],
)
def test_values_that_used_to_crash_or_mislead_are_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "core.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Config.load(path, env={})
    assert any(p.startswith(message) for p in info.value.problems), info.value.problems


def test_all_problems_at_once(tmp_path: Path) -> None:
    path = tmp_path / "core.toml"
    path.write_text(
        '[chaincode]\nmode = "prod"\nexecutetimeout = "x"\n'
        '[[chaincodes]]\nname = "a"\nruntime = "vm"\n'
    )
    with pytest.raises(ConfigError) as info:
        Config.load(path, env={"CORE_CHAINCODE_HUNGAFTER": "-1"})
    assert [p.split(":")[0] for p in info.value.problems] == [
        "chaincode.executetimeout",
        "chaincode.mode",
        "chaincodes[0] chaincode a",
        "chaincode.hungafter",
    ]


def test_later_checks_run_beside_the_key_errors(tmp_path: Path) -> None:
    """A bad key does not hide the checks that come after parsing: the Docker engine's TLS
    files, a chaincode's own fields and whether the code of the good chaincodes is there."""
    path = tmp_path / "core.yaml"
    path.write_text(
        "chaincode: {executetimeout: banana}\n"
        "vm: {docker: {tls: {enabled: true}}}\n"
        "chaincodes:\n"
        "  - {name: kv, runtime: system, target: 'nosuchmodule:Thing'}\n"
        "  - {name: d, runtime: docker, execute_timeout: -1}\n"
    )
    with pytest.raises(ConfigError) as info:
        Config.load(path, env={})
    problems = info.value.problems
    assert problems[0].startswith("chaincode.executetimeout: cannot parse duration")
    assert "chaincodes[1] chaincode d: execute_timeout: must not be negative, got -1" in problems
    assert "chaincodes[1] chaincode d: a docker chaincode needs a package path" in problems
    assert "vm.docker.tls.ca.file: must be set with vm.docker.tls.enabled" in problems
    assert any(p.startswith("chaincode kv: no module named 'nosuchmodule'") for p in problems)
    assert len(problems) == len(set(problems)) == 8, problems


def test_command_and_restart_shorthands() -> None:
    process = ChaincodeDefinition("p", runtime="process", command="/bin/sh -c 'echo hi'")
    assert process.command == ("/bin/sh", "-c", "echo hi")  # split as a shell would
    assert ChaincodeDefinition("s", target="a:B", restart="permanent").restart == RestartPolicy(
        restart=Restart.PERMANENT
    )


def test_host_config() -> None:
    config = Config.load(
        env={},
        overrides={
            "docker_host_config": {
                "memory": "268435456",
                "NanoCpus": 500_000_000,
                "CpuShares": 512,
                "PidsLimit": 64,
                "NetworkMode": "bridge",
                "LogConfig": {"Type": "json-file", "Config": {"max-file": 3}},
                "Privileged": True,
            }
        },
    )
    host = config.docker_host_config
    assert host.docker_kwargs() == {
        "mem_limit": 268435456,
        "nano_cpus": 500_000_000,
        "cpu_shares": 512,
        "pids_limit": 64,
        "network_mode": "bridge",
        "log_config": {"type": "json-file", "config": {"max-file": "3"}},
    }
    assert host.ignored == ("Privileged",)  # not applied; reported by load
    assert HostConfig().docker_kwargs() == {}
    with pytest.raises(ConfigError, match=r"^vm\.docker\.hostConfig\.memory: must be between"):
        Config(docker_host_config=HostConfig(memory=1))


def test_chaincode_definitions_are_checked() -> None:
    with pytest.raises(ConfigError, match="non-empty"):
        ChaincodeDefinition("")
    with pytest.raises(ConfigError, match="runtime: must be one of system"):
        ChaincodeDefinition("kv", runtime="vm", target="a:b")
    with pytest.raises(ConfigError, match="module:Class"):
        ChaincodeDefinition("kv", target="examples.kv")
    with pytest.raises(ConfigError, match="duplicate chaincode names"):
        Config(chaincodes=(ChaincodeDefinition("kv", target="a:B"),) * 2)
    with pytest.raises(ConfigError, match="execute_timeout: must be at most"):
        ChaincodeDefinition("kv", target="a:B", execute_timeout=1e10)
    with pytest.raises(ConfigError, match=r"chaincode\.executetimeout: must be a finite"):
        Config(execute_timeout=math.inf)


# -- property: whatever the file or the environment says, only ConfigError comes out ------------

_PATHS = sorted(
    {key.name for key in KEYS.values()}
    | {
        "chaincode.restart.within",
        "chaincode.restart.restart",
        "chaincode.restart.max_restarts",
        "vm.docker.hostConfig.Memory",
        "vm.docker.hostConfig.LogConfig.Config",
        "vm.docker.hostConfig.NetworkMode",
        "peer.gossip.bootstrap",
        "chaincode",
        "peer",
    }
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["30s", "1m30s", "-1s", "inf", "nan", "1e11", "127.0.0.1:0", "host", "a:B"])
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [f.name for f in dataclasses.fields(ChaincodeDefinition)]
                + ["address", "Type", "Config", "restart", "within", "x"]
            )
            | st.text(string.ascii_letters, max_size=5),
            inner,
            max_size=4,
        )
    ),
    max_leaves=8,
)


def _nest(entries: dict[str, object]) -> dict[str, object]:
    tree: dict[str, object] = {}
    for dotted, value in entries.items():
        *parents, last = dotted.split(".")
        node = tree
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[last] = value
    return tree


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=st.dictionaries(st.sampled_from(_PATHS), _values, max_size=6),
    env=st.dictionaries(
        st.sampled_from([k.env for k in KEYS.values() if k.env]),
        st.text(max_size=10) | st.sampled_from(["1e400", "nan", "-1", "5s", "true"]),
        max_size=4,
    ),
    suffix=st.sampled_from([".yaml", ".json", ".toml"]),
    raw=st.none() | st.binary(max_size=40),
)
def test_loader_raises_nothing_but_config_error(
    tmp_path_factory: pytest.TempPathFactory,
    entries: dict[str, object],
    env: dict[str, str],
    suffix: str,
    raw: bytes | None,
) -> None:
    path = tmp_path_factory.mktemp("cfg") / f"core{suffix}"
    if raw is not None:
        path.write_bytes(raw)
    elif suffix == ".json":
        path.write_text(json.dumps(_nest(entries)))
    elif suffix == ".toml":  # dotted keys; JSON values are mostly TOML values too
        path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in entries.items()))
    else:
        path.write_text(yaml.safe_dump(_nest(entries)))
    try:
        config = Config.load(path, env=env)
    except ConfigError as exc:
        assert exc.problems and all(p and "\n" not in p for p in exc.problems)
    else:
        assert isinstance(config, Config)
        for definition in config.chaincodes:
            assert all(isinstance(part, str) for part in definition.command)
        assert math.isfinite(config.execute_timeout) and config.execute_timeout <= 86400


def test_yaml_alias_bombs_are_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 {x: 1, y: 2}"]
    lines += [
        f"a{i}: &a{i} {{{', '.join(f'k{j}: *a{i - 1}' for j in range(10))}}}" for i in range(1, 9)
    ]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="more than 10000 entries"):
        Config.load(path, env={})


def test_chaincode_entries_without_name_or_target(tmp_path: Path) -> None:
    path = tmp_path / "core.yaml"
    path.write_text("chaincodes:\n  - runtime: system\n  - name: s\n  - name: t\n    target:\n")
    with pytest.raises(ConfigError) as info:
        Config.load(path, env={})
    assert info.value.problems == (
        "chaincodes[0]: a chaincode needs a name",
        "chaincodes[1] chaincode s: a system chaincode needs target 'module:Class', got ''",
        "chaincodes[2] chaincode t: a system chaincode needs target 'module:Class', got ''",
    )


def test_ledger_storage_keys(tmp_path) -> None:
    path = tmp_path / "core.toml"
    path.write_text(
        '[peer]\nfileSystemPath = "/srv/peer"\n'
        '[ledger.sqlite]\nsynchronous = "normal"\n'
        "[ledger.state]\nmaxWriteSetSize = 4096\n"
    )
    config = Config.load(path, env={})
    assert config.ledger_directory == "/srv/peer/ledgersData"
    assert config.ledger_synchronous == "NORMAL"
    assert config.max_write_set_size == 4096
    assert Config().ledger_directory is None  # embedding: in memory unless configured
    assert Config().ledger_synchronous == "FULL"  # a committed block survives power loss
    assert Config(file_system_path="/p", ledger_path="/l").ledger_directory == "/l"
    env = {"CORE_LEDGER_SQLITE_SYNCHRONOUS": "sometimes"}
    with pytest.raises(ConfigError, match="must be one of OFF, NORMAL, FULL, EXTRA"):
        Config.load(env=env)
    with pytest.raises(ConfigError, match="maxWriteSetSize"):
        Config.load(env={"CORE_LEDGER_STATE_MAXWRITESETSIZE": "-1"})
