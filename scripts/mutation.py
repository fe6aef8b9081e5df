"""Mutation score of one engine module against its own tests, with cosmic-ray.

    .venv/bin/python scripts/mutation.py runtime/_supervision.py   # one module (make mutation MODULE=...)
    .venv/bin/python scripts/mutation.py all                       # every module in mutation/, one after the other
    .venv/bin/python scripts/mutation.py --rev REV runtime/_routing.py  # the module and tests as of a commit
    .venv/bin/python scripts/mutation.py --again runtime/_routing.py    # only the last run's survivors, again
    .venv/bin/python scripts/mutation.py --changed main               # the modules changed since main
    .venv/bin/python scripts/mutation.py --report all                  # the last sessions' scores again
    .venv/bin/python scripts/mutation.py --list

Each module has a cosmic-ray config in ``mutation/NAME.toml``: the module and the test command (its own test
files, ``pytest -x``). A ``[mutation]`` table there may set ``sample = N``: the mutants are then sampled evenly
(every k-th in source order) down to N, so that one run stays within about fifteen minutes on two cores. The
mutants run one at a time. cosmic-ray mutates the file in place, so the run works on a copy of the tree (the
working tree's files, or ``--rev``'s), never on the checkout itself, which stays free to edit and test meanwhile.
The session database and the surviving mutants' diffs are left in ``.mutation/`` for reading. ``--again`` runs
the survivors of the last session against the current tests and keeps the rest of its results: while tests are
only added (as when killing survivors), a mutant once killed stays killed, so that is the score a full run gives.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "mutation"
OUT = ROOT / ".mutation"
BIN = Path(sys.executable).parent


def configs() -> dict[str, Path]:
    """Module path -> its config file."""
    found = {}
    for path in sorted(CONFIGS.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        found[data["cosmic-ray"]["module-path"]] = path
    return found


Span = tuple[tuple[int, int], tuple[int, int]]


def annotation_spans(source: Path) -> list[Span]:
    """Where the type annotations of a module with postponed evaluation are: mutants there are equivalent.

    Under ``from __future__ import annotations`` an annotation is a string nothing here evaluates, so
    ``Restart | str`` mutated to ``Restart % str`` changes nothing observable. Without that import, none.
    """
    tree = ast.parse(source.read_text())
    postponed = any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
                    and any(alias.name == "annotations" for alias in node.names) for node in tree.body)
    if not postponed:
        return []
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign):
            annotation = node.annotation
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            annotation = node.returns
        else:
            continue
        if annotation is not None and annotation.end_lineno is not None and annotation.end_col_offset is not None:
            spans.append(((annotation.lineno, annotation.col_offset),
                          (annotation.end_lineno, annotation.end_col_offset)))
    return spans


def in_annotation(position: tuple[int, int], spans: list[Span]) -> bool:
    return any(start <= position <= end for start, end in spans)


def sample(db_path: Path, size: int, spans: list[Span]) -> tuple[int, int]:
    """Skip the mutants in annotations, then all but ``size`` evenly spaced others; return (kept, total)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(db_path), WorkDB.Mode.open) as db:
        items = sorted(
            db.work_items,
            key=lambda item: [
                (m.start_pos, m.operator_name, m.occurrence) for m in item.mutations
            ],
        )
        skipped = [item.job_id for item in items if in_annotation(tuple(item.mutations[0].start_pos), spans)]
        left_out = set(skipped)
        items = [item for item in items if item.job_id not in left_out]
        total = len(items)
        if 0 < size < total:
            keep = {round(i * total / size) for i in range(size)}
            skipped += [item.job_id for index, item in enumerate(items) if index not in keep]
        db.set_multiple_results(skipped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
        return min(size, total) if size > 0 else total, total


EQUIVALENTS = ROOT / "tests" / "mutation-equivalents.md"
_ENTRY = re.compile(r"^- `(core/\w+)` at `(.+?)`:(?:\s|$)")


def equivalents(module: str) -> set[tuple[str, str]]:
    """The accepted equivalent mutants of ``module``: (operator, source) from ``tests/mutation-equivalents.md``.

    An entry reads ``- `OPERATOR` at `SOURCE`: why``, under the module's heading; ``SOURCE`` is the mutated line,
    stripped, or that line and the next joined by `` ⏎ `` where the line alone is not unique in the module.
    """
    found: set[tuple[str, str]] = set()
    current = None
    for line in EQUIVALENTS.read_text().splitlines():
        if line.startswith("## "):
            current = line[3:].strip().strip("`")
        elif current == module and (match := _ENTRY.match(line)):
            found.add((match[1], match[2]))
    return found


def is_equivalent(operator: str, row: int, source: list[str], accepted: set[tuple[str, str]]) -> bool:
    line = source[row - 1].strip()
    following = source[row].strip() if row < len(source) else ""
    return (operator, line) in accepted or (operator, f"{line} ⏎ {following}") in accepted


def report(db_path: Path, survivors_path: Path, spans: list[Span], module_source: Path,
           accepted: set[tuple[str, str]]) -> tuple[int, int, int, int]:
    """Write the survivors' diffs; return (killed, tested, mutants, accepted equivalents among the survivors).

    Mutants in annotations are left out of every count.
    """
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    killed = tested = equivalent = 0
    source = module_source.read_text().splitlines()
    lines: list[str] = []
    with use_db(str(db_path), WorkDB.Mode.open) as db:
        mutants = sum(not in_annotation(tuple(item.mutations[0].start_pos), spans) for item in db.work_items)
        for item, result in db.completed_work_items:
            mutation = item.mutations[0]
            if result.worker_outcome != WorkerOutcome.NORMAL or in_annotation(tuple(mutation.start_pos), spans):
                continue
            tested += 1
            if result.test_outcome == TestOutcome.SURVIVED:
                if is_equivalent(mutation.operator_name, mutation.start_pos[0], source, accepted):
                    equivalent += 1
                    continue
                lines.append(f"{mutation.module_path}:{mutation.start_pos[0]} {mutation.operator_name}")
                lines.append(result.diff or "")
            else:
                killed += 1
    survivors_path.write_text("\n".join(lines))
    return killed, tested, mutants, equivalent


def snapshot(tree: Path, rev: str | None) -> None:
    """Copy the project's files (the working tree's, or those of commit ``rev``) into ``tree``."""
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    if rev is not None:
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        return
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)


def forget_survivors(db_path: Path) -> int:
    """Drop the results of the surviving mutants, so that ``cosmic-ray exec`` runs them again."""
    import sqlite3

    with sqlite3.connect(db_path) as db:
        return db.execute("DELETE FROM work_results WHERE lower(test_outcome) = 'survived'").rowcount


def run(module: str, config: Path, rev: str | None, again: bool = False,
        report_only: bool = False) -> tuple[int, int, int, int]:
    """Measure one module; return (killed, tested, total, accepted equivalents)."""
    OUT.mkdir(exist_ok=True)
    name = config.stem
    db_path = OUT / f"{name}.sqlite"
    if (again or report_only) and not db_path.exists():
        sys.exit(f"{module}: no earlier session in {db_path} to run again")
    if not again and not report_only:
        db_path.unlink(missing_ok=True)
    data = tomllib.loads(config.read_text())
    command = data["cosmic-ray"]["test-command"]
    size = int(data.get("mutation", {}).get("sample", 0))
    tree = OUT / ("report" if report_only else "tree")
    snapshot(tree, rev)
    spans = annotation_spans(tree / module)
    # The copy's own modules come first on sys.path (pytest's pythonpath = ["."]); the venv comes from PATH.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    if report_only:
        pass
    elif subprocess.run(command, shell=True, cwd=tree, env=env, capture_output=True).returncode != 0:
        sys.exit(f"{module}: its tests fail without a mutation ({command}); fix them first")
    if report_only:
        pass
    elif again:
        print(f"{module}: {forget_survivors(db_path)} survivors of the last session, again", flush=True)
    else:
        subprocess.run([str(BIN / "cosmic-ray"), "init", str(config), str(db_path)], cwd=tree, env=env, check=True)
        kept, total = sample(db_path, size, spans)
        print(f"{module}: {kept} mutants of {total}" + (" (sampled evenly)" if kept < total else ""), flush=True)
    started = time.monotonic()
    if not report_only:
        subprocess.run([str(BIN / "cosmic-ray"), "exec", str(config), str(db_path)], cwd=tree, env=env, check=True)
    killed, tested, total, equivalent = report(db_path, OUT / f"{name}-survivors.txt", spans, tree / module,
                                               equivalents(module))
    minutes = (time.monotonic() - started) / 60
    print(
        f"{module}: {killed} of {tested} caught, {percent(killed, tested)}; {equivalent} accepted equivalents, "
        f"{percent(killed, tested - equivalent)} of the others ({minutes:.1f} min); "
        f"survivors in .mutation/{name}-survivors.txt",
        flush=True,
    )
    return killed, tested, total, equivalent


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("module", nargs="?", help="a module path such as runtime/_routing.py, or 'all'")
    parser.add_argument("--rev", help="measure the files of this commit instead of the working tree's")
    parser.add_argument("--again", action="store_true", help="run only the last session's survivors again")
    parser.add_argument("--changed", metavar="REV",
                        help="measure the configured modules whose files differ from REV (committed or not)")
    parser.add_argument("--report", action="store_true",
                        help="only report the last session again (say, after editing the equivalents)")
    parser.add_argument("--list", action="store_true", help="list the configured modules")
    args = parser.parse_args()
    table = configs()
    if args.changed:
        changed = subprocess.run(["git", "diff", "--name-only", args.changed, "--"], cwd=ROOT, check=True,
                                 capture_output=True, text=True).stdout.split()
        modules = [module for module in table if module in changed]
        if not modules:
            print(f"no configured module changed since {args.changed}")
            return
    elif args.list or not args.module:
        for module, config in table.items():
            print(f"{module:28} {config.relative_to(ROOT)}")
        return
    else:
        modules = list(table) if args.module == "all" else [args.module]
    unknown = [module for module in modules if module not in table]
    if unknown:
        sys.exit(f"no mutation config for {', '.join(unknown)}; configured: {', '.join(table)}")
    rows = [(module, *run(module, table[module], args.rev, args.again, args.report)) for module in modules]
    print("\n| module | mutants (of) | caught | equivalent | score | without equivalents |\n|---|---|---|---|---|---|")
    for module, killed, tested, total, equivalent in rows:
        print(f"| `{module}` | {tested} ({total}) | {killed} | {equivalent} | {percent(killed, tested)} "
              f"| {percent(killed, tested - equivalent)} |")


if __name__ == "__main__":
    main()
