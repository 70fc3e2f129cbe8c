"""The composition root: builds the peer's dependencies once and starts its actors with them.

Fabric counterpart: ``internal/peer/node/start.go``, which builds the ledger manager, the
handler registry, the launcher, the container router and ``ChaincodeSupport`` in one place and
passes each what it needs. Here, :class:`Peer` builds config-derived services (metrics,
deadline scheduler, event bus, ledgers, identity, TLS, runtimes), the state the actors share
through named operations (:class:`~actors.launcher.HandlerDirectory`,
:class:`~actors.supervisor.SupervisorStates`, :class:`PeerAddress`), the stores, and then the
supervision tree, every actor started with keyword arguments. It has no transaction API:
:class:`~actors.support.ChaincodeSupport` is that, built over a Peer.

Adding a store (the lifecycle's installed packages, channels, chaincode definitions): one
keyword of :class:`Peer` and one line in the "stores" block of ``__init__``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import pykka

from actors.config import ChaincodeDefinition, Config, ConfigError
from actors.errors import ChaincodeError, LifecycleError
from actors.events import EventBus
from actors.handler import Handler, HandlerDeps, ReportContexts
from actors.launcher import HandlerDirectory, LauncherDeps, RuntimeLauncher
from actors.ledger import LedgerManager
from actors.lifecycle.builders import BuildError, Detector, PackageRuntime
from actors.lifecycle.definitions import Definition
from actors.lifecycle.lifecycle import Lifecycle, index_files, runtime_definition
from actors.lifecycle.packages import InstalledPackage, check_type
from actors.lifecycle.platforms import PlatformError
from actors.mailbox import SupervisedRef, tell_quietly
from actors.metrics import Metrics
from actors.packaging import PackageInfo
from actors.policy import Restart
from actors.privdata.access import CollectionStore
from actors.proposals import local_identity
from actors.runtimes import Instance, Runtime
from actors.scheduler import Scheduler
from actors.supervisor import (
    ChaincodeSupervisor,
    Escalate,
    RootSupervisor,
    ShuttingDown,
    Supervise,
    SupervisorDeps,
    SupervisorStates,
    Watcher,
)
from actors.tls import (
    ChaincodeTLS,
    ClientTLS,
    service_key_pair,
    service_plaintext_reason,
    service_tls_enabled,
)
from actors.transports import MessageStream
from actors.transports.poller import PipePoller
from actors.txcontexts import TXContextRegistry
from actors.vmcontroller import Handover, StopAll, VMController

if TYPE_CHECKING:
    from actors.gateway.stack import GatewayStack
    from actors.gateway.validator import ChaincodeRules
    from actors.listener import ChaincodeListener
    from actors.requests import Invoker

log = logging.getLogger(__name__)


class PeerAddress:
    """The address chaincode dials to reach this peer: None until the chaincode listener
    starts, which fills it. Runtimes that start chaincode dialling the peer hold this object
    (it is a ``Callable[[], str | None]``) and read it at each launch."""

    def __init__(self, address: str | None = None) -> None:
        self._address = address

    def set(self, address: str | None) -> None:
        self._address = address

    def __call__(self) -> str | None:
        return self._address

    def __repr__(self) -> str:
        return f"PeerAddress({self._address!r})"


def default_runtimes(
    config: Config,
    address: PeerAddress,
    client_tls: Callable[[str], ClientTLS | None],
    metrics: Metrics | None = None,
) -> dict[str, Runtime]:
    """The runtimes, configured from ``config``: the four of ``[[chaincodes]]`` and
    ``package``, Fabric's container router for installed packages (external builders first,
    then Docker's python and node platforms), which shares the docker and external ones."""
    from actors.runtimes.docker import DockerRuntime
    from actors.runtimes.external import ExternalRuntime
    from actors.runtimes.process import ProcessRuntime
    from actors.runtimes.system import SystemRuntime

    # Connects to the engine on first use, so a peer without Docker still starts.
    docker = DockerRuntime(
        address,
        config.docker_endpoint,
        config.base_image,
        msp_id=config.msp_id,
        tls=client_tls,
        host_config=config.docker_host_config,
        engine_tls=config.docker_tls,
        node_install=config.node_install,
        build_timeout=config.install_timeout,
        max_code_size=config.max_package_bytes,
        on_build=metrics.observe_container_build if metrics is not None else None,
    )
    external = ExternalRuntime(max_message_size=config.max_message_size)
    detector = Detector.configured(
        config.external_builders,
        config.build_directory,
        timeout=config.install_timeout,
        max_code_size=config.max_package_bytes,
    )
    return {
        "system": SystemRuntime(max_frame=config.max_message_size),
        "process": ProcessRuntime(address, tls=client_tls, msp_id=config.msp_id),
        "docker": docker,
        "external": external,
        "package": PackageRuntime(
            detector,
            address,
            external=external,
            docker=docker,
            msp_id=config.msp_id,
            tls=client_tls,
            max_package_bytes=config.max_package_bytes,
        ),
    }


class Peer:
    """Everything one peer is made of, built once.

    ``invoker`` answers chaincode-to-chaincode calls (the ChaincodeSupport built over this
    peer). ``runtimes`` replaces the default runtimes; runtimes that dial the peer take a
    :class:`PeerAddress` (make one first and pass it as ``peer_address`` too) and, with TLS,
    ``tls.client_for``. A store is one keyword here and one line in the "stores" block.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        invoker: Invoker,
        ledgers: LedgerManager | None = None,
        lifecycle: Lifecycle | None = None,
        runtimes: Mapping[str, Runtime] | None = None,
        peer_address: PeerAddress | None = None,
        tls: ChaincodeTLS | None = None,
    ) -> None:
        self.config = config = config or Config()
        # -- services ----------------------------------------------------------------------
        # Metric labels only for channels and chaincodes the peer knows (see actors.metrics).
        self.metrics = Metrics(
            known={
                "chaincode": lambda name: (
                    name in self.definitions
                    or self.directory.get(name) is not None
                    or self.lifecycle.is_defined(name)
                ),
                "channel": lambda channel: channel in self.lifecycle.channels,
            }
        )
        self.scheduler = Scheduler()
        self.events = EventBus()
        self.identity = local_identity(config.msp_id)
        self.tls = tls if tls is not None else ChaincodeTLS() if config.tls else None
        self.address = peer_address if peer_address is not None else PeerAddress()
        self.runtimes: dict[str, Runtime] = dict(
            runtimes or default_runtimes(config, self.address, self.client_tls, self.metrics)
        )
        self.listener: ChaincodeListener | None = None  # attach_listener fills the address
        self.gateway: GatewayStack | None = None  # start_gateway builds it
        self._invoker = invoker
        # -- state the actors share, each behind named operations --------------------------
        self.directory = HandlerDirectory()  # written by the launcher only
        self.states = SupervisorStates()  # each chaincode's entry by its supervisor only
        # -- stores --------------------------------------------------------------------------
        # One line each; the lifecycle adds installed packages, channels and per-channel
        # chaincode definitions here.
        self.ledgers = ledgers or LedgerManager(
            config.ledger_directory,
            history=config.history,
            synchronous=config.ledger_synchronous,
            total_query_limit=config.total_query_limit,
            max_write_set=config.max_write_set_size,
        )
        self.definitions: dict[str, ChaincodeDefinition] = {d.name: d for d in config.chaincodes}
        # Installed packages, joined channels, per-channel definitions; configured chaincodes
        # are implicitly installed and defined on every channel under their names.
        self.lifecycle = lifecycle or Lifecycle(
            ledgers=self.ledgers,
            channels=config.channels,
            install_dir=config.install_directory,
            max_package_bytes=config.max_package_bytes,
            dev_mode=config.mode == "dev",
            registered=lambda: list(self.directory.ready()),
            check_platform=self._check_package,
        )
        for name in self.definitions:
            self.lifecycle.invocations.configure(name)
        # Private data collections: explicit ones from the definitions, implicit ones for the
        # channel's orgs (this peer's and the channel's configured organizations).
        self.collections = CollectionStore(
            definition_collections=self._definition_collections,
            channel_orgs=self.channel_orgs,
            local_msp_id=config.msp_id,
            msps=lambda channel: self.gateway.channel_msps(channel) if self.gateway else None,
            local_identity=self.identity,  # what support signs the peer's own proposals with
        )
        self.ledgers.set_collection_rules(self.collections.rules)
        for installed in self.lifecycle.packages.list():
            self.add_installed(installed)
        # Rich-query indexes of the packages the channels' definitions run: created at each
        # define, and again at start (the planner's view of them lives in memory).
        self.lifecycle.definitions.on_change(self.install_indexes)
        for channel in self.lifecycle.channels.names():
            for definition in self.lifecycle.definitions.list(channel):
                self.install_indexes(channel, definition)
        # -- actors: the supervision tree ----------------------------------------------------
        # The root, its three peer actors, one supervisor per defined chaincode. Everyone
        # holds SupervisedRefs, which follow an actor to its replacement.
        self._supervisors: dict[str, SupervisedRef] = {}  # written under _supervisors_lock
        self._supervisors_lock = threading.Lock()
        self._handlers: set[pykka.ActorRef[Any]] = set()
        self._handlers_lock = threading.Lock()
        self.root = RootSupervisor.start(self.events.publish)
        self.registry: SupervisedRef = self.root.ask(
            Supervise(
                "registry",
                lambda watcher, _: TXContextRegistry.start(watcher=watcher),
                rebuild=self._reindex_contexts,
            )
        )
        self.vmcontroller: SupervisedRef = self.root.ask(
            Supervise("vmcontroller", self._start_vmcontroller)
        )
        launcher_deps = LauncherDeps(
            config=config,
            definitions=self.definitions,
            vmcontroller=self.vmcontroller,
            scheduler=self.scheduler,
            metrics=self.metrics,
            directory=self.directory,
            publish=self.events.publish,
            supervisor_for=self.supervisor_for,
        )
        self.launcher: SupervisedRef = self.root.ask(
            Supervise(
                "launcher",
                lambda watcher, _: RuntimeLauncher.start(
                    deps=launcher_deps, me=lambda: self.launcher, watcher=watcher
                ),
            )
        )
        root = self.root
        self._supervisor_deps = SupervisorDeps(
            launcher=self.launcher,
            scheduler=self.scheduler,
            publish=self.events.publish,
            startup_timeout=config.startup_timeout,
            states=self.states,
            escalate=lambda chaincode, reason: tell_quietly(root, Escalate(chaincode, reason)),
        )
        for name in self.definitions:
            self.supervise(name)
        self.pipe_poller = PipePoller()
        self.handler_deps = HandlerDeps(
            config=config,
            metrics=self.metrics,
            launcher=self.launcher,
            registry=self.registry,
            ledgers=self.ledgers,
            scheduler=self.scheduler,
            invoker=invoker,
            poller=self.pipe_poller,
        )

    def client_tls(self, ccid: str) -> ClientTLS | None:
        """TLS material for a chaincode being launched as ``ccid`` (None without TLS)."""
        return self.tls.client_for(ccid) if self.tls is not None else None

    def channel_orgs(self, channel: str) -> tuple[str, ...]:
        """The MSP ids of the channel's organisations: the peer's own and the configured."""
        others = (o.mspid for o in self.config.channel_organizations(channel))
        return tuple(dict.fromkeys([self.config.msp_id, *others]))

    def _definition_collections(self, channel: str, chaincode: str) -> str | None:
        """The collections config of the chaincode's definition on the channel ("" for none),
        None without a definition (a configured chaincode: implicit collections only)."""
        if channel not in self.lifecycle.channels:
            return None
        definition = self.lifecycle.definitions.get(channel, chaincode)
        return None if definition is None else definition.collections

    # -- actors ------------------------------------------------------------------------------

    def _start_vmcontroller(self, watcher: Watcher, handover: Handover | None) -> Any:
        return VMController.start(
            runtimes=self.runtimes,
            connect=self._connect_instance,
            me=lambda: self.vmcontroller,
            handover=handover,
            watcher=watcher,
        )

    def supervise(self, name: str) -> None:
        """Start the supervisor of chaincode ``name`` (once)."""
        with self._supervisors_lock:
            if name in self._supervisors:
                return

            def start(watcher: Watcher, _: Any) -> Any:
                return ChaincodeSupervisor.start(
                    name,
                    policy=lambda: self.config.restart_policy(self.definitions.get(name)),
                    deps=self._supervisor_deps,
                    watcher=watcher,
                )

            self._supervisors[name] = self.root.ask(Supervise(f"chaincode:{name}", start))

    def supervisor_for(self, name: str) -> SupervisedRef | None:
        return self._supervisors.get(name)

    def serve_stream(
        self, stream: MessageStream, *, expected: str | None = None
    ) -> pykka.ActorRef[Any]:
        """Attach a chaincode connection to a fresh Handler actor."""
        ref = Handler.start(stream, self.handler_deps, expected=expected)
        with self._handlers_lock:
            self._handlers = {h for h in self._handlers if h.is_alive()}
            self._handlers.add(ref)
        return ref

    def _connect_instance(self, stream: MessageStream, instance: Instance) -> None:
        self.serve_stream(stream, expected=instance.chaincode)

    def _reindex_contexts(self) -> None:
        """A new registry learns the transactions in flight from the live handlers."""
        with self._handlers_lock:
            handlers = [h for h in self._handlers if h.is_alive()]
        for handler in handlers:
            tell_quietly(handler, ReportContexts())

    def attach_listener(self, listener: ChaincodeListener) -> None:
        """The chaincode listener has started: chaincode dials it from now on."""
        self.listener = listener
        self.address.set(listener.dial_address())

    # -- the client-facing peer ------------------------------------------------------------

    def channel_names(self) -> tuple[str, ...]:
        """The channels this peer has joined (the lifecycle's channel set)."""
        return tuple(self.lifecycle.channels.names())

    def gateway_rules(self, channel: str, chaincode: str) -> ChaincodeRules | None:
        """What the endorser and the committer know of a chaincode on a channel: its
        definition's version and endorsement policy as ``ApplicationPolicy`` bytes (empty: the
        channel's default, a majority of its orgs). A configured chaincode's implicit
        definition has no version of its own: it is reported as "1.0"."""
        try:
            target = self.lifecycle.invocations.resolve(channel, chaincode)
        except ChaincodeError:
            return None
        definition = target.definition
        return _rules(
            definition.version or "1.0",
            definition.signature_policy,
            definition.channel_config_policy,
        )

    def _check_package(self, info: PackageInfo) -> None:
        """At install: a package no external builder claims and no platform builds is
        refused, naming its type (Fabric builds at install; Docker images here at the first
        launch)."""
        router = self.runtimes.get("package")
        if not isinstance(router, PackageRuntime):
            check_type(info)
            return
        try:
            router.check(info)
        except (BuildError, PlatformError, ConfigError) as exc:
            raise LifecycleError(f"could not build chaincode: {exc}") from None

    def add_installed(self, installed: InstalledPackage) -> bool:
        """Register how an installed package runs, under its package id (the ccid it is
        launched and supervised as); False when no runtime here can run its type."""
        if "package" in self.runtimes:
            restart = None
            if installed.type.lower() == "ccaas":  # a service the peer only dials, as external
                restart = dataclasses.replace(self.config.restart, restart=Restart.TEMPORARY)
            definition: ChaincodeDefinition | None = ChaincodeDefinition(
                installed.package_id, runtime="package", package=installed.path, restart=restart
            )
        else:  # runtimes of the embedder's own: the docker and external ones, if given
            definition = runtime_definition(
                installed, self.lifecycle.packages.load(installed.package_id)
            )
        if definition is None or definition.runtime not in self.runtimes:
            return False
        self.definitions[definition.name] = definition
        return True

    def install_indexes(self, channel: str, definition: Definition) -> None:
        """Create the rich-query indexes of the installed package ``definition`` runs, in the
        channel's ledger under the chaincode's name (Fabric: ``HandleChaincodeDeploy``, at
        commit, at install of a package a definition names, and kept across restarts). The
        indexes were checked at install: a failure here is logged, never undoes a define."""
        package_id = definition.package_id
        if package_id not in self.lifecycle.packages:
            return
        try:
            files = index_files(package_id, self.lifecycle.packages.load(package_id))
            if files:
                ledger = self.lifecycle.ledger(channel)
                ledger.rich_queries.install_indexes(definition.name, files)
        except Exception:
            log.exception("could not create the indexes of %s on channel %s", package_id, channel)

    def start_gateway(self, address: str | None = None) -> str:
        """Start the Gateway and Endorser services (Fabric's ``peer.listenAddress``) with the
        peer's identity from ``peer.mspConfigPath``; returns the address they listen on.
        Raises ConfigError for an unusable identity or TLS file, OSError for the address."""
        import grpc

        from actors.config import ConfigError
        from actors.gateway.cutter import BatchConfig
        from actors.gateway.limits import ConcurrencyLimits
        from actors.gateway.service import GatewayOptions
        from actors.gateway.stack import GatewayStack
        from actors.msp.msp import MSP, MSPError, MSPManager, load_signing_identity

        config = self.config
        address = address or config.gateway_address
        if address is None:
            raise ConfigError("peer.listenAddress: no address for the Gateway")
        if config.msp_config_path is None:
            raise ConfigError("peer.mspConfigPath: the Gateway needs the peer's MSP folder")
        try:
            signer = load_signing_identity(config.msp_config_path, config.msp_id)
            own = MSP.from_dir(config.msp_config_path, config.msp_id)
            own.validate(signer)
        except MSPError as exc:
            raise ConfigError(f"peer.mspConfigPath: {exc}") from None
        # Each channel's members: the peer's org and the channel's [[channels.organizations]]
        # (else [[organizations]]); one MSP per folder, shared by the channels that list it.
        loaded: dict[tuple[str, str], MSP] = {}
        channels: dict[str, MSPManager] = {}
        for name in self.channel_names():
            members = [own]
            for org in config.channel_organizations(name):
                if org.mspid == config.msp_id:
                    continue  # the peer's own org, from peer.mspConfigPath
                if (org.mspid, org.msp_dir) not in loaded:
                    try:
                        loaded[org.mspid, org.msp_dir] = MSP.from_dir(org.msp_dir, org.mspid)
                    except MSPError as exc:
                        raise ConfigError(
                            f"channel {name}: organization {org.mspid}: {exc}"
                        ) from None
                members.append(loaded[org.mspid, org.msp_dir])
            channels[name] = MSPManager(members)
        credentials = None
        gateway_tls = service_tls_enabled(config)
        if not gateway_tls:
            log.warning(
                "the Gateway at %s speaks plaintext (%s)", address, service_plaintext_reason(config)
            )
        if gateway_tls:
            try:
                pair = service_key_pair(config)
                roots = None
                if config.tls_client_auth:
                    roots = b"".join(_read(f) for f in config.tls_client_root_files) or None
            except OSError as exc:
                raise ConfigError(f"peer.tls: {exc}") from None
            if config.tls_client_auth and roots is None:
                raise ConfigError(
                    "peer.tls.clientRootCAs.files: needed with peer.tls.clientAuthRequired"
                )
            credentials = grpc.ssl_server_credentials(
                [pair], root_certificates=roots, require_client_auth=config.tls_client_auth
            )
        # Fabric keeps blocks in <peer.fileSystemPath>/ledgersData/chains, beside the state
        ledgers = config.ledger_directory
        data_dir = None if ledgers is None else os.path.join(ledgers, "chains")
        self.gateway = GatewayStack(
            runner=self._invoker,  # type: ignore[arg-type]
            ledgers=self.ledgers.get,
            channels=channels,
            definitions=self.gateway_rules,
            signer=signer,
            collection_policy=self.collections.endorsement_policy,
            call_later=self.scheduler.call_later,
            batch=BatchConfig(
                max_message_count=config.batch_max_messages,
                preferred_max_bytes=min(config.batch_preferred_bytes, config.batch_absolute_bytes),
                absolute_max_bytes=config.batch_absolute_bytes,
                batch_timeout=config.batch_timeout,
            ),
            options=GatewayOptions(
                endorsement_timeout=config.endorsement_timeout,
                broadcast_timeout=config.broadcast_timeout,
            ),
            data_dir=data_dir,
        )
        port = self.gateway.serve(
            address,
            credentials=credentials,
            max_message_size=config.max_message_size,
            mutual_tls=gateway_tls and config.tls_client_auth,
            time_window=config.auth_time_window,
            limits=ConcurrencyLimits(
                gateway=config.gateway_concurrency,
                endorser=config.endorser_concurrency,
                deliver=config.deliver_concurrency,
            ),
        )
        return f"{address.rsplit(':', 1)[0]}:{port}"

    # -- shutdown ----------------------------------------------------------------------------

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every chaincode, actor, process and thread of this peer (once)."""
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None
        self.root.ask(ShuttingDown(), timeout=timeout)
        with self._supervisors_lock:
            supervisors = list(self._supervisors.values())
        for supervisor in supervisors:
            supervisor.stop(timeout=timeout)
        self.launcher.stop(timeout=timeout)
        if self.listener is not None:
            self.listener.stop()
            self.address.set(None)
        with self._handlers_lock:
            handlers, self._handlers = list(self._handlers), set()
        for handler in handlers:
            handler.stop(block=False)
        for handler in handlers:
            try:
                handler.stop(timeout=timeout)
            except pykka.Timeout:
                log.warning("handler did not stop within %ss", timeout)
        try:
            stopped: Future[int] = Future()
            self.vmcontroller.tell(StopAll(stopped))
            stopped.result(timeout + 10)
        finally:
            self.vmcontroller.stop(timeout=timeout)
            self.registry.stop(timeout=timeout)
            self.root.stop(timeout=timeout)
            self.scheduler.stop(run_pending=True)
            self.pipe_poller.stop(timeout=timeout)
            for runtime in self.runtimes.values():
                runtime.close()
            self.ledgers.close()
            self.lifecycle.close()


def _read(path: str | None) -> bytes:
    if not path:
        raise OSError("a TLS file is not set (peer.tls.cert.file, peer.tls.key.file)")
    with open(path, "rb") as f:
        return f.read()


@functools.lru_cache(maxsize=1024)
def _rules(version: str, signature_policy: str, channel_config_policy: str) -> ChaincodeRules:
    """A definition's rules, parsed and encoded once per (version, policy): every endorsement
    and every validated transaction asks. Keyed by the definition's own fields, so a changed
    definition is never answered with the rules of the one it replaced."""
    from actors.gateway.validator import ChaincodeRules
    from actors.msp.policies import from_string
    from protos.peer.policy_pb2 import ApplicationPolicy

    if signature_policy:
        policy = ApplicationPolicy(signature_policy=from_string(signature_policy))
    elif channel_config_policy:
        policy = ApplicationPolicy(channel_config_policy_reference=channel_config_policy)
    else:
        return ChaincodeRules(version, b"")
    return ChaincodeRules(version, policy.SerializeToString())
