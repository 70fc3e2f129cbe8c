"""ccactors: Hyperledger Fabric's peer-side chaincode support as a multiprocess actor system.

The package mirrors Fabric 2.x ``core/chaincode``: :mod:`actors.support` is the facade a peer
embeds (``ChaincodeSupport``), :mod:`actors.handler` speaks the protocol with one chaincode,
:mod:`actors.txcontexts`, :mod:`actors.launcher` and :mod:`actors.vmcontroller` are the actors
behind it, :mod:`actors.runtimes` run chaincode, :mod:`actors.transports` carry messages,
:mod:`actors.ledger` holds state and :mod:`actors.shim` is the chaincode side.
"""

__version__ = "0.1.0"
