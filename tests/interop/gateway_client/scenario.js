// Drive a ccactors peer with the official Fabric Gateway client (@hyperledger/fabric-gateway),
// unmodified. Reads one JSON object from stdin:
//   {"address": "127.0.0.1:7051", "tlsRootCert": "...ca.crt", "hostOverride": "peer0...",
//    "mspId": "Org1MSP", "certPath": "...cert.pem", "keyPath": "...priv_sk",
//    "channel": "mychannel", "steps": [{"op": "submit", "chaincode": "kv", "args": [...]}, ...]}
// and prints one JSON line per step: {"ok": true, ...} or {"ok": false, "error": {...}}.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const grpc = require('@grpc/grpc-js');
const { connect, hash, signers } = require('@hyperledger/fabric-gateway');

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
