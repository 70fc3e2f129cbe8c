"""The committed generated modules under protos/ are exactly what ``make protos`` produces."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import protos.generate as gen

ROOT = Path(gen.__file__).resolve().parent.parent
PATTERNS = ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py")
REGENERATE = "run `make protos` (python -m protos.generate) and commit the result"


def generated_files(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every generated module under ``root/protos``."""
    base = root / "protos"
    return {
        str(p.relative_to(root)): p.read_bytes()
        for pattern in PATTERNS
        for p in base.rglob(pattern)
        if "__pycache__" not in p.parts
    }


def staleness(fresh_root: Path, committed_root: Path) -> list[str]:
    """Human-readable problems; empty when the committed modules match a fresh generation."""
    fresh, committed = generated_files(fresh_root), generated_files(committed_root)
    problems = [
        f"stale: {p}" for p in sorted(fresh.keys() & committed.keys()) if fresh[p] != committed[p]
    ]
    problems += [f"missing (not committed): {p}" for p in sorted(fresh.keys() - committed.keys())]
    problems += [
        f"extra (no .proto makes it): {p}" for p in sorted(committed.keys() - fresh.keys())
    ]
    return problems


@pytest.fixture(scope="module")
def fresh_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("protos_fresh")
    gen.generate(out)
    return out


def test_generation_produces_modules_for_every_proto(fresh_root: Path) -> None:
    fresh = generated_files(fresh_root)
    for source in gen.sources():
        stem = source.removesuffix(".proto")
        assert f"{stem}_pb2.py" in fresh, source
        assert f"{stem}_pb2.pyi" in fresh, source
    assert "protos/peer/chaincode_shim_pb2_grpc.py" in fresh
    assert len(gen.sources()) >= 10


def test_committed_modules_are_fresh(fresh_root: Path) -> None:
    problems = staleness(fresh_root, ROOT)
    assert not problems, f"generated protobuf modules out of date ({REGENERATE}):\n" + "\n".join(
        problems
    )


def _copy_sources(dst: Path) -> None:
    shutil.copytree(ROOT / "protos", dst / "protos", ignore=shutil.ignore_patterns("__pycache__"))


def test_check_catches_proto_edited_without_regenerating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # edit a *copy* of the sources, generate from it, compare with the real committed modules
    src = tmp_path / "src"
    _copy_sources(src)
    shim = src / "protos" / "peer" / "chaincode_shim.proto"
    text = shim.read_text()
    assert "string channel_id = 7;" in text
    shim.write_text(text.replace("string channel_id = 7;", "string channel_id = 8;"))
    monkeypatch.setattr(gen, "ROOT", src)
    out = tmp_path / "out"
    out.mkdir()
    gen.generate(out)
    assert staleness(out, ROOT) == ["stale: protos/peer/chaincode_shim_pb2.py"]


def test_check_catches_missing_and_extra_modules(fresh_root: Path, tmp_path: Path) -> None:
    committed = tmp_path / "committed"
    _copy_sources(committed)
    (committed / "protos" / "msp" / "identities_pb2.pyi").unlink()
    (committed / "protos" / "peer" / "gone_pb2.py").write_text("# stale leftover\n")
    assert staleness(fresh_root, committed) == [
        "missing (not committed): protos/msp/identities_pb2.pyi",
        "extra (no .proto makes it): protos/peer/gone_pb2.py",
    ]


CHAINCODE_METHODS = {
    "/protos.ChaincodeSupport/Register": ("ChaincodeSupport", "Register"),
    "/protos.Chaincode/Connect": ("Chaincode", "Connect"),
}


@pytest.mark.parametrize("path", sorted(CHAINCODE_METHODS))
def test_grpc_method_paths_in_generated_code(path: str) -> None:
    text = (ROOT / "protos" / "peer" / "chaincode_shim_pb2_grpc.py").read_text()
    assert f"'{path}'" in text


@pytest.mark.parametrize("path", sorted(CHAINCODE_METHODS))
def test_grpc_method_descriptors(path: str) -> None:
    from protos.peer import chaincode_shim_pb2

    service, method = CHAINCODE_METHODS[path]
    svc = chaincode_shim_pb2.DESCRIPTOR.services_by_name[service]
    assert svc.full_name == f"protos.{service}"
    m = svc.methods_by_name[method]
    assert f"/{svc.full_name}/{m.name}" == path
    assert m.input_type.full_name == m.output_type.full_name == "protos.ChaincodeMessage"
    assert m.client_streaming and m.server_streaming
    assert [s.name for s in chaincode_shim_pb2.DESCRIPTOR.services_by_name.values()] == [
        "ChaincodeSupport",
        "Chaincode",
    ]


class _RecordingChannel:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def stream_stream(self, path: str, **kwargs: object) -> str:
        self.calls.append(("stream_stream", path))
        return path

    def __getattr__(self, kind: str):  # any other call shape is wrong for these methods
        def record(path: str, **kwargs: object) -> str:
            self.calls.append((kind, path))
            return path

        return record


def test_grpc_stubs_dial_the_fabric_paths() -> None:
    from protos.peer import chaincode_shim_pb2_grpc as grpc_mod

    channel = _RecordingChannel()
    assert grpc_mod.ChaincodeSupportStub(channel).Register == "/protos.ChaincodeSupport/Register"
    assert grpc_mod.ChaincodeStub(channel).Connect == "/protos.Chaincode/Connect"
    assert channel.calls == [
        ("stream_stream", "/protos.ChaincodeSupport/Register"),
        ("stream_stream", "/protos.Chaincode/Connect"),
    ]


def test_grpc_servicers_register_the_fabric_paths() -> None:
    import grpc

    from protos.peer import chaincode_shim_pb2_grpc as grpc_mod

    class Server:
        def __init__(self) -> None:
            self.handlers: dict[str, grpc.RpcMethodHandler] = {}

        def add_generic_rpc_handlers(self, handlers: tuple) -> None:
            for h in handlers:
                for method in ("Register", "Connect"):
                    details = _Details(f"/{h.service_name()}/{method}")
                    found = h.service(details)
                    if found is not None:
                        self.handlers[details.method] = found

        def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
            for name, handler in handlers.items():
                self.handlers.setdefault(f"/{service}/{name}", handler)

    server = Server()
    grpc_mod.add_ChaincodeSupportServicer_to_server(grpc_mod.ChaincodeSupportServicer(), server)
    grpc_mod.add_ChaincodeServicer_to_server(grpc_mod.ChaincodeServicer(), server)
    assert sorted(server.handlers) == sorted(CHAINCODE_METHODS)
    for handler in server.handlers.values():
        assert handler.request_streaming and handler.response_streaming


class _Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()
