"""The client-facing peer: Gateway and Endorser services, ordering and commit.

Fabric counterparts: ``internal/pkg/gateway`` (the Gateway service), ``core/endorser`` (proposal
checks, endorsement), ``orderer/common/blockcutter`` with ``orderer/consensus/solo`` (the
embedded ordering stage), ``protoutil`` (blocks) and ``core/committer/txvalidator/v20`` (the
committer's validation).

- :mod:`actors.gateway.proposal`: unpack and validate a signed proposal.
- :mod:`actors.gateway.endorsement`: proposal responses, endorsements, prepared transactions.
- :mod:`actors.gateway.blocks`: ``common.Block`` hash chain and orderer signatures.
- :mod:`actors.gateway.cutter`: Fabric's block cutter (BatchSize, BatchTimeout).
"""
