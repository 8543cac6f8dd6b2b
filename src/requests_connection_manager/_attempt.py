"""One attempt: the I/O, and nothing else.

:func:`attempt` sends the request once (requests' own ``HTTPAdapter.send``, urllib3
retries off), reads the body inside the attempt unless streaming, keeps every step under
the call's deadline, and returns an :class:`~._exchange.Outcome`: the response, or the
error requests raised (or would raise, for a body). It never raises for a transport
failure, waits for nothing and decides nothing.

Under the deadline:

- connect and read timeouts are clamped to what is left of it;
- the watchdog (:mod:`._watchdog`) cuts the connection when the deadline passes while the
  server dribbles its status line and headers, or the TLS handshake drags (the clamped
  read timeout bounds each read, not their sum);
- the body is read one socket read at a time, each bounded by what is left;
- a body shorter than its ``Content-Length`` is a failed attempt, never a short success.

An attempt that ends because of the deadline is marked ``deadline_hit``: the caller was
impatient, the host is not to blame.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Callable, Optional

import requests.exceptions as rex
import urllib3.exceptions as uex
from requests.utils import rewind_body

from ._boundary import requests_class_for
from ._exchange import Outcome
from ._watchdog import CURRENT, Watch

if TYPE_CHECKING:
    from requests import PreparedRequest, Response

    from ._exchange import Exchange

__all__ = ["DeadlineBeforeAttempt", "DeadlineExpired", "SendOnce", "attempt"]

#: ``HTTPAdapter.send`` of the transport, bound: one attempt on the wire.
SendOnce = Callable[..., "Response"]

# Body read size, and the granularity at which the deadline is checked while reading.
_CHUNK = 64 * 1024
_INF = float("inf")


class DeadlineBeforeAttempt(rex.Timeout):
    """The call's deadline passed before an attempt could start (nothing was sent)."""


class DeadlineExpired(rex.ReadTimeout):
    """The call's deadline passed while the attempt was on the wire."""


def attempt(send: SendOnce, ex: Exchange, watch: Watch) -> Outcome:
    """Send ``ex.request`` once and return how it went.

    Args:
        send: The transport's one-attempt send.
        ex: The request.
        watch: The attempt's watch (deadline, manager closed, SSL context).

    Returns:
        The outcome. Errors that are not transport failures (a ``TypeError``,
        ``KeyboardInterrupt``) propagate.
    """
    clock = watch.clock
    started = clock()
    remaining = _INF if ex.deadline is None else ex.deadline - started
    if remaining <= 0:
        late = DeadlineBeforeAttempt("total_timeout expired before the attempt")
        return Outcome(error=late, started=started, deadline_hit=True)
    connect, read = ex.connect, ex.read
    connect_clamped = remaining < (connect or _INF)
    read_clamped = remaining < (read or _INF)
    if ex.deadline is not None:
        connect = remaining if connect is None else min(connect, remaining)
        read = remaining if read is None else min(read, remaining)
    token = CURRENT.set(watch)
    try:
        outcome = _send_and_read(send, ex, connect, read)
    finally:
        CURRENT.reset(token)
        watch.end()
    outcome.started = started
    outcome.duration = clock() - started
    if watch.fired and outcome.response is not None:
        # Cut at the deadline while the head was arriving: what came may be half a head.
        outcome.response.close()
        outcome.response = None
        outcome.error = DeadlineExpired(
            "total_timeout expired while the response was arriving", request=ex.request
        )
    error = outcome.error
    if error is not None and (
        watch.fired
        or isinstance(error, DeadlineExpired)
        or (connect_clamped and isinstance(error, rex.ConnectTimeout))
        or (read_clamped and _timed_out(error))
    ):
        # The caller's deadline, not the host's own timeouts, ended it: always a Timeout.
        outcome.deadline_hit = True
        if not isinstance(error, rex.Timeout):
            outcome.error = DeadlineExpired(
                "total_timeout expired while the request was on the wire", request=ex.request
            )
    return outcome


def _timed_out(error: BaseException) -> bool:
    """Tell whether a socket timeout (a read, or a write of the upload) is behind ``error``."""
    current: Optional[BaseException] = error
    for _ in range(8):
        if current is None:
            return False
        if isinstance(current, (rex.Timeout, uex.TimeoutError, TimeoutError)):
            return True
        arg = current.args[0] if current.args else None
        reason = getattr(current, "reason", None)
        following = reason if isinstance(reason, BaseException) else arg
        current = following if isinstance(following, BaseException) else current.__context__
    return False


def _send_and_read(
    send: SendOnce, ex: Exchange, connect: Optional[float], read: Optional[float]
) -> Outcome:
    request = ex.request
    body: Any = request.body  # a stream too, whatever the stubs say
    if ex.attempts > 1 and body is not None and not isinstance(body, (bytes, str)):
        try:
            rewind_body(request)  # a file-like body starts again where requests found it
        except rex.UnrewindableBodyError as exc:
            return Outcome(error=exc)
    try:
        response = send(
            request,
            stream=True,
            timeout=(connect, read),
            verify=ex.verify,
            cert=ex.cert,
            proxies=ex.proxies,
        )
    except Exception as exc:  # noqa: BLE001 - sorted below; programming errors re-raised
        if type(exc) is OSError:
            # requests' own check of a CA bundle or certificate path, before any I/O.
            return Outcome(error=exc, local=True)  # type: ignore[arg-type]
        if _is_refused_header(exc):
            # http.client refused a header (a cookie with CR/LF, say) before sending it.
            # Its message quotes the value, which may be a secret: it is not repeated.
            return Outcome(
                error=rex.InvalidHeader(
                    "a header value holds CR, LF or another character HTTP forbids; "
                    "nothing was sent",
                    request=request,
                ),
                local=True,
            )
        return Outcome(error=_as_requests_error(exc, request))
    if ex.stream:
        return Outcome(response)
    try:
        _read_body(response, read, ex.deadline, ex.follows_redirects)
    except Exception as exc:  # noqa: BLE001 - sorted by _as_requests_error
        response.close()
        return Outcome(error=_as_requests_error(exc, request))
    return Outcome(response)


def _is_refused_header(exc: Exception) -> bool:
    """True for ``http.client``'s refusal of a header name or value (a bare ValueError)."""
    return type(exc) is ValueError and str(exc).startswith("Invalid header")


def _as_requests_error(exc: Exception, request: PreparedRequest) -> rex.RequestException:
    """Return ``exc`` as the requests exception requests would have raised; re-raise others."""
    if isinstance(exc, rex.RequestException):
        return exc
    if isinstance(exc, UnicodeError):  # a header or cookie value HTTP cannot carry
        return rex.InvalidHeader(
            f"a header value cannot be encoded for HTTP: {exc}", request=request
        )
    requests_class = requests_class_for(exc)
    if requests_class is None:
        raise exc  # a programming error (TypeError, ...) is not a transport failure
    return requests_class(exc, request=request)


def _body_error(exc: Exception, response: Response) -> rex.RequestException:
    """Map an error met while reading a body as ``Response.iter_content`` does."""
    if isinstance(exc, uex.ProtocolError):
        return rex.ChunkedEncodingError(exc, response=response)
    if isinstance(exc, uex.DecodeError):
        return rex.ContentDecodingError(exc, response=response)
    if isinstance(exc, uex.ReadTimeoutError):
        return rex.ConnectionError(exc, response=response)
    if isinstance(exc, uex.SSLError):
        return rex.SSLError(exc, response=response)
    if type(exc) is ValueError:
        # Framing http.client cannot parse (a negative chunk size): a broken body.
        return rex.ChunkedEncodingError(
            uex.ProtocolError("Response body framing is invalid", exc), response=response
        )
    assert response.request is not None
    return _as_requests_error(exc, response.request)


def _read_body(
    response: Response, read: Optional[float], deadline: Optional[float], redirect_ok: bool
) -> None:
    """Read the whole body inside the attempt; refuse a short one.

    Without a deadline this is ``response.content``, exactly as requests reads it. With
    one, the body is read with ``read1`` (one socket read at a time, each bounded by what
    is left of the deadline), so a server that drips or stalls cannot hold the call.

    A redirect the call will follow is drained as requests drains it: a body that cannot
    be decoded is read raw instead (``Session.resolve_redirects``).
    """
    try:
        body = response.content if deadline is None else _read_until(response, read, deadline)
    except ValueError as exc:
        if isinstance(exc, rex.RequestException):
            raise
        raise _body_error(exc, response) from exc
    except (rex.ContentDecodingError, uex.DecodeError):
        if not (redirect_ok and response.is_redirect):
            raise
        response.raw.read(decode_content=False)
        response._content = b""
        response._content_consumed = True  # type: ignore[attr-defined]
        return
    missing = getattr(response.raw, "length_remaining", None)
    if missing:
        # Wrapped the way urllib3 reports a broken body, so that the Retry policy sees a
        # read error (not replayed for a method that is not idempotent).
        raise rex.ChunkedEncodingError(
            uex.ProtocolError("Response ended prematurely", uex.IncompleteRead(len(body), missing)),
            response=response,
        )


def _socket_of(response: Response) -> Optional[socket.socket]:
    connection = getattr(response.raw, "connection", None) or getattr(
        response.raw, "_connection", None
    )
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _read_until(response: Response, read: Optional[float], deadline: float) -> bytes:
    raw: Any = response.raw
    clock = CURRENT.get()
    now = clock.clock if clock is not None else None
    chunks: list[bytes] = []
    while True:
        remaining = _INF if now is None else deadline - now()
        if remaining <= 0:
            raise DeadlineExpired(
                "total_timeout expired while reading the response body", response=response
            )
        # The socket is looked up each time: once the body is complete urllib3 returns the
        # connection to the pool and it is no longer ours (it resets the timeout).
        sock = _socket_of(response)
        by_deadline = read is None or remaining < read
        if sock is not None:
            sock.settimeout(remaining if by_deadline else read)
        try:
            chunk = raw.read1(_CHUNK, decode_content=True)
        except Exception as exc:
            if by_deadline and isinstance(exc, (uex.ReadTimeoutError, TimeoutError)):
                raise DeadlineExpired(
                    "total_timeout expired while reading the response body", response=response
                ) from exc
            raise _body_error(exc, response) from exc
        if not chunk:
            break
        chunks.append(chunk)
    body = b"".join(chunks)
    # What Response.content does when it reads the body itself.
    response._content = body
    response._content_consumed = True  # type: ignore[attr-defined]
    return body
