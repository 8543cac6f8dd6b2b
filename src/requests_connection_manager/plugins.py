"""Hooks around each call: pre-request, post-response and error (the 1.0.0 plugin API).

A hook is any callable taking one context object:

- ``PRE_REQUEST`` hooks get a :class:`RequestContext` before the request is prepared and
  may change its method, URL, headers or payload;
- ``POST_RESPONSE`` hooks get a :class:`ResponseContext` and may replace the response;
- ``ERROR_HANDLER`` hooks get an :class:`ErrorContext` when the call fails and may supply a
  fallback response, which is then returned instead of the exception being raised.

A hook that raises is logged (its message redacted) and skipped; the call goes on.
Registration is safe from any thread: each run iterates over a snapshot of the hooks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ._redaction import Secrets, redact_text

if TYPE_CHECKING:
    from requests import Response

__all__ = [
    "ErrorContext",
    "Hook",
    "HookType",
    "PluginManager",
    "RequestContext",
    "ResponseContext",
]

logger = logging.getLogger(__name__)

#: A hook: a callable that takes the context object of its kind.
Hook = Callable[[Any], Any]


class HookType(Enum):
    """When a hook runs."""

    PRE_REQUEST = "pre_request"
    POST_RESPONSE = "post_response"
    ERROR_HANDLER = "error_handler"


class RequestContext:
    """What a pre-request hook sees and may change.

    Attributes:
        method: The HTTP method.
        url: The URL.
        kwargs: The keyword arguments of the call (``headers``, ``params``, ``json``, ...).
    """

    def __init__(self, method: str, url: str, **kwargs: Any) -> None:
        self.method = method
        self.url = url
        self.kwargs: dict[str, Any] = kwargs

    def update_url(self, new_url: str) -> None:
        """Send the request to ``new_url`` instead."""
        self.url = new_url

    def update_headers(self, headers: dict[str, str]) -> None:
        """Add or replace request headers (the caller's own dict is not modified)."""
        merged = dict(self.kwargs.get("headers") or {})
        merged.update(headers)
        self.kwargs["headers"] = merged

    def update_payload(self, **payload_kwargs: Any) -> None:
        """Set payload keywords of the call, e.g. ``json=...``, ``data=...``, ``params=...``."""
        self.kwargs.update(payload_kwargs)

    def __repr__(self) -> str:
        return f"<RequestContext {self.method} {redact_text(self.url)}>"


class ResponseContext:
    """What a post-response hook sees; assigning ``response`` replaces what the call returns.

    Attributes:
        response: The response the call will return.
        request_context: The request as the pre-request hooks left it.
        modified: Set by :meth:`mark_modified`, for hooks that follow.
    """

    def __init__(self, response: Response, request_context: RequestContext) -> None:
        self.response = response
        self.request_context = request_context
        self.modified = False

    def mark_modified(self) -> None:
        """Record that a hook changed the response."""
        self.modified = True


class ErrorContext:
    """What an error hook sees; :meth:`set_fallback_response` turns the failure into a return.

    Attributes:
        exception: The exception the call would raise.
        request_context: The request as the pre-request hooks left it.
        handled: True once a hook supplied a fallback; later error hooks are not run.
        fallback_response: The response returned instead of raising, or None.
    """

    def __init__(self, exception: BaseException, request_context: RequestContext) -> None:
        self.exception = exception
        self.request_context = request_context
        self.handled = False
        self.fallback_response: Optional[Response] = None

    def set_fallback_response(self, response: Response) -> None:
        """Return ``response`` from the call instead of raising the exception."""
        self.fallback_response = response
        self.handled = True


def _hook_name(hook: Hook) -> str:
    return str(getattr(hook, "__name__", type(hook).__name__))


def _as_hook_type(hook_type: Union[HookType, str]) -> HookType:
    if isinstance(hook_type, HookType):
        return hook_type
    try:
        return HookType(hook_type)
    except ValueError:
        names = ", ".join(t.value for t in HookType)
        raise ValueError(f"Invalid hook type: {hook_type!r} (expected one of {names})") from None


class PluginManager:
    """The hooks of one manager, by type, in registration order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hooks: dict[HookType, tuple[Hook, ...]] = dict.fromkeys(HookType, ())
        #: Returns the secret values to redact from a failing hook's message (set by the
        #: manager: its credentials); the request's own secret headers are added to them.
        self.secrets: Callable[[], Secrets] = Secrets

    @property
    def hooks(self) -> dict[HookType, list[Hook]]:
        """A copy of the registered hooks by type."""
        return {t: list(funcs) for t, funcs in self._hooks.items()}

    def register_hook(self, hook_type: Union[HookType, str], hook_func: Hook) -> None:
        """Add ``hook_func`` to the hooks of ``hook_type`` (a :class:`HookType` or its value).

        Raises:
            ValueError: ``hook_type`` is not a hook type.
            TypeError: ``hook_func`` is not callable.
        """
        kind = _as_hook_type(hook_type)
        if not callable(hook_func):
            raise TypeError(f"hook_func must be callable, got {type(hook_func).__name__}")
        with self._lock:
            self._hooks[kind] = (*self._hooks[kind], hook_func)
        logger.debug("registered %s hook %s", kind.value, _hook_name(hook_func))

    def unregister_hook(self, hook_type: Union[HookType, str], hook_func: Hook) -> None:
        """Remove ``hook_func`` from the hooks of ``hook_type``; absent: nothing happens."""
        kind = _as_hook_type(hook_type)
        with self._lock:
            funcs = list(self._hooks[kind])
            if hook_func not in funcs:
                return
            funcs.remove(hook_func)
            self._hooks[kind] = tuple(funcs)
        logger.debug("unregistered %s hook %s", kind.value, _hook_name(hook_func))

    def clear_hooks(self, hook_type: Union[HookType, str, None] = None) -> None:
        """Remove the hooks of ``hook_type``, or every hook when it is None."""
        kinds = list(HookType) if hook_type is None else [_as_hook_type(hook_type)]
        with self._lock:
            for kind in kinds:
                self._hooks[kind] = ()

    def has_hooks(self) -> bool:
        """Tell whether any hook is registered."""
        return any(self._hooks.values())

    def list_hooks(self) -> dict[str, list[str]]:
        """Return the names of the registered hooks by type value, e.g. ``"pre_request"``."""
        return {t.value: [_hook_name(f) for f in funcs] for t, funcs in self._hooks.items()}

    def execute_pre_request_hooks(self, request_context: RequestContext) -> None:
        """Run the pre-request hooks in order."""
        for hook in self._hooks[HookType.PRE_REQUEST]:
            self._run(HookType.PRE_REQUEST, hook, request_context)

    def execute_post_response_hooks(self, response_context: ResponseContext) -> None:
        """Run the post-response hooks in order."""
        for hook in self._hooks[HookType.POST_RESPONSE]:
            self._run(HookType.POST_RESPONSE, hook, response_context)

    def execute_error_hooks(self, error_context: ErrorContext) -> None:
        """Run the error hooks in order until one handles the error."""
        for hook in self._hooks[HookType.ERROR_HANDLER]:
            self._run(HookType.ERROR_HANDLER, hook, error_context)
            if error_context.handled:
                return

    def _run(self, kind: HookType, hook: Hook, context: Any) -> None:
        try:
            hook(context)
        except Exception as exc:  # noqa: BLE001 - a failing hook is logged and skipped
            if logger.isEnabledFor(logging.ERROR):
                request = getattr(context, "request_context", context)
                headers = getattr(request, "kwargs", {}).get("headers")
                secrets = self.secrets() | Secrets.of_headers(
                    headers if isinstance(headers, Mapping) else None
                )
                logger.error(
                    "%s hook %s raised %s: %s; skipped",
                    kind.value,
                    _hook_name(hook),
                    type(exc).__name__,
                    secrets.scrub(str(exc)),
                )

    def reinit_after_fork(self) -> None:
        """A fresh lock in a forked child."""
        self._lock = threading.Lock()
