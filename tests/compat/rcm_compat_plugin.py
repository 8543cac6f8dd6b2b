"""pytest plugin: run requests' own test suite with every ``Session`` made by a ConnectionManager.

Loaded by ``tests/compat/run.py`` with ``-p rcm_compat_plugin`` into a pytest run of the
test suite shipped in requests' sdist. It does three things.

**1. Substitution** (``--rcm-compat-mode neutral``, ``defaults`` or ``mixin``;
``baseline`` leaves requests alone). Every way the tests make a session — ``requests.Session()``,
``requests.session()``, ``requests.sessions.Session()``, ``requests.sessions.session()``
and the session ``requests.api.request`` opens for ``requests.get`` and friends — ends in
one call: ``requests.sessions.Session()``. The plugin gives that one class object a
``__new__`` (assigned on the class; at the end of the run it becomes a pass-through to
``object.__new__``) that builds a ``ConnectionManager`` with the mode's configuration and
returns ``cm.session``:

- ``requests.Session`` stays the very same class object. ``isinstance(s,
  requests.Session)``, ``Session.__attrs__``, ``from requests import Session`` done at
  import time, and ``mock.patch.object(requests.Session, "send", ...)`` behave as with
  plain requests: a patched method is what the managed session's ``super()`` calls reach.
- ``type.__call__`` runs ``__init__`` on what ``__new__`` returned. ``cm.session`` is
  already initialised (and its own ``__init__`` takes the manager's internals), so its
  class is switched to ``CompatSession``, a subclass of the manager's session class that
  adds exactly two things: an ``__init__`` that does nothing on an initialised session,
  and a ``close()`` that closes the manager too — ``with requests.Session() as s:``
  becomes ``with ConnectionManager(...) as cm: s = cm.session``. The session holds its
  manager (``s._rcm_compat_manager``), so the manager lives exactly as long as the session.
- A test's own subclass (``class MySession(requests.Session)``) is managed too: its
  instance is ``cm.session`` switched to a class built once per subclass with bases
  ``(MySession, CompatSession)``, so the subclass's overrides come first, then the
  managed session's, then requests'. Its ``__init__`` runs; its ``super().__init__()``
  reaches the no-op. (Its ``type()`` is that built class, named like the subclass.)
- Pickling: ``pickle`` rebuilds a session with ``cls.__new__(cls)`` and ``__setstate__``
  (requests' ``__attrs__`` only). For the manager's session classes ``__new__`` is the
  plain ``object.__new__``, so an unpickled session is exactly what unpickling
  ``cm.session`` gives a user — nothing is repaired here.
- Sessions made while a manager is being built (its own session) are plain.

Modes: ``neutral`` is ``ConnectionManager(max_retries=0,
circuit_breaker_failure_threshold=None, retry_budget=None, rate_limit_requests=None,
timeout=None)``; ``defaults`` is ``ConnectionManager()``. ``mixin`` builds no manager:
each session is a ``MixinSession`` (``class MixinSession(ConnectionManagerMixin,
requests.Session)``, defined here) made with the neutral keywords, which owns and closes
its own engine; everything above holds for it, with ``MixinSession`` in the place of the
manager's session class (``s._rcm_compat_manager`` is None: there is no manager).

**2. Network guard** (every mode). An audit hook (``sys.addaudithook``) on
``socket.connect``, ``socket.getaddrinfo``, ``socket.gethostbyname(_ex)``,
``socket.gethostbyaddr`` and ``socket.sendto`` refuses any address that is not loopback
(``127.0.0.0/8``, ``::1``, ``localhost``): name lookups fail with ``socket.gaierror``,
connects with ``OSError(ENETUNREACH)``. Each refusal is recorded with the test that
tried.

**3. Report** (``--rcm-compat-report PATH``). At the end of the run a JSON file maps each
test node id to its outcome (``passed``, ``failed``, ``error``, ``skipped``,
``xfailed``, ``xpassed``), a short message for the ones that did not pass, and the
blocked network attempts.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, cast

import pytest
import requests
import requests.sessions

if TYPE_CHECKING:
    from collections.abc import Generator

MODES: dict[str, Optional[dict[str, Any]]] = {
    "baseline": None,
    "neutral": {
        "max_retries": 0,
        "circuit_breaker_failure_threshold": None,
        "retry_budget": None,
        "rate_limit_requests": None,
        "timeout": None,
    },
    "defaults": {},
    "mixin": {
        "max_retries": 0,
        "circuit_breaker_failure_threshold": None,
        "retry_budget": None,
        "rate_limit_requests": None,
        "timeout": None,
    },
}
#: Modes whose sessions are ``MixinSession`` instances rather than a manager's session.
MIXIN_MODES = frozenset({"mixin"})

_REAL_SESSION: type[requests.Session] = requests.sessions.Session
_MESSAGE_LIMIT = 600
_GUARD_EVENTS = frozenset(
    {
        "socket.connect",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyname_ex",
        "socket.gethostbyaddr",
        "socket.sendto",
    }
)


# ------------------------------------------------------------------------- network guard
class _Guard:
    """Refuses non-loopback network use and remembers which test tried."""

    def __init__(self) -> None:
        self.enabled = False
        self.current = "<outside any test>"
        self.blocked: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._hooked = False

    def enable(self) -> None:
        """Start refusing (the audit hook is added once: audit hooks cannot be removed)."""
        if not self._hooked:
            sys.addaudithook(self.audit)
            self._hooked = True
        self.enabled = True

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        """The audit hook: refuse ``event`` when it reaches beyond loopback."""
        if not self.enabled or event not in _GUARD_EVENTS:
            return
        if event in ("socket.connect", "socket.sendto"):
            address = args[-1]
            if not isinstance(address, tuple) or not address:
                return  # AF_UNIX paths, abstract sockets: local by nature
            host: Any = address[0]
        else:
            host = args[0]
        if is_loopback(host):
            return
        what = f"{event.split('.', 1)[1]} {host!r}"
        with self._lock:
            self.blocked.setdefault(self.current, []).append(what)
        message = f"rcm compat guard: non-loopback network use refused ({what})"
        if event == "socket.connect" or event == "socket.sendto":
            raise OSError(errno.ENETUNREACH, message)
        raise socket.gaierror(socket.EAI_NONAME, message)


def is_loopback(host: Any) -> bool:
    """Tell whether ``host`` (a name or an address) stays on this machine's loopback.

    Args:
        host: What a socket call was given: str, bytes, or None (no host: passive use).

    Returns:
        True for None/empty, ``localhost`` (and ``*.localhost``), ``127.0.0.0/8``,
        ``::1`` and IPv4-mapped loopback; False for anything else.
    """
    if host is None:
        return True
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip().strip("[]").lower().rstrip(".")
    if name in ("", "localhost") or name.endswith(".localhost"):
        return True
    name = name.split("%", 1)[0]  # IPv6 zone id
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


GUARD = _Guard()


# -------------------------------------------------------------------------- substitution
class _Substitution:
    """Makes ``requests.sessions.Session()`` return a ConnectionManager's session.

    With ``mixin=True``, a ``MixinSession`` of its own instead (no manager).
    """

    def __init__(self, config: dict[str, Any], *, mixin: bool = False) -> None:
        from requests_connection_manager import ConnectionManager

        self.manager_class: type[Any] = _mixin_class() if mixin else ConnectionManager
        self.mixin = mixin
        self.config = config
        self.created = 0
        self._local = threading.local()
        self._lock = threading.Lock()
        self._combined: dict[type[Any], type[Any]] = {}
        probe = self._build()
        self.managed_class: type[Any] = type(self._session_of(probe))
        probe.close()
        if not issubclass(self.managed_class, _REAL_SESSION):
            raise TypeError(f"cm.session is a {self.managed_class!r}, not a requests.Session")
        self.compat_class = _make_compat_class(self.managed_class)
        self.created = 0

    def _build(self) -> Any:
        self._local.building = True
        try:
            cm = self.manager_class(**self.config)
        finally:
            self._local.building = False
        with self._lock:
            self.created += 1
        return cm

    def _session_of(self, built: Any) -> Any:
        """The session of what :meth:`_build` made (a mixin session is its own)."""
        return built if self.mixin else built.session

    def _plain(self, cls: type[Any]) -> bool:
        """Sessions that must be built as requests builds them."""
        if getattr(self._local, "building", False):
            return True  # the manager's own session
        if issubclass(cls, self.compat_class):
            return True  # unpickling a session this plugin handed out
        return self.managed_class is not _REAL_SESSION and issubclass(cls, self.managed_class)

    def new(self, cls: type[Any], *args: Any, **kwargs: Any) -> Any:
        """``Session.__new__``: a manager's session for ``requests.Session`` and subclasses."""
        if self._plain(cls):
            return object.__new__(cls)
        built = self._build()
        session = self._session_of(built)
        session.__class__ = self.compat_class if cls is _REAL_SESSION else self._combine(cls)
        session._rcm_compat_manager = None if self.mixin else built
        return session

    def _combine(self, cls: type[Any]) -> type[Any]:
        with self._lock:
            combined = self._combined.get(cls)
            if combined is None:
                combined = type(cls.__name__, (cls, self.compat_class), {"__module__": __name__})
                self._combined[cls] = combined
        return combined

    def install(self) -> None:
        """Make ``requests.sessions.Session()`` return this substitution's sessions."""
        global _ACTIVE
        current = vars(_REAL_SESSION).get("__new__")
        if current is None:
            _REAL_SESSION.__new__ = _session_new  # type: ignore[method-assign]
        elif current is not _session_new:
            raise RuntimeError("requests.Session already defines __new__; cannot substitute")
        _ACTIVE = self

    @staticmethod
    def uninstall() -> None:
        """Give ``requests.sessions.Session()`` back to requests.

        The ``__new__`` stays as a pass-through to ``object.__new__``: once a class has had
        ``__new__`` assigned, deleting it does not give CPython's ``object.__new__`` slot
        back to it and its subclasses (``object.__new__`` would then refuse their
        constructor arguments).
        """
        global _ACTIVE
        _ACTIVE = None


#: The substitution in force, if any.
_ACTIVE: Optional[_Substitution] = None


def _session_new(cls: type[Any], *args: Any, **kwargs: Any) -> Any:
    """``requests.Session.__new__`` while this plugin is loaded."""
    active = _ACTIVE
    if active is None:
        return object.__new__(cls)
    return active.new(cls, *args, **kwargs)


def _mixin_class() -> type[Any]:
    """``MixinSession``, built once; importable here by name (for pickle)."""
    existing = globals().get("MixinSession")
    if existing is not None:
        return cast("type[Any]", existing)
    from requests_connection_manager import ConnectionManagerMixin

    mixin_session = type(
        "MixinSession",
        (ConnectionManagerMixin, _REAL_SESSION),
        {
            "__module__": __name__,
            "__qualname__": "MixinSession",
            "__doc__": "A plain requests.Session with ConnectionManagerMixin applied.",
        },
    )
    globals()["MixinSession"] = mixin_session
    return mixin_session


def _make_compat_class(managed_class: type[Any]) -> type[Any]:
    """The class ``cm.session`` is switched to; importable here by name (for pickle)."""
    compat: type[Any]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if "_rcm_compat_manager" in vars(self):
            return  # built by its manager already
        super(compat, self).__init__(*args, **kwargs)

    def close(self: Any) -> None:
        """Close the session, and the manager that owns it."""
        state = vars(self)
        cm = state.get("_rcm_compat_manager")
        if cm is None or state.get("_rcm_compat_closing"):
            super(compat, self).close()
            return
        state["_rcm_compat_closing"] = True
        try:
            cm.close()
        finally:
            state["_rcm_compat_closing"] = False
            super(compat, self).close()

    compat = type(
        "CompatSession",
        (managed_class,),
        {
            "__module__": __name__,
            "__qualname__": "CompatSession",
            "__doc__": "cm.session, made by requests.Session() during a compat run.",
            "__init__": __init__,
            "close": close,
        },
    )
    globals()["CompatSession"] = compat
    return compat


# ------------------------------------------------------------------------ pytest hooks
class _Recorder:
    """Collects each test's outcome across its setup, call and teardown reports."""

    def __init__(self, mode: str, path: Optional[Path]) -> None:
        self.mode = mode
        self.path = path
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.substitution: Optional[_Substitution] = None
        self.started = time.monotonic()

    def add(self, report: pytest.TestReport) -> None:
        entry = self.outcomes.setdefault(report.nodeid, {"outcome": "passed", "duration": 0.0})
        entry["duration"] = round(entry["duration"] + report.duration, 3)
        xfail = hasattr(report, "wasxfail")
        if report.when == "call":
            if report.passed:
                outcome = "xpassed" if xfail else "passed"
            elif report.skipped:
                outcome = "xfailed" if xfail else "skipped"
            else:
                outcome = "failed"
            if entry["outcome"] == "passed":
                entry["outcome"] = outcome
        elif report.failed:  # setup or teardown
            entry["outcome"] = "error"
        elif report.skipped and report.when == "setup":
            entry["outcome"] = "xfailed" if xfail else "skipped"
        if report.failed and "message" not in entry:
            entry["message"] = _short(report)

    def write(self, exitstatus: int) -> None:
        if self.path is None:
            return
        data = {
            "mode": self.mode,
            "exitstatus": exitstatus,
            "seconds": round(time.monotonic() - self.started, 3),
            "requests_version": requests.__version__,
            "python": sys.version.split()[0],
            "package": _package_path(),
            "managers_created": 0 if self.substitution is None else self.substitution.created,
            "outcomes": self.outcomes,
            "blocked": GUARD.blocked,
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(self.path)


def _short(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or report.longreprtext.strip().splitlines()[-1:]
    if isinstance(text, list):
        text = text[0] if text else ""
    return str(text)[:_MESSAGE_LIMIT]


def _package_path() -> Optional[str]:
    try:
        import requests_connection_manager
    except ImportError:
        return None
    return str(Path(requests_connection_manager.__file__).parent)


_RECORDER_KEY = pytest.StashKey[_Recorder]()
# The recorder of the current run (pytest_runtest_logreport gets no config).
_RECORDERS: list[_Recorder] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--rcm-compat-mode`` and ``--rcm-compat-report``."""
    group = parser.getgroup("rcm-compat", "requests-connection-manager compatibility run")
    group.addoption(
        "--rcm-compat-mode",
        choices=sorted(MODES),
        default="baseline",
        help="baseline: plain requests; neutral/defaults: Session() is a ConnectionManager's; "
        "mixin: Session() is a MixinSession(ConnectionManagerMixin, requests.Session)",
    )
    group.addoption("--rcm-compat-report", default=None, help="write outcomes as JSON here")


def pytest_configure(config: pytest.Config) -> None:
    """Install the network guard and, unless baseline, the substitution."""
    mode = str(config.getoption("--rcm-compat-mode"))
    report = config.getoption("--rcm-compat-report")
    recorder = _Recorder(mode, Path(report) if report else None)
    config.stash[_RECORDER_KEY] = recorder
    _RECORDERS.append(recorder)
    GUARD.enable()
    settings = MODES[mode]
    if settings is not None:
        recorder.substitution = _Substitution(settings, mixin=mode in MIXIN_MODES)
        recorder.substitution.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the substitution and switch the guard off."""
    recorder = config.stash.get(_RECORDER_KEY, None)
    if recorder in _RECORDERS:
        _RECORDERS.remove(recorder)
    _Substitution.uninstall()
    GUARD.enabled = False


def pytest_report_header(config: pytest.Config) -> str:
    """Say which mode runs and which package is under test."""
    recorder = config.stash[_RECORDER_KEY]
    return f"rcm-compat: mode={recorder.mode} package={_package_path()}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    """Remember the running test, for the guard's record."""
    GUARD.current = item.nodeid
    try:
        yield
    finally:
        GUARD.current = "<outside any test>"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Record each phase's outcome."""
    if _RECORDERS:
        _RECORDERS[-1].add(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the JSON report."""
    session.config.stash[_RECORDER_KEY].write(int(exitstatus))
