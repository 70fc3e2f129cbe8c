"""Test hooks: what tests and the fault tool use to break or steer the peer on purpose.

Fabric counterpart: none (Go tests reach into packages directly); the idea is ``trio.testing``:
one module holds every hook, so production modules carry none and nothing outside tests and
developer tooling imports this.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Poison:
    """Fault injection: no actor handles this message, so telling it to one makes the actor
    raise inside ``on_receive`` and die the way a bug would kill it."""

    reason: str = "injected fault"
