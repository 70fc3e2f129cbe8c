"""Chaincode definitions, one set per channel.

Fabric counterpart: ``core/chaincode/lifecycle`` (``ApproveChaincodeDefinitionForMyOrg`` +
``CommitChaincodeDefinition``, ``QueryChaincodeDefinition(s)``) and the input checks of
``scc.go``. This peer is one organisation, so ``define`` is approve-for-my-org and commit in
one step: it takes the rules of both (the sequence must be the next one; re-defining the
current sequence may only change this org's package id) and their error texts.

Definitions live in each channel's ledger, in the ``_lifecycle`` namespace, written by a
transaction of their own; so they survive a restart exactly when the ledger does (sqlite), and
a ledger's history shows every redefinition. The record is our JSON, not Fabric's
``StateMetadata``/``StateData`` encoding, and this org's package id sits in the same record
(Fabric keeps it in the org's implicit private collection).
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from actors.errors import LifecycleError
from actors.ledger import Ledger
from actors.msp import policies
from actors.privdata import collections
from protos.peer.collection_pb2 import CollectionConfigPackage

NAMESPACE = "_lifecycle"
_KEY_PREFIX = "namespaces/"
MAX_COLLECTIONS_BYTES = 1024 * 1024

# scc.go
NAME_RE = re.compile(r"[a-zA-Z0-9]+([-_][a-zA-Z0-9]+)*")
VERSION_RE = re.compile(r"[A-Za-z0-9_.+-]+")
SYSTEM_CHAINCODES = frozenset({"cscc", "escc", "lscc", "qscc", "vscc", NAMESPACE})
DEFAULT_ENDORSEMENT_POLICY = "/Channel/Application/Endorsement"


@dataclass(frozen=True)
class Definition:
    """A committed chaincode definition with Fabric's fields.

    ``signature_policy`` is the policy language text (``--signature-policy``);
    ``channel_config_policy`` a channel policy reference (``--channel-config-policy``); with
    neither the channel's ``/Channel/Application/Endorsement`` applies, as in Fabric.
    ``collections`` is the collections config as Fabric's CLI reads it (a JSON array), stored
    validated and canonical; "" means none.
    """

    name: str
    version: str
    sequence: int
    package_id: str = ""
    init_required: bool = False
    endorsement_plugin: str = "escc"
    validation_plugin: str = "vscc"
    signature_policy: str = ""
    channel_config_policy: str = ""
    collections: str = ""

    @property
    def endorsement_policy(self) -> str:
        return self.signature_policy or self.channel_config_policy or DEFAULT_ENDORSEMENT_POLICY

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Definition:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})

    def parameters_differ(self, other: Definition) -> str | None:
        """Fabric's ``ChaincodeParameters.Equal`` (package id not included): the first
        difference, worded as Fabric does, or None."""
        checks = (
            ("Version", self.version, other.version),
            ("EndorsementPlugin", self.endorsement_plugin, other.endorsement_plugin),
            ("InitRequired", self.init_required, other.init_required),
            ("ValidationPlugin", self.validation_plugin, other.validation_plugin),
        )
        for field, mine, theirs in checks:
            if mine != theirs:
                if isinstance(mine, bool):
                    mine, theirs = str(mine).lower(), str(theirs).lower()
                return f"expected {field} '{mine}' does not match passed {field} '{theirs}'"
        if (self.signature_policy, self.channel_config_policy) != (
            other.signature_policy,
            other.channel_config_policy,
        ):
            return (
                f"expected ValidationParameter '{self.endorsement_policy}' does not match "
                f"passed ValidationParameter '{other.endorsement_policy}'"
            )
        if self.collections != other.collections:
            return "Collections do not match"
        return None


# -- input checks ------------------------------------------------------------------------------


def _check_name_and_version(name: object, version: object) -> None:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise LifecycleError(
            f"error validating chaincode definition: invalid chaincode name '{name}'. Names can "
            "only consist of alphanumerics, '_', and '-' and can only begin with alphanumerics"
        )
    if name in SYSTEM_CHAINCODES:
        raise LifecycleError(
            f"error validating chaincode definition: chaincode name '{name}' is the name of a "
            "system chaincode"
        )
    if not isinstance(version, str) or not VERSION_RE.fullmatch(version):
        raise LifecycleError(
            f"error validating chaincode definition: invalid chaincode version '{version}'. "
            "Versions can only consist of alphanumerics, '_', '-', '+', and '.'"
        )


def check_policy(signature_policy: str, channel_config_policy: str) -> None:
    """The CLI's ``getApplicationPolicy`` checks."""
    if signature_policy and channel_config_policy:
        raise LifecycleError(
            'cannot specify both "--signature-policy" and "--channel-config-policy"'
        )
    if signature_policy:
        try:
            policies.from_string(signature_policy)
        except policies.PolicyError as exc:
            raise LifecycleError(f"invalid signature policy: {signature_policy}: {exc}") from None


def normalize_collections(text: str | bytes, committed: str = "") -> str:
    """Validate a collections config (Fabric CLI's JSON array) and return it canonical.

    Parsing and the checks are :mod:`actors.privdata.collections`' (Fabric's CLI
    ``getCollectionConfigFromBytes`` and ``_lifecycle``'s ``validateCollectionConfigs`` /
    ``validateCollConfigsAgainstCommittedDef``), except that every member named is taken to
    belong to the channel: this peer knows no channel's other organisations."""
    if isinstance(text, bytes):
        if len(text) > MAX_COLLECTIONS_BYTES:
            raise LifecycleError(f"collections config is larger than {MAX_COLLECTIONS_BYTES} bytes")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LifecycleError(f"could not parse the collection configuration: {exc}") from None
    previous = collections.parse_config(committed) if committed else None
    if not text.strip():
        package = CollectionConfigPackage()
    else:
        try:
            package = collections.parse_config(text)
        except collections.CollectionError as exc:
            raise LifecycleError(str(exc)) from None
    members = {
        org for c in package.config for org in collections.member_orgs(c.static_collection_config)
    }
    try:
        collections.validate(package, channel_orgs=members, previous=previous)
    except collections.CollectionError as exc:
        raise LifecycleError(f"error validating chaincode definition: {exc}") from None
    if not package.config:
        return ""
    return json.dumps(collections.to_json(package), sort_keys=True, separators=(",", ":"))


def definition_key(name: str) -> str:
    """The ``_lifecycle`` key holding the definition of chaincode ``name``."""
    return _KEY_PREFIX + name


# -- the store ---------------------------------------------------------------------------------


class DefinitionStore:
    """Per-channel definitions, kept in each channel's ledger and cached in memory.

    ``ledger_for(channel)`` opens a (joined) channel's ledger; ``package_known(package_id)``
    says whether this peer can run a package id (installed, or anything in dev mode, where
    Fabric launches ``name:version`` when the id is not installed).
    """

    def __init__(
        self,
        ledger_for: Callable[[str], Ledger],
        package_known: Callable[[str], bool],
    ) -> None:
        self._ledger_for = ledger_for
        self._package_known = package_known
        self._lock = threading.Lock()
        self._cache: dict[str, dict[str, Definition]] = {}
        self._listeners: list[Callable[[str, Definition], None]] = []

    def on_change(self, listener: Callable[[str, Definition], None]) -> None:
        """Call ``listener(channel, definition)`` after each successful define."""
        self._listeners.append(listener)

    def _channel(self, channel: str) -> dict[str, Definition]:
        """The channel's definitions (loaded from its ledger on first use); caller holds
        ``_lock``."""
        cached = self._cache.get(channel)
        if cached is not None:
            return cached
        ledger = self._ledger_for(channel)
        simulator = ledger.new_simulator(f"lifecycle-load-{uuid.uuid4().hex}")
        definitions: dict[str, Definition] = {}
        try:
            for kv in simulator.get_state_range_scan_iterator(NAMESPACE, _KEY_PREFIX, ""):
                if not kv.key.startswith(_KEY_PREFIX):
                    break
                definition = Definition.from_json(json.loads(kv.value))
                definitions[definition.name] = definition
        finally:
            simulator.done()
        self._cache[channel] = definitions
        return definitions

    def get(self, channel: str, name: str) -> Definition | None:
        cached = self._cache.get(channel)  # every transaction asks: no lock once loaded
        if cached is not None:
            return cached.get(name)
        with self._lock:
            return self._channel(channel).get(name)

    def list(self, channel: str) -> list[Definition]:
        with self._lock:
            return sorted(self._channel(channel).values(), key=lambda d: d.name)

    def referencing(self, package_id: str, channels: list[str]) -> dict[str, list[Definition]]:
        """{channel: definitions pointing at ``package_id``} (``queryinstalled`` references)."""
        with self._lock:
            found = {
                channel: [d for d in self._channel(channel).values() if d.package_id == package_id]
                for channel in channels
            }
        return {channel: defs for channel, defs in found.items() if defs}

    def define(self, channel: str, definition: Definition) -> Definition:
        """Approve-for-my-org and commit ``definition`` on ``channel`` (see the module doc).
        Returns what is now committed; raises :class:`LifecycleError` and changes nothing when
        the definition is invalid."""
        _check_name_and_version(definition.name, definition.version)
        if isinstance(definition.sequence, bool) or not isinstance(definition.sequence, int):
            raise LifecycleError(f"sequence must be an integer, got {definition.sequence!r}")
        check_policy(definition.signature_policy, definition.channel_config_policy)
        if not isinstance(definition.package_id, str):
            raise LifecycleError("package id must be a string")
        with self._lock:
            current = self._channel(channel).get(definition.name)
            committed_sequence = current.sequence if current is not None else 0
            requested = definition.sequence
            if requested == 0 and committed_sequence == 0:
                raise LifecycleError(
                    "requested sequence is 0, but first definable sequence number is 1"
                )
            if requested < committed_sequence:
                raise LifecycleError(
                    f"currently defined sequence {committed_sequence} is larger than requested "
                    f"sequence {requested}"
                )
            if requested > committed_sequence + 1:
                raise LifecycleError(
                    f"requested sequence {requested} is larger than the next available "
                    f"sequence number {committed_sequence + 1}"
                )
            collections = normalize_collections(
                definition.collections, current.collections if current is not None else ""
            )
            definition = dataclasses.replace(definition, collections=collections)
            if current is not None and requested == committed_sequence:
                difference = current.parameters_differ(definition)
                if difference is not None:
                    raise LifecycleError(
                        f"attempted to redefine the current committed sequence "
                        f"({committed_sequence}) for namespace {definition.name} with different "
                        f"parameters: {difference}"
                    )
                if current.package_id == definition.package_id:
                    return current  # approving what is committed again changes nothing
            if definition.package_id and not self._package_known(definition.package_id):
                raise LifecycleError(
                    f"could not find chaincode with package id '{definition.package_id}'"
                )
            self._write(channel, definition)
            self._channel(channel)[definition.name] = definition
        for listener in self._listeners:
            listener(channel, definition)
        return definition

    def _write(self, channel: str, definition: Definition) -> None:
        ledger = self._ledger_for(channel)
        txid = f"lifecycle-{uuid.uuid4().hex}"
        simulator = ledger.new_simulator(txid)
        try:
            simulator.put_state(
                NAMESPACE,
                definition_key(definition.name),
                json.dumps(definition.to_json(), sort_keys=True).encode(),
            )
            results = simulator.get_results()
        finally:
            simulator.done()
        code = ledger.commit(txid, results)
        if code.name != "VALID":
            raise LifecycleError(f"could not commit the chaincode definition: {code.name}")
