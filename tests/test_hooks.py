"""Hooks (the 1.0.0 plugin API): what each kind may change, and failures that are contained."""

from __future__ import annotations

import logging

import pytest
import requests

from requests_connection_manager import (
    CircuitBreakerOpen,
    ConnectionManager,
    ConnectionManagerError,
    ErrorContext,
    HookType,
    PluginManager,
    RequestContext,
    ResponseContext,
)
from tests.servers import AppServer, free_port

pytestmark = pytest.mark.timeout(30)


def test_pre_request_hook_changes_url_headers_and_payload(app: AppServer) -> None:
    """A pre-request hook may redirect the call and change headers and payload."""
    app.ok("/new")

    def rewrite(ctx: RequestContext) -> None:
        assert ctx.method == "POST"
        ctx.update_url(ctx.url.replace("/old", "/new"))
        ctx.update_headers({"X-Trace": "abc"})
        ctx.update_payload(json={"rewritten": True})

    caller_headers = {"Accept": "application/json"}
    with ConnectionManager() as cm:
        cm.register_pre_request_hook(rewrite)
        assert cm.post(app.url("/old"), headers=caller_headers, json={"a": 1}).text == "ok"
    seen = app.requests[-1]
    assert seen.path == "/new"
    assert seen.headers["X-Trace"] == "abc"
    assert seen.body == b'{"rewritten": true}'
    assert caller_headers == {"Accept": "application/json"}  # the caller's dict is untouched


def test_post_response_hook_may_replace_the_response(app: AppServer) -> None:
    """What a post-response hook assigns to ctx.response is what the call returns."""
    app.ok("/x", b"original")
    replacement = requests.Response()
    replacement.status_code = 299

    def swap(ctx: ResponseContext) -> None:
        assert ctx.response.text == "original"
        assert ctx.request_context.url == app.url("/x")
        ctx.response = replacement
        ctx.mark_modified()
        assert ctx.modified

    with ConnectionManager() as cm:
        cm.register_post_response_hook(swap)
        assert cm.get(app.url("/x")) is replacement


def test_error_hook_fallback_is_returned_instead_of_raising() -> None:
    """An error hook that sets a fallback turns the failure into that response (even a 5xx)."""
    fallback = requests.Response()
    fallback.status_code = 503  # falsy as a Response: 1.0.0 ignored such fallbacks
    seen: list[BaseException] = []

    def rescue(ctx: ErrorContext) -> None:
        seen.append(ctx.exception)
        ctx.set_fallback_response(fallback)

    with ConnectionManager(max_retries=0) as cm:
        cm.register_error_hook(rescue)
        assert cm.get(f"http://127.0.0.1:{free_port()}/") is fallback
    assert isinstance(seen[0], requests.ConnectionError)
    assert isinstance(seen[0], ConnectionManagerError)


def test_error_hooks_stop_at_the_first_that_handles() -> None:
    """Later error hooks do not run once one has handled the error."""
    calls: list[str] = []
    fallback = requests.Response()
    fallback.status_code = 200

    def first(ctx: ErrorContext) -> None:
        calls.append("first")

    def second(ctx: ErrorContext) -> None:
        calls.append("second")
        ctx.set_fallback_response(fallback)

    def third(ctx: ErrorContext) -> None:
        calls.append("third")

    with ConnectionManager(max_retries=0) as cm:
        for hook in (first, second, third):
            cm.register_error_hook(hook)
        assert cm.get(f"http://127.0.0.1:{free_port()}/") is fallback
    assert calls == ["first", "second"]


def test_unhandled_error_is_raised_as_the_contract_exception() -> None:
    """An error hook that only observes leaves the exception to be raised."""
    seen: list[BaseException] = []
    with ConnectionManager(max_retries=0, circuit_breaker_failure_threshold=1) as cm:
        cm.register_error_hook(lambda ctx: seen.append(ctx.exception))
        url = f"http://127.0.0.1:{free_port()}/"
        with pytest.raises(requests.ConnectionError):
            cm.get(url)
        with pytest.raises(CircuitBreakerOpen):
            cm.get(url)
    assert len(seen) == 2
    assert isinstance(seen[0], requests.ConnectionError)
    assert isinstance(seen[1], CircuitBreakerOpen)


def test_a_raising_hook_is_logged_and_skipped(
    app: AppServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Hooks that raise do not fail the call; the error is logged with secrets redacted."""
    app.ok("/x")
    ran: list[str] = []

    def broken(ctx: object) -> None:
        raise RuntimeError("boom at http://u:s3cr3t@host/?token=s3cr3t")

    def after(ctx: RequestContext) -> None:
        ran.append("after")

    with ConnectionManager() as cm, caplog.at_level(logging.ERROR):
        cm.register_pre_request_hook(broken)
        cm.register_pre_request_hook(after)
        cm.register_post_response_hook(broken)
        assert cm.get(app.url("/x")).status_code == 200
    assert ran == ["after"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert "broken" in errors[0].getMessage()
    assert "s3cr3t" not in caplog.text


def test_register_list_unregister(app: AppServer) -> None:
    """list_hooks names hooks by type; unregister removes one; unknown ones are ignored."""

    def audit(ctx: object) -> None:
        pass

    def tag(ctx: object) -> None:
        pass

    with ConnectionManager() as cm:
        cm.register_pre_request_hook(audit)
        cm.register_post_response_hook(tag)
        cm.register_error_hook(audit)
        assert cm.list_hooks() == {
            "pre_request": ["audit"],
            "post_response": ["tag"],
            "error_handler": ["audit"],
        }
        assert cm.get_stats()["registered_hooks"] == cm.list_hooks()
        cm.unregister_hook(HookType.PRE_REQUEST, audit)
        cm.unregister_hook("post_response", tag)
        cm.unregister_hook(HookType.POST_RESPONSE, tag)  # absent: nothing happens
        assert cm.list_hooks() == {
            "pre_request": [],
            "post_response": [],
            "error_handler": ["audit"],
        }
        with pytest.raises(ValueError, match="hook type"):
            cm.unregister_hook("sometimes", audit)
        with pytest.raises(TypeError, match="callable"):
            cm.register_pre_request_hook("not a function")  # type: ignore[arg-type]


def test_hooks_also_run_for_calls_through_cm_session(app: AppServer) -> None:
    """Third-party code handed cm.session gets the hooks too."""
    app.ok("/x")
    with ConnectionManager() as cm:
        cm.register_pre_request_hook(lambda ctx: ctx.update_headers({"X-Hooked": "1"}))
        cm.session.get(app.url("/x"))
    assert app.requests[-1].headers["X-Hooked"] == "1"


def test_plugin_manager_direct_use() -> None:
    """PluginManager works on its own: register, execute, clear."""
    plugins = PluginManager()
    seen: list[str] = []
    plugins.register_hook(HookType.PRE_REQUEST, lambda ctx: seen.append(ctx.url))
    plugins.execute_pre_request_hooks(RequestContext("GET", "http://x.test/"))
    assert seen == ["http://x.test/"]
    assert plugins.hooks[HookType.PRE_REQUEST]
    plugins.clear_hooks(HookType.PRE_REQUEST)
    assert not plugins.has_hooks()
    plugins.register_hook("error_handler", lambda ctx: None)
    plugins.clear_hooks()
    assert plugins.list_hooks() == {"pre_request": [], "post_response": [], "error_handler": []}
    with pytest.raises(ValueError, match="hook type"):
        plugins.register_hook("later", lambda ctx: None)
