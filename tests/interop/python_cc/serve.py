"""Start ``asset_cc.AssetChaincode`` as a chaincode service with fabric-chaincode-python.

Run with ``.venv-fabric-cc/bin/python`` and the library's own environment variables::

    CHAINCODE_ID=asset CHAINCODE_SERVER_ADDRESS=127.0.0.1:0 .venv-fabric-cc/bin/python serve.py

The library's ``start()`` does everything (grpc.aio server, ``protos.Chaincode/Connect``); this
script only quietens its logging: importing ``fabric_shim.logging`` sets the root logger to
DEBUG, and the handler logs several lines per message (one a WARNING, "-->> Look out!"). The
library's own "Server is listening at port :N" line (before the server starts accepting) is
kept, because with port 0 it is the only way to learn the port.

TLS: ``start()`` documents CORE_TLS_CLIENT_KEY_PATH / CORE_TLS_CLIENT_CERT_PATH (and
CORE_PEER_TLS_ROOTCERT_FILE for client authentication) as defaults, but it passes ``key=None``
on to the server factory explicitly, so those variables are never read. This script passes
files named by ASSET_CC_TLS_KEY / ASSET_CC_TLS_CERT / ASSET_CC_TLS_CLIENT_CA (PEM) instead.
"""

from __future__ import annotations

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from asset_cc import AssetChaincode
from fabric_chaincode_python.fabric_shim import server

if __name__ == "__main__":
    level = os.environ.get("ASSET_CC_LOG_LEVEL", "ERROR").upper()
    logging.getLogger("asyncio").setLevel(level)  # the library's LOGGER
    logging.getLogger().setLevel(logging.INFO)
    server.start(
        AssetChaincode,
        key=os.environ.get("ASSET_CC_TLS_KEY"),
        cert=os.environ.get("ASSET_CC_TLS_CERT"),
        client_ca_certs=os.environ.get("ASSET_CC_TLS_CLIENT_CA"),
    )
