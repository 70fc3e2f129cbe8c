// Caliper workload: each transaction reads a key the put round wrote (an evaluate).
'use strict';

const { WorkloadModuleBase } = require('@hyperledger/caliper-core');

class Get extends WorkloadModuleBase {
    async submitTransaction() {
        this.txIndex = (this.txIndex || 0) + 1;
        await this.sutAdapter.sendRequests({
            contractId: 'kv',
            contractFunction: 'get',
            contractArguments: [`w${this.workerIndex}-1`],
            readOnly: true,
        });
    }
}

module.exports.createWorkloadModule = () => new Get();
