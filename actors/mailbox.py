"""Sending to actors that may have stopped.

A tell to a stopped pykka actor raises ActorDeadError. For notifications (an exit, a timeout,
a finished callee) a dead recipient has nothing left to learn, so the message is dropped.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pykka


def tell_quietly(ref: pykka.ActorRef[Any], message: Any) -> None:
    """``ref.tell(message)``, doing nothing if the actor has stopped."""
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(message)
