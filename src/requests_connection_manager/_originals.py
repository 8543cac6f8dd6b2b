"""requests' own functions, as imported: a shortcut applies only while none is replaced.

requests looks its helpers up by name in the module that calls them (``requests.models``,
``requests.adapters``) on every call, so a test or a tweak may replace one there
(``mock.patch("requests.models.check_header_validity")``). The library's cheaper copies of
requests' steps (:mod:`._prepare`, :mod:`._response`, :mod:`._environment`, the
transport's remembered answers) stand for requests' code only while every name they stand
for is still requests' own; :class:`Originals` tells, at call time, whether that holds.
"""

from __future__ import annotations

import operator
from typing import Any

__all__ = ["Originals"]


class Originals:
    """Names of modules (or classes) and the objects they held when this was made.

    Args:
        groups: One tuple per owner (a module or class): the module requests' code looks
            the names up in, or the class whose methods it calls, then the names (``str``)
            the shortcut relies on.
    """

    __slots__ = ("_groups",)

    def __init__(self, *groups: tuple[Any, ...]) -> None:
        found = []
        for owner, *rest in groups:
            names: list[str] = rest
            # One C call fetches an owner's names; a tuple even for one (the name twice).
            get = operator.attrgetter(*names, *names[:1])
            found.append((get, owner, get(owner)))
        self._groups: tuple[tuple[Any, Any, tuple[Any, ...]], ...] = tuple(found)

    def intact(self) -> bool:
        """Tell whether every name still holds the object it held at import."""
        try:
            for get, owner, values in self._groups:
                # A tuple comparison in C: identical items pass without being asked.
                if get(owner) != values:
                    return False
        except AttributeError:
            return False  # deleted
        return True
