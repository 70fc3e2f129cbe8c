"""Callers racing a shutdown all get an answer: nothing waits for its timeout, nothing hangs."""

from __future__ import annotations

import threading
import time
from collections import Counter

from actors.config import ChaincodeDefinition, Config
from actors.errors import ChaincodeError
from actors.support import ChaincodeSupport


def test_calls_in_flight_during_shutdown_all_end() -> None:
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    for _ in range(3):
        support = ChaincodeSupport(
            Config(
                channels=("ch",),
                chaincodes=(ChaincodeDefinition("kv", target="examples.kv:KVChaincode"),),
            )
        )
        support.launch("kv")
        stop = threading.Event()

        def client(support: ChaincodeSupport = support, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                try:
                    support.execute_async("ch", None, "kv", ["put", "k", "v"]).result(10)
                    kind = "ok"
                except ChaincodeError as exc:
                    kind = type(exc).__name__
                except TimeoutError:
                    kind = "HUNG"
                with lock:
                    outcomes[kind] += 1
                if kind not in ("ok", "ChaincodeStreamTerminated"):
                    return

        clients = [threading.Thread(target=client) for _ in range(8)]
        for thread in clients:
            thread.start()
        time.sleep(0.3)
        support.shutdown()
        for thread in clients:
            thread.join(15)
        stop.set()
        assert not any(thread.is_alive() for thread in clients)
    assert outcomes["HUNG"] == 0, outcomes
    assert outcomes["ok"] > 0
    assert outcomes["SupportShutdown"] >= 8, outcomes
