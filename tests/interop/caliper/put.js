// Caliper workload: each transaction writes one key of the kv chaincode (a submit).
'use strict';

const { WorkloadModuleBase } = require('@hyperledger/caliper-core');

class Put extends WorkloadModuleBase {
    async submitTransaction() {
        this.txIndex = (this.txIndex || 0) + 1;
        const key = `w${this.workerIndex}-${this.txIndex}`;
        await this.sutAdapter.sendRequests({
            contractId: 'kv',
            contractFunction: 'put',
            contractArguments: [key, String(this.txIndex)],
            readOnly: false,
        });
    }
}

module.exports.createWorkloadModule = () => new Put();
