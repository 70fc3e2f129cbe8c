/*
 * A private data contract against the real fabric-contract-api / fabric-shim 2.5.8 (the flows
 * of fabric-samples' asset-transfer-private-data and asset-transfer-ledger-queries), run by
 * tests/interop/test_node.py against the ccactors peer.
 *
 * Values come from the transient map (key "value"), never from the arguments. Every
 * transaction returns JSON.
 */

'use strict';

const crypto = require('crypto');
const { Contract } = require('fabric-contract-api');

function text(bytes) {
    return Buffer.from(bytes).toString('utf8');
}

// Queries resolve to an iterator or, for ranges, to { iterator } (as the shim's own
// async-iterator wrapper accepts both).
async function drain(resolved) {
    const iterator = resolved.iterator ? resolved.iterator : resolved;
    const out = [];
    let item = await iterator.next();
    while (!item.done) {
        out.push({ key: item.value.key, value: text(item.value.value) });
        item = await iterator.next();
    }
    await iterator.close();
    return out;
}

class PrivateContract extends Contract {
    constructor() {
        super('pvt');
    }

    async put(ctx, collection, key) {
        const value = ctx.stub.getTransient().get('value');
        if (!value) {
            throw new Error('the value goes in the transient map under "value"');
        }
        await ctx.stub.putPrivateData(collection, key, value);
        return { written: key };
    }

    async get(ctx, collection, key) {
        const bytes = await ctx.stub.getPrivateData(collection, key);
        return { value: bytes && bytes.length > 0 ? text(bytes) : null };
    }

    async hash(ctx, collection, key) {
        const bytes = await ctx.stub.getPrivateDataHash(collection, key);
        return { hash: Buffer.from(bytes).toString('hex') };
    }

    // getPrivateDataHash is how a peer outside the collection checks a value it was shown.
    async verify(ctx, collection, key) {
        const claimed = ctx.stub.getTransient().get('value');
        const onChain = Buffer.from(await ctx.stub.getPrivateDataHash(collection, key)).toString('hex');
        const digest = crypto.createHash('sha256').update(claimed).digest('hex');
        return { matches: digest === onChain };
    }

    async remove(ctx, collection, key) {
        await ctx.stub.deletePrivateData(collection, key);
        return { deleted: key };
    }

    async purge(ctx, collection, key) {
        await ctx.stub.purgePrivateData(collection, key);
        return { purged: key };
    }

    async privateRange(ctx, collection, start, end) {
        return drain(await ctx.stub.getPrivateDataByRange(collection, start, end));
    }

    async privateQuery(ctx, collection, query) {
        return drain(await ctx.stub.getPrivateDataQueryResult(collection, query));
    }

    async putPublic(ctx, key, value) {
        await ctx.stub.putState(key, Buffer.from(value));
        return { written: key };
    }

    async query(ctx, query) {
        const out = [];
        for await (const kv of ctx.stub.getQueryResult(query)) {
            out.push({ key: kv.key, value: text(kv.value) });
        }
        return out;
    }

    async queryPage(ctx, query, pageSize, bookmark) {
        const { iterator, metadata } = await ctx.stub.getQueryResultWithPagination(
            query, Number(pageSize), bookmark);
        const results = await drain(iterator);
        return { results, fetched: metadata.fetchedRecordsCount, bookmark: metadata.bookmark };
    }

    // A read followed by a private query: Fabric refuses private queries after writes.
    async writeThenPrivateQuery(ctx, collection) {
        await ctx.stub.putState('marker', Buffer.from('1'));
        return drain(await ctx.stub.getPrivateDataQueryResult(collection, '{"selector":{}}'));
    }
}

module.exports.PrivateContract = PrivateContract;
