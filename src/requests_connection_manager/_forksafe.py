"""After ``os.fork()``, a child starts with fresh locks, pools and threads.

A lock held by another thread of the parent at the moment of the fork stays held forever
in the child, pooled sockets would be shared by two processes, and threads do not exist
in the child at all. Every object that owns such things registers here and implements
``reinit_after_fork()``; the child calls them all before it runs anything else
(``os.register_at_fork``). The parent is untouched.
"""

from __future__ import annotations

import os
import weakref
from typing import Any, Protocol

__all__ = ["Reinitialisable", "register"]


class Reinitialisable(Protocol):
    """Something that can be made usable again in a forked child."""

    def reinit_after_fork(self) -> None:
        """Replace locks, pools and threads inherited from the parent."""


_objects: weakref.WeakSet[Any] = weakref.WeakSet()


def register(obj: Reinitialisable) -> None:
    """Have ``obj.reinit_after_fork()`` called in every child forked from now on."""
    _objects.add(obj)


def _after_fork_in_child() -> None:
    for obj in list(_objects):
        obj.reinit_after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)
