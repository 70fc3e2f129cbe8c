/*
 * An asset contract written against the real fabric-contract-api 2.5.8, run by
 * tests/interop/test_node.py against the ccactors peer.
 *
 * Every transaction here exercises one piece of what the Node contract API needs from a peer:
 * state reads and writes, range queries that span several QUERY_STATE_NEXT batches, key
 * history (with timestamps), chaincode events, chaincode-to-chaincode calls, error responses,
 * the client identity taken from the signed proposal, and returning objects (which goes through
 * class-transformer's classToPlain, hence the 0.4.0 pin in package.json).
 *
 * Parameters arrive as strings (no metadata annotations); objects are returned as JSON.
 */

'use strict';

const { Contract } = require('fabric-contract-api');

const ASSET_PREFIX = 'asset-';

function assetKey(id) {
    return ASSET_PREFIX + id;
}

function decode(bytes) {
    return Buffer.from(bytes).toString('utf8');
}

class AssetContract extends Contract {
    constructor() {
        super('assets');
    }

    async _load(ctx, id) {
        const bytes = await ctx.stub.getState(assetKey(id));
        if (!bytes || bytes.length === 0) {
            throw new Error(`asset ${id} does not exist`);
        }
        return JSON.parse(decode(bytes));
    }

    async create(ctx, id, owner, value) {
        const existing = await ctx.stub.getState(assetKey(id));
        if (existing && existing.length > 0) {
            throw new Error(`asset ${id} already exists`);
        }
        const asset = { id, owner, value: Number(value) };
        await ctx.stub.putState(assetKey(id), Buffer.from(JSON.stringify(asset)));
        ctx.stub.setEvent('AssetCreated', Buffer.from(JSON.stringify(asset)));
        return asset;
    }

    async read(ctx, id) {
        return this._load(ctx, id);
    }

    async exists(ctx, id) {
        const bytes = await ctx.stub.getState(assetKey(id));
        return Boolean(bytes && bytes.length > 0);
    }

    async update(ctx, id, owner, value) {
        const asset = await this._load(ctx, id);
        asset.owner = owner;
        asset.value = Number(value);
        await ctx.stub.putState(assetKey(id), Buffer.from(JSON.stringify(asset)));
        return asset;
    }

    async remove(ctx, id) {
        await this._load(ctx, id);
        await ctx.stub.deleteState(assetKey(id));
        return `deleted ${id}`;
    }

    // Writes `count` assets with zero-padded ids so that key order is numeric order.
    async createMany(ctx, count) {
        const n = parseInt(count, 10);
        for (let i = 0; i < n; i++) {
            const id = `bulk${String(i).padStart(5, '0')}`;
            const asset = { id, owner: 'bulk', value: i };
            await ctx.stub.putState(assetKey(id), Buffer.from(JSON.stringify(asset)));
        }
        return n;
    }

    // Every asset, in key order, through the async iterator (several batches when > 100).
    async list(ctx) {
        const assets = [];
        const iterator = ctx.stub.getStateByRange(ASSET_PREFIX, ASSET_PREFIX + '\uffff');
        for await (const kv of iterator) {
            assets.push({ key: kv.key, asset: JSON.parse(decode(kv.value)) });
        }
        return assets;
    }

    // Stops after `count` keys: the for-await `break` makes the shim send QUERY_STATE_CLOSE.
    async firstKeys(ctx, count) {
        const n = parseInt(count, 10);
        const keys = [];
        for await (const kv of ctx.stub.getStateByRange(ASSET_PREFIX, ASSET_PREFIX + '\uffff')) {
            if (keys.length >= n) {
                break;
            }
            keys.push(kv.key);
        }
        return keys;
    }

    async history(ctx, id) {
        const entries = [];
        for await (const mod of ctx.stub.getHistoryForKey(assetKey(id))) {
            entries.push({
                txId: mod.txId,
                isDelete: mod.isDelete,
                value: mod.isDelete ? null : decode(mod.value),
                timestamp: mod.timestamp,
            });
        }
        return entries;
    }

    // Calls another chaincode with a JSON array of string arguments; returns its Response.
    async callOther(ctx, chaincode, argsJson) {
        const args = JSON.parse(argsJson);
        const response = await ctx.stub.invokeChaincode(chaincode, args, '');
        return {
            status: response.status,
            message: response.message,
            payload: decode(response.payload),
        };
    }

    // Writes an asset, then calls another chaincode: both writes belong to one transaction.
    async createAndCall(ctx, id, owner, value, chaincode, argsJson) {
        const asset = { id, owner, value: Number(value) };
        await ctx.stub.putState(assetKey(id), Buffer.from(JSON.stringify(asset)));
        const called = await this.callOther(ctx, chaincode, argsJson);
        if (called.status >= 400) {
            throw new Error(`${chaincode} answered ${called.status}: ${called.message}`);
        }
        return { asset, called };
    }

    async fail(ctx, message) {
        // A write before the throw: the peer must not commit it.
        await ctx.stub.putState('failed-write', Buffer.from(message));
        throw new Error(`deliberate failure: ${message}`);
    }

    async whoami(ctx) {
        return {
            id: ctx.clientIdentity.getID(),
            mspid: ctx.clientIdentity.getMSPID(),
            txid: ctx.stub.getTxID(),
            channel: ctx.stub.getChannelID(),
            txTime: ctx.stub.getDateTimestamp().toISOString(),
        };
    }
}

const { PrivateContract } = require('./privdata');

module.exports.AssetContract = AssetContract;
module.exports.PrivateContract = PrivateContract;
module.exports.contracts = [AssetContract, PrivateContract];
