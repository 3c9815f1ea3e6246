"""Old commit against this tree, side by side on one machine (``make bench-compare``).

For each config (``ci``: ``config/ci.yaml``; ``paper``: ``config/config.yaml``, each commit's own),
a clean copy of the old commit (``git archive``) and of this tree (its tracked files, less the
results) run ``snakemake --cores N`` one after the other under ``/usr/bin/time -v``, each with its
own ``src`` on ``PYTHONPATH``. Printed per config: wall time, CPU time (user + sys), the largest
process's peak memory, the job count, and new/old ratios; then ``snakemake -n`` on the new copy,
up to date; and for ``paper`` the old commit's own config on the new copy (the same work: the
speed goal; ``--no-same-work`` skips it). Absolute times move 3-4x between hosts of one kind:
compare the ratios, and quote the host's reference step (``python -m bench.steps --quick``: zuko
MAF) beside any absolute figure.

Usage: ``python -m bench.compare [--old 6909fdb] [--configs ci paper] [--cores 2]``; writes
``benchmarks/compare.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from bench.pipeline import ROOT, _copy_project

__all__ = ["dry_run", "main", "run_config"]

#: the commit of the performance issue's measurements (the paper run of 181 jobs)
OLD = "6909fdb"
CONFIGS = {"ci": ["--configfile", "config/ci.yaml"], "paper": []}


def _export(rev: str, dst: Path) -> None:
    tar = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(dst, filter="data")
    # as bench.pipeline._copy_project does for this tree: no results, no dvc.lock
    for sub in ("results", "metrics", "plots", "dvc.lock"):
        subprocess.run(["rm", "-rf", str(dst / sub)], check=True)


def _time_v(text: str) -> dict:
    def field(name: str) -> float:
        m = re.search(rf"{re.escape(name)}: ([\d.:]+)", text)
        if not m:
            return float("nan")
        value = m.group(1)
        if ":" in value:  # h:mm:ss or m:ss
            parts = [float(p) for p in value.split(":")]
            return sum(p * 60**i for i, p in enumerate(reversed(parts)))
        return float(value)

    return {
        "wall_s": field("Elapsed (wall clock) time (h:mm:ss or m:ss)"),
        "cpu_s": field("User time (seconds)") + field("System time (seconds)"),
        "peak_rss_mb": field("Maximum resident set size (kbytes)") / 1024,
    }


def run_config(project: Path, args: list[str], cores: int) -> dict:
    """One pipeline run from scratch in ``project``: times, peak memory and job count."""
    # the venv's bin on PATH: the old commit's onsuccess hook calls `snakemake` by name
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = dict(os.environ, PYTHONPATH=str(project / "src"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PATH=path)
    snakemake = str(Path(sys.executable).parent / "snakemake")
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", snakemake, "--cores", str(cores), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"run in {project} failed:\n{proc.stderr[-3000:]}")
    out = _time_v(proc.stderr)
    out["wall_s"] = wall
    steps = re.findall(r"(\d+) of (\d+) steps", proc.stderr)
    out["jobs"] = int(steps[-1][1]) if steps else None
    return out


def dry_run(project: Path, args: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(project / "src"))
    snakemake = str(Path(sys.executable).parent / "snakemake")
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([snakemake, "-n", *args], cwd=project, env=env, capture_output=True, check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default=OLD, help=f"the old commit (default {OLD})")
    parser.add_argument("--configs", nargs="+", default=["ci", "paper"], choices=list(CONFIGS))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/compare.json")
    parser.add_argument(
        "--no-same-work", action="store_true", help="skip the old commit's paper config on the new tree"
    )
    args = parser.parse_args(argv)
    results: dict = {"old": args.old, "cores": args.cores}
    for name in args.configs:
        row = {}
        with tempfile.TemporaryDirectory(prefix="ft-old-") as old, tempfile.TemporaryDirectory(prefix="ft-new-") as new:
            _export(args.old, Path(old))
            _copy_project(Path(new))
            for label, project in (("old", Path(old)), ("new", Path(new))):
                print(f"{name}: running the {label} pipeline ...", flush=True)
                row[label] = run_config(project, CONFIGS[name], args.cores)
            row["new_dry_run_s"] = dry_run(Path(new), CONFIGS[name])
            if name == "paper" and not args.no_same_work:
                # the speed goal: the old commit's own paper config (the same work) on this tree
                same = Path(new) / "config" / "old_commit.yaml"
                same.write_bytes((Path(old) / "config" / "config.yaml").read_bytes())
                for sub in ("results", "metrics", "plots", "logs", "benchmarks", ".snakemake"):
                    subprocess.run(["rm", "-rf", str(Path(new) / sub)], check=True)
                print(f"{name}: running the old commit's config on the new pipeline ...", flush=True)
                row["new_same_work"] = run_config(Path(new), ["--configfile", str(same)], args.cores)
                row["same_work_wall_ratio"] = row["new_same_work"]["wall_s"] / row["old"]["wall_s"]
                row["same_work_cpu_ratio"] = row["new_same_work"]["cpu_s"] / row["old"]["cpu_s"]
        row["wall_ratio"] = row["new"]["wall_s"] / row["old"]["wall_s"]
        row["cpu_ratio"] = row["new"]["cpu_s"] / row["old"]["cpu_s"]
        results[name] = row
        _print(name, row, args.old)
    path = ROOT / args.out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
    return results


def _print(name: str, row: dict, old: str) -> None:
    o, n = row["old"], row["new"]
    print(f"\n{name} config, old = {old}, new = this tree")
    print(f"{'':<8}{'wall s':>10}{'CPU s':>10}{'peak MB':>10}{'jobs':>8}")
    for label, r in (("old", o), ("new", n)):
        print(f"{label:<8}{r['wall_s']:>10.1f}{r['cpu_s']:>10.1f}{r['peak_rss_mb']:>10.0f}{r['jobs'] or 0:>8}")
    print(f"new/old: wall {row['wall_ratio']:.2f}x, CPU {row['cpu_ratio']:.2f}x")
    if "new_same_work" in row:
        s = row["new_same_work"]
        print(
            f"the old commit's config on the new tree (the same work): wall {s['wall_s']:.1f} s, "
            f"CPU {s['cpu_s']:.1f} s, peak {s['peak_rss_mb']:.0f} MB, {s['jobs']} jobs; new/old: "
            f"wall {row['same_work_wall_ratio']:.2f}x, CPU {row['same_work_cpu_ratio']:.2f}x"
        )
    print(f"snakemake -n on the new tree, up to date: {row['new_dry_run_s']:.2f} s")


if __name__ == "__main__":
    main()
