"""The documentation under ``docs/`` stays true to the code.

- Every ``.. code-block:: python`` in the ``.rst`` sources is a complete program, and runs here in a fresh
  interpreter within a bounded time; where the block is followed by a ``.. code-block:: text`` captioned
  ``Output``, the program must print exactly that. A program that talks to RabbitMQ (its code names an
  ``amqp://`` URL) needs the broker on 127.0.0.1:5672: without one it is skipped, saying so, except under
  ``CI=true``, where it fails (the rule of the ``broker`` fixture in ``amqp_support.py``).
- Every public name (``actors.__all__``, ``actors.testing.__all__``) has an entry in the reference: an autodoc
  directive or a ``py:`` object directive in ``docs/reference/*.rst``.
- Every command and option of the ``actors`` command line is described in ``docs/reference/cli.rst``.

``make docs`` builds the site with warnings as errors, which catches broken references; these tests catch what a
build cannot see: code that no longer runs, and names or options that have no entry at all.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import click
import pytest

import actors
import actors.testing
from actors.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SOURCES = sorted(path for path in DOCS.rglob("*.rst") if "_build" not in path.parts)
RUN_TIMEOUT = 60.0
"""Seconds one snippet may run (in real time: each is a program of its own, started with ``python``)."""

BROKER_ADDRESS = ("127.0.0.1", 5672)
"""Where the snippets that name an ``amqp://`` URL expect RabbitMQ (``scripts/broker start`` runs one there)."""

PYTHON_LANGUAGES = {"python", "python3", "py"}
DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. (?P<kind>code-block|code|sourcecode)::\s*(?P<language>\S*)\s*$")
OPTION = re.compile(r"^\s*:(?P<name>[\w-]+):\s*(?P<value>.*)$")


@attrs.frozen
class Block:
    """One code block of an ``.rst`` source."""

    path: Path
    line: int
    """The line of its directive, counting from 1."""
    language: str
    options: dict[str, str]
    code: str
    end: int
    """The index of the first line after it."""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    """Every ``code-block`` (and ``code``/``sourcecode``) directive of ``path``, in order, with its dedented body."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        match = DIRECTIVE.match(lines[index])
        if match is None:
            index += 1
            continue
        indent = len(match["indent"])
        start = index
        index += 1
        options: dict[str, str] = {}
        while index < len(lines) and (option := OPTION.match(lines[index])) and lines[index].strip():
            options[option["name"]] = option["value"]
            index += 1
        body: list[str] = []
        while index < len(lines) and (not lines[index].strip() or
                                      len(lines[index]) - len(lines[index].lstrip()) > indent):
            body.append(lines[index])
            index += 1
        while body and not body[-1].strip():
            body.pop()
        blocks.append(Block(path, start + 1, match["language"], options, textwrap.dedent("\n".join(body)).strip("\n"),
                            index))
    return blocks


def python_snippets() -> list[tuple[Block, str | None]]:
    """Each Python block with the output it must print: the ``Output`` block right after it, if there is one."""
    found = []
    for path in SOURCES:
        blocks = code_blocks(path)
        for index, block in enumerate(blocks):
            following = blocks[index + 1] if index + 1 < len(blocks) else None
            if block.language not in PYTHON_LANGUAGES:
                continue
            expected = None
            if following is not None and following.options.get("caption") == "Output":
                between = path.read_text(encoding="utf-8").splitlines()[block.end:following.line - 1]
                if not any(line.strip() for line in between):
                    expected = following.code
            found.append((block, expected))
    return found


SNIPPETS = python_snippets()


def test_the_docs_have_snippets_to_run() -> None:
    assert len(SNIPPETS) >= 20, [block.where for block, _ in SNIPPETS]
    assert sum(expected is not None for _, expected in SNIPPETS) >= 10


@pytest.mark.parametrize(("block", "expected"), SNIPPETS, ids=[block.where for block, _ in SNIPPETS])
def test_snippet_runs(block: Block, expected: str | None, tmp_path: Path) -> None:
    if "amqp://" in block.code:
        need_a_broker(block)
    script = tmp_path / "snippet.py"
    script.write_text(block.code + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=RUN_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.where}: still running after {RUN_TIMEOUT}s; it printed:\n{exc.output}")
    assert done.returncode == 0, f"{block.where} exited with {done.returncode}:\n{done.stderr}"
    if expected is not None:
        printed = "\n".join(line.rstrip() for line in done.stdout.strip("\n").splitlines())
        assert printed == expected, f"{block.where} printed:\n{printed}\n\nits Output block says:\n{expected}"


def need_a_broker(block: Block) -> None:
    """Skip ``block`` (fail it under ``CI=true``) unless something accepts connections on the broker's port."""
    try:
        with socket.create_connection(BROKER_ADDRESS, timeout=2.0):
            return
    except OSError as exc:
        problem = exc
    reason = (f"{block.where} talks to RabbitMQ, and nothing answers on {BROKER_ADDRESS[0]}:{BROKER_ADDRESS[1]} "
              f"({problem}); start one with `scripts/broker start`")
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def test_python_is_only_written_in_code_blocks_the_suite_runs() -> None:
    """A ``.. code::`` or ``.. sourcecode::`` directive, or an unmarked language, would escape the runner."""
    for path in SOURCES:
        for block in code_blocks(path):
            assert block.language, f"{block.where}: give the block a language"
            if block.language in PYTHON_LANGUAGES:
                assert block.language == "python", f"{block.where}: write '.. code-block:: python'"


# -- the reference ----------------------------------------------------------------------------------------------

OBJECT = re.compile(r"^\s*\.\. (?:auto(?:class|function|exception|data|attribute|method|module)"
                    r"|py:(?:class|function|exception|data|attribute|method|module|decorator)"
                    r"|(?P<module>module|currentmodule|py:module|py:currentmodule))::\s*(?P<name>[\w.]+)")


def reference_entries() -> set[str]:
    """The fully qualified names that the reference's ``.rst`` files document."""
    documented = set()
    for path in sorted((DOCS / "reference").glob("*.rst")):
        module = ""
        for line in path.read_text(encoding="utf-8").splitlines():
            match = OBJECT.match(line)
            if match is None:
                continue
            if match["module"]:
                module = match["name"]
                documented.add(module)
            elif "." in match["name"] and match["name"].split(".")[0] in ("actors", "runtime"):
                documented.add(match["name"])
            else:
                documented.add(f"{module}.{match['name']}" if module else match["name"])
    return documented


ENTRIES = reference_entries()


@pytest.mark.parametrize("name", [f"actors.{name}" for name in actors.__all__]
                         + [f"actors.testing.{name}" for name in actors.testing.__all__])
def test_every_public_name_has_a_reference_entry(name: str) -> None:
    assert name in ENTRIES, (f"{name} is public but has no entry in docs/reference/: add an autodoc directive "
                             "(.. autoclass::, .. autofunction::, ...) for it")


def test_the_entry_finder_sees_module_directives() -> None:
    assert {"actors", "actors.testing", "actors.ActorSystem", "actors.testing.Probe"} <= ENTRIES


def cli_commands() -> list[tuple[str, click.Command]]:
    commands: list[tuple[str, click.Command]] = [("actors", cli_main)]
    assert isinstance(cli_main, click.Group)
    commands += [(f"actors {name}", command) for name, command in sorted(cli_main.commands.items())]
    return commands


def documented_options() -> dict[str, set[str]]:
    """``.. option::`` entries of ``cli.rst``, by the ``.. program::`` they follow."""
    options: dict[str, set[str]] = {}
    program = None
    for line in (DOCS / "reference" / "cli.rst").read_text(encoding="utf-8").splitlines():
        if match := re.match(r"^\.\. program::\s*(.+?)\s*$", line):
            program = match[1]
            options.setdefault(program, set())
        elif (match := re.match(r"^\.\. option::\s*(.+?)\s*$", line)) and program is not None:
            for spelling in match[1].split(", "):
                options[program].add(spelling.split()[0])
    return options


@pytest.mark.parametrize(("program", "command"), cli_commands(), ids=lambda value: str(value).replace(" ", "-"))
def test_every_cli_option_is_described(program: str, command: click.Command) -> None:
    options = documented_options()
    assert program in options, f"docs/reference/cli.rst has no '.. program:: {program}' section"
    for parameter in command.params:
        if isinstance(parameter, click.Option):
            for spelling in [*parameter.opts, *parameter.secondary_opts]:
                assert spelling in options[program], f"{program} {spelling} is not described in cli.rst"
