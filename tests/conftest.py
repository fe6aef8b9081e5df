"""Fixtures and hooks for the project's tests.

``actor_system`` and ``autojump_clock`` come from :mod:`actors.testing`, imported exactly as a user's conftest
would import them.

``@pytest.mark.deadline(seconds)`` (or ``pytestmark = pytest.mark.deadline(seconds)`` for a module) bounds an
async test on trio's clock: once the clock passes ``seconds``, the test fails with :class:`trio.TooSlowError`
instead of hanging. Under ``autojump_clock`` a test that deadlocks (an ask nobody answers, a message that never
comes) fails at once, since the clock jumps straight to the deadline.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from actors.testing import actor_system as actor_system
from actors.testing import autojump_clock as autojump_clock


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "deadline(seconds): fail an async test with trio.TooSlowError once trio's clock passes seconds")
    config.addinivalue_line(
        "markers", "slow: a long test (many kill -9 runs, say), left out by default; run them with -m slow")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    # Runs before pytest-trio's own wrapper, which then runs the bounded function as the test.
    marker = item.get_closest_marker("deadline")
    test = getattr(item, "obj", None)
    if marker is not None and inspect.iscoroutinefunction(test):
        seconds = marker.args[0]

        @functools.wraps(test)
        async def bounded(**kwargs: Any) -> Any:
            with trio.fail_after(seconds):
                return await test(**kwargs)

        item.obj = bounded  # type: ignore[attr-defined]
    yield
