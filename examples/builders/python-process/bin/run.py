"""bin/run of the python-process example builder: read chaincode.json, then become the shim.

chaincode.json (Fabric's run metadata): chaincode_id, peer_address, client_cert, client_key,
root_cert (PEM, empty without TLS) and mspid. The TLS files go next to it, in the run metadata
directory, which the peer removes when this process ends.
"""

import base64
import json
import os
import sys
from pathlib import Path

build, run_metadata = Path(sys.argv[1]), Path(sys.argv[2])
config = json.loads((run_metadata / "chaincode.json").read_text())
target = json.loads((build / "metadata.json").read_text())["target"]
env = dict(os.environ)
env["CORE_CHAINCODE_ID_NAME"] = config["chaincode_id"]
env["CORE_PEER_LOCALMSPID"] = config["mspid"]
env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(build / "src"), env.get("PYTHONPATH")]))
if config["client_cert"]:
    files = {
        "peer.crt": config["root_cert"].encode(),
        "client_pem.crt": config["client_cert"].encode(),
        "client_pem.key": config["client_key"].encode(),
        "client.crt": base64.b64encode(config["client_cert"].encode()),
        "client.key": base64.b64encode(config["client_key"].encode()),
    }
    for name, data in files.items():
        (run_metadata / name).write_bytes(data)
        (run_metadata / name).chmod(0o600)
    env.update(
        CORE_PEER_TLS_ENABLED="true",
        CORE_PEER_TLS_ROOTCERT_FILE=str(run_metadata / "peer.crt"),
        CORE_TLS_CLIENT_CERT_FILE=str(run_metadata / "client_pem.crt"),
        CORE_TLS_CLIENT_KEY_FILE=str(run_metadata / "client_pem.key"),
        CORE_TLS_CLIENT_CERT_PATH=str(run_metadata / "client.crt"),
        CORE_TLS_CLIENT_KEY_PATH=str(run_metadata / "client.key"),
    )
else:
    env["CORE_PEER_TLS_ENABLED"] = "false"
command = [sys.executable, "-m", "actors.shim", "--peer.address", config["peer_address"], target]
os.execve(sys.executable, command, env)
