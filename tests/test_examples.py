"""Every program in ``examples/`` runs to completion (in virtual time where it waits on trio's clock)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import examples

EXAMPLES = sorted(info.name for info in pkgutil.iter_modules(examples.__path__) if not info.name.startswith("_"))


def test_every_example_is_covered() -> None:
    assert "hello" in EXAMPLES


async def test_hello_prints_the_count(capsys: pytest.CaptureFixture[str]) -> None:
    from examples import hello

    assert await hello.main() == 15
    assert "the counter says 15" in capsys.readouterr().out


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_has_a_documented_main(name: str) -> None:
    module = importlib.import_module(f"examples.{name}")
    assert module.__doc__, f"examples/{name}.py needs a module docstring for readers"
    assert callable(getattr(module, "main", None)), f"examples/{name}.py needs a main()"


