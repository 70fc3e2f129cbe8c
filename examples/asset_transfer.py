"""Asset transfer, after Fabric's asset-transfer-basic sample.

Functions: create ID OWNER VALUE, read ID, transfer ID NEW_OWNER, delete ID, list.
``transfer`` emits a ``Transfer`` event and records an audit line by calling the ``kv``
chaincode (chaincode-to-chaincode on the same channel, so both writes share one rwset).
"""

from __future__ import annotations

import json

from actors.shim import ChaincodeStub, Contract, Response, error, success

ASSET = "asset"


class AssetTransfer(Contract):
    def __init__(self, audit_chaincode: str = "kv") -> None:
        self.audit_chaincode = audit_chaincode

    def _key(self, stub: ChaincodeStub, asset_id: str) -> str:
        return stub.create_composite_key(ASSET, [asset_id])

    def _load(self, stub: ChaincodeStub, asset_id: str) -> dict | None:
        raw = stub.get_state(self._key(stub, asset_id))
        return json.loads(raw) if raw else None

    def fn_create(self, stub: ChaincodeStub, asset_id: str, owner: str, value: str) -> Response:
        if self._load(stub, asset_id) is not None:
            return error(f"asset {asset_id} already exists", status=409)
        asset = {"id": asset_id, "owner": owner, "value": int(value)}
        stub.put_state(self._key(stub, asset_id), json.dumps(asset).encode())
        return success(json.dumps(asset).encode())

    def fn_read(self, stub: ChaincodeStub, asset_id: str) -> Response:
        asset = self._load(stub, asset_id)
        if asset is None:
            return error(f"asset {asset_id} does not exist", status=404)
        return success(json.dumps(asset).encode())

    def fn_transfer(self, stub: ChaincodeStub, asset_id: str, new_owner: str) -> Response:
        asset = self._load(stub, asset_id)
        if asset is None:
            return error(f"asset {asset_id} does not exist", status=404)
        previous, asset["owner"] = asset["owner"], new_owner
        stub.put_state(self._key(stub, asset_id), json.dumps(asset).encode())
        audit = stub.invoke_chaincode(
            self.audit_chaincode, ["put", f"audit~{asset_id}", f"{previous}->{new_owner}"]
        )
        if audit.status >= 400:
            return error(f"audit failed: {audit.message}")
        stub.set_event(
            "Transfer", json.dumps({"id": asset_id, "from": previous, "to": new_owner}).encode()
        )
        return success(json.dumps(asset).encode())

    def fn_delete(self, stub: ChaincodeStub, asset_id: str) -> Response:
        if self._load(stub, asset_id) is None:
            return error(f"asset {asset_id} does not exist", status=404)
        stub.del_state(self._key(stub, asset_id))
        return success()

    def fn_list(self, stub: ChaincodeStub) -> Response:
        with stub.get_state_by_partial_composite_key(ASSET, []) as results:
            assets = [json.loads(kv.value) for kv in results]
        return success(json.dumps(assets).encode())
