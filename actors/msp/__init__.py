"""Identities and signature policies as Fabric's MSP defines them.

Fabric counterparts: ``msp/`` (X.509 identities in Fabric's MSP folder layout, validation,
NodeOU roles, principals), ``bccsp/sw`` (low-S ECDSA), ``common/policydsl`` and
``common/cauthdsl`` (the signature policy language and its evaluation), and ``cryptogen``.

- :mod:`actors.msp.signatures`: sign and verify as Fabric's software BCCSP does.
- :mod:`actors.msp.msp`: :class:`MSP` (one organisation's trust roots), identities, the manager.
- :mod:`actors.msp.policies`: ``AND``/``OR``/``OutOf`` policies, envelopes, evaluation.
- :mod:`actors.msp.cryptogen`: ``ccactors crypto``, MSP folders for a newcomer.
"""
