"""What the wheel installs: the library (``actors`` and ``runtime``) and nothing else.

The benchmark harness lives in the repository only: installed as a top-level ``benchmarks`` package, it would
clash with a user's own ``benchmarks``. These tests build the wheel with pip from a copy of the checkout (so that
the checkout gets no ``build/`` directory, and no stale one is packaged) and install it into a directory of
its own; building needs what ``pip install -e .`` needs (setuptools from the package index or pip's cache).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIBRARY = {"actors", "runtime"}


def pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from this checkout."""
    source = tmp_path_factory.mktemp("source") / "trio-actors"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "*.json"))
    out = tmp_path_factory.mktemp("wheel")
    pip("wheel", "--no-deps", str(source), "--wheel-dir", str(out))
    (built,) = out.glob("trio_actors-*.whl")
    return built


def test_the_wheel_holds_the_library_and_not_the_benchmarks(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (top_level,) = (name for name in names if name.endswith(".dist-info/top_level.txt"))
        declared = set(archive.read(top_level).decode().split())
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == LIBRARY
    assert declared == LIBRARY
    assert not [name for name in names if name.startswith("benchmarks/")]
    assert {"actors/py.typed", "runtime/py.typed", "actors/cli.py"} <= set(names)


def test_a_users_benchmarks_package_is_importable_next_to_the_installed_library(
        wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    pip("install", "--no-deps", "--no-index", "--target", str(site), str(wheel))
    project = tmp_path / "project"
    (project / "benchmarks").mkdir(parents=True)
    (project / "benchmarks" / "__init__.py").write_text("OWNER = 'the user'\n")
    # The installed library comes first on sys.path, as site-packages would for an installed tool: a
    # ``benchmarks`` package in it would shadow the user's.
    script = ("import json, actors, actors.cli, runtime, benchmarks\n"
              "print(json.dumps([actors.__file__, runtime.__file__, benchmarks.__file__, benchmarks.OWNER]))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(project)])}
    done = subprocess.run([sys.executable, "-P", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    actors_file, runtime_file, benchmarks_file, owner = json.loads(done.stdout)
    assert Path(actors_file).is_relative_to(site)
    assert Path(runtime_file).is_relative_to(site)
    assert Path(benchmarks_file) == project / "benchmarks" / "__init__.py"
    assert owner == "the user"
    assert not (site / "benchmarks").exists()


def test_the_tests_import_the_harness_from_the_checkout() -> None:
    import benchmarks

    assert benchmarks.__file__ is not None
    assert Path(benchmarks.__file__).parent == REPO / "benchmarks"
