"""The state of one request in the pipeline, and the outcome of one attempt.

An :class:`Exchange` is made once per request (one redirect hop of a call) by the
pipeline, from the request's one URL identity; admission, attempt, decision and the error
boundary all read it. An :class:`Outcome` is what one attempt ended with, completed by
admission (what the response said about the host) before the decision reads it.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from ._redaction import Secrets, redact_url

if TYPE_CHECKING:
    from requests import PreparedRequest, Response
    from requests.exceptions import RequestException
    from urllib3.util.retry import Retry

    from ._hosts import HostState
    from ._url import Target
    from .config import Policy

__all__ = ["CALL", "CallScope", "Exchange", "Outcome"]


@dataclass
class CallScope:
    """What the redirect hops of one call share; set by the managed session.

    Attributes:
        start: Monotonic start of the call: its ``total_timeout`` deadline runs from here.
        verify_explicit: The caller passed ``verify=`` (an endpoint's must not override it).
        cert_explicit: The caller passed ``cert=``.
        follows_redirects: The call follows redirects.
        secret_sources: Where the call's secrets are (the session's and the caller's
            headers, an ``auth=`` pair); read only when a message or log line is written.
        secret_names: Header names whose values are secrets (the API-key headers).
        origin: The URL of the first hop, once sent.
        credentials: The credential headers the current hop carries (name to value).
        idempotency_key: The key every hop and attempt of the call carries, once chosen.
    """

    start: float
    verify_explicit: bool = False
    cert_explicit: bool = False
    follows_redirects: bool = True
    secret_sources: tuple[Any, ...] = ()
    secret_names: frozenset[str] = frozenset()
    origin: Optional[str] = None
    credentials: dict[str, str] = field(default_factory=dict)
    idempotency_key: Optional[str] = None
    _secrets: Optional[Secrets] = field(default=None, repr=False)

    def secrets(self) -> Secrets:
        """The call's secret values, collected from its sources when first asked for."""
        if self._secrets is None:
            self._secrets = Secrets.from_sources(self.secret_sources, self.secret_names)
        return self._secrets


#: The current call. Unset (a bare ``send``): each ``send`` is a call of its own.
CALL: contextvars.ContextVar[Optional[CallScope]] = contextvars.ContextVar("rcm_call", default=None)


class Exchange:
    """One request on its way through the pipeline.

    Attributes:
        request: The prepared request.
        target: Its URL identity (None for a URL with no http(s) host).
        policy: The policy in force for it.
        host: The host state it uses.
        method: The method, upper-case.
        request_id: Unique within the manager (ties its events together).
        start: Monotonic start of the call (shared by redirect hops).
        deadline: Monotonic deadline of the call, or None.
        connect: Connect timeout for each attempt (before the deadline clamps it).
        read: Read timeout for each attempt (before the deadline clamps it).
        verify: TLS verification for the attempts.
        cert: Client certificate for the attempts.
        proxies: Proxies for the attempts.
        stream: Leave the body to the caller.
        follows_redirects: The call follows redirects (a redirect's body is drained).
        retry: The urllib3 ``Retry`` the first attempt starts from.
        idempotency_key: The key sent with the request, if any.
        secrets: Secret values to redact from every message (collected when first asked).
        replayable: The body can be sent again (none, bytes or text, or a stream whose
            start position requests recorded): otherwise the request is never retried.
        attempts: Attempts sent so far.
        gave_up: Set when a request that could be retried was not (retries exhausted,
            budget, deadline, breaker): its error is a ``MaxRetriesExceeded``.
        reason: Why the pipeline stopped, once it did (``"retries exhausted"``, ...).
    """

    __slots__ = (
        "_secret_inputs",
        "_secrets",
        "_url",
        "attempts",
        "cert",
        "connect",
        "deadline",
        "follows_redirects",
        "gave_up",
        "host",
        "idempotency_key",
        "method",
        "policy",
        "proxies",
        "read",
        "reason",
        "replayable",
        "request",
        "request_id",
        "retry",
        "start",
        "stream",
        "target",
        "verify",
    )

    def __init__(
        self,
        request: PreparedRequest,
        target: Optional[Target],
        policy: Policy,
        host: HostState,
        request_id: int,
        start: float,
    ) -> None:
        self.request = request
        self.method = (request.method or "GET").upper()
        self.target = target
        self.policy = policy
        self.host = host
        self.request_id = request_id
        self.start = start
        total = policy.timeouts.total
        self.deadline = None if total is None else start + total
        self.connect = policy.timeouts.connect
        self.read = policy.timeouts.read
        self.verify: Any = True
        self.cert: Any = None
        self.proxies: Any = None
        self.stream = False
        self.follows_redirects = False
        self.retry: Retry = policy.retries.policy
        self.idempotency_key: Optional[str] = None
        self._secrets: Optional[Secrets] = None
        self._secret_inputs: tuple[Any, ...] = ()
        body: Any = request.body  # a stream too, whatever the stubs say
        self.replayable = (
            body is None
            or isinstance(body, (bytes, str, bytearray))
            or isinstance(getattr(request, "_body_position", None), int)
        )
        self.attempts = 0
        self.gave_up = False
        self.reason: Optional[str] = None
        self._url: Optional[str] = None

    @property
    def url(self) -> str:
        """The request URL, redacted (computed once, when first needed)."""
        if self._url is None:
            self._url = redact_url(self.request.url or "")
        return self._url

    def keep_secrets(self, engine_secrets: Any, call: Optional[CallScope], names: Any) -> None:
        """Say where the request's secrets are; they are collected only if a message needs them.

        Args:
            engine_secrets: Returns the manager's credential values.
            call: The call's scope, or None for a bare ``send``.
            names: Header names whose values are secrets.
        """
        self._secret_inputs = (engine_secrets, call, names)

    @property
    def secrets(self) -> Optional[Secrets]:
        """Every secret value of the request: the manager's, the call's and its headers'."""
        if self._secrets is None and self._secret_inputs:
            engine_secrets, call, names = self._secret_inputs
            own = (
                call.secrets()
                if call is not None
                else Secrets.of_headers(self.request.headers, names)
            )
            self._secrets = engine_secrets() | own
        return self._secrets

    @property
    def key(self) -> str:
        """The host key of the host state."""
        return self.host.key

    def remaining(self, now: float) -> float:
        """Seconds left before the deadline at ``now`` (infinite without one)."""
        return float("inf") if self.deadline is None else self.deadline - now


class Outcome:
    """What one attempt ended with: a response, or an error (never both).

    Attributes:
        response: The response, or None.
        error: The requests exception, or None.
        started: Monotonic time the attempt started.
        duration: Seconds it took.
        deadline_hit: The caller's ``total_timeout`` cut it short (the host is not to blame).
        local: It failed before anything was sent (a CA bundle or certificate file that
            does not exist): never retried, never counted against the host.
        verdict: ``"success"``, ``"failure"`` or ``"neutral"`` (set by admission).
        retry_after: The server's ``Retry-After`` (or quota reset on a 429), seconds.
        pause: Seconds the host was paused because of this response (0 for none).
        tripped: This attempt opened the host's breaker.
    """

    __slots__ = (
        "deadline_hit",
        "duration",
        "error",
        "local",
        "pause",
        "response",
        "retry_after",
        "started",
        "tripped",
        "verdict",
    )

    def __init__(
        self,
        response: Optional[Response] = None,
        error: Optional[RequestException] = None,
        *,
        started: float = 0.0,
        deadline_hit: bool = False,
        local: bool = False,
    ) -> None:
        self.response, self.error = response, error  # not both
        self.started = started
        self.duration = 0.0  # set by the attempt when it ends
        self.deadline_hit = deadline_hit
        self.local = local
        self.verdict = "neutral"
        self.retry_after: Optional[float] = None
        self.pause = 0.0
        self.tripped = False

    @property
    def status(self) -> Optional[int]:
        """The response status, or None."""
        return None if self.response is None else self.response.status_code

    def describe(self) -> str:
        """``"status 503"`` or the error's class name, for events and log lines."""
        if self.response is not None:
            return f"status {self.response.status_code}"
        return _public_name(self.error)

    def discard(self) -> None:
        """Release the response's connection (the attempt will be retried)."""
        if self.response is not None:
            self.response.close()


def _public_name(error: Any) -> str:
    """The class name of ``error``, or of its first public requests ancestor."""
    for cls in type(error).__mro__:
        if not cls.__name__.startswith("_"):
            return cls.__name__
    return type(error).__name__
