"""The public surface: what ``actors`` and ``runtime`` export, documented and exported once, and the layering."""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
import pathlib
import types
from typing import Any

import pytest

import actors
import actors.testing
import runtime

ROOT = pathlib.Path(__file__).resolve().parent.parent
PUBLIC_MODULES = [actors, actors.testing, runtime]


def exported(module: types.ModuleType) -> list[tuple[str, str]]:
    return [(module.__name__, name) for name in module.__all__]


ALL_EXPORTS = [pair for module in PUBLIC_MODULES for pair in exported(module)]


def attribute_docstring(module_name: str, name: str) -> str | None:
    """The string literal right after ``name = ...`` at the top level of a module, if any."""
    path = ROOT.joinpath(*module_name.split(".")).with_suffix(".py")
    body = ast.parse(path.read_text()).body
    for statement, following in itertools.pairwise(body):
        targets = (statement.targets if isinstance(statement, ast.Assign)
                   else [statement.target] if isinstance(statement, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) \
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant) \
                and isinstance(following.value.value, str):
            return following.value.value
    return None


def defining_module(obj: Any, name: str) -> str | None:
    """Where ``obj`` is defined: its ``__module__``, or for a plain value the private module that assigns it."""
    if isinstance(obj, type | types.FunctionType):
        return obj.__module__
    for package in ("runtime", "actors"):
        for path in sorted((ROOT / package).glob("_*.py")):
            module_name = f"{package}.{path.stem}"
            if path.stem != "__init__" and attribute_docstring(module_name, name) is not None:
                return module_name
    return None


@pytest.mark.parametrize(("module", "name"), ALL_EXPORTS)
def test_every_export_is_importable_and_documented(module: str, name: str) -> None:
    obj = inspect.unwrap(getattr(importlib.import_module(module), name))  # pytest fixtures wrap a function
    if isinstance(obj, type | types.FunctionType):
        doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else obj.__doc__
    else:  # a plain value (a context variable, ...): its attribute docstring where it is assigned
        where = defining_module(obj, name)
        assert where is not None, f"{module}.{name} is not assigned with a docstring in any private module"
        doc = attribute_docstring(where, name)
    assert doc, f"{module}.{name} has no docstring"
    assert doc.strip().splitlines()[0], f"{module}.{name} needs a one-line summary"


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_each_name_is_exported_once(module: types.ModuleType) -> None:
    names = module.__all__
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("module", [actors, runtime], ids=lambda m: m.__name__)
def test_public_packages_only_re_export(module: types.ModuleType) -> None:
    """Every public name of the package is in ``__all__`` and comes from a private module, imported once."""
    public = {name for name, value in vars(module).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert public - {"annotations"} == set(module.__all__)
    for name in module.__all__:
        where = defining_module(getattr(module, name), name)
        assert where is not None
        assert where.rsplit(".", 1)[1].startswith("_"), f"{module.__name__}.{name} is defined in public {where}"
    source = pathlib.Path(inspect.getfile(module)).read_text()
    imported: list[str] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            for alias in node.names:
                assert alias.asname == alias.name, f"write 'import {alias.name} as {alias.name}' to re-export"
                imported.append(alias.name)
        else:
            assert isinstance(node, ast.Expr | ast.Assign | ast.ImportFrom), \
                f"{module.__name__} should only re-export; found {ast.dump(node)[:80]}"
    assert sorted(imported) == sorted(module.__all__)


def test_actors_and_actors_testing_do_not_overlap() -> None:
    assert not set(actors.__all__) & set(actors.testing.__all__)


def test_testing_kit_methods_are_documented() -> None:
    for name in actors.testing.__all__:
        obj = getattr(actors.testing, name)
        if not isinstance(obj, type):
            continue
        for attr, value in vars(obj).items():
            if attr.startswith("_"):
                continue
            target = value.__func__ if isinstance(value, classmethod | staticmethod) else value
            target = target.fget if isinstance(target, property) else target
            assert getattr(target, "__doc__", None), f"{name}.{attr} has no docstring"


# -- layout and layering ----------------------------------------------------------------------------------------


def test_module_layout() -> None:
    for package, public in (("actors", {"__init__", "testing", "cli"}), ("runtime", {"__init__"})):
        for path in (ROOT / package).glob("*.py"):
            assert path.stem in public or path.stem.startswith("_"), \
                f"{package}/{path.name} should be private: {package}/_{path.name}"
        assert (ROOT / package / "py.typed").exists()


def imports_of(path: pathlib.Path) -> list[str]:
    """Every module that a source file imports, wherever the import statement is (functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return found


@pytest.mark.parametrize("path", sorted((ROOT / "runtime").glob("*.py")), ids=lambda p: p.name)
def test_runtime_never_imports_actors(path: pathlib.Path) -> None:
    offending = [name for name in imports_of(path) if name == "actors" or name.startswith("actors.")]
    assert not offending, f"runtime/{path.name} imports {offending}"


@pytest.mark.parametrize("path", sorted((ROOT / "actors").glob("*.py")), ids=lambda p: p.name)
def test_actors_use_only_what_runtime_exports(path: pathlib.Path) -> None:
    offending = [name for name in imports_of(path) if name.startswith("runtime.")]
    assert not offending, f"actors/{path.name} imports {offending}: use names exported by runtime"
