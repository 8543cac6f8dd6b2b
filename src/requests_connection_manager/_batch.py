"""``batch_request``: many calls at once through one manager, results in input order.

Each call goes through the manager's full pipeline (limiter, breaker, retries) in a
worker thread; the limiter and breaker are shared, so a batch cannot exceed a host's
rate limit or hammer a host whose breaker is open.
"""

from __future__ import annotations

import contextvars
import logging
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ._redaction import redact_url
from ._validate import check_int

if TYPE_CHECKING:
    from collections.abc import Sequence

    from requests import Response

__all__ = ["ProgressCallback", "run_batch"]

logger = logging.getLogger("requests_connection_manager")

#: Called as ``on_progress(done, total)`` after each request finishes.
ProgressCallback = Callable[[int, int], Any]


def _check_items(requests_data: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """Validate the items; messages carry 1.0.0's wording ("Request 0 ...") and ours."""
    if isinstance(requests_data, (str, bytes)) or not hasattr(requests_data, "__iter__"):
        raise TypeError("requests_data must be a list of (method, url, kwargs) tuples")
    items = []
    for index, item in enumerate(requests_data):
        where = f"Request {index}"
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise ValueError(
                f"{where} must be a tuple/list of (method, url, kwargs) (requests_data[{index}])"
            )
        method, url, kwargs = item
        if not isinstance(method, str) or not isinstance(url, str):
            raise ValueError(
                f"{where}: method and url must be strings "
                f"(requests_data[{index}]: method and url must be str)"
            )
        if not isinstance(kwargs, dict):
            raise ValueError(
                f"{where}: kwargs must be a dictionary "
                f"(requests_data[{index}]: kwargs must be a dict)"
            )
        items.append((method, url, kwargs))
    return items


class _Results:
    """The results of a batch, in input order, and the progress reports."""

    def __init__(
        self, items: list[tuple[str, str, dict[str, Any]]], on_progress: Optional[ProgressCallback]
    ) -> None:
        self._items = items
        self._slots: list[Union[Response, Exception, None]] = [None] * len(items)
        self._done = 0
        self._on_progress = on_progress

    def take(self, index: int, future: Future[Response]) -> None:
        """Store the outcome of item ``index``; a ``BaseException`` is raised, not stored."""
        error = future.exception()
        if error is None:
            self._slots[index] = future.result()
        elif isinstance(error, Exception):
            self._slots[index] = error
            if logger.isEnabledFor(logging.DEBUG):
                method, url, _ = self._items[index]
                logger.debug(
                    "batch item %d (%s %s) failed: %s",
                    index,
                    method,
                    redact_url(url),
                    type(error).__name__,
                )
        else:  # KeyboardInterrupt and friends are not results
            raise error
        self._done += 1
        if self._on_progress is not None:
            _report(self._on_progress, self._done, len(self._slots))

    def final(self, return_exceptions: bool) -> list[Union[Response, Exception]]:
        """The results; the first failure raised instead when ``return_exceptions`` is False."""
        if not return_exceptions:
            for result in self._slots:
                if isinstance(result, Exception):
                    raise result
        return self._slots  # type: ignore[return-value]  # every slot is filled


def run_batch(
    request: Callable[..., Response],
    requests_data: Sequence[tuple[str, str, dict[str, Any]]],
    max_workers: int = 5,
    return_exceptions: bool = True,
    on_progress: Optional[ProgressCallback] = None,
) -> list[Union[Response, Exception]]:
    """Run ``request(method, url, **kwargs)`` for every item on up to ``max_workers`` threads.

    Interrupted (Ctrl-C, or any ``BaseException`` from a call or ``on_progress``), it
    cancels every item that has not started, returns at once (items already on the wire
    finish in their threads, bounded by their own timeouts) and re-raises.

    Args:
        request: The function that makes one call (the manager's ``request``).
        requests_data: ``(method, url, kwargs)`` per call.
        max_workers: Threads, >= 1 (never more than there are calls).
        return_exceptions: Put a failed call's exception in its place in the result; when
            False, wait for every call and then raise the first failure in input order.
        on_progress: Called as ``on_progress(done, total)`` in the calling thread after each
            call finishes; an exception it raises is logged and ignored.

    Returns:
        One response or exception per item, in input order.

    Raises:
        ValueError: An item is malformed (the message names its index).
        TypeError: ``requests_data`` is not a sequence or ``max_workers`` is not an int.
    """
    check_int("max_workers", max_workers, 1)
    if not isinstance(return_exceptions, bool):
        raise TypeError("return_exceptions must be a bool")
    if on_progress is not None and not callable(on_progress):
        raise TypeError("on_progress must be callable or None")
    items = _check_items(requests_data)
    if not items:
        return []
    results = _Results(items, on_progress)
    pool = ThreadPoolExecutor(
        max_workers=min(max_workers, len(items)), thread_name_prefix="rcm-batch"
    )
    try:
        # Each request runs in a copy of the caller's context (its current span, say), as
        # if the caller had made it; one copy each, as a context runs in one thread at once.
        pending: dict[Future[Response], int] = {
            pool.submit(_in_context, contextvars.copy_context(), request, method, url, kwargs): i
            for i, (method, url, kwargs) in enumerate(items)
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                results.take(pending.pop(future), future)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results.final(return_exceptions)


def _in_context(
    context: contextvars.Context,
    request: Callable[..., Response],
    method: str,
    url: str,
    kwargs: dict[str, Any],
) -> Response:
    return context.run(request, method, url, **kwargs)


def _report(on_progress: ProgressCallback, done: int, total: int) -> None:
    try:
        on_progress(done, total)
    except Exception:
        logger.warning("batch on_progress callback raised; ignored", exc_info=True)
