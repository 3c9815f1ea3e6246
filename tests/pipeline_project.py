"""Helpers for the end-to-end tests: a throwaway copy of the project (tracked files, its own git and DVC repository) with the tiny
config as its default config, run once per test session and shared read-only by the e2e tests.
Tests that change something work on a further copy (:func:`clone_run`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def fresh_python(code: str, *args: str, cwd: Path | str | None = None) -> str:
    """The standard output of ``code`` run by a fresh interpreter (``python -c code *args``): what a
    job's own process imports or prints, from a clean start. A failure fails the test with the
    process's standard error."""
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def env_for(project: Path, venv_on_path: bool = True) -> dict:
    """Subprocess environment: the copy's own package first on the path, one thread per job.
    ``venv_on_path=False`` removes the venv's bin/ from PATH, as for a user who calls
    ``.venv/bin/snakemake`` without activating the venv."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(project / "src")
    rest = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != BIN.resolve()]
    env["PATH"] = os.pathsep.join([str(BIN), *rest] if venv_on_path else rest)
    env["OMP_NUM_THREADS"] = "1"
    env.pop("DVC_STAGE", None)
    return env


def sh(
    cmd: list[str], project: Path, check: bool = True, venv_on_path: bool = True, **kw
) -> subprocess.CompletedProcess:
    env = env_for(project, venv_on_path)
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def make_project(dst: Path, config: str | Path = "config/ci.yaml") -> Path:
    """Copies the tracked files to ``dst`` with ``config`` (a path relative to the repository, or
    absolute; the tiny config unless told) as its default config, and makes it a git+DVC repo."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        src = ROOT / f
        if not src.is_file():
            continue
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / f)
    # the tiny (or given) config becomes the default, so DVC's params and the onsuccess commit see it
    shutil.copy2(ROOT / config, dst / "config" / "config.yaml")
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


def snakemake(project: Path, *args: str, check: bool = True, venv_on_path: bool = True) -> subprocess.CompletedProcess:
    return sh([str(BIN / "snakemake"), "--cores", "2", *args], project, check=check, venv_on_path=venv_on_path)


def dry_run_jobs(project: Path, *args: str) -> dict[str, int]:
    """Jobs a dry run would execute, per rule (empty when there is nothing to do)."""
    return parse_job_counts(snakemake(project, *args, "-n", "--quiet", "rules").stdout)


def parse_job_counts(stdout: str) -> dict[str, int]:
    """Jobs per rule from the 'job count' table of ``snakemake -n --quiet rules``."""
    counts, started = {}, False
    for line in stdout.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            started = True
            continue
        if started and len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


# ----------------------------------------------------------------------------- helpers for test_faults / test_dvc

GIT_USER = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def git(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``git`` in ``project`` with a fixed identity (command line and environment), so commits work
    on machines without a global git identity."""
    cmd = ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args]
    proc = subprocess.run(cmd, cwd=project, env={**env_for(project), **GIT_USER}, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def commit_all(project: Path, message: str) -> str:
    """Commits everything Git does not ignore (DVC-cached outputs are ignored); returns the commit.
    Also sets the repository's own identity, which ``dvc exp run`` needs for its commits."""
    git(project, "config", "user.email", "t@t")
    git(project, "config", "user.name", "t")
    git(project, "add", "-A")
    git(project, "commit", "-qm", message)
    return git(project, "rev-parse", "HEAD").stdout.strip()


def pending_jobs(project: Path, *args: str) -> dict[str, int]:
    """Like :func:`dry_run_jobs`, but fails on a locked directory: there a dry run prints "Directory
    cannot be locked" and "Nothing to be done" and exits 0, which would read as an empty result."""
    proc = snakemake(project, *args, "-n", "--quiet", "rules")
    out = proc.stdout + proc.stderr
    if "cannot be locked" in out:
        raise AssertionError(f"{project} is locked by Snakemake; run `snakemake --unlock` first:\n{out[-2000:]}")
    return parse_job_counts(proc.stdout)


#: what a SLURM cluster on this machine needs (tools/slurm/cluster.sh; tests/e2e/test_slurm.py)
SLURM_BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel")


def which(name: str) -> str | None:
    """``shutil.which`` that also looks in /usr/sbin and /sbin (the daemons live there)."""
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def slurm_test_runs(items) -> bool:
    """Whether the SLURM test is among the collected ``items`` and will run rather than skip: a
    second run of config/ci.yaml from scratch, compared byte for byte with the session's local one
    (``FLOWTHEORY_REQUIRE_SLURM=1``, as in ``.ci/run``, or root with the binaries installed)."""
    if not any(item.name.startswith("test_ci_config_runs_on_slurm") for item in items):
        return False
    if os.environ.get("FLOWTHEORY_REQUIRE_SLURM") == "1":
        return True
    return os.geteuid() == 0 and all(which(b) for b in SLURM_BINARIES)


OUTPUT_DIRS = ("results", "metrics", "plots")


def output_hashes(project: Path, skip: tuple[str, ...] = ("report.html", ".gitignore")) -> dict[str, str]:
    """sha256 of every file under results/, metrics/ and plots/ (less ``skip``), by relative path."""
    import hashlib

    out = {}
    for top in OUTPUT_DIRS:
        for p in sorted((project / top).rglob("*")):
            if p.is_file() and p.name not in skip:
                out[str(p.relative_to(project))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def unloadable_outputs(project: Path) -> list[str]:
    """Every output file that does not load with the pipeline's own checked readers (or, for figures,
    lacks its magic number), plus any leftover temporary file; empty when all is well."""
    import numpy as np
    import pandas as pd

    from flowtheory.pipeline import storage

    bad = []
    for top in OUTPUT_DIRS:
        for p in sorted((project / top).rglob("*")):
            if not p.is_file() or p.name == ".snakemake_timestamp":  # Snakemake's date of a directory output
                continue
            rel = str(p.relative_to(project))
            try:
                if p.name.endswith(".tmp"):
                    raise ValueError("leftover temporary file")
                if p.suffix == ".npz":
                    if p.parent.name == "data":
                        storage.load_dataset(p)
                    else:
                        with np.load(p, allow_pickle=False) as z:
                            [z[k] for k in z.files]
                elif p.suffix == ".pt":
                    storage.load_checkpoint(p)
                elif p.suffix == ".json":
                    storage.load_json(p)
                elif p.suffix == ".csv":
                    pd.read_csv(p)
                elif p.suffix == ".png" and p.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
                    raise ValueError("not a PNG")
                elif p.suffix == ".pdf" and not p.read_bytes().rstrip().endswith(b"%%EOF"):
                    raise ValueError("not a complete PDF")
                elif p.stat().st_size == 0:
                    raise ValueError("empty")
            except Exception as e:  # noqa: BLE001 - every failure is reported
                bad.append(f"{rel}: {type(e).__name__}: {e}")
    return bad


def assert_figures_and_tables_are_well_formed(project: Path) -> None:
    """Every notebook output: PNG and PDF files start with their magic bytes, tables have rows."""
    from flowtheory.pipeline.paths import NOTEBOOKS

    for outs in NOTEBOOKS.values():
        for out in outs:
            data = (project / out).read_bytes()
            if out.endswith(".png"):
                assert data[:8] == b"\x89PNG\r\n\x1a\n", out
            elif out.endswith(".pdf"):
                assert data[:5] == b"%PDF-", out
            else:
                assert len(data.decode().strip().splitlines()) >= 3, out
