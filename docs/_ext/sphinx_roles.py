"""Griffe extension for the docs build: show reST markup in docstrings as Markdown.

The package's docstrings are Google style but use a few reST habits: roles such as
``:meth:`close``` or ``:class:`~.adapter.ResilientAdapter``` and a ``::`` before a literal
block. mkdocstrings renders Markdown, where those come out verbatim. This extension
rewrites them when the docstrings are loaded, for the site only (``src/`` is untouched):
a role becomes an inline code span of its last dotted part, and a trailing ``::`` becomes
``:`` (the indented block after it is already a Markdown code block).

Loaded by mkdocstrings through ``extensions:`` in ``mkdocs.yml``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

# :meth:`name`, :class:`~.module.Name`, :func:`pkg.name`, :mod:`.demo`, ...
_ROLE = re.compile(r":(?:py:)?(?:meth|class|func|mod|attr|data|exc|obj):`~?\.?([^`]+)`")
# A line ending in "::" (a reST literal-block marker), not a lone "::".
_LITERAL_MARKER = re.compile(r"(?<=\S)::[ \t]*$", re.MULTILINE)


def _code_span(match: re.Match[str]) -> str:
    return f"`{match.group(1).rsplit('.', 1)[-1]}`"


def markdown_from_rest(text: str) -> str:
    """Return ``text`` with reST roles and literal-block markers turned into Markdown."""
    text = _ROLE.sub(_code_span, text)
    text = _LITERAL_MARKER.sub(":", text)
    # A lone "::" line introduces a literal block too; drop it.
    return re.sub(r"^[ \t]*::[ \t]*$", "", text, flags=re.MULTILINE)


class SphinxRoles(griffe.Extension):
    """Rewrite every loaded docstring with :func:`markdown_from_rest`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the docstring of one object, if it has one."""
        if obj.docstring is not None:
            obj.docstring.value = markdown_from_rest(obj.docstring.value)
