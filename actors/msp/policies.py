"""Signature policies: Fabric's policy language, its envelopes, and their evaluation.

Fabric counterparts: ``common/policydsl/policyparser.go`` (``FromString``: ``AND``, ``OR``,
``OutOf`` over ``'MSPID.role'`` principals) and ``common/cauthdsl/cauthdsl.go`` (evaluating a
``SignaturePolicyEnvelope`` over a set of signed data).

The parser reproduces Fabric's envelope byte for byte, quirks included, because peers compare
endorsement policies by their bytes: each principal occurrence gets its own ``MSPPrincipal`` (no
de-duplication), and a nested gate's principals are numbered before its enclosing gate's own
(Fabric's expression evaluator runs a call's arguments before the call). ``OutOf(N, ...)`` accepts
``0 <= N <= n + 1`` as Fabric does (``n + 1`` can never be satisfied).

Evaluation is Fabric's greedy one: each verified signer counts once per evaluation, an
``OutOf`` tries every rule in order on a copy of the used-signers set and keeps the copy of
each rule that held, with no backtracking.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from actors.msp.msp import MSP, Identity, MSPError, MSPManager
from actors.msp.signatures import SignatureError
from protos.common.policies_pb2 import SignaturePolicy, SignaturePolicyEnvelope
from protos.msp.msp_principal_pb2 import MSPPrincipal, MSPRole

_PRINCIPAL = re.compile(r"^([A-Za-z0-9.-]+)\.(admin|member|client|peer|orderer)$")
_ROLES = {
    "member": MSPRole.MEMBER,
    "admin": MSPRole.ADMIN,
    "client": MSPRole.CLIENT,
    "peer": MSPRole.PEER,
    "orderer": MSPRole.ORDERER,
}
_GATES = {
    "AND": "and",
    "And": "and",
    "and": "and",
    "OR": "or",
    "Or": "or",
    "or": "or",
    "OUTOF": "outof",
    "OutOf": "outof",
    "outof": "outof",
}
_TOKEN = re.compile(
    r"""\s*(?:(?P<str>'[^']*'|"[^"]*")|(?P<num>-?[0-9]+(?:\.[0-9]+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<punct>[(),])|(?P<bad>\S))"""
)
MAX_POLICY_LENGTH = 64 * 1024
_MAX_DEPTH = 64


class PolicyError(ValueError):
    """A policy string or envelope is malformed, or a signature set does not satisfy it."""


# --- parsing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Gate:
    n: int
    args: tuple[_Gate | str, ...]


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:  # only trailing whitespace is left
            break
        pos = match.end()
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise PolicyError("unexpected end of policy string")
        self.i += 1
        return token

    def expect(self, punct: str) -> None:
        kind, value = self.take()
        if (kind, value) != ("punct", punct):
            raise PolicyError(f"unexpected token '{value}' in policy string, expected '{punct}'")

    def argument(self, depth: int) -> _Gate | str | int:
        token = self.peek()
        if token is None:
            raise PolicyError("unexpected end of policy string")
        kind, value = token
        if kind == "name" and self.tokens[self.i + 1 : self.i + 2] == [("punct", "(")]:
            return self.gate(depth + 1)
        self.take()
        if kind == "str":
            if not _PRINCIPAL.match(value[1:-1]):
                raise PolicyError(f"unrecognized token '{value[1:-1]}' in policy string")
            return value[1:-1]
        if kind == "num":
            return int(value.split(".")[0])  # govaluate's numbers are floats, truncated
        raise PolicyError(f"unrecognized token '{value}' in policy string")

    def gate(self, depth: int = 0) -> _Gate:
        if depth > _MAX_DEPTH:
            raise PolicyError(f"policy nested deeper than {_MAX_DEPTH} gates")
        kind, value = self.take()
        if kind != "name" or value not in _GATES:
            raise PolicyError(f"unrecognized token '{value}' in policy string")
        gate = _GATES[value]
        self.expect("(")
        args: list[_Gate | str | int] = []
        if self.peek() == ("punct", ")"):
            self.take()
        else:
            args.append(self.argument(depth))
            while (punct := self.take()) == ("punct", ","):
                args.append(self.argument(depth))
            if punct != ("punct", ")"):
                raise PolicyError(f"unexpected token '{punct[1]}' in policy string")
        if gate == "outof":
            if len(args) < 2:
                raise PolicyError(f"expected at least two arguments to NOutOf. Given {len(args)}")
            n, rest = args[0], args[1:]
            if not isinstance(n, int):
                raise PolicyError(f"unexpected type {type(n).__name__}")
        else:
            rest = args
            n = len(rest) if gate == "and" else 1
            if not rest:
                raise PolicyError(
                    f"expected at least two arguments to NOutOf. Given {len(args) + 1}"
                )
        for arg in rest:
            if isinstance(arg, int):
                raise PolicyError(f"unrecognized token '{arg}' in policy string")
        if n < 0 or n > len(rest) + 1:
            raise PolicyError(f"invalid t-out-of-n predicate, t {n}, n {len(rest)}")
        return _Gate(n, tuple(rest))  # type: ignore[arg-type]


def from_string(policy: str) -> SignaturePolicyEnvelope:
    """Fabric's ``policydsl.FromString``: ``"AND('Org1MSP.peer', OR('Org2MSP.member', ...))"``."""
    if not isinstance(policy, str):
        raise PolicyError(f"a policy must be a string, got {type(policy).__name__}")
    if len(policy) > MAX_POLICY_LENGTH:
        raise PolicyError(f"policy of {len(policy)} characters is longer than {MAX_POLICY_LENGTH}")
    parser = _Parser(policy)
    if not parser.tokens:
        raise PolicyError("empty policy string")
    tree = parser.gate()
    if parser.peek() is not None:
        raise PolicyError(f"unexpected token '{parser.peek()[1]}' after the policy")  # type: ignore[index]
    envelope = SignaturePolicyEnvelope(version=0)
    envelope.rule.CopyFrom(_compile(tree, envelope))
    return envelope


def _compile(gate: _Gate, envelope: SignaturePolicyEnvelope) -> SignaturePolicy:
    # Nested gates first: their principals take the lower indices, as in Fabric.
    nested = {i: _compile(a, envelope) for i, a in enumerate(gate.args) if isinstance(a, _Gate)}
    rules = []
    for i, arg in enumerate(gate.args):
        if isinstance(arg, _Gate):
            rules.append(nested[i])
            continue
        match = _PRINCIPAL.match(arg)
        assert match  # checked by the parser
        role = MSPRole(msp_identifier=match.group(1), role=_ROLES[match.group(2)])
        envelope.identities.add(
            principal_classification=MSPPrincipal.ROLE, principal=role.SerializeToString()
        )
        rules.append(SignaturePolicy(signed_by=len(envelope.identities) - 1))
    out = SignaturePolicy()
    out.n_out_of.n = gate.n
    out.n_out_of.rules.extend(rules)
    return out


def to_string(envelope: SignaturePolicyEnvelope) -> str:
    """A readable form (``OutOf(1, 'Org1MSP.peer', ...)``) of an envelope of ROLE principals."""
    names = {v: k for k, v in _ROLES.items()}

    def principal(i: int) -> str:
        if not 0 <= i < len(envelope.identities):
            raise PolicyError(f"identity index out of range, requested {i}")
        p = envelope.identities[i]
        if p.principal_classification != MSPPrincipal.ROLE:
            return f"<principal {i}>"
        role = MSPRole.FromString(p.principal)
        return f"'{role.msp_identifier}.{names.get(role.role, role.role)}'"

    def rule(r: SignaturePolicy) -> str:
        if r.WhichOneof("Type") == "signed_by":
            return principal(r.signed_by)
        parts = [rule(x) for x in r.n_out_of.rules]
        if r.n_out_of.n == 1:  # also AND of one rule: the same policy
            return f"OR({', '.join(parts)})"
        if r.n_out_of.n == len(parts):
            return f"AND({', '.join(parts)})"
        return f"OutOf({r.n_out_of.n}, {', '.join(parts)})"

    return rule(envelope.rule)


def parse_envelope(data: bytes) -> SignaturePolicyEnvelope:
    """Bytes of a ``SignaturePolicyEnvelope``, checked to be evaluable."""
    try:
        envelope = SignaturePolicyEnvelope.FromString(data)
    except DecodeError as exc:
        raise PolicyError(f"could not unmarshal SignaturePolicyEnvelope: {exc}") from None
    check_envelope(envelope)
    return envelope


def check_envelope(envelope: SignaturePolicyEnvelope) -> None:
    if envelope.version != 0:
        raise PolicyError(
            "This evaluator only understands messages of version 0, but version was "
            f"{envelope.version}"
        )

    def walk(r: SignaturePolicy, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise PolicyError(f"policy nested deeper than {_MAX_DEPTH} gates")
        which = r.WhichOneof("Type")
        if which == "signed_by":
            if not 0 <= r.signed_by < len(envelope.identities):
                raise PolicyError(f"identity index out of range, requested {r.signed_by}")
        elif which == "n_out_of":
            for sub in r.n_out_of.rules:
                walk(sub, depth + 1)
        else:
            raise PolicyError("unknown policy type: nil")

    walk(envelope.rule, 0)


# --- evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedData:
    """One signature to evaluate: ``signature`` by ``identity`` (serialized) over ``data``."""

    data: bytes
    identity: bytes
    signature: bytes


def _signers(signed: Iterable[SignedData], manager: MSPManager) -> list[tuple[Identity, MSP]]:
    """Deserialise and verify; drop what fails and repeats (Fabric's ``deduplicate`` plus the
    signature check in ``cauthdsl``)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for item in signed:
        try:
            identity, msp = manager.deserialize(item.identity)
            key = (identity.msp_id, identity.id)
            if key in seen:
                continue
            identity.verify(item.data, item.signature)
        except (MSPError, SignatureError):
            continue
        seen.add(key)
        out.append((identity, msp))
    return out


def evaluate(
    envelope: SignaturePolicyEnvelope, signed: Sequence[SignedData], manager: MSPManager
) -> None:
    """Raise :class:`PolicyError` unless the signatures satisfy the policy."""
    check_envelope(envelope)
    signers = _signers(signed, manager)
    principals = list(envelope.identities)
    cache: dict[tuple[int, int], bool] = {}

    def satisfies(s: int, p: int) -> bool:
        if (s, p) not in cache:
            identity, msp = signers[s]
            try:
                msp.satisfies_principal(identity, principals[p])
                cache[(s, p)] = True
            except (MSPError, ValueError):
                cache[(s, p)] = False
        return cache[(s, p)]

    def run(rule: SignaturePolicy, used: list[bool]) -> bool:
        if rule.WhichOneof("Type") == "signed_by":
            for s in range(len(signers)):
                if not used[s] and satisfies(s, rule.signed_by):
                    used[s] = True
                    return True
            return False
        count = 0
        for sub in rule.n_out_of.rules:
            trial = list(used)
            if run(sub, trial):
                used[:] = trial
                count += 1
        return count >= rule.n_out_of.n

    if not run(envelope.rule, [False] * len(signers)):
        raise PolicyError("signature set did not satisfy policy")
