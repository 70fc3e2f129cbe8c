"""The keys of Fabric 2.5's ``sampleconfig/core.yaml`` that ccactors does not use.

A core.yaml written for a Fabric peer loads here: these keys are reported once as ignored,
while a key that is neither Fabric's nor ours but close to one of ours is refused as a typo
(see ``actors.config``). Names only, grouped by section; lookups are case-insensitive, as
Viper's are.
"""

from __future__ import annotations

_SECTIONS = """
peer: id networkId listenAddress address addressAutoDetect chaincodeAddress mspConfigPath
    localMspType validatorPoolSize maxSendMsgSize
peer.gateway: enabled endorsementTimeout broadcastTimeout dialTimeout
peer.keepalive: interval timeout minInterval
peer.keepalive.client: interval timeout
peer.keepalive.deliveryClient: interval timeout
peer.gossip: bootstrap useLeaderElection orgLeader membershipTrackerInterval endpoint
    maxBlockCountToStore maxPropagationBurstLatency maxPropagationBurstSize propagateIterations
    propagatePeerNum pullInterval pullPeerNum requestStateInfoInterval publishStateInfoInterval
    stateInfoRetentionInterval publishCertPeriod skipBlockVerification dialTimeout connTimeout
    recvBuffSize sendBuffSize digestWaitTime requestWaitTime responseWaitTime aliveTimeInterval
    aliveExpirationTimeout reconnectInterval maxConnectionAttempts msgExpirationFactor
    externalEndpoint
peer.gossip.election: startupGracePeriod membershipSampleInterval leaderAliveThreshold
    leaderElectionDuration
peer.gossip.pvtData: pullRetryThreshold transientstoreMaxBlockRetention pushAckTimeout
    btlPullMargin reconcileBatchSize reconcileSleepInterval reconciliationEnabled
    skipPullingInvalidTransactionsDuringCommit
peer.gossip.pvtData.implicitCollectionDisseminationPolicy: requiredPeerCount maxPeerCount
peer.gossip.state: enabled checkInterval responseTimeout batchSize blockBufferSize maxRetries
peer.tls: clientAuthRequired cert.file key.file rootcert.file clientRootCAs.files
    clientKey.file clientCert.file
peer.client: connTimeout
peer.deliveryclient: blockGossipEnabled reconnectTotalTimeThreshold connTimeout
    reConnectBackoffThreshold addressOverrides
peer.profile: enabled listenAddress
peer.discovery: enabled authCacheEnabled authCacheMaxSize authCachePurgeRetentionRatio
    orgMembersAllowedAccess
vm.docker: attachStdout
vm.docker.tls: enabled ca.file cert.file key.file
chaincode: id.path id.name builder pull golang.runtime golang.dynamicLink java.runtime
    node.runtime externalBuilders
chaincode.logging: level shim format
ledger: blockchain
ledger.state: stateDatabase
ledger.state.couchDBConfig: couchDBAddress username password maxRetries maxRetriesOnStartup
    requestTimeout internalQueryLimit maxBatchUpdateSize createGlobalChangesDB cacheSize
    warmIndexesAfterNBlocks
ledger.pvtdataStore: collElgProcMaxDbBatchSize collElgProcDbBatchesInterval
    deprioritizedDataReconcilerInterval purgeInterval purgedKeyAuditLogging
ledger.snapshots: rootDir
operations: listenAddress
metrics: provider
metrics.statsd: network address writeInterval prefix
"""

# Sections whose contents Fabric reads as free-form maps or lists of plugins.
FREE_FORM = frozenset(
    {"peer.bccsp", "peer.handlers", "chaincode.system", "peer.deliveryclient.addressoverrides"}
)


def _parse(text: str) -> frozenset[str]:
    keys: set[str] = set()
    section = ""
    for line in text.strip().splitlines():
        head, colon, rest = line.partition(":")
        if colon and not line.startswith(" "):
            section, line = head, rest
        keys.update(f"{section}.{name}".lower() for name in line.split())
    return frozenset(keys)


FABRIC_KEYS = _parse(_SECTIONS)


def is_fabric_key(key: str) -> bool:
    """Whether ``key`` (dotted, any case) is a Fabric core.yaml key."""
    key = key.lower()
    parts = key.split(".")
    return key in FABRIC_KEYS or any(
        ".".join(parts[:i]) in FREE_FORM for i in range(1, len(parts) + 1)
    )
