"""Pipeline-level benchmarks (``make bench`` runs them after :mod:`bench.steps`):

* the tiny config (``config/ci.yaml``) end to end in a throwaway copy of the project;
* ``snakemake -n`` on an up-to-date tree (that copy, after its run);
* from the last paper-scale run's ``benchmarks/*.tsv``: the summed job time and the largest
  job's peak memory (``max_rss``), per stage.

Usage: ``python -m bench.pipeline [--skip-ci]``; prints a table and writes
``benchmarks/pipeline.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

__all__ = ["ci_end_to_end", "job_table", "main"]

ROOT = Path(__file__).resolve().parents[1]


def _copy_project(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file() and not f.startswith(("results/", "metrics/", "plots/")) and f != "dvc.lock":
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dst / f)


def ci_end_to_end(cores: int = 2) -> dict:
    """Wall time of the tiny config from scratch, and of ``snakemake -n`` afterwards (best of 3)."""
    from bench.compare import dry_run, run_config  # compare imports this module

    args = ["--configfile", "config/ci.yaml"]
    with tempfile.TemporaryDirectory(prefix="flowtheory-bench-") as tmp:
        project = Path(tmp)
        _copy_project(project)
        wall = run_config(project, args, cores)["wall_s"]
        return {"ci_end_to_end_s": wall, "dry_run_up_to_date_s": dry_run(project, args), "cores": cores}


def job_table(bench_dir: Path = ROOT / "benchmarks") -> pd.DataFrame:
    """One row per job benchmark TSV (Snakemake's ``benchmark:``): stage, job, seconds, max_rss MB."""
    rows = []
    for tsv in sorted(bench_dir.glob("*/**/*.tsv")):
        t = pd.read_csv(tsv, sep="\t")
        rows.append(
            {
                "stage": tsv.relative_to(bench_dir).parts[0],
                "job": str(tsv.relative_to(bench_dir)),
                "s": float(t["s"].iloc[-1]),
                "max_rss_mb": float(t["max_rss"].iloc[-1]),
            }
        )
    return pd.DataFrame(rows, columns=["stage", "job", "s", "max_rss_mb"])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-ci", action="store_true", help="only summarise the existing job benchmarks")
    args = parser.parse_args(argv)
    out: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"}
    if not args.skip_ci:
        out.update(ci_end_to_end())
        print(f"tiny config end to end: {out['ci_end_to_end_s']:.1f} s on {out['cores']} cores (goal ≤ 60 s)")
        print(f"snakemake -n, up to date: {out['dry_run_up_to_date_s']:.2f} s (goal ≤ 3 s)")
    jobs = job_table()
    if len(jobs):
        per_stage = jobs.groupby("stage").agg(
            jobs=("s", "size"), total_s=("s", "sum"), max_s=("s", "max"), max_rss_mb=("max_rss_mb", "max")
        )
        print("\nlast run's jobs (benchmarks/*.tsv):")
        print(per_stage.to_string(float_format=lambda v: f"{v:.1f}"))
        worst = jobs.loc[jobs.max_rss_mb.idxmax()]
        print(
            f"largest job's peak memory: {worst.max_rss_mb:.0f} MB ({worst.job}) (goal ≤ 4096 MB); "
            "Snakemake samples it and can miss a short peak: `/usr/bin/time -v snakemake` reports the "
            "largest process exactly"
        )
        out["stages"] = per_stage.reset_index().to_dict("records")
        out["peak_rss_mb"] = float(worst.max_rss_mb)
        out["peak_rss_job"] = worst.job
    (ROOT / "benchmarks").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "pipeline.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
