"""The Fabric side of the wire-compatibility check; run it with ``.venv-fabric/bin/python``.

That virtualenv holds PyPI ``hyperledger-fabric-protos`` (module ``fabric_protos``) and the
protobuf < 6 it pins; our ``protos`` package is never imported here (both register the same full
names, so they cannot share a process).

    fabric_side.py record   print golden JSON: {fabric_protos_version, protobuf_version,
                            messages: [{name, full_name, hex}], skipped: {name: reason},
                            schema: {full_name: ...}} built with fabric_protos
    fabric_side.py check    read [{name, full_name, hex}] on stdin, print one verdict per entry:
                            {name, full_name, ok, error, reserialized_hex, unknown_fields,
                            matches_fabric_build}; ok means the bytes parse as full_name with no
                            unknown fields, re-serialize to the same bytes and (for a named case)
                            equal what fabric_protos itself builds for that case
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from typing import Any

import google.protobuf
from google.protobuf import descriptor_pool, message_factory
from wire_cases import CERT_PEM, KEY_POLICY, case_builders, describe, load_modules
from wire_cases import ser as _ser
from wire_cases import unknown_field_paths as _unknown


def _key_policy() -> bytes:
    """The SignaturePolicyEnvelope that wire_cases.KEY_POLICY spells out, built by fabric_protos."""
    from fabric_protos.common import policies_pb2
    from fabric_protos.msp import identities_pb2, msp_principal_pb2

    principal = msp_principal_pb2.MSPPrincipal
    ident = identities_pb2.SerializedIdentity(mspid="Org1MSP", id_bytes=CERT_PEM)
    role = msp_principal_pb2.MSPRole(msp_identifier="Org2MSP", role=msp_principal_pb2.MSPRole.PEER)
    env = policies_pb2.SignaturePolicyEnvelope(version=1)
    env.rule.n_out_of.n = 2
    env.rule.n_out_of.rules.add().signed_by = 0
    env.rule.n_out_of.rules.add().signed_by = 1
    env.identities.add(principal_classification=principal.IDENTITY, principal=_ser(ident))
    env.identities.add(principal_classification=principal.ROLE, principal=_ser(role))
    return _ser(env)


def _record(mods: Any) -> dict[str, Any]:
    # the constant our side uses must be exactly what fabric_protos builds
    if _key_policy() != KEY_POLICY:
        raise SystemExit(
            "wire_cases.KEY_POLICY differs from fabric_protos' SignaturePolicyEnvelope"
        )
    messages, skipped = [], {}
    for name, build in case_builders(mods).items():
        try:
            msg = build()
        except (AttributeError, ValueError, TypeError) as e:
            skipped[name] = f"{type(e).__name__}: {e}"
            continue
        messages.append(
            {"name": name, "full_name": msg.DESCRIPTOR.full_name, "hex": _ser(msg).hex()}
        )
    return {
        "fabric_protos_version": importlib.metadata.version("hyperledger-fabric-protos"),
        "protobuf_version": google.protobuf.__version__,
        "messages": messages,
        "skipped": skipped,
        "schema": describe(mods),
    }


def _check(mods: Any, entries: list[dict[str, str]]) -> list[dict[str, Any]]:
    builders = case_builders(mods)
    pool = descriptor_pool.Default()
    out = []
    for e in entries:
        verdict: dict[str, Any] = {"name": e.get("name"), "full_name": e["full_name"], "ok": False}
        verdict.update(error="", reserialized_hex="", unknown_fields=[], matches_fabric_build=None)
        data = bytes.fromhex(e["hex"])
        try:
            cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(e["full_name"]))
            msg = cls.FromString(data)
        except Exception as exc:  # unknown type or undecodable bytes
            verdict["error"] = f"{type(exc).__name__}: {exc}"
            out.append(verdict)
            continue
        verdict["reserialized_hex"] = _ser(msg).hex()
        verdict["unknown_fields"] = _unknown(msg)
        name = e.get("name")
        if name in builders:
            try:
                verdict["matches_fabric_build"] = _ser(builders[name]()) == data
            except Exception as exc:
                verdict["error"] = f"fabric build failed: {type(exc).__name__}: {exc}"
        verdict["ok"] = (
            not verdict["error"]
            and verdict["reserialized_hex"] == e["hex"]
            and not verdict["unknown_fields"]
            and verdict["matches_fabric_build"] is not False
        )
        out.append(verdict)
    return out


def dumps(obj: Any) -> str:
    """JSON with one list item / mapping entry per line: small diffs when re-recorded."""

    def block(value: Any) -> str:
        if isinstance(value, list) and value:
            return "[\n" + ",\n".join(f"  {json.dumps(v)}" for v in value) + "\n ]"
        if isinstance(value, dict) and value:
            items = (f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items())
            return "{\n" + ",\n".join(items) + "\n }"
        return json.dumps(value)

    if isinstance(obj, dict):
        return "{\n" + ",\n".join(f" {json.dumps(k)}: {block(v)}" for k, v in obj.items()) + "\n}\n"
    return block(obj) + "\n"


def main(argv: list[str]) -> int:
    mode = argv[1] if len(argv) > 1 else "record"
    mods = load_modules("fabric_protos")
    if mode == "record":
        result: Any = _record(mods)
    elif mode == "check":
        result = _check(mods, json.load(sys.stdin))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
