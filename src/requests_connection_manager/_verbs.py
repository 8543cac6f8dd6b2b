"""The HTTP verb shortcuts of :class:`~requests_connection_manager.ConnectionManager`.

Each is ``self.request(METHOD, url, **kwargs)``, as on ``requests.Session``; ``head``
does not follow redirects unless asked, as in requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from requests import Response

__all__ = ["HTTPVerbs"]


class HTTPVerbs:
    """``get``, ``post``, ``put``, ``patch``, ``delete``, ``head`` and ``options``."""

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        """Send a request; implemented by the class that uses these shortcuts."""
        raise NotImplementedError

    def get(self, url: str, **kwargs: Any) -> Response:
        """Send a GET request. See :meth:`request`."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Response:
        """Send a POST request. See :meth:`request`."""
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Response:
        """Send a PUT request. See :meth:`request`."""
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Response:
        """Send a PATCH request. See :meth:`request`."""
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Response:
        """Send a DELETE request. See :meth:`request`."""
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> Response:
        """Send a HEAD request (redirects not followed unless asked, as in requests)."""
        kwargs.setdefault("allow_redirects", False)
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> Response:
        """Send an OPTIONS request. See :meth:`request`."""
        return self.request("OPTIONS", url, **kwargs)
