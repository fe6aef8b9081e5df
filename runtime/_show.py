"""One way to put a user's value into an error message or a log line: it never raises and stays short."""

from __future__ import annotations

__all__ = ["show"]


def show(value: object, limit: int = 200) -> str:
    """``repr(value)``, cut to ``limit`` characters, that survives any value.

    A ``__repr__`` that raises, or a value nested deeper than the recursion limit (whose ``repr`` raises
    ``RecursionError``), shows as ``<TypeName object (repr raised ErrorName)>``: the runtime formats messages while
    it handles failures, and a value must never turn one actor's failure into the whole system's.
    """
    try:
        text = repr(value)
    except Exception as exc:  # any failure of the value's own code, RecursionError included
        text = f"<{type(value).__qualname__} object (repr raised {type(exc).__name__})>"
    return text if len(text) <= limit else text[:limit] + "…"
