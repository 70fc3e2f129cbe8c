/*
 * A low-level chaincode written against the real fabric-shim 2.5.8 (Init/Invoke, no contract
 * API), run by tests/interop/test_node.py against the ccactors peer:
 *
 *     node lowlevel.js --peer.address HOST:PORT    (id from CORE_CHAINCODE_ID_NAME)
 *
 * Functions (args after the function name):
 *   put KEY VALUE     write a key and emit the event "put" with payload KEY
 *   get KEY           the value (404 if missing)
 *   del KEY           delete a key
 *   range START END   keys in [START, END) as a JSON object {key: value}
 *   fail MESSAGE      shim.error(MESSAGE)
 *   creator           the creator's MSP id (from the signed proposal)
 */

'use strict';

const shim = require('fabric-shim');

class LowLevelChaincode {
    async Init(stub) {
        const { fcn } = stub.getFunctionAndParameters();
        return shim.success(Buffer.from(`init ${fcn}`));
    }

    async Invoke(stub) {
        const { fcn, params } = stub.getFunctionAndParameters();
        const method = this[`fn_${fcn}`];
        if (typeof method !== 'function') {
            return shim.error(`unknown function ${fcn}`);
        }
        try {
            return await method.call(this, stub, ...params);
        } catch (err) {
            return shim.error(`${fcn} failed: ${err.message}`);
        }
    }

    async fn_put(stub, key, value) {
        await stub.putState(key, Buffer.from(value));
        stub.setEvent('put', Buffer.from(key));
        return shim.success();
    }

    async fn_get(stub, key) {
        const value = await stub.getState(key);
        if (!value || value.length === 0) {
            return { status: 404, message: `key ${key} not found`, payload: Buffer.alloc(0) };
        }
        return shim.success(value);
    }

    async fn_del(stub, key) {
        await stub.deleteState(key);
        return shim.success();
    }

    async fn_range(stub, start, end) {
        const items = {};
        const iterator = await stub.getStateByRange(start, end);
        try {
            for (;;) {
                const next = await iterator.next();
                if (next.value) {
                    items[next.value.key] = Buffer.from(next.value.value).toString('utf8');
                }
                if (next.done) {
                    break;
                }
            }
        } finally {
            await iterator.close();
        }
        return shim.success(Buffer.from(JSON.stringify(items)));
    }

    async fn_fail(stub, message) {
        return shim.error(message);
    }

    async fn_creator(stub) {
        const creator = stub.getCreator();
        return shim.success(Buffer.from(creator ? creator.mspid : ''));
    }
}

shim.start(new LowLevelChaincode());
