"""Helpers for the end-to-end tests: a throwaway copy of the project (tracked files, its own git and DVC repository) with the tiny
config as its default config, run once per test session and shared read-only by the e2e tests.
Tests that change something work on a further copy (:func:`clone_run`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def env_for(project: Path) -> dict:
    """Subprocess environment: the copy's own package first on the path, one thread per job."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(project / "src")
    env["PATH"] = f"{BIN}:{env['PATH']}"
    env["OMP_NUM_THREADS"] = "1"
    env.pop("DVC_STAGE", None)
    return env


def sh(cmd: list[str], project: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=project, env=env_for(project), capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def make_project(dst: Path) -> Path:
    """Copies the tracked files to ``dst`` (tiny config as default) and makes it a git+DVC repo."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        src = ROOT / f
        if not src.is_file():
            continue
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / f)
    # the tiny config becomes the default, so DVC's params and the onsuccess commit see it
    shutil.copy2(dst / "config" / "ci.yaml", dst / "config" / "config.yaml")
    # committed results of the paper-scale run must not leak into the tiny run
    for p in ("results", "metrics", "plots", "dvc.lock"):
        target = dst / p
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    sh(["git", "init", "-q"], dst)
    sh(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], dst)
    sh(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"], dst)
    return dst


def snakemake(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh([str(BIN / "snakemake"), "--cores", "2", *args], project, check=check)


def dry_run_jobs(project: Path, *args: str) -> dict[str, int]:
    """Jobs a dry run would execute, per rule (empty when there is nothing to do)."""
    proc = snakemake(project, "-n", "--quiet", "rules", *args)
    counts = {}
    started = False
    for line in proc.stdout.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            started = True
            continue
        if started and len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


