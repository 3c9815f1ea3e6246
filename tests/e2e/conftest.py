"""Fixtures for the end-to-end tests: the tiny pipeline run once per session in a throwaway copy
of the project, and private copies of that run for tests that change something."""

from __future__ import annotations

import shutil
import time

import pytest

from pipeline_project import make_project, snakemake


@pytest.fixture(scope="session")
def ci_run(tmp_path_factory):
    """The tiny pipeline run once, end to end; returns (project dir, wall seconds). It is started as
    users start it without reading the README: ``.venv/bin/snakemake`` with the venv's bin/ not on
    PATH, so the onsuccess hook must not need ``snakemake`` or ``dvc`` from PATH."""
    project = make_project(tmp_path_factory.mktemp("ci_project"))
    t0 = time.perf_counter()
    proc = snakemake(project, venv_on_path=False)
    seconds = time.perf_counter() - t0
    print(f"\ntiny end-to-end run: {seconds:.1f} s")
    (project / "run.log").write_text(proc.stdout + proc.stderr)
    return project, seconds


@pytest.fixture
def clone_run(ci_run, tmp_path):
    """A private copy of the finished tiny run (mtimes and Snakemake metadata preserved)."""
    project, _ = ci_run
    dst = tmp_path / "project"
    shutil.copytree(project, dst, symlinks=True)
    return dst
