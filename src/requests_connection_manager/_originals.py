"""requests' own functions, as imported: a shortcut applies only while none is replaced.

requests looks its helpers up by name in the module that calls them (``requests.models``,
``requests.adapters``) on every call, so a test or a tweak may replace one there
(``mock.patch("requests.models.check_header_validity")``). The library's cheaper copies of
requests' steps (:mod:`._prepare`, :mod:`._response`, the transport's remembered answers)
stand for requests' code only while every name they stand for is still requests' own;
:class:`Originals` tells, at call time, whether that holds.
"""

from __future__ import annotations

import operator
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

    __slots__ = ("_get", "_owner", "_values")

    def __init__(self, module: Union[ModuleType, type], *names: str) -> None:
        self._owner = module
        # One C call fetches them all; a tuple even for one name (the name twice).
        self._get = operator.attrgetter(*names, *names[:1])
        self._values: tuple[Any, ...] = self._get(module)

    def intact(self) -> bool:
        """Tell whether every name still holds the object it held at import."""
        try:
            # A tuple comparison in C: identical items pass without being asked.
            return bool(self._get(self._owner) == self._values)
        except AttributeError:
            return False  # deleted
