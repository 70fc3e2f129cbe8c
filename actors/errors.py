"""Typed errors a caller of :class:`~actors.support.ChaincodeSupport` can get back.

The messages keep Fabric's texts (``core/chaincode``) so logs and tests read the same; the types
let embedding code tell a timeout from a crash without parsing strings.
"""

from __future__ import annotations


class ChaincodeError(Exception):
    """Base class of every error raised by chaincode support."""


class UnknownChaincode(ChaincodeError):
    """No definition and no registered handler for this chaincode name."""


class LaunchError(ChaincodeError):
    """The chaincode could not be started or did not register (Fabric: launch failures)."""


class StartupTimeout(LaunchError):
    """REGISTER -> READY did not happen within the startup timeout."""


class ChaincodeRestarting(LaunchError):
    """The chaincode is down and waiting to be restarted; its policy says fail fast."""


class ChaincodeFailed(LaunchError):
    """The chaincode's supervisor gave up restarting it (restart intensity exceeded). An
    explicit ``launch`` tries again."""


class DuplicateTransaction(ChaincodeError):
    """A context for this (chaincode, channel, txid) exists already (``txid: X(Y) exists``)."""


class ExecuteTimeout(ChaincodeError):
    """No COMPLETED/ERROR within the execute timeout."""


class ChaincodeStreamTerminated(ChaincodeError):
    """The connection to the chaincode ended while the transaction was in flight."""


class TransactionFailed(ChaincodeError):
    """The chaincode answered ERROR (``transaction returned with failure: ...``)."""


class InvalidRequest(ChaincodeError, ValueError):
    """Bad arguments from the caller (empty channel, non-bytes args, ...)."""


class SupportShutdown(ChaincodeError):
    """Chaincode support has been shut down."""


class UnknownChannel(ChaincodeError):
    """The peer has no such channel (Fabric's endorser: ``channel '%s' not found``)."""


class LifecycleError(InvalidRequest):
    """An install or definition the lifecycle refuses (bad package, invalid definition)."""


class InvalidInvocation(ChaincodeError):
    """Fabric's ``CheckInvocation`` refused the call (initialisation rules)."""


class PermissionDenied(ChaincodeError):
    """The caller may not do this: the admin API over TLS takes only admin identities of the
    peer's organisation."""


class PeerUnavailable(ChaincodeError):
    """A client could not reach the peer (refused, closed, wrong TLS): a connection problem,
    not the chaincode's."""


class PeerMismatch(PeerUnavailable):
    """The address answers, but not as the client speaks to it (TLS against plaintext, no
    client certificate, not the admin API): retrying will not help."""
