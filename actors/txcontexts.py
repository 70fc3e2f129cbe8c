"""Transaction contexts and the TXContext registry actor.

Fabric counterpart: ``core/chaincode/transaction_context(s).go``. A :class:`TXContext` holds
what the Handler needs to serve one transaction's shim requests (simulator, proposal, open
query iterators) and the future its caller waits on. The :class:`TXContextRegistry` actor owns
the index of live contexts keyed by (chaincode, channel, txid) and rejects duplicates with
Fabric's ``txid: X(Y) exists``.

The registry sits *beside* the pipeline, as Fabric's per-handler ``TransactionContexts``
would if it were shared: the caller tells the chaincode's Handler :class:`StartTransaction`
directly, and the Handler, which owns the contexts of its connection, refuses a duplicate
(chaincode, channel, txid) with Fabric's text before anything is sent, then tells the registry
the contexts it started (:class:`ContextsStarted`) once its mailbox is empty: one tell for every
transaction of a batch, after their TRANSACTIONs went out. So a transaction's way to its
chaincode wakes one thread (the Handler's), not two, and the registry never holds one up. It
keeps the index of live contexts (counts, and what a replacement for a crashed registry
learns from the Handlers). A context may end (COMPLETED, timeout) before the registry hears of
it; it then never enters the index.

An ended context frees its key at once (its ``done`` flag) and leaves the index later: telling
the registry about every end would wake its thread once more per transaction. Each record drops
the ended contexts at the front of the creation order (nearly all of them, as transactions
mostly end in the order they start); a sweep of the whole index catches those behind a
long-running one. Dropping early matters to the garbage collector: every object a context holds
that outlives two young collections is promoted to the oldest generation, whose full
collections scan the whole heap (tens of ms each).
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actors.mailbox import SupervisedActor, Watcher
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage

if TYPE_CHECKING:
    from actors.ledger import SimulationResults, TxSimulator
    from actors.privdata.access import CollectionStore
    from actors.scheduler import Deadline
    from protos.peer.chaincode_event_pb2 import ChaincodeEvent
    from protos.peer.proposal_pb2 import SignedProposal
    from protos.peer.proposal_response_pb2 import Response

ContextKey = tuple[str, str, str]  # (chaincode, channel, txid)


@dataclass(frozen=True)
class ExecuteResult:
    """What an execution produced: the chaincode's Response, the transaction's read/write set
    (None for a cc2cc callee sharing its caller's simulator) and its event, if any.
    ``timestamp`` is the proposal's channel-header time (unix seconds), which the commit
    records in history as Fabric does."""

    response: Response
    results: SimulationResults | None
    event: ChaincodeEvent | None
    txid: str
    timestamp: float | None = None


class TXContext:
    """One in-flight execution of one chaincode.

    It ends exactly once, through :meth:`end`, whoever wins (COMPLETED, ERROR, timeout,
    connection lost, launch failure, duplicate txid); everyone else learns they lost.
    """

    __slots__ = (
        "_lock",
        "acl",
        "chaincode",
        "channel_id",
        "collections",
        "deadline",
        "done",
        "future",
        "is_init",
        "isolated",
        "iterators",
        "owns_simulator",
        "pending_request",
        "sent_at",
        "signed_proposal",
        "simulator",
        "timestamp",
        "txid",
    )

    def __init__(
        self,
        chaincode: str,
        channel_id: str,
        txid: str,
        simulator: TxSimulator,
        signed_proposal: SignedProposal | None = None,
        *,
        owns_simulator: bool = True,
        timestamp: float | None = None,
        collections: CollectionStore | None = None,
        is_init: bool = False,
        isolated: bool = False,
    ) -> None:
        self.chaincode = chaincode
        self.channel_id = channel_id
        self.txid = txid
        self.simulator = simulator
        self.signed_proposal = signed_proposal
        # A cc2cc callee on the same channel shares its caller's simulator and must not end it.
        self.owns_simulator = owns_simulator
        self.timestamp = timestamp  # the proposal's channel-header time
        # Private data: the peer's collection store, this transaction's collection access
        # (cached per collection, as Fabric's CollectionACLCache), whether it is the Init of a
        # chaincode and whether it is a callee on another channel than its caller's.
        self.collections = collections
        self.acl: dict[str, Any] | None = None
        self.is_init = is_init
        self.isolated = isolated
        self.future: Future[Any] = Future()
        self.iterators: dict[str, Any] = {}
        self.deadline: Deadline | None = None
        self.pending_request = False
        self.sent_at = 0.0  # when the Handler sent it to the chaincode (monotonic)
        self.done = False
        self._lock = threading.Lock()

    @property
    def key(self) -> ContextKey:
        return (self.chaincode, self.channel_id, self.txid)

    def end(self, result: Any = None, error: BaseException | None = None) -> bool:
        """End the transaction with a result or an error: cancel its deadline, close its
        query iterators, end its simulator (if it owns it), then answer its caller. False if
        it had ended already. Safe from any thread, but not while holding the simulator's
        lock (only a callee that never reached its chaincode may end so: it shares its
        caller's simulator and has nothing to clean up)."""
        with self._lock:
            if self.done:
                return False
            self.done = True
        if self.deadline is not None:
            self.deadline.cancel()
        if self.owns_simulator or self.sent_at:
            # Under the simulator's lock: a request may be being served on another thread
            # (it sees ``done`` once it holds the lock, and answers "no ledger context").
            with self.simulator.lock:
                iterators, self.iterators = self.iterators, {}
                for iterator in iterators.values():
                    iterator.close()
                if self.owns_simulator:
                    self.simulator.done()
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(result)
        return True

    def __repr__(self) -> str:
        return f"TXContext({self.chaincode}, {self.channel_id}, {self.txid}, done={self.done})"


@dataclass(frozen=True)
class StartTransaction:
    """To a Handler, from the caller: register ``context`` on this connection and, if its
    txid is not in flight there, send ``message`` to the chaincode."""

    context: TXContext
    message: ChaincodeMessage


@dataclass(frozen=True)
class ContextsStarted:
    """From a Handler, to the registry: contexts whose TRANSACTIONs it sent (a batch)."""

    contexts: tuple[TXContext, ...]


@dataclass(frozen=True)
class AdoptContexts:
    """From a Handler, to a registry that replaced a crashed one: contexts in flight."""

    contexts: tuple[TXContext, ...]


@dataclass(frozen=True)
class CountContexts:
    """Ask: how many contexts are live (optionally for one chaincode)."""

    chaincode: str | None = None


# Ended contexts kept at most before a sweep (each holds its simulator and results).
SWEEP_AT_LEAST = 256


@dataclass
class _Stats:
    created: int = 0
    released: int = 0


class TXContextRegistry(SupervisedActor):
    """Index of live transaction contexts (Fabric's ``TransactionContexts``, for the whole
    peer). A replacement for a crashed registry learns the contexts in flight from the
    Handlers (:class:`AdoptContexts`)."""

    child_name = "registry"

    def __init__(self, *, watcher: Watcher | None = None) -> None:
        super().__init__(watcher=watcher)
        self._contexts: dict[ContextKey, TXContext] = {}
        self._order: deque[TXContext] = deque()  # the indexed contexts, oldest first
        self._sweep_at = SWEEP_AT_LEAST
        self.stats = _Stats()

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is ContextsStarted:
            for ctx in message.contexts:
                self._index(ctx)
        elif kind is AdoptContexts:
            for ctx in message.contexts:
                if not ctx.done:
                    self._contexts.setdefault(ctx.key, ctx)
        elif kind is CountContexts:
            return len(self._live(message.chaincode))
        else:
            raise TypeError(f"TXContextRegistry: unexpected message {message!r}")
        return None

    def _index(self, ctx: TXContext) -> None:
        self.stats.created += 1
        if ctx.done:  # ended (COMPLETED, timeout) before the Handler's record got here
            self.stats.released += 1
            return
        # The Handler refused a duplicate of a live context; one that ended but is not
        # swept yet is simply replaced (its caller may reuse the txid at once, as in Fabric).
        self._contexts[ctx.key] = ctx
        order = self._order
        order.append(ctx)
        while order and order[0].done:
            self._release(order.popleft())
        if len(self._contexts) >= self._sweep_at:
            self._sweep()

    def _live(self, chaincode: str | None) -> list[TXContext]:
        return [c for k, c in self._contexts.items() if not c.done and chaincode in (None, k[0])]

    def _release(self, ctx: TXContext) -> None:
        key = ctx.key
        if self._contexts.get(key) is ctx:
            del self._contexts[key]
            self.stats.released += 1

    def _sweep(self) -> None:
        """Drop ended contexts; the next sweep comes when the index has doubled, so sweeping
        costs O(1) per transaction."""
        live = {k: c for k, c in self._contexts.items() if not c.done}
        self.stats.released += len(self._contexts) - len(live)
        self._contexts = live
        self._order = deque(c for c in self._order if not c.done)
        self._sweep_at = max(SWEEP_AT_LEAST, 2 * len(live))


__all__ = [
    "AdoptContexts",
    "ContextKey",
    "ContextsStarted",
    "CountContexts",
    "StartTransaction",
    "TXContext",
    "TXContextRegistry",
]
