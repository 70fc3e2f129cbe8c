// Drive a ccactors peer with the official Fabric Gateway client (@hyperledger/fabric-gateway),
// unmodified. Reads one JSON object from stdin:
//   {"address": "127.0.0.1:7051", "tlsRootCert": "...ca.crt", "hostOverride": "peer0...",
//    "mspId": "Org1MSP", "certPath": "...cert.pem", "keyPath": "...priv_sk",
//    "channel": "mychannel", "steps": [{"op": "submit", "chaincode": "kv", "args": [...]}, ...]}
// and prints one JSON line per step: {"ok": true, ...} or {"ok": false, "error": {...}}.
// Block events ("blocks", "watchBlocks", "checkpointResume") take "kind": "block" | "filtered" |
// "private" (getBlockEvents, getFilteredBlockEvents, getBlockAndPrivateDataEvents).
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const grpc = require('@grpc/grpc-js');
const { checkpointers, connect, hash, signers } = require('@hyperledger/fabric-gateway');
const { common } = require('@hyperledger/fabric-protos');

const utf8 = new TextDecoder();

function describeError(err) {
    return {
        name: err.constructor && err.constructor.name,
        code: err.code,
        message: err.message,
        transactionId: err.transactionId,
        details: (err.details || []).map((d) => ({ address: d.address, mspId: d.mspId, message: d.message })),
    };
}

async function firstEvents(events, count) {
    const out = [];
    try {
        for await (const event of events) {
            out.push({
                blockNumber: Number(event.blockNumber),
                chaincodeName: event.chaincodeName,
                eventName: event.eventName,
                transactionId: event.transactionId,
                payload: utf8.decode(event.payload),
            });
            if (out.length >= count) break;
        }
    } finally {
        events.close();
    }
    return out;
}

// What a test needs of each kind of block the client's block events yield.
function describeBlock(kind, block) {
    if (kind === 'filtered') {
        return {
            number: Number(block.getNumber()),
            channel: block.getChannelId(),
            transactions: block.getFilteredTransactionsList().map((tx) => ({
                transactionId: tx.getTxid(),
                code: tx.getTxValidationCode(),
                events: (tx.getTransactionActions()?.getChaincodeActionsList() || []).map((a) => ({
                    chaincodeName: a.getChaincodeEvent().getChaincodeId(),
                    eventName: a.getChaincodeEvent().getEventName(),
                    payloadLength: a.getChaincodeEvent().getPayload_asU8().length,
                })),
            })),
        };
    }
    const full = kind === 'private' ? block.getBlock() : block;
    const codes = full.getMetadata().getMetadataList_asU8()[common.BlockMetadataIndex.TRANSACTIONS_FILTER];
    const out = {
        number: Number(full.getHeader().getNumber()),
        transactionIds: full.getData().getDataList_asU8().map((data) => {
            const payload = common.Payload.deserializeBinary(common.Envelope.deserializeBinary(data).getPayload_asU8());
            return common.ChannelHeader.deserializeBinary(payload.getHeader().getChannelHeader_asU8()).getTxId();
        }),
        codes: Array.from(codes),
    };
    if (kind === 'private') out.privateDataCount = block.getPrivateDataMapMap().getLength();
    return out;
}

function blockEvents(network, kind, options) {
    switch (kind) {
        case 'block':
            return network.getBlockEvents(options);
        case 'filtered':
            return network.getFilteredBlockEvents(options);
        case 'private':
            return network.getBlockAndPrivateDataEvents(options);
        default:
            throw new Error(`unknown block kind ${kind}`);
    }
}

async function firstBlocks(events, kind, count, onBlock) {
    const out = [];
    try {
        for await (const block of events) {
            out.push(describeBlock(kind, block));
            if (onBlock) await onBlock(block);
            if (out.length >= count) break;
        }
    } finally {
        events.close();
    }
    return out;
}

async function step(network, s) {
    const contract = network.getContract(s.chaincode);
    const args = s.args || [];
    switch (s.op) {
        case 'evaluate':
            return { result: utf8.decode(await contract.evaluateTransaction(...args)) };
        case 'submit':
            return { result: utf8.decode(await contract.submitTransaction(...args)) };
        case 'submitAsync': {
            const commit = await contract.submitAsync(args[0], { arguments: args.slice(1) });
            const status = await commit.getStatus();
            return {
                result: utf8.decode(commit.getResult()),
                transactionId: status.transactionId,
                code: status.code,
                successful: status.successful,
                blockNumber: Number(status.blockNumber),
            };
        }
        case 'conflict': {
            // Endorse the same read-write transaction twice before submitting either: both read
            // one version, so the second to commit must fail validation with MVCC_READ_CONFLICT.
            const endorsed = [];
            for (let i = 0; i < 2; i++) {
                endorsed.push(await contract.newProposal(args[0], { arguments: args.slice(1) }).endorse());
            }
            const statuses = [];
            for (const transaction of endorsed) {
                const status = await (await transaction.submit()).getStatus();
                statuses.push({ code: status.code, successful: status.successful });
            }
            return { statuses };
        }
        case 'watch': {
            // Listen from the next commit, then submit: the event arrives live.
            const events = await network.getChaincodeEvents(s.chaincode);
            const commit = await contract.submitAsync(args[0], { arguments: args.slice(1) });
            const status = await commit.getStatus();
            return { transactionId: status.transactionId, events: await firstEvents(events, 1) };
        }
        case 'events': {
            const options = s.startBlock === undefined ? {} : { startBlock: BigInt(s.startBlock) };
            const events = await network.getChaincodeEvents(s.chaincode, options);
            return { events: await firstEvents(events, s.count || 1) };
        }
        case 'blocks': {
            // Block events of one kind from a start block: replayed from the ledger.
            const events = await blockEvents(network, s.kind, { startBlock: BigInt(s.startBlock) });
            return { blocks: await firstBlocks(events, s.kind, s.count || 1) };
        }
        case 'watchBlocks': {
            // Block events from the next commit, then submit: the block arrives live.
            const events = await blockEvents(network, s.kind, {});
            const commit = await contract.submitAsync(args[0], { arguments: args.slice(1) });
            const status = await commit.getStatus();
            return { transactionId: status.transactionId, blocks: await firstBlocks(events, s.kind, 1) };
        }
        case 'checkpointResume': {
            // Read one block from startBlock, checkpoint it, close; resume from the checkpoint.
            const checkpointer = checkpointers.inMemory();
            const first = await blockEvents(network, s.kind, { startBlock: BigInt(s.startBlock) });
            const before = await firstBlocks(first, s.kind, 1, async (block) => {
                const number = s.kind === 'filtered' ? block.getNumber() : block.getHeader().getNumber();
                await checkpointer.checkpointBlock(BigInt(number));
            });
            const resumed = await blockEvents(network, s.kind, { checkpoint: checkpointer });
            return { before, after: await firstBlocks(resumed, s.kind, 1) };
        }
        default:
            throw new Error(`unknown op ${s.op}`);
    }
}

async function main() {
    const spec = JSON.parse(fs.readFileSync(0, 'utf8'));
    const credentials = spec.tlsRootCert
        ? grpc.credentials.createSsl(fs.readFileSync(spec.tlsRootCert))
        : grpc.credentials.createInsecure();
    const options = spec.hostOverride ? { 'grpc.ssl_target_name_override': spec.hostOverride } : {};
    const client = new grpc.Client(spec.address, credentials, options);
    const deadline = () => ({ deadline: Date.now() + (spec.timeoutMs || 20000) });
    const gateway = connect({
        client,
        identity: { mspId: spec.mspId, credentials: fs.readFileSync(spec.certPath) },
        signer: signers.newPrivateKeySigner(crypto.createPrivateKey(fs.readFileSync(spec.keyPath))),
        hash: hash.sha256,
        evaluateOptions: deadline,
        endorseOptions: deadline,
        submitOptions: deadline,
        commitStatusOptions: deadline,
    });
    try {
        const network = gateway.getNetwork(spec.channel);
        for (const s of spec.steps) {
            try {
                console.log(JSON.stringify({ ok: true, ...(await step(network, s)) }));
            } catch (err) {
                console.log(JSON.stringify({ ok: false, error: describeError(err) }));
            }
        }
    } finally {
        gateway.close();
        client.close();
    }
}

main().catch((err) => {
    console.error(err);
    process.exit(2);
});
