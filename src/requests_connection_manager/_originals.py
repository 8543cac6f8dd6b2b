"""requests' own functions, as imported: a shortcut applies only while none is replaced.

requests looks its helpers up by name in the module that calls them (``requests.models``,
``requests.adapters``) on every call, so a test or a tweak may replace one there
(``mock.patch("requests.models.check_header_validity")``). The library's cheaper copies of
requests' steps (:mod:`._prepare`, :mod:`._response`, the transport's remembered answers)
stand for requests' code only while every name they stand for is still requests' own;
:class:`Originals` tells, at call time, whether that holds.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Union

__all__ = ["Originals"]


class Originals:
    """Names of a module (or class) and the objects they held when this was made.

    Args:
        module: The module requests' code looks the names up in, or the class whose
            methods it calls.
        names: The names the shortcut relies on.
    """

    __slots__ = ("_items", "_module")

    def __init__(self, module: Union[ModuleType, type], *names: str) -> None:
        self._module = module
        self._items: tuple[tuple[str, Any], ...] = tuple(
            (name, getattr(module, name)) for name in names
        )

    def intact(self) -> bool:
        """Tell whether every name still holds the object it held at import."""
        owner = self._module
        for name, original in self._items:  # noqa: SIM110 - no generator: called per request
            if getattr(owner, name, None) is not original:
                return False
        return True
