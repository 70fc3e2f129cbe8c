"""The channels this peer has joined.

Fabric counterpart: the peer's channel set (``core/peer``: ``Peer.Channel``) as the endorser
consults it: a proposal naming any other channel gets ``channel '%s' not found``. Channels come
from the configuration (``[[channels]] name = "..."``), ``serve --channel NAME``, the admin API
(:meth:`Channels.join`), or ledgers an earlier run left on disk; with none at all the peer has
the one channel ``mychannel``. No query ever creates a channel.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable

from actors.errors import LifecycleError, UnknownChannel

DEFAULT_CHANNEL = "mychannel"
MAX_CHANNEL_LENGTH = 249
# Fabric's configtx.ValidateChannelID: lower case letters, digits, '.' and '-', starting with
# a letter.
_CHANNEL = re.compile(r"[a-z][a-z0-9.-]*")


def check_channel_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise LifecycleError("channel ID illegal, cannot be empty")
    if len(name) > MAX_CHANNEL_LENGTH:
        raise LifecycleError(f"channel ID illegal, cannot be longer than {MAX_CHANNEL_LENGTH}")
    if not _CHANNEL.fullmatch(name):
        raise LifecycleError(
            f"'{name}' contains illegal characters: a channel name starts with a lower-case "
            "letter and holds only lower-case letters, digits, '.' and '-'"
        )
    return name


class Channels:
    """The joined channels. ``on_join`` runs for a channel joined after start (it opens the
    channel's ledger, which is what makes the join survive a restart on a file ledger)."""

    def __init__(
        self, names: Iterable[str] = (), *, on_join: Callable[[str], None] | None = None
    ) -> None:
        ordered = list(dict.fromkeys(check_channel_name(n) for n in names))
        self._names: list[str] = ordered or [DEFAULT_CHANNEL]
        # Every transaction asks; a join replaces the set whole, so readers take no lock.
        self._joined = frozenset(self._names)
        self._lock = threading.Lock()
        self._on_join = on_join

    def names(self) -> list[str]:
        with self._lock:
            return list(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._joined

    def check(self, name: str) -> str:
        """``name`` if joined, else Fabric's error for an unknown channel."""
        if name not in self:
            raise UnknownChannel(f"channel '{name}' not found")
        return name

    def join(self, name: str) -> bool:
        """Join ``name``; False when already joined."""
        check_channel_name(name)
        with self._lock:
            if name in self._names:
                return False
            if self._on_join is not None:
                self._on_join(name)
            self._names.append(name)
            self._joined = frozenset(self._names)
            return True
