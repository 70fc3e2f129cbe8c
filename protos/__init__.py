"""Protocol buffers for the peer <-> chaincode protocol, wire-compatible with Fabric.

The ``.proto`` sources keep Fabric's package names (``protos``, ``common``, ``msp``,
``queryresult``, ``rwset``, ``kvrwset``), message names and field numbers, so the bytes and
the gRPC method paths (``/protos.ChaincodeSupport/Register``, ``/protos.Chaincode/Connect``)
are Fabric's. Generated modules sit next to their sources; regenerate with ``make protos``.
"""
