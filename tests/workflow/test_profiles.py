"""Scale-out: every rule declares threads and resources, and the SLURM profile schedules the whole
DAG (dry run, through snakemake-executor-plugin-slurm)."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from pipeline_project import ROOT, fresh_python, make_project

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def test_every_rule_has_a_log():
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=\s*rule)", smk.read_text()):
            m = re.match(r"\s*rule (\w+)?:", block)
            if not m or (m.group(1) or "").startswith("stage_"):
                continue
            assert "log:" in block, f"{smk.name}: rule {m.group(1) or '(procedural)'} has no log"


def test_default_resources_live_in_the_cluster_profile_only():
    """The workflow profile is applied after --profile, key by key: default-resources there would
    replace the cluster profile's (and drop its partition); the cluster profile holds them."""
    default = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
    slurm = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert "default-resources" not in default
    assert {"mem_mb", "runtime", "slurm_partition"} <= set(slurm["default-resources"])
    code = (
        "from snakemake.cli import parse_args; "
        "_, a = parse_args(['-n', '--profile', 'profiles/slurm']); print(sorted(a.default_resources))"
    )
    out = fresh_python(code, cwd=ROOT)
    assert "slurm_partition" in out and "mem_mb" in out, out


def test_slurm_profile_is_valid_yaml_for_the_plugin():
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert {"mem_mb", "runtime", "slurm_partition"} <= set(profile["default-resources"])


def _dry_run(project, *extra):
    proc = subprocess.run(
        [*SNAKEMAKE, "-n", "--configfile", "config/ci.yaml", *extra], cwd=project, capture_output=True, text=True
    )
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
        if re.search(r"^rule (?!stage_|all\b)\w+:", block, re.M):
            assert re.search(r"mem_mb=\d+", block) and re.search(r"runtime=\d+", block), block
            assert not re.search(r"threads: [2-9]", block), block


def test_workflow_profile_does_not_override_the_slurm_profile():
    """profiles/default (the workflow profile) is applied after --profile, key by key: a key in
    both would silently replace the cluster's value (latency-wait: 60 on a shared file system)."""
    slurm = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    code = (
        "from snakemake.cli import parse_args; "
        "_, a = parse_args(['-n', '--profile', 'profiles/slurm']); print(a.latency_wait, a.jobs)"
    )
    assert fresh_python(code, cwd=ROOT).split()[-2:] == [str(slurm["latency-wait"]), str(slurm["jobs"])]
