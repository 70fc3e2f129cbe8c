"""Fabric 2.x chaincode lifecycle: installed packages, channels, per-channel definitions, and
the invocation rules that map a chaincode name on a channel to the package that runs it.

Fabric counterparts: ``core/chaincode/lifecycle``, ``core/chaincode/persistence`` and
``core/chaincode/chaincode_support.go`` (``CheckInvocation``). One module per role:
:mod:`.packages` (the install directory), :mod:`.channels`, :mod:`.definitions`
(policies are :mod:`actors.msp.policies`), :mod:`.invocation` (name -> package id, the
initialisation rules, dev mode's implicit definitions).
"""
