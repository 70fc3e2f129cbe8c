"""Which running chaincode serves a name on a channel, and Fabric's initialisation rules.

Fabric counterparts: ``core/chaincode/lifecycle`` ``ChaincodeEndorsementInfo`` (name -> the
package id to launch) and ``core/chaincode/chaincode_support.go`` ``CheckInvocation`` (the
``init_required`` rules and the "initialized" marker).

* The **name** is what callers address and the state namespace; ``name:version`` is accepted
  and the version ignored, as Fabric does for chaincode-to-chaincode calls.
* The **ccid** is what runs: the definition's package id when it is installed; in dev mode,
  when it is not, ``name:version`` (the id a hand-started chaincode registers with). Every
  channel whose definition points at one package id shares its one running instance.
* Dev mode gives a chaincode that registered as ``NAME:VERSION`` an implicit definition (name
  ``NAME``, that package id) on every channel where ``NAME`` has none.
* Chaincodes named in the configuration (``Config.chaincodes``) are implicitly installed and
  defined on every channel, their ccid being the configured name. Implicit definitions have
  sequence 0 and no initialisation rules (an init call is simply sent as INIT).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from actors.errors import InvalidInvocation, UnknownChaincode
from actors.ledger import TxSimulator
from actors.lifecycle.channels import Channels
from actors.lifecycle.definitions import NAMESPACE, Definition, DefinitionStore, definition_key

# Fabric's InitializedKeyName: "\x00" + utf8.MaxRune + "initialized", in the chaincode's own
# namespace; its value is the definition version that ran Init.
INITIALIZED_KEY = "\x00\U0010ffffinitialized"


class Target(NamedTuple):
    """A resolved invocation: the definition that applies and the ccid that runs it (a tuple:
    one is made per transaction)."""

    channel: str
    definition: Definition
    ccid: str

    @property
    def name(self) -> str:
        """The chaincode name: the state namespace and the event's chaincode id."""
        return self.definition.name


def split_name(target: str) -> str:
    """``name[:version]`` -> name (the version is ignored, as Fabric ignores it)."""
    return target.partition(":")[0]


@functools.lru_cache(maxsize=4096)
def implicit_definition(ccid: str) -> Definition:
    """The definition a configured or dev-registered chaincode ``NAME[:VERSION]`` gets."""
    name, _, version = ccid.partition(":")
    return Definition(name=name, version=version, sequence=0, package_id=ccid)


class Invocations:
    """Resolves (channel, name) to a :class:`Target`; checks the initialisation rules."""

    def __init__(
        self,
        *,
        channels: Channels,
        definitions: DefinitionStore,
        installed: Callable[[str], bool],
        dev_mode: bool,
        registered: Callable[[], Iterable[str]] = tuple,
        configured: Mapping[str, str] | None = None,
    ) -> None:
        """``registered()`` lists the ccids with a live registration (dev mode's implicit
        definitions come from them); ``configured`` maps a configured chaincode's name to its
        ccid."""
        self.channels = channels
        self.definitions = definitions
        self._installed = installed
        self.dev_mode = dev_mode
        self._registered = registered
        self._configured = dict(configured or {})

    def configure(self, ccid: str) -> None:
        """A chaincode from the configuration: defined on every channel under its name."""
        self._configured[split_name(ccid)] = ccid

    def is_configured(self, ccid: str) -> bool:
        """Whether ``ccid`` is a configured chaincode (implicitly installed)."""
        return ccid in self._configured.values()

    def resolve(self, channel: str, target: str) -> Target:
        """The definition and ccid serving ``target`` (``name[:version]``) on ``channel``.

        Raises :class:`~actors.errors.UnknownChannel` or
        :class:`~actors.errors.UnknownChaincode` with Fabric's texts."""
        self.channels.check(channel)
        name = split_name(target)
        try:
            return self._lookup(channel, name, target)
        except LookupError as exc:
            raise UnknownChaincode(
                f"make sure the chaincode {name} has been successfully defined on channel "
                f"{channel} and try again: {exc.args[0]}"
            ) from None

    def _lookup(self, channel: str, name: str, target: str) -> Target:
        definition = self.definitions.get(channel, name)
        if definition is None:
            ccid = self._configured.get(name)
            if ccid is None and self.dev_mode:
                # Registered as NAME[:VERSION]; or not yet: then the launcher waits for a
                # registration under the id as the caller wrote it (its startup timeout).
                ccid = self._dev_registration(name) or target
            if ccid is None:
                raise LookupError(f"chaincode {name} not found")
            return Target(channel, implicit_definition(ccid), ccid)
        if definition.package_id and (
            self._installed(definition.package_id) or self.is_configured(definition.package_id)
        ):
            # A configured chaincode is implicitly installed: a definition may name it (to
            # give it collections or an endorsement policy of its own).
            return Target(channel, definition, definition.package_id)
        if self.dev_mode:
            return Target(channel, definition, f"{definition.name}:{definition.version}")
        raise LookupError(
            f"chaincode definition for '{name}' exists, but chaincode is not installed"
        )

    def _dev_registration(self, name: str) -> str | None:
        """The one registered ccid ``name:VERSION`` (or exactly ``name``), if any."""
        found = sorted(
            ccid for ccid in list(self._registered()) if ccid == name or ccid.startswith(name + ":")
        )
        if len(found) > 1:
            raise LookupError(
                f"chaincode {name} has no definition and several dev-mode registrations "
                f"({', '.join(found)}); define it with the package id to use"
            )
        return found[0] if found else None

    @staticmethod
    def read_definition(target: Target, simulator: TxSimulator) -> None:
        """Read the definition's record through the transaction's simulator, as Fabric reads
        its sequence: a definition committed meanwhile then fails the transaction's MVCC
        check instead of mixing two definitions."""
        if target.definition.sequence > 0:
            simulator.get_state(NAMESPACE, definition_key(target.name))

    @staticmethod
    def check_init(target: Target, simulator: TxSimulator, is_init: bool) -> bool:
        """Fabric's ``CheckInvocation`` initialisation rules; True when the call is an INIT.

        With ``init_required`` the marker is read through ``simulator`` (so it joins the read
        set: two concurrent inits conflict) and an INIT writes it, into the same transaction,
        before the chaincode runs."""
        definition = target.definition
        if definition.sequence == 0:
            # An implicit definition (configured or dev-registered chaincode) has no init
            # rules: an init call goes through as INIT, as it did before definitions existed.
            return is_init
        needs_init = False
        if definition.init_required:
            value = simulator.get_state(definition.name, INITIALIZED_KEY)
            needs_init = value != definition.version.encode()
        if is_init:
            if not definition.init_required:
                raise InvalidInvocation(
                    f"invalid invocation: chaincode '{definition.name}' does not require "
                    "initialization but called as init"
                )
            if not needs_init:
                raise InvalidInvocation(
                    f"invalid invocation: chaincode '{definition.name}' is already initialized "
                    "but called as init"
                )
            simulator.put_state(definition.name, INITIALIZED_KEY, definition.version.encode())
            return True
        if needs_init:
            raise InvalidInvocation(
                f"invalid invocation: chaincode '{definition.name}' has not been initialized "
                "for this version, must call as init first"
            )
        return False
