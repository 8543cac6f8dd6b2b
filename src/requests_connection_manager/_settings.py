"""The manager's live configuration: global policy, credentials, and endpoint configs.

Readers (every request) see immutable snapshots and take no lock: a policy, a
:class:`~._auth.Credentials`, an :class:`~._endpoints.EndpointTable`. Writers (the
manager's setters) validate, build new snapshots under a lock and swap them in, so a
change takes effect from the next request on and a request never sees half of one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Optional

from ._auth import AUTH_FIELDS, Credentials, check_credentials
from ._endpoints import EndpointPattern, EndpointTable
from .config import POLICY_KEYS, SCOPED_KEYS, TLS_KEYS, Policy, build_policy

__all__ = ["ENDPOINT_KEYS", "Endpoint", "Settings"]

#: Every key an endpoint config may set.
ENDPOINT_KEYS = POLICY_KEYS | frozenset(AUTH_FIELDS)
# Manager-wide keys: named in the error when an endpoint config tries to set one.
_MANAGER_WIDE = frozenset({"pool_connections", "pool_maxsize", "pool_block", "clock"})


@dataclass(frozen=True)
class Endpoint:
    """One endpoint config, validated.

    Attributes:
        pattern: The parsed pattern.
        config: The config as given (read-only copy).
        policy: The policy of requests to matching hosts (global keywords, overridden).
        credentials: The credential keywords the config sets.
    """

    pattern: EndpointPattern
    config: MappingProxyType[str, Any]
    policy: Policy
    credentials: dict[str, Any]


class Settings:
    """Global keywords, credentials and endpoint configs of one manager.

    Args:
        policy_kwargs: The policy keywords of the constructor (see ``build_policy``).
        credentials: The global credential keywords.
        endpoint_configs: Pattern to config, as given to the constructor.
        wall_clock_only: The manager was given its own clock: limiters that read the wall
            clock (``limits``: the sliding window, and every shared limiter) are refused.
        shared: Rate limits live in Redis (shared state).

    Raises:
        TypeError: A value has the wrong type; the message names it.
        ValueError: A value is out of range or an endpoint key is unknown.
    """

    def __init__(
        self,
        policy_kwargs: dict[str, Any],
        credentials: dict[str, Any],
        endpoint_configs: Optional[dict[str, dict[str, Any]]] = None,
        *,
        wall_clock_only: bool = False,
        shared: bool = False,
    ) -> None:
        self._lock = threading.Lock()
        self._kwargs = dict(policy_kwargs)
        self._wall_clock_only = wall_clock_only
        self._shared = shared
        self.policy: Policy = self._checked(build_policy(**self._kwargs))
        self.credentials = Credentials(**check_credentials(credentials))
        self._entries: dict[str, Endpoint] = {}
        self.table: EndpointTable[Endpoint] = EndpointTable()
        if endpoint_configs is not None:
            if not isinstance(endpoint_configs, dict):
                raise TypeError(
                    "endpoint_configs must be a dict of pattern to config dict, got "
                    f"{type(endpoint_configs).__name__}"
                )
            for pattern, config in endpoint_configs.items():
                self._entries[pattern] = self._endpoint(pattern, config)
            self.table = EndpointTable((e.pattern, e) for e in self._entries.values())

    # ---------------------------------------------------------------------------- reads
    @property
    def kwargs(self) -> dict[str, Any]:
        """A copy of the global policy keywords."""
        return dict(self._kwargs)

    def policy_for_url(self, url: str) -> Policy:
        """Return the policy of a request to ``url``: its endpoint's, or the global one."""
        table = self.table
        if table:
            found = table.match(url)
            if found is not None:
                return found[1].policy
        return self.policy

    def credential_headers(self, url: str, *, include_global: bool) -> dict[str, str]:
        """Return the credential headers for a request to ``url``.

        Args:
            url: The request URL.
            include_global: Include the global credentials (only for the origin the caller
                asked for); an endpoint's credentials apply to every host it matches.
        """
        credentials = self.credentials
        table = self.table
        if not include_global:
            credentials = Credentials(api_key_header=credentials.api_key_header)
        if table:
            found = table.match(url)
            if found is not None:
                credentials = credentials.under(found[1].credentials)
        return credentials.headers() if credentials else {}

    def endpoint_configs(self) -> dict[str, dict[str, Any]]:
        """Return a copy of the endpoint configs, pattern to config."""
        return {pattern: dict(e.config) for pattern, e in self._entries.items()}

    def endpoint_config(self, pattern: str) -> Optional[dict[str, Any]]:
        """Return a copy of one endpoint's config, or None."""
        entry = self._entries.get(pattern)
        return None if entry is None else dict(entry.config)

    # --------------------------------------------------------------------------- writes
    def set_endpoint(self, pattern: str, config: dict[str, Any]) -> None:
        """Add or replace the config of ``pattern``."""
        with self._lock:
            entry = self._endpoint(pattern, config)
            entries = dict(self._entries)
            entries[pattern] = entry
            self._publish(entries)

    def remove_endpoint(self, pattern: str) -> bool:
        """Remove the config of ``pattern``; return whether there was one."""
        with self._lock:
            if pattern not in self._entries:
                return False
            entries = dict(self._entries)
            del entries[pattern]
            self._publish(entries)
            return True

    def update_policy(self, **changes: Any) -> None:
        """Change global policy keywords; every endpoint policy is rebuilt over them."""
        with self._lock:
            kwargs = {**self._kwargs, **changes}
            policy = self._checked(build_policy(**kwargs))
            entries = {
                p: self._endpoint(p, dict(e.config), kwargs) for p, e in self._entries.items()
            }
            self._kwargs = kwargs
            self.policy = policy
            self._publish(entries)

    def update_credentials(self, **changes: Any) -> None:
        """Change global credential keywords (validated)."""
        checked = check_credentials(changes)
        with self._lock:
            self.credentials = self.credentials.updated(**checked)

    def clear_credentials(self) -> None:
        """Forget every global credential."""
        with self._lock:
            self.credentials = Credentials()

    # ------------------------------------------------------------------------- building
    def _checked(self, policy: Policy) -> Policy:
        limit = policy.rate_limit
        if (
            self._wall_clock_only
            and limit is not None
            and (limit.strategy == "sliding-window" or self._shared)
        ):
            raise ValueError(
                "clock: a rate limit kept by 'limits' (rate_limit_strategy='sliding-window', "
                "or any shared rate limit) reads the wall clock and cannot follow clock=; "
                "use the fixed-window strategy without shared state under a custom clock"
            )
        return policy

    def _publish(self, entries: dict[str, Endpoint]) -> None:
        self._entries = entries
        self.table = EndpointTable((e.pattern, e) for e in entries.values())

    def _endpoint(
        self, pattern: Any, config: Any, kwargs: Optional[dict[str, Any]] = None
    ) -> Endpoint:
        if not isinstance(pattern, str):
            raise TypeError(f"endpoint pattern must be a str, got {type(pattern).__name__}")
        where = f"endpoint_configs[{pattern!r}]: "
        if not isinstance(config, dict):
            raise TypeError(f"{where}the config must be a dict, got {type(config).__name__}")
        parsed = EndpointPattern.parse(pattern)
        unknown = set(config) - ENDPOINT_KEYS
        if unknown:
            name = sorted(map(str, unknown))[0]
            if name in _MANAGER_WIDE:
                raise ValueError(f"{where}{name!r} is manager-wide and cannot be set per endpoint")
            raise ValueError(
                f"{where}unknown key {name!r}; an endpoint config may set: "
                + ", ".join(sorted(ENDPOINT_KEYS))
            )
        merged = dict(self._kwargs if kwargs is None else kwargs)
        overrides = {k: v for k, v in config.items() if k in POLICY_KEYS}
        if (
            "max_retries" in overrides or "backoff_factor" in overrides
        ) and "retry" not in overrides:
            merged["retry"] = None  # the endpoint's own retry counts replace a global Retry
        merged.update(overrides)
        for name in TLS_KEYS - {"ssl_context"}:
            if name not in overrides:
                merged[name] = None  # not overridden: the session's value applies
        scope = parsed.text if SCOPED_KEYS & set(config) else ""
        try:
            policy = self._checked(build_policy(**merged, scope=scope))
            credentials = check_credentials(
                {k: v for k, v in config.items() if k in AUTH_FIELDS}, where
            )
        except (TypeError, ValueError) as exc:
            message = str(exc)
            if not message.startswith(where):
                message = where + message
            raise type(exc)(message) from None
        return Endpoint(parsed, MappingProxyType(dict(config)), policy, credentials)
