"""Private data: collections, hashed read/write sets, the transient store, purging.

Fabric counterparts: ``core/common/privdata`` (collections and access), ``core/ledger``'s
private data parts (``pvtdatastorage``, ``pvtstatepurgemgmt``) and ``core/transientstore``.

- :mod:`actors.privdata.collections`: the collections config, its validation, implicit org
  collections, who may read and write.
"""
