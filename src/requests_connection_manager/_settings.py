"""The manager's live configuration: global policy, credentials, and endpoint configs.

Readers (every request) see immutable snapshots and take no lock: a policy, a
:class:`~._auth.Credentials`, an :class:`~._endpoints.EndpointTable`. Writers (the
manager's setters) validate, build new snapshots under a lock and swap them in, so a
change takes effect from the next request on and a request never sees half of one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Optional

from ._auth import AUTH_FIELDS, Credentials, check_credentials
from ._endpoints import EndpointPattern, EndpointTable
from ._redaction import Secrets
from .config import POLICY_DEFAULTS, Policy, build_policy

if TYPE_CHECKING:
    from ._url import Target

__all__ = ["ENDPOINT_KEYS", "POLICY_KEYS", "SCOPED_KEYS", "Endpoint", "Settings"]

#: Keywords that give an endpoint its own limiter, breaker and throttle (and stats entry).
SCOPED_KEYS = frozenset(
    {
        "rate_limit_requests",
        "rate_limit_period",
        "rate_limit_max_wait",
        "rate_limit_strategy",
        "circuit_breaker_failure_threshold",
        "circuit_breaker_recovery_timeout",
        "circuit_breaker_half_open_max_calls",
        "circuit_breaker_failure_rate",
        "circuit_breaker_minimum_calls",
        "circuit_breaker_window",
        "circuit_breaker_slow_call_duration",
        "retry_budget",
        "retry_budget_burst",
        "adaptive_throttling",
        "adaptive_throttling_k",
        "adaptive_throttling_max_probability",
    }
)
#: TLS keywords; in an endpoint config they override the session's for matching hosts.
TLS_KEYS = frozenset({"verify", "cert", "ssl_context"})
#: The keywords :func:`~.config.build_policy` takes (an endpoint config may set any of them).
POLICY_KEYS = frozenset(POLICY_DEFAULTS)
#: Every key an endpoint config may set.
ENDPOINT_KEYS = POLICY_KEYS | frozenset(AUTH_FIELDS)
# The parts of a policy, and the keywords that build each.
_PARTS = {
    "retries": {
        "max_retries",
        "backoff_factor",
        "retry",
        "retry_after_max",
        "idempotency_keys",
        "idempotency_key_header",
    },
    "timeouts": {"timeout", "connect_timeout", "read_timeout", "total_timeout"},
    "rate_limit": {
        "rate_limit_requests",
        "rate_limit_period",
        "rate_limit_max_wait",
        "rate_limit_strategy",
    },
    "breaker": {k for k in SCOPED_KEYS if k.startswith("circuit_breaker_")},
    "budget": {"retry_budget", "retry_budget_burst"},
    "signals": {
        "respect_rate_limit_headers",
        "adaptive_throttling",
        "adaptive_throttling_k",
        "adaptive_throttling_max_probability",
        "rate_limit_max_wait",
    },
    "tls": set(TLS_KEYS),
}
# Manager-wide keys: named in the error when an endpoint config tries to set one.
_MANAGER_WIDE = frozenset(
    {
        "pool_connections",
        "pool_maxsize",
        "pool_block",
        "clock",
        "redis_url",
        "redis_client",
        "redis_prefix",
        "on_event",
        "telemetry",
        "tracer_provider",
        "meter_provider",
    }
)


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
        self._secrets = Secrets()
        self.secret_headers: frozenset[str] = frozenset()
        #: The same names in lower case.
        self.secret_header_names: frozenset[str] = frozenset()
        if endpoint_configs is not None:
            if not isinstance(endpoint_configs, dict):
                raise TypeError(
                    "endpoint_configs must be a dict of pattern to config dict, got "
                    f"{type(endpoint_configs).__name__}"
                )
            for pattern, config in endpoint_configs.items():
                self._entries[pattern] = self._endpoint(pattern, config)
            self.table = EndpointTable((e.pattern, e) for e in self._entries.values())
        self._refresh_secrets()

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

    def policy_and_key(self, target: Optional[Target], url: str) -> tuple[Policy, str]:
        """Return the policy of a request and the key of the host state it uses.

        Args:
            target: The request URL's identity (None when it has no http(s) host).
            url: The request URL, for a key when there is no target.

        Returns:
            ``(policy, key)``: the key is the target's host key, plus `` [pattern]`` when
            the matching endpoint has its own limiter and breaker.
        """
        policy = self.policy
        table = self.table
        if table and target is not None:
            found = table.match_target(target)
            if found is not None:
                policy = found[1].policy
        if target is None:
            return policy, url.partition("?")[0][:200]
        return policy, f"{target.key} [{policy.scope}]" if policy.scope else target.key

    def secrets(self) -> Secrets:
        """Every credential value this manager knows (global and endpoints')."""
        return self._secrets

    def _refresh_secrets(self) -> None:
        values: list[Any] = []
        names = {self.credentials.api_key_header}
        levels = [self.credentials] + [
            Credentials(**e.credentials) for e in self._entries.values() if e.credentials
        ]
        for level in levels:
            values.extend((level.api_key, level.bearer_token, level.oauth2_token))
            values.extend(level.headers().values())
            if level.basic_auth is not None:
                values.append(level.basic_auth[1])
            names.add(level.api_key_header)
        self._secrets = Secrets(values)
        self.secret_headers = frozenset(names)
        self.secret_header_names = frozenset(name.lower() for name in names)

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

    def credential_kwargs(self) -> dict[str, Any]:
        """The global credential keywords, as the constructor takes them."""
        credentials = self.credentials
        return {name: getattr(credentials, name) for name in AUTH_FIELDS}

    def reinit_after_fork(self) -> None:
        """A fresh lock in a forked child."""
        self._lock = threading.Lock()

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
                p: self._endpoint(p, dict(e.config), kwargs, policy)
                for p, e in self._entries.items()
            }
            self._kwargs = kwargs
            self.policy = policy
            self._publish(entries)

    def update_credentials(self, **changes: Any) -> None:
        """Change global credential keywords (validated)."""
        checked = check_credentials(changes)
        with self._lock:
            self.credentials = self.credentials.updated(**checked)
            self._refresh_secrets()

    def clear_credentials(self) -> None:
        """Forget every global credential."""
        with self._lock:
            self.credentials = Credentials()
            self._refresh_secrets()

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
        self._refresh_secrets()

    def _endpoint(
        self,
        pattern: Any,
        config: Any,
        kwargs: Optional[dict[str, Any]] = None,
        base: Optional[Policy] = None,
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
            candidate = self._checked(build_policy(**merged, scope=scope))
            # The parts the config does not touch stay the global ones (the same objects,
            # so hosts keep their limiter and breaker when only credentials change).
            touched = {part for part, keys in _PARTS.items() if keys & set(overrides)}
            policy = replace(
                self.policy if base is None else base,
                scope=scope,
                **{part: getattr(candidate, part) for part in touched},
            )
            credentials = check_credentials(
                {k: v for k, v in config.items() if k in AUTH_FIELDS}, where
            )
        except (TypeError, ValueError) as exc:
            message = str(exc)
            if not message.startswith(where):
                message = where + message
            raise type(exc)(message) from None
        return Endpoint(parsed, MappingProxyType(dict(config)), policy, credentials)
