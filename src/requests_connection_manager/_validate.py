"""Validation of user input: one function per kind of value, each naming the parameter.

Every keyword of the manager and every field of the public configuration objects is
checked here, once; a bad value raises ``TypeError`` or ``ValueError`` whose message names
the parameter and the accepted range.
"""

from __future__ import annotations

import math
import os
from typing import Any, Optional, Union

__all__ = [
    "CertType",
    "VerifyType",
    "check_bool",
    "check_cert",
    "check_int",
    "check_number",
    "check_verify",
]

#: TLS verification: True, False, or a path to a CA bundle file or directory.
VerifyType = Union[bool, str]
#: A client certificate: a path to a PEM file, or a ``(cert, key)`` pair of paths.
CertType = Union[str, "tuple[str, str]"]


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool.

    Raises:
        TypeError: ``value`` is not a bool.
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """``repr(value)``, except for ints too long to print (Python refuses > 4300 digits)."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an int of {value.bit_length()} bits"
    return repr(value)


def check_int(name: str, value: Any, minimum: int, maximum: Optional[int] = None) -> int:
    """Return ``value`` if it is an int >= ``minimum`` (and <= ``maximum`` when given).

    Raises:
        TypeError: ``value`` is not an int (bools are refused).
        ValueError: ``value`` is out of range.
    """
    wanted = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int {wanted}, got {type(value).__name__}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an int {wanted}, got {_shown(value)}")
    return value


def check_number(
    name: str, value: Any, *, positive: bool = False, allow_none: bool = False
) -> Optional[float]:
    """Return ``value`` as a float if it is a finite number in range.

    Args:
        name: The parameter name, for the error message.
        value: The value to check.
        positive: Require ``> 0`` instead of ``>= 0``.
        allow_none: Let None through.

    Raises:
        TypeError: ``value`` is not a number.
        ValueError: ``value`` is negative, zero when ``positive``, NaN or infinite.
    """
    wanted = "a number > 0" if positive else "a number >= 0"
    if allow_none:
        wanted += " or None"
    if value is None and allow_none:
        return None
    if not _is_number(value):
        raise TypeError(f"{name} must be {wanted}, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be {wanted}, got a number too large") from None
    if math.isnan(number) or math.isinf(number) or number < 0 or (positive and number == 0):
        raise ValueError(f"{name} must be {wanted}, got {_shown(value)}")
    return number


def check_verify(name: str, value: Any) -> VerifyType:
    """Return ``value`` if it is a bool or the path of an existing CA bundle file or directory.

    Raises:
        TypeError: ``value`` is neither a bool nor a str.
        ValueError: The path does not exist.
    """
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be True, False or a CA bundle path, got {type(value).__name__}"
        )
    if not os.path.exists(value):
        raise ValueError(f"{name}: CA bundle path {value!r} does not exist")
    return value


def check_cert(name: str, value: Any) -> Optional[CertType]:
    """Return ``value`` if it is None, a PEM path, or a ``(cert, key)`` pair of paths.

    Raises:
        TypeError: ``value`` has another shape.
        ValueError: A path does not exist.
    """
    if value is None:
        return None
    paths = list(value) if isinstance(value, (tuple, list)) else [value]
    if len(paths) not in (1, 2) or not all(isinstance(p, str) for p in paths):
        raise TypeError(f"{name} must be a path or a (cert, key) pair of paths, or None")
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"{name}: file {path!r} does not exist")
    return (paths[0], paths[1]) if len(paths) == 2 else paths[0]
