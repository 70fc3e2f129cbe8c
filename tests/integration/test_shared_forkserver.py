"""Several ChaincodeSupports in one process share the interpreter's fork server."""

from __future__ import annotations

import multiprocessing
import threading
from multiprocessing import forkserver

from actors.config import ChaincodeDefinition, Config
from actors.runtimes import system
from actors.support import ChaincodeSupport


def test_shutting_one_peer_down_leaves_the_other_working() -> None:
    config = Config(
        channels=("ch",),
        chaincodes=(ChaincodeDefinition("kv", target="examples.kv:KVChaincode"),),
    )
    first, second = ChaincodeSupport(config), ChaincodeSupport(config)
    try:
        first.launch("kv")
        second.launch("kv")
        done = threading.Event()
        stopper = threading.Thread(target=lambda: (second.shutdown(), done.set()), daemon=True)
        stopper.start()
        assert done.wait(30), "shutdown hung while another peer still uses the fork server"
        assert first.invoke("ch", None, "kv", ["put", "k", "v"]).committed
    finally:
        first.shutdown()
    assert multiprocessing.active_children() == []
    if system._forkserver_users == 0:  # unless another test's peer is still open
        # The last user gone, the fork server is stopped too.
        assert forkserver._forkserver._forkserver_pid is None
