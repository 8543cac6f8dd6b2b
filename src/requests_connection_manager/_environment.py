"""The environment's part of a call's settings, as requests computes it, only cheaper.

requests merges proxies, the CA bundle and ``.netrc`` from the environment into every
call (``Session.merge_environment_settings``); its proxy lookup is a pure-Python scan of
``os.environ`` that costs about as much as the rest of its per-call work. When the
environment names no proxy at all, that lookup can only find nothing, so it is skipped;
the answer is recomputed whenever ``os.environ`` changes.

A change is noticed by comparing the environment with a copy taken when the answer was
computed: CPython's ``os.environ`` keeps its data in a dict, compared in C; anything else
(a test that replaces ``os.environ`` with a plain dict, ``mock.patch("os.environ", {...})``)
is compared through the mapping interface, and gets the same answer requests would.
"""

from __future__ import annotations

import os
import urllib.request
from typing import Any, Optional

__all__ = ["ProxyFreeEnvironment"]


class ProxyFreeEnvironment:
    """Tells whether ``os.environ`` names no proxy, recomputing only when it changes.

    Only where ``urllib.request.getproxies`` reads the environment alone (not macOS or
    Windows, which also read system settings); elsewhere it always answers False, and
    requests does its usual lookup.
    """

    def __init__(self) -> None:
        self._seen: Optional[dict[Any, Any]] = None
        self._environ: Any = None
        self._answer = False
        self._usable = urllib.request.getproxies is urllib.request.getproxies_environment

    def has_no_proxies(self) -> bool:
        """True when no proxy variable (nor ``no_proxy``) is set."""
        if not self._usable:
            return False
        environ = os.environ
        data = getattr(environ, "_data", None)
        current = data if isinstance(data, dict) else environ
        seen = self._seen
        if seen is not None and environ is self._environ and seen == current:
            return self._answer
        snapshot = dict(current)
        answer = not any(
            value and _text(name).lower().endswith("_proxy") for name, value in environ.items()
        )
        self._seen, self._environ, self._answer = snapshot, environ, answer
        return answer


def _text(name: Any) -> str:
    return name.decode("latin-1") if isinstance(name, bytes) else str(name)
