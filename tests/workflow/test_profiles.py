"""Scale-out: every rule declares threads and resources, and the SLURM profile schedules the whole
DAG (dry run, through snakemake-executor-plugin-slurm)."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from pipeline_project import ROOT, make_project

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def test_every_rule_declares_threads_and_resources():
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        for block in re.split(r"\n(?=rule )", text):
            m = re.match(r"rule (\w+):", block)
            if not m or m.group(1).startswith("stage_"):
                continue
            assert "threads:" in block, f"{smk.name}:{m.group(1)} has no threads"
            assert "mem_mb=" in block and "runtime=" in block, f"{smk.name}:{m.group(1)} has no resources"
            assert "log:" in block, f"{smk.name}:{m.group(1)} has no log"


def test_slurm_profile_is_valid_yaml_for_the_plugin():
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert {"mem_mb", "runtime", "slurm_partition"} <= set(profile["default-resources"])


def _dry_run(project, *extra):
    proc = subprocess.run([*SNAKEMAKE, "-n", "--configfile", "config/ci.yaml", *extra],
                          cwd=project, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    total = re.search(r"^total\s+(\d+)$", proc.stdout, re.M)
    return proc.stdout, int(total.group(1))


def test_slurm_dry_run_schedules_every_job(tmp_path):
    project = make_project(tmp_path / "p")
    _, local_total = _dry_run(project)
    out, slurm_total = _dry_run(project, "--profile", "profiles/slurm")
    assert slurm_total == local_total
    # every non-target job carries the resources the scheduler needs
    for block in out.split("\n\n"):
        if re.search(r"^rule (train|analyze|components|make_data):", block, re.M):
            assert re.search(r"mem_mb=\d+", block) and re.search(r"runtime=\d+", block), block


def test_workflow_profile_does_not_override_the_slurm_profile():
    """profiles/default (the workflow profile) is applied after --profile, key by key: a key in
    both would silently replace the cluster's value (latency-wait: 60 on a shared file system)."""
    slurm = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    code = ("from snakemake.cli import parse_args; "
            "_, a = parse_args(['-n', '--profile', 'profiles/slurm']); print(a.latency_wait, a.jobs)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-2:] == [str(slurm["latency-wait"]), str(slurm["jobs"])]
