"""Static checks of the DAG: lint, formatting, dvc.yaml in sync, job counts and stage order."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter

import pytest
import yaml

from flowtheory.pipeline import dvc_export
from flowtheory.pipeline.paths import GALLERY_NOTEBOOK
from pipeline_project import parse_job_counts

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
REQUIRED_CLAIMS = {
    "linear_whitening",
    "linear_components_pca",
    "shrinkage_closed_form",
    "linear_singular_illposed",
    "manifold_unregularized_illposed",
    "regularized_stable_weight",
    "regularized_stable_jacobian",
    "regularized_stable_noise",
    "noise_equals_tikhonov",
    "local_covariance_oracle",
    "normal_std_shrinkage",
    "intrinsic_dimension_manifolds",
    "intrinsic_dimension_sweep",
    "intrinsic_dimension_sweep_noise",
    "mnist_unregularized_illposed",
    "mnist_spectrum_decay",
    "mnist_components_local",
}


def run(cmd, cwd, **kw):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kw)


def test_lint_is_clean(root):
    proc = run([*SNAKEMAKE, "--lint"], root)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("args", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_is_clean(root, args):
    proc = run([sys.executable, "-m", "ruff", *args, "."], root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_snakefmt_is_clean(root):
    proc = run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/rules"], root)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dvc_yaml_is_in_sync_with_paths(root):
    assert (root / "dvc.yaml").read_text() == dvc_export.render(), "run `make dvc.yaml` and commit"


def test_dvc_stages_parse_without_overlapping_outputs(root):
    proc = run([sys.executable, "-m", "dvc", "stage", "list"], root)
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == [
        "data",
        "train",
        "analysis",
        "components",
        "figures",
    ]


def test_dvc_params_are_the_keys_each_stage_reads(root):
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    params = {name: s.get("params", [{}])[0].get("config/config.yaml", []) for name, s in stages.items()}
    assert params["data"] == ["data"]
    assert "stabilizers" in params["train"] and "experiments" in params["train"]
    assert params["analysis"] == ["analysis"] and params["components"] == ["components"]


def _job_counts(root, *extra) -> Counter:
    proc = run([*SNAKEMAKE, "-n", "--quiet", "rules", "--configfile", "config/ci.yaml", *extra], root)
    assert proc.returncode == 0, proc.stderr
    return Counter(parse_job_counts(proc.stdout))


@pytest.fixture(scope="module")
def ci_config(request):
    return yaml.safe_load((request.config.rootpath / "config" / "ci.yaml").read_text())


def test_dry_run_schedules_the_expected_grid(root, ci_config, tmp_path):
    # in a clean copy of the tracked files, so local results do not hide jobs
    files = run(["git", "ls-files"], root).stdout.split()
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_bytes((root / f).read_bytes())
    counts = _job_counts(tmp_path)
    n_experiments = len(ci_config["experiments"])  # one job per experiment and stage, all its runs
    n_datasets = len({e["dataset"] for e in ci_config["experiments"].values()})
    notebooks = sorted(p.stem for p in (root / "workflow" / "notebooks").glob("*.py"))
    assert counts["data"] == n_datasets
    assert counts["train"] == counts["analysis"] == counts["components"] == n_experiments
    assert counts["summarize_train"] == counts["summarize_analysis"] == counts["summarize_components"] == 1
    assert counts["claims"] == 1
    for nb in notebooks:  # one job per notebook; the gallery, one per experiment
        assert counts[nb] == (n_experiments if nb == GALLERY_NOTEBOOK else 1), nb


def test_rulegraph_orders_the_stages(root):
    proc = run([*SNAKEMAKE, "--rulegraph", "--configfile", "config/ci.yaml", "--forceall"], root)
    assert proc.returncode == 0, proc.stderr
    labels = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', proc.stdout, re.M))
    edges = {(labels[a], labels[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", proc.stdout, re.M)}
    for edge in [
        ("data", "train"),
        ("train", "analysis"),
        ("train", "components"),
        ("analysis", "summarize_analysis"),
        ("components", "summarize_components"),
        ("summarize_train", "claims"),
        ("summarize_components", "fig_e_mnist"),
    ]:
        assert edge in edges, edge


def test_paper_map_is_complete_and_every_figure_is_a_target(root):
    paper_map = yaml.safe_load((root / "paper_map.yaml").read_text())
    ids = {c["id"] for c in paper_map["claims"]}
    assert REQUIRED_CLAIMS <= ids
    from flowtheory.pipeline.paths import NOTEBOOKS
    from flowtheory.stages.claims import CHECKS, load_paper_map

    load_paper_map(root / "paper_map.yaml")  # every selector within the grammar
    for c in paper_map["claims"]:
        assert c["check"] in CHECKS, c["id"]
        assert c["figure"] in NOTEBOOKS, c["id"]
        assert c.get("justification"), f"{c['id']}: a threshold needs its reason"
        assert c.get("epsilon_reason"), f"{c['id']}: an epsilon needs its reason"
    for nb in [*NOTEBOOKS, GALLERY_NOTEBOOK]:
        assert (root / "workflow" / "notebooks" / f"{nb}.py").exists()
        assert (root / "workflow" / "report" / f"{nb}.rst").exists()


def test_notebooks_are_jupytext_percent_files(root):
    import jupytext

    for path in (root / "workflow" / "notebooks").glob("*.py"):
        nb = jupytext.read(path)
        kinds = {c.cell_type for c in nb.cells}
        assert {"markdown", "code"} <= kinds, path.name
        assert "claim" in nb.cells[0].source.lower() or "claim" in nb.cells[1].source.lower(), path.name
