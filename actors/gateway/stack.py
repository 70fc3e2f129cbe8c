"""The gateway's part of the peer, built once from explicit dependencies.

Fabric counterpart: the pieces ``internal/peer/node/start.go`` wires for the client-facing
path: the endorser, the gateway server, the deliver service with its commit notifications,
and (here, embedded) the ordering service and the committer. The composition root hands this
stack the chaincode support, the channel members and the peer's identity; the stack owns its
actors (orderer, committer), one block store per channel and the gRPC server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc

from actors.errors import ChaincodeError
from actors.gateway import blocks
from actors.gateway.blockstore import BlockStore
from actors.gateway.committer import ChannelCommit, Committer, recover
from actors.gateway.cutter import BatchConfig
from actors.gateway.deliver import DEFAULT_TIME_WINDOW, FIRST_REQUEST_TIMEOUT, DeliverService
from actors.gateway.endorser import Endorser, Simulation, SimulationFailed
from actors.gateway.limits import DEFAULT_LIMITS, ConcurrencyLimits, ServiceLimiter
from actors.gateway.orderer import CallLater, ChannelOrdering, Orderer
from actors.gateway.proposal import UnpackedProposal
from actors.gateway.service import EndorserService, GatewayOptions, GatewayService
from actors.gateway.validator import ChaincodeRules
from actors.ledger import Ledger
from actors.msp.msp import Identity, MSPManager, SigningIdentity
from actors.transports.grpc import ThreadPerCall, bind, exclusive
from protos.gateway import gateway_pb2_grpc
from protos.peer import events_pb2_grpc, peer_pb2_grpc
from protos.peer.proposal_response_pb2 import Response

log = logging.getLogger(__name__)


class ChaincodeRunner(Protocol):
    """The chaincode support as the gateway uses it (``ChaincodeSupport`` satisfies it)."""

    def execute_async(
        self, channel: str, txid: str | None, chaincode: str, args: Any, **kw: Any
    ) -> Future: ...


class GatewayStack:
    """Orderer, committer, block stores, endorser and the gRPC services of one peer."""

    def __init__(
        self,
        *,
        runner: ChaincodeRunner,
        ledgers: Callable[[str], Ledger],
        channels: Mapping[str, MSPManager],
        definitions: Callable[[str, str], ChaincodeRules | None],
        signer: SigningIdentity,
        collection_policy: Callable[[str, str, str], bytes | None] = lambda ch, cc, coll: None,
        call_later: CallLater,
        batch: BatchConfig | None = None,
        options: GatewayOptions | None = None,
        data_dir: str | Path | None = None,
    ) -> None:
        self.signer = signer
        self.msp_id = signer.msp_id
        self._runner = runner
        self._ledgers = ledgers
        self._channels = dict(channels)
        self._definitions = definitions
        self._collection_policy = collection_policy
        self._call_later = call_later
        self._options = options or GatewayOptions()
        self._stores: dict[str, BlockStore] = {}
        if data_dir is not None:
            Path(data_dir).mkdir(parents=True, exist_ok=True)
        for channel in self._channels:
            path = None if data_dir is None else Path(data_dir) / f"{channel}.blocks.sqlite"
            self._stores[channel] = BlockStore(channel, path=path)
        for channel in self._channels:
            target = self._commit_target(channel)
            assert target is not None
            recover(target)
        self._committer = Committer.start(channels=self._commit_target)
        self._orderer = Orderer.start(
            channels=self._ordering,
            committer=self._committer,
            signer=signer,
            call_later=call_later,
            batch=batch or BatchConfig(),
        )
        self.endorser = Endorser(backend=self, timeout=self._options.endorsement_timeout)
        self._server: grpc.Server | None = None

    # --- what the endorser, orderer and committer ask of the peer -----------------------------

    def channel_msps(self, channel: str) -> MSPManager | None:
        return self._channels.get(channel)

    def store(self, channel: str) -> BlockStore | None:
        return self._stores.get(channel)

    def txid_known(self, channel: str, txid: str) -> bool:
        store = self._stores.get(channel)
        return store is not None and (
            store.has_txid(txid) or self._ledgers(channel).txid_exists(txid)
        )

    def chaincode_version(self, channel: str, chaincode: str) -> str | None:
        rules = self._definitions(channel, chaincode)
        return None if rules is None else rules.version

    def simulate(
        self, unpacked: UnpackedProposal, creator: Identity, timeout: float
    ) -> Future[Simulation]:
        out: Future[Simulation] = Future()
        try:
            started = self._runner.execute_async(
                unpacked.channel_id,
                unpacked.txid,
                unpacked.chaincode_name,
                unpacked.args,
                timeout=timeout,
                proposal=unpacked.signed,
                is_init=unpacked.is_init,
            )
        except ChaincodeError as exc:
            out.set_exception(SimulationFailed(str(exc)))
            return out

        def done(f: Future) -> None:
            try:
                result = f.result()
            except ChaincodeError as exc:
                out.set_exception(SimulationFailed(str(exc)))
                return
            except Exception as exc:
                out.set_exception(SimulationFailed(f"{type(exc).__name__}: {exc}"))
                return
            response = Response(
                status=result.response.status,
                message=result.response.message,
                payload=result.response.payload,
            )
            results = b""
            if result.results is not None:
                results = result.results.to_bytes()
                if result.results.private:
                    # Fabric's endorser keeps the private write sets in its transient store
                    # (its own, even for collections it is not a member of) until commit;
                    # only the hashes go into the proposal response.
                    try:
                        self._ledgers(unpacked.channel_id).persist_private(
                            unpacked.txid, result.results
                        )
                    except Exception as exc:
                        out.set_exception(SimulationFailed(f"failed to store private data: {exc}"))
                        return
            out.set_result(Simulation(response, results, result.event))

        started.add_done_callback(done)
        return out

    def _ordering(self, channel: str) -> ChannelOrdering | None:
        msps = self._channels.get(channel)
        if msps is None:
            return None
        store = self._stores[channel]
        header = store.last_header()
        previous = b"" if header is None else blocks.header_hash(header)
        return ChannelOrdering(msps, store.height, previous)

    def _commit_target(self, channel: str) -> ChannelCommit | None:
        msps = self._channels.get(channel)
        if msps is None:
            return None
        view = _View(channel, msps, self)
        return ChannelCommit(view, self._ledgers(channel), self._stores[channel])

    # --- the gRPC server -------------------------------------------------------------------

    def serve(
        self,
        address: str,
        *,
        credentials: grpc.ServerCredentials | None = None,
        max_message_size: int = 100 * 1024 * 1024,
        mutual_tls: bool = False,
        time_window: float = DEFAULT_TIME_WINDOW,
        limits: ConcurrencyLimits = DEFAULT_LIMITS,
        first_request_timeout: float = FIRST_REQUEST_TIMEOUT,
    ) -> int:
        """Start the Gateway, Endorser and Deliver services on ``address``; returns the bound
        port. Refuses an address in use (no SO_REUSEPORT). ``mutual_tls``: clients present
        certificates (``peer.tls.clientAuthRequired``), so Deliver checks the TLS binding;
        ``time_window``: ``peer.authentication.timewindow`` in seconds; ``limits``: calls in
        flight per service (``peer.limits.concurrency.*``); ``first_request_timeout``: seconds
        a Deliver stream may stay open before its first request."""
        server = grpc.server(
            ThreadPerCall("gateway"),  # threads end with their calls; the limits bound them
            interceptors=[
                ServiceLimiter(
                    {"/gateway.Gateway": limits.gateway, "/protos.Endorser": limits.endorser}
                )
            ],
            maximum_concurrent_rpcs=limits.workers,
            options=exclusive(
                [
                    ("grpc.max_receive_message_length", max_message_size),
                    ("grpc.max_send_message_length", max_message_size),
                ]
            ),
        )
        bound = bind(server, address, credentials)
        port = int(bound.rsplit(":", 1)[1])
        gateway_pb2_grpc.add_GatewayServicer_to_server(
            GatewayService(
                endorser=self.endorser,
                orderer=self._orderer,
                msps=self.channel_msps,
                stores=self.store,
                address=bound,
                msp_id=self.msp_id,
                options=self._options,
                # Unread event streams buffer; waits only hold a thread of the Gateway's share.
                event_streams=threading.BoundedSemaphore(max(1, limits.gateway // 4)),
                commit_waits=threading.BoundedSemaphore(limits.gateway),
            ),
            server,
        )
        peer_pb2_grpc.add_EndorserServicer_to_server(
            EndorserService(endorser=self.endorser, msps=self.channel_msps), server
        )
        events_pb2_grpc.add_DeliverServicer_to_server(
            DeliverService(
                msps=self.channel_msps,
                stores=self.store,
                max_streams=limits.deliver,
                call_later=self._call_later,
                time_window=time_window,
                first_request_timeout=first_request_timeout,
                mutual_tls=mutual_tls,
            ),
            server,
        )
        server.start()
        self._server = server
        return port

    def stop(self, grace: float = 1.0) -> None:
        if self._server is not None:
            self._server.stop(grace).wait(grace + 1)
            self._server = None
        self._orderer.stop()
        self._committer.stop()
        for store in self._stores.values():
            store.close()


@dataclass
class _View:
    """The validator's view of a channel (:class:`actors.gateway.validator.ChannelView`)."""

    channel_id: str
    msps: MSPManager
    stack: GatewayStack

    def txid_committed(self, txid: str) -> bool:
        return self.stack.txid_known(self.channel_id, txid)

    def definition(self, chaincode: str) -> ChaincodeRules | None:
        return self.stack._definitions(self.channel_id, chaincode)

    def key_policy(self, namespace: str, key: str) -> bytes | None:
        ledger = self.stack._ledgers(self.channel_id)
        return ledger.get_state_metadata(namespace, key).get("VALIDATION_PARAMETER")

    def collection_policy(self, chaincode: str, collection: str) -> bytes | None:
        return self.stack._collection_policy(self.channel_id, chaincode, collection)
