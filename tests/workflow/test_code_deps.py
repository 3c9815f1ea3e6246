"""Snakemake does not track imports, so each stage declares the package modules its rules import
(src/flowtheory/paths.py → rule inputs and DVC deps). This test derives them from the code: the
modules the stage's scripts and notebooks import, closed under the package's own imports (lazy
imports inside functions included). Too few would miss reruns; too many would rerun needlessly."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from flowtheory.paths import STAGES

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "src" / "flowtheory"


def _imports(path: Path) -> set[str]:
    """flowtheory modules imported anywhere in a file, as file names (``flows.py``)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    in_pkg = path.parent == PKG
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1 and in_pkg or mod.startswith("flowtheory"):
                base = mod.removeprefix("flowtheory").lstrip(".")
                if base:
                    found.add(base.split(".")[0] + ".py")
                else:  # from . import x / from flowtheory import x
                    found |= {f"{a.name}.py" for a in node.names if (PKG / f"{a.name}.py").exists()}
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("flowtheory."):
                    found.add(a.name.split(".")[1] + ".py")
    return found


def _closure(start: set[str]) -> set[str]:
    seen, todo = set(), list(start)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(_imports(PKG / m) - seen)
    return seen


def _entry_files(stage) -> list[Path]:
    files = []
    for s in stage.scripts:
        p = ROOT / s
        if p.is_dir():
            files += sorted(p.glob("*.py"))
        elif p.suffix == ".py":
            files.append(p)
    return files


@pytest.mark.parametrize("name", list(STAGES))
def test_declared_modules_are_exactly_the_imported_ones(name):
    stage = STAGES[name]
    start = set().union(*(_imports(f) for f in _entry_files(stage)))
    needed = _closure(start) | {"__init__.py"}
    declared = set(stage.modules)
    assert needed - declared == set(), f"stage {name} imports undeclared modules {sorted(needed - declared)}"
    assert declared - needed == set(), f"stage {name} declares modules it never imports {sorted(declared - needed)}"


def test_every_declared_module_exists():
    for stage in STAGES.values():
        for m in stage.module_paths():
            assert (ROOT / m).is_file(), m
