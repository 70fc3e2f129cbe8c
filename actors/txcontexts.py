"""Transaction contexts and the TXContext registry actor.

Fabric counterpart: ``core/chaincode/transaction_context(s).go``. A :class:`TXContext` holds
what the Handler needs to serve one transaction's shim requests (simulator, proposal, open
query iterators) and the future its caller waits on. The :class:`TXContextRegistry` actor owns
the index of live contexts keyed by (chaincode, channel, txid) and rejects duplicates with
Fabric's ``txid: X(Y) exists``.

The registry sits *beside* the pipeline, as Fabric's per-handler ``TransactionContexts``
would if it were shared: the caller tells the chaincode's Handler :class:`StartTransaction`
directly, and the Handler, which owns the contexts of its connection, refuses a duplicate
(channel, txid) with Fabric's text before anything is sent. It tells the registry
(:class:`ContextsStarted`) only about what is still in flight a batch later, or at a tick
(:data:`actors.handler.RECORD_AFTER`), so most transactions never wake the registry, and none
waits for it. The registry keeps the index of live contexts, for counts and for what a
replacement of a crashed registry learns from the Handlers, and holds them weakly (see
:class:`TXContextRegistry`).
"""

from __future__ import annotations

import threading
import weakref
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
        "__weakref__",
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


class TXContextRegistry(SupervisedActor):
    """Index of live transaction contexts (Fabric's ``TransactionContexts``, for the whole
    peer). A replacement for a crashed registry learns the contexts in flight from the
    Handlers (:class:`AdoptContexts`).

    The index holds its contexts weakly: a live one is always held by its Handler, and one
    that has ended leaves the index as soon as nobody else holds it. The registry is told of
    starts, never of ends (that would wake it once more per transaction), and a context it
    kept alive would carry its simulator and results into the garbage collector's oldest
    generation, whose full collections scan the whole heap (tens of ms each)."""

    child_name = "registry"

    def __init__(self, *, watcher: Watcher | None = None) -> None:
        super().__init__(watcher=watcher)
        self._contexts: weakref.WeakValueDictionary[ContextKey, TXContext] = (
            weakref.WeakValueDictionary()
        )

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is ContextsStarted or kind is AdoptContexts:
            contexts = self._contexts
            for ctx in message.contexts:
                # An ended context (COMPLETED or timeout before the record got here) is not
                # indexed; one in the index that has ended is replaced (its caller may reuse
                # the txid at once, as in Fabric: the Handler refused it if still live).
                if not ctx.done:
                    contexts[ctx.key] = ctx
        elif kind is CountContexts:
            return len(self._live(message.chaincode))
        else:
            raise TypeError(f"TXContextRegistry: unexpected message {message!r}")
        return None

    def indexed(self) -> int:
        """Contexts in the index, ended or not (for tests: ended ones do not stay)."""
        return len(self._contexts)

    def _live(self, chaincode: str | None) -> list[TXContext]:
        return [
            c
            for c in list(self._contexts.values())
            if not c.done and chaincode in (None, c.chaincode)
        ]


__all__ = [
    "AdoptContexts",
    "ContextKey",
    "ContextsStarted",
    "CountContexts",
    "StartTransaction",
    "TXContext",
    "TXContextRegistry",
]
