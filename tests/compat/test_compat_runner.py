"""Tests of the compatibility runner: its allow-list, verdict, guard and substitution.

The run itself (requests' whole suite, three times) takes minutes and a download; it is
``python tests/compat/run.py``. These tests check its parts in seconds, the plugin in a
small pytest run of its own.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest
import requests
import requests.sessions

from tests.compat import rcm_compat_plugin as plugin
from tests.compat import run

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.servers import AppServer

HERE = Path(__file__).resolve().parent

DOC = """# Page

## Differences with ConnectionManager() defaults

Intro text.

| Test | Reason |
|---|---|
| `tests/test_a.py::test_one` | one reason |
| `tests/test_a.py::TestK::test_two[*]` | every parametrisation |

## Next section

| Test | Reason |
|---|---|
| `tests/test_a.py::test_not_listed` | after the section |
"""


# ----------------------------------------------------------------------- allow-list
def test_allow_list_is_read_from_the_table_under_its_heading() -> None:
    allow = run.parse_allow_list(DOC)
    assert allow.reason("tests/test_a.py::test_one") == "one reason"
    assert allow.reason("tests/test_a.py::TestK::test_two[x-1]") == "every parametrisation"
    assert allow.reason("tests/test_a.py::TestK::test_two") is None
    assert allow.reason("tests/test_a.py::test_not_listed") is None
    assert allow.entries() == [
        "tests/test_a.py::test_one",
        "tests/test_a.py::TestK::test_two[*]",
    ]


def test_allow_list_without_its_heading_or_with_a_bad_row_is_an_error() -> None:
    with pytest.raises(run.RunError, match="no heading"):
        run.parse_allow_list("# Page\n")
    bad = DOC.replace("| `tests/test_a.py::test_one` | one reason |", "| test_one | |")
    with pytest.raises(run.RunError, match="node id"):
        run.parse_allow_list(bad)


def test_the_documented_allow_list_parses() -> None:
    allow = run.parse_allow_list(run.ALLOW_LIST_DOC.read_text(encoding="utf-8"))
    assert allow.entries()
    assert all(entry.startswith("tests/") for entry in allow.entries())


# --------------------------------------------------------------------------- verdict
def _result(mode: str, outcomes: dict[str, str], created: int = 1) -> run.ModeResult:
    report = {
        "outcomes": {n: {"outcome": o, "message": f"{n} {o}"} for n, o in outcomes.items()},
        "managers_created": created,
        "requests_version": "2.x",
        "blocked": {},
    }
    return run.ModeResult(mode, 0, 1.0, Path("/dev/null"), report)


def test_neutral_must_pass_what_baseline_passes() -> None:
    allow = run.parse_allow_list(DOC)
    base = {"t::a": "passed", "t::b": "passed", "t::c": "failed"}
    results = {
        "baseline": _result("baseline", base, created=0),
        "neutral": _result("neutral", {"t::a": "passed", "t::b": "failed", "t::c": "passed"}),
        "defaults": _result("defaults", base),
        "mixin": _result("mixin", base),
    }
    verdict = run.compare(results, allow)
    assert not verdict.ok
    assert "compat: neutral 1/2 of baseline-passing tests (1 failing)" in verdict.lines
    assert "compat: mixin 2/2 of baseline-passing tests" in verdict.lines
    assert any("FAIL t::b" in line for line in verdict.details)


def test_mixin_must_pass_what_baseline_passes_allow_list_or_not() -> None:
    """The mixin mode has no documented differences: a listed test failing there fails."""
    allow = run.parse_allow_list(DOC)
    one = "tests/test_a.py::test_one"  # documented for defaults
    base = {one: "passed", "t::b": "passed"}
    results = {
        "baseline": _result("baseline", base, created=0),
        "neutral": _result("neutral", base),
        "defaults": _result("defaults", base),
        "mixin": _result("mixin", {one: "failed", "t::b": "passed"}),
    }
    verdict = run.compare(results, allow)
    assert not verdict.ok
    assert verdict.lines == [
        "compat: baseline 2 passed of 2 tests (plain requests 2.x)",
        "compat: neutral 2/2 of baseline-passing tests",
        "compat: defaults 2/2 of baseline-passing tests (0 documented differences, 0 undocumented)",
        "compat: mixin 1/2 of baseline-passing tests (1 failing)",
    ]
    assert any(line.startswith(f"mixin: FAIL {one}") for line in verdict.details)


def test_defaults_may_differ_only_where_documented() -> None:
    allow = run.parse_allow_list(DOC)
    one, two = "tests/test_a.py::test_one", "tests/test_a.py::TestK::test_two[p]"
    base = {one: "passed", two: "passed", "t::c": "passed"}
    results = {
        "baseline": _result("baseline", base, created=0),
        "neutral": _result("neutral", base),
        "defaults": _result("defaults", {one: "failed", two: "error", "t::c": "passed"}),
        "mixin": _result("mixin", base),
    }
    verdict = run.compare(results, allow)
    assert verdict.ok
    assert (
        "compat: defaults 1/3 of baseline-passing tests (2 documented differences, 0 undocumented)"
    ) in verdict.lines
    results["defaults"] = _result("defaults", {one: "passed", two: "passed", "t::c": "skipped"})
    verdict = run.compare(results, allow)
    assert not verdict.ok
    assert any("passed this time" in line for line in verdict.details)


def test_a_mode_that_made_no_manager_fails() -> None:
    base = {"t::a": "passed"}
    results = {
        "baseline": _result("baseline", base, created=0),
        "neutral": _result("neutral", base, created=0),
        "defaults": _result("defaults", base),
        "mixin": _result("mixin", base),
    }
    assert not run.compare(results, run.parse_allow_list(DOC)).ok
    results["neutral"] = _result("neutral", base)
    results["mixin"] = _result("mixin", base, created=0)
    verdict = run.compare(results, run.parse_allow_list(DOC))
    assert not verdict.ok
    assert "mixin: no managed session was made: substitution failed" in verdict.details


# ----------------------------------------------------------------------------- guard
@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("api.localhost", True),
        (b"127.0.0.1", True),
        (None, True),
        ("10.255.255.1", False),
        ("0.0.0.0", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("::ffff:10.0.0.1", False),
        (1234, False),
    ],
)
def test_loopback_addresses(host: Any, loopback: bool) -> None:
    assert plugin.is_loopback(host) is loopback


def test_guard_refuses_and_records_non_loopback_use() -> None:
    guard = plugin._Guard()
    guard.enabled = True
    guard.current = "t::x"
    guard.audit("socket.connect", (None, ("127.0.0.1", 80)))
    guard.audit("socket.connect", (None, "/run/some.sock"))
    guard.audit("open", ("file", "r", 0))
    with pytest.raises(OSError, match="non-loopback"):
        guard.audit("socket.connect", (None, ("192.0.2.1", 80)))
    with pytest.raises(OSError, match="non-loopback") as info:
        guard.audit("socket.getaddrinfo", ("example.com", 80, 0, 0, 0))
    assert isinstance(info.value, OSError)
    assert guard.blocked == {"t::x": ["connect '192.0.2.1'", "getaddrinfo 'example.com'"]}


# ---------------------------------------------------------------------- substitution
@pytest.fixture
def neutral() -> Iterator[plugin._Substitution]:
    substitution = plugin._Substitution(dict(plugin.MODES["neutral"] or {}))
    substitution.install()
    try:
        yield substitution
    finally:
        substitution.uninstall()


def test_every_way_to_make_a_session_gives_a_managers(neutral: plugin._Substitution) -> None:
    made = [
        requests.Session(),
        requests.session(),
        requests.sessions.Session(),
        requests.sessions.session(),
    ]
    for session in made:
        assert isinstance(session, requests.Session)
        assert isinstance(session, neutral.managed_class)
        assert session._rcm_compat_manager.session is session
    assert neutral.created == len(made)
    assert requests.Session is requests.sessions.Session
    assert set(requests.Session.__attrs__) <= set(made[0].__attrs__)  # + what pickling needs


def test_requests_api_uses_a_managers_session_and_closes_it(
    neutral: plugin._Substitution, app: AppServer
) -> None:
    app.ok("/x", body=b"hi")
    seen: list[Any] = []
    real_close = neutral.compat_class.close

    def close(self: Any) -> None:
        seen.append(self._rcm_compat_manager)
        real_close(self)

    with mock.patch.object(neutral.compat_class, "close", close):
        assert requests.get(app.url("/x")).content == b"hi"
    assert seen  # (the manager's close() closes its session again: same manager)
    assert all(cm is seen[0] for cm in seen)
    assert seen[0].closed


def test_subclasses_and_patches_of_requests_session_still_apply(
    neutral: plugin._Substitution, app: AppServer
) -> None:
    app.ok("/x", body=b"hi")

    class Custom(requests.Session):
        def __init__(self, tag: str) -> None:
            super().__init__()
            self.tag = tag

        def rebuild_method(self, prepared_request: Any, response: Any) -> None:
            """An override, as in requests' own tests."""

    custom = Custom("t")
    assert isinstance(custom, Custom)
    assert isinstance(custom, neutral.managed_class)
    assert custom.tag == "t"
    assert type(custom).__mro__.index(Custom) < type(custom).__mro__.index(neutral.managed_class)
    response = requests.Response()
    response.status_code = 204
    with mock.patch.object(requests.Session, "send", return_value=response) as send:
        assert requests.Session().get(app.url("/x")).status_code == 204
    assert send.called
    assert app.total() == 0


def test_an_unpickled_session_is_what_unpickling_cm_session_gives(
    neutral: plugin._Substitution, app: AppServer
) -> None:
    from requests_connection_manager import ConnectionManager

    app.ok("/x", body=b"hi")

    def outcome(session: requests.Session) -> str:
        copy = pickle.loads(pickle.dumps(session))
        assert type(copy) is type(session)
        try:
            return str(copy.get(app.url("/x")).status_code)
        except Exception as exc:
            return type(exc).__name__

    with ConnectionManager(**(plugin.MODES["neutral"] or {})) as cm:
        expected = outcome(cm.session)
    assert outcome(requests.Session()) == expected


@pytest.fixture
def mixin() -> Iterator[plugin._Substitution]:
    """The mixin mode's substitution, installed for one test."""
    substitution = plugin._Substitution(dict(plugin.MODES["mixin"] or {}), mixin=True)
    substitution.install()
    try:
        yield substitution
    finally:
        substitution.uninstall()


def test_mixin_mode_makes_every_session_a_mixin_session(
    mixin: plugin._Substitution, app: AppServer
) -> None:
    """Mixin mode: each Session() is a MixinSession with the neutral keywords, no manager."""
    from requests_connection_manager import (
        ConnectionManager,
        ConnectionManagerError,
        ConnectionManagerMixin,
    )

    app.ok("/x", status=503)
    made = [requests.Session(), requests.session(), requests.sessions.Session()]
    assert mixin.managed_class is plugin.MixinSession
    assert plugin.MixinSession.__mro__[1:3] == (ConnectionManagerMixin, requests.Session)
    for session in made:
        assert isinstance(session, plugin.MixinSession)
        assert isinstance(session, requests.Session)
        assert session._rcm_compat_manager is None
    assert mixin.created == len(made)
    session = made[0]
    assert session.get(app.url("/x")).status_code == 503  # max_retries=0: one attempt
    assert app.hits("/x") == 1
    session.close()
    with pytest.raises(ConnectionManagerError, match="closed"):
        session.get(app.url("/x"))  # closing the session closed the engine it owns
    assert type(pickle.loads(pickle.dumps(made[1]))) is type(made[1])
    for other in made[1:]:
        other.close()
    with ConnectionManager() as cm:  # a manager is still itself
        assert type(cm.session) is not mixin.compat_class


def test_uninstall_gives_requests_back(neutral: plugin._Substitution) -> None:
    neutral.uninstall()
    assert type(requests.Session()) is requests.Session
    from requests_connection_manager import ConnectionManager

    with ConnectionManager() as cm:  # its session's constructor takes arguments
        assert type(cm.session) is neutral.managed_class


# -------------------------------------------------------------------- plugin, end to end
SAMPLE_TESTS = """
import socket

import pytest
import requests


def test_session_is_managed():
    s = requests.Session()
    assert type(s).__name__ == "CompatSession"


def test_guard():
    with pytest.raises(OSError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    with socket.socket() as sock, pytest.raises(OSError):
        sock.connect(("192.0.2.2", 80))


def test_fails():
    assert 0, "expected"


@pytest.mark.skip
def test_skipped():
    pass


@pytest.fixture
def broken():
    raise RuntimeError("setup")


def test_error(broken):
    pass
"""


@pytest.mark.parametrize("mode", ["neutral", "mixin"])
def test_plugin_records_outcomes_managers_and_refused_addresses(tmp_path: Path, mode: str) -> None:
    (tmp_path / "test_sample.py").write_text(SAMPLE_TESTS, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    report = tmp_path / "report.json"
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(run.SRC), str(HERE)])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            run.PLUGIN,
            "--rcm-compat-mode",
            mode,
            "--rcm-compat-report",
            str(report),
            "-q",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    data = json.loads(report.read_text(encoding="utf-8"))
    outcomes = {n.split("::")[1]: e["outcome"] for n, e in data["outcomes"].items()}
    assert outcomes == {
        "test_session_is_managed": "passed",
        "test_guard": "passed",
        "test_fails": "failed",
        "test_skipped": "skipped",
        "test_error": "error",
    }
    assert data["managers_created"] == 1
    assert data["mode"] == mode
    assert data["blocked"] == {
        "test_sample.py::test_guard": ["getaddrinfo '192.0.2.1'", "connect '192.0.2.2'"]
    }
    assert "expected" in data["outcomes"]["test_sample.py::test_fails"]["message"]
