"""Configs other than the paper's, through the real ``snakemake`` command: claims and figures follow
the experiments a config has, whatever they are named.

* Three tiny configs of one experiment each (tests/configs/): a RealNVP flow on the Swiss roll, a
  linear flow on a 3-D Gaussian, and Fashion-MNIST from IDX files (skipped without Debian's
  ``dataset-fashion-mnist``). Each completes with every figure and table written; every claim that
  applies to its experiment is evaluated (no NOT RUN, no N/A), every other claim is N/A; a figure
  with nothing of its kind to show says so.
* Names that are not path components and more neighbours than points: one config error naming the
  key, a non-zero exit, no output written.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from flowtheory.pipeline.paths import NOTEBOOKS, stage_files
from pipeline_project import ROOT, assert_figures_and_tables_are_well_formed, make_project, snakemake

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
#: a claim × experiment verdict (src/flowtheory/stages/claims.py)
VERDICTS = ("PASS", "FAIL", "NOT_AT_OPTIMUM", "NOT_FAR_ENOUGH", "NOT RUN")


@dataclass
class Case:
    """A tiny config, the claims that must be evaluated on it and the notebooks that show something."""

    claims: set[str]
    figures: set[str]
    needs_fashion: bool = False


#: the notebooks that show every experiment of any config
EVERY_CONFIG = {"fig_scorecard", "fig_gap", "table_f_nll", "table_conclusions"}

CASES = {
    "swissroll_realnvp": Case(
        claims={
            "manifold_unregularized_illposed",
            "regularized_stable_jacobian",
            "regularized_stable_noise",
            "intrinsic_dimension_manifolds",
            "local_covariance_oracle",
            "normal_std_shrinkage",
        },
        figures={
            "fig_b_training",
            "fig_c_scurve",
            "fig_d_toys",
            "fig_covariance",
            "fig_tangent",
            "fig_shrinkage",
            *EVERY_CONFIG,
        },
    ),
    "gaussian_3d": Case(
        claims={"linear_whitening", "linear_components_pca", "shrinkage_closed_form", "noise_equals_tikhonov"},
        figures={"fig_a_linear", "fig_sweep", *EVERY_CONFIG},
    ),
    "fashion_idx": Case(
        claims={
            "mnist_unregularized_illposed",
            "mnist_spectrum_decay",
            "mnist_components_local",
            "regularized_stable_jacobian",
        },
        figures={"fig_b_training", "fig_e_mnist", *EVERY_CONFIG},
        needs_fashion=True,
    ),
}


@pytest.fixture(scope="module", params=list(CASES))
def config_run(request, tmp_path_factory):
    """One tiny config run end to end in its own copy of the project (as its default config)."""
    name = request.param
    case = CASES[name]
    if case.needs_fashion and not (FASHION_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        reason = f"Fashion-MNIST IDX files missing in {FASHION_DIR}; install Debian's dataset-fashion-mnist"
        if os.environ.get("FLOWTHEORY_REQUIRE_FASHION") == "1":
            pytest.fail(f"{reason} (FLOWTHEORY_REQUIRE_FASHION=1 makes this a failure)")
        pytest.skip(reason)
    project = make_project(tmp_path_factory.mktemp(name), config=f"tests/configs/{name}.yaml")
    t0 = time.perf_counter()
    proc = snakemake(project, check=False)
    print(f"\n{name}: {time.perf_counter() - t0:.1f} s end to end")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return name, case, project


def test_every_output_is_written(config_run):
    _, _, project = config_run
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    for stage in ("data", "train", "analysis", "components", "figures"):
        for path in stage_files(stage, config):
            assert (project / path).is_file() and (project / path).stat().st_size > 0, path
    assert_figures_and_tables_are_well_formed(project)


def test_every_applicable_claim_is_evaluated(config_run):
    name, case, project = config_run
    doc = json.loads((project / "results" / "claims.json").read_text())
    records = {r["id"]: r for r in doc["claims"]}
    evaluated = {i for i, r in records.items() if r["verdict"] != "N/A"}
    assert evaluated == case.claims, name
    for i, r in records.items():
        if i in case.claims:
            assert r["verdict"] in VERDICTS and r["verdict"] != "NOT RUN" and r["experiments"], i
            for exp, res in r["experiments"].items():
                assert res["verdict"] in VERDICTS and res["verdict"] != "NOT RUN", (i, exp, res)
                assert res["metric"] and res["direction"] in ("<=", ">="), (i, exp)
        else:
            assert r["passed"] is None and r["note"] == "no experiment of this kind in this config", i
    assert len(doc["conclusions"]) == 5
    md = (project / "results" / "claims.md").read_text()
    assert "NOT RUN" not in md and "### Conclusions" in md and "### Per experiment" in md
    metrics = json.loads((project / "metrics" / "claims.json").read_text())["claims"]
    assert {i for i, m in metrics.items() if m["n_experiments"]} == case.claims


def test_figures_show_their_kind_or_say_what_is_missing(config_run):
    """Each notebook's log names the experiments it shows; the others drew the one panel (or table
    row) that says no experiment of their kind is in the config."""
    name, case, project = config_run
    for nb in NOTEBOOKS:
        log = (project / "logs" / "figures" / f"{nb}.log").read_text()
        shows = not log.startswith(f"notebook {nb}: shows 0 experiment(s)")
        assert shows == (nb in case.figures), f"{name}: {nb}: {log}"
    if "table_f_nll" not in case.figures:
        assert "No experiment of this kind" in (project / "results" / "tables" / "table_f_nll.md").read_text()


# ----------------------------------------------------------------------------- config errors


@pytest.fixture(scope="module")
def bare_project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("bad_configs"))


def _rename(section: str, old: str, new: str):
    def edit(cfg):
        node = cfg
        for k in section.split("."):
            node = node[k]
        node[new] = node.pop(old)

    return edit


def _set(dotted: str, value):
    def edit(cfg):
        keys = dotted.split(".")
        node = cfg
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return edit


BAD = {
    "experiment-name-with-slash": (
        _rename("experiments", "line_linear", "a/b"),
        ["experiments: name 'a/b' is not allowed", "no '/'"],
    ),
    "dataset-name-dotdot": (
        _rename("data.datasets", "circle", ".."),
        ["data.datasets: name '..' is not allowed"],
    ),
    "stabilizer-reference-with-slash": (
        _set("experiments.scurve_mlp.stabilizers", ["none", "../jacobian_1e-2"]),
        ["experiments.scurve_mlp.stabilizers.1: reference '../jacobian_1e-2' is not allowed"],
    ),
    "knn-k-above-training-points": (
        _set("analysis.knn_k", 700),
        ["analysis.knn_k: 700 neighbours", "'circle' has only 600 training points", "knn_k ≤ 600"],
    ),
    "align-k-above-extracted-points": (
        _set("components.align_k", 300),
        ["components.align_k: 300 neighbours", "'gaussian' gives only 300 extracted points", "align_k ≤ 299"],
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_is_one_line_before_any_job(bare_project, tmp_path, case):
    edit, words = BAD[case]
    cfg = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    edit(cfg)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = snakemake(bare_project, "--configfile", str(bad), check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-3000:]
    found = [line for line in text.splitlines() if all(w in line for w in words)]
    assert len(found) == 1, f"no single line has all of {words}:\n{text[-3000:]}"
    assert "Traceback" not in text and "MissingInputException" not in text, text[-3000:]
    for top in ("results", "metrics", "plots", "logs"):
        assert not (bare_project / top).exists(), f"{top}/ written by a refused config"
