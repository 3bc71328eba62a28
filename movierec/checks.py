"""What the course's tests compare: plain data, with comparison functions bound when this module loads.

Hand-written (not generated from a lesson). A test cell imports these at its top — after
the grader's guard has put back anything a notebook replaced — so the names it holds are
the real ones, whatever the student's code patches while the test runs. Every comparison
first copies the student's answer into a fresh base ``numpy.ndarray`` of the expected
dtype and then into Python numbers: an ``ndarray`` subclass whose comparisons always say
"equal" becomes an ordinary array, and no NumPy comparison (public or internal) is used —
Python's own ``math.isclose`` and ``==`` on Python floats and ints decide.

This makes the common ways of faking a comparison fail; it cannot stop code written
against this very module (its functions' code objects can be edited like any Python
object's): see the README's "residual in-kernel risk".
"""

from __future__ import annotations

import math

import numpy as np

_isclose = math.isclose
_array = np.array
_isfinite = math.isfinite
_BASE = np.ndarray
_ATOMS = (type(None), bool, int, float, complex, bytes, str)
_NUMPY_SCALARS = frozenset(t for t in np.sctypeDict.values() if issubclass(t, np.generic))
_tolist = np.ndarray.tolist
_item = np.generic.item
_dict_items = dict.items


def plain(value, dtype=float) -> np.ndarray:
    """A fresh base ``ndarray`` of ``dtype`` with ``value``'s data; ``TypeError`` when it is not numbers."""
    try:
        out = _array(value, dtype=dtype, copy=True, subok=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"expected numbers, got {type(value).__name__}: {exc}") from None
    if type(out) is not _BASE:  # numpy guarantees this with subok=False; checked, not assumed
        raise TypeError(f"expected a plain array, got {type(out).__name__}")
    return out


def numbers(value, dtype=float) -> tuple[tuple[int, ...], list]:
    """``(shape, flat list of Python numbers)`` of ``value``."""
    array = plain(value, dtype)
    return tuple(int(n) for n in array.shape), array.ravel().tolist()


def close(actual, expected, rtol: float = 1e-5, atol: float = 1e-8, *, rel_tol: float | None = None,
          abs_tol: float | None = None) -> bool:
    """Same shape (after broadcasting a scalar ``expected``) and every entry close, on Python floats.

    ``rtol``/``atol`` as in ``np.allclose``; ``rel_tol``/``abs_tol`` (``math.isclose``'s names) override them.
    """
    rtol = rtol if rel_tol is None else rel_tol
    atol = atol if abs_tol is None else abs_tol
    shape_a, a = numbers(actual)
    shape_e, e = numbers(expected)
    if shape_e == () and shape_a != ():
        e = e * len(a)
    elif shape_a != shape_e:
        return False
    if len(a) != len(e):
        return False
    return all(_isclose(x, y, rel_tol=rtol, abs_tol=atol) for x, y in zip(a, e, strict=True))


def equal(actual, expected, dtype=float) -> bool:
    """Same shape and every entry equal, on Python numbers of ``dtype``."""
    shape_a, a = numbers(actual, dtype)
    shape_e, e = numbers(expected, dtype)
    return shape_a == shape_e and a == e


def ints(value) -> list[int]:
    """``value`` as a list of Python ints (ids), refusing anything that is not whole numbers."""
    array = plain(value, float)
    flat = array.ravel().tolist()
    if not all(_isfinite(x) and float(x).is_integer() for x in flat):
        raise TypeError("expected whole numbers (ids)")
    return [int(x) for x in flat]


def finite(value) -> bool:
    return all(_isfinite(x) for x in numbers(value)[1])


def number(value) -> float:
    """``value`` as one Python float (``TypeError`` unless it is a single number)."""
    shape, flat = numbers(value)
    if len(flat) != 1:
        raise TypeError(f"expected one number, got shape {shape}")
    return flat[0]


def plain_value(value, _depth: int = 0):
    """A copy of ``value`` made only of exact Python types, so ``==`` on it is Python's own.

    Accepts ``None``, ``bool``, ``int``, ``float``, ``bytes``, ``str``, NumPy scalars and base
    arrays (as lists), and exact ``list``/``tuple`` (as lists) and ``dict`` containers of them.
    Subclasses — a ``dict`` or ``float`` whose ``__eq__`` always says yes — are refused with a
    ``TypeError`` naming the type, instead of being compared by their own rules.
    """
    if _depth > 50:
        raise TypeError("expected plain data, got a structure nested more than 50 levels deep")
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind in _NUMPY_SCALARS:
        return plain_value(_item(value), _depth + 1)
    if kind is _BASE:  # tolist gives Python scalars, or the objects of an object array
        return plain_value(_tolist(value), _depth + 1)
    if kind is list or kind is tuple:
        return [plain_value(item, _depth + 1) for item in value]
    if kind is dict:
        return {plain_value(key, _depth + 1): plain_value(item, _depth + 1) for key, item in _dict_items(value)}
    raise TypeError(f"expected plain Python data (numbers, bytes, str, list, dict, NumPy arrays), "
                    f"got {kind.__module__}.{kind.__qualname__}")
