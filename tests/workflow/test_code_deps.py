"""Snakemake does not track imports, so each stage declares the package modules its rules import
(src/flowtheory/pipeline/paths.py → rule inputs and DVC deps). This test derives them from the code: the
modules the stage's scripts and notebooks import, closed under the package's own imports (lazy
imports inside functions included). Too few would miss reruns; too many would rerun needlessly."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from flowtheory.pipeline.paths import STAGES

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "src" / "flowtheory"


def _module_files(dotted: str) -> set[str]:
    """``flowtheory.a.b`` -> the files Python runs to import it, relative to the package:
    ``__init__.py``, ``a/__init__.py``, ``a/b.py`` (or ``a/b/__init__.py``)."""
    parts = dotted.split(".")[1:]
    files = {"__init__.py"}
    for k in range(1, len(parts) + 1):
        rel = "/".join(parts[:k])
        if (PKG / rel).is_dir():
            files.add(f"{rel}/__init__.py")
        elif (PKG / f"{rel}.py").is_file():
            files.add(f"{rel}.py")
    return files


def _imports(path: Path) -> set[str]:
    """flowtheory modules imported anywhere in a file (lazy imports inside functions included), as
    paths relative to the package (``science/flows.py``). The package uses absolute imports only."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; the package uses absolute imports"
            mod = node.module or ""
            if mod == "flowtheory" or mod.startswith("flowtheory."):
                found |= _module_files(mod)
                for a in node.names:  # `from flowtheory.science import flows` imports a module
                    sub = f"{mod}.{a.name}"
                    rel = sub.replace(".", "/").removeprefix("flowtheory/")
                    if (PKG / f"{rel}.py").is_file() or (PKG / rel).is_dir():
                        found |= _module_files(sub)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("flowtheory."):
                    found |= _module_files(a.name)
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
    needed = _closure(start)
    declared = set(stage.modules)
    assert needed - declared == set(), f"stage {name} imports undeclared modules {sorted(needed - declared)}"
    assert declared - needed == set(), f"stage {name} declares modules it never imports {sorted(declared - needed)}"


def test_every_declared_module_exists():
    for stage in STAGES.values():
        for m in stage.module_paths():
            assert (ROOT / m).is_file(), m
