"""What every loopback test server shares: ``with`` support and its addresses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, TypeVar

if TYPE_CHECKING:
    from types import TracebackType

_S = TypeVar("_S", bound="LoopbackServer")


class LoopbackServer:
    """Base of the test servers: ``with`` starts and stops; ``url()`` builds addresses.

    Subclasses set ``host`` and ``_port`` (once started) and define ``start``/``stop``.
    """

    host: str
    _port: Optional[int]

    def start(self: _S) -> _S:
        """Start serving; return the server."""
        raise NotImplementedError

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving."""
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        """Start the server.

        Returns:
            The started server.
        """
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    @property
    def port(self) -> int:
        """The bound port.

        Raises:
            RuntimeError: If the server has not been started.
        """
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        """Return the absolute URL for ``path``.

        Args:
            path: Path, with or without a leading slash; may carry a query.

        Returns:
            The URL.
        """
        if not path.startswith("/"):
            path = "/" + path
        return self.base_url + path
