"""Figure helpers (src/flowtheory/stages/figures.py): the projection for any dimension, the
"nothing to show" panel, the notebook context in Jupyter, and the traceback a failing notebook
leaves in its log."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from flowtheory.pipeline.paths import NOTEBOOK_SHOWS, NOTEBOOKS
from flowtheory.stages import figures

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("d,labels", [(1, ("x₁", "")), (2, ("x₁", "x₂")), (3, ("x₁", "x₃")), (8, ("PCA 1", "PCA 2"))])
def test_plane_for_any_dimension(d, labels):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, d)) * np.arange(1, d + 1)
    xy, got = figures.plane(x)
    assert xy.shape == (200, 2) and got == labels
    if d == 3:
        np.testing.assert_array_equal(xy, x[:, [0, 2]])
    if d == 8:  # the two leading PCA axes hold the largest variances, in order
        var = xy.var(0)
        assert var[0] >= var[1] >= np.linalg.eigvalsh(np.cov(x.T))[-3] * 0.999


def test_first_two_pads_one_dimension():
    assert figures.first_two(np.ones((5, 1))).shape == (5, 2)
    assert figures.first_two(np.ones((5, 4))).shape == (5, 2)


def test_every_notebook_says_what_is_missing():
    import matplotlib

    matplotlib.use("Agg")
    assert set(NOTEBOOK_SHOWS) == set(NOTEBOOKS)
    for name in NOTEBOOKS:
        text = figures._missing_text(name)
        assert "No experiment of this kind in this config" in text and NOTEBOOK_SHOWS[name].what in text
    fig = figures.nothing("fig_a_linear")
    assert "flow linear = true" in fig.axes[0].texts[0].get_text()
    assert figures.nothing_table("table_f_nll").shape == (1, 1)


def test_context_in_jupyter_selects_by_properties(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT / "workflow" / "notebooks")
    smk = figures.context({}, "fig_c_scurve", config_path="config/ci.yaml")
    assert list(smk.params.experiments) == ["scurve_mlp", "circle_mlp", "swissroll_mlp", "scurve_realnvp"]
    assert smk.params.experiments["scurve_mlp"]["dataset"]["kind"] == "scurve"
    assert smk.input.components[:2] == ["results/components/scurve_mlp", "results/components/circle_mlp"]
    assert smk.params.components[:3] == [
        "results/components/scurve_mlp/none/seed0/components.npz",
        "results/components/scurve_mlp/jacobian_1e-2/seed0/components.npz",
        "results/components/circle_mlp/jacobian_1e-2/seed0/components.npz",
    ]
    assert (smk.input.claims, smk.input.paper_map) == ("results/claims.json", "paper_map.yaml")
    assert smk.output.png == "results/figures/fig_c_scurve.png"
    assert smk.config["analysis"]["knn_k"] == 20  # thresholds and k come from the config, not the notebook


def test_context_in_jupyter_for_one_gallery_page(monkeypatch):
    monkeypatch.chdir(ROOT)
    smk = figures.context({}, "gallery", config_path="config/ci.yaml", experiment="scurve_mlp")
    assert list(smk.params.experiments) == ["scurve_mlp"]
    assert smk.params.experiments["scurve_mlp"]["runs"] == ["none", "jacobian_1e-2"]
    assert smk.input.analysis == ["results/analysis/scurve_mlp"] and smk.input.data == ["results/data/scurve.npz"]
    assert smk.params.analysis == [
        "results/analysis/scurve_mlp/none/seed0/points.csv",
        "results/analysis/scurve_mlp/jacobian_1e-2/seed0/points.csv",
    ]
    assert smk.output.png == "results/figures/gallery/scurve_mlp.png"


def test_a_union_of_selectors_shows_what_either_picks():
    import yaml

    from flowtheory.pipeline.experiments import describe
    from flowtheory.pipeline.paths import notebook_experiments, stage_files

    config = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    shown = notebook_experiments(config, "fig_sweep")
    assert list(shown) == ["gaussian_linear", "scurve_sweep", "scurve_realnvp_sweep"]
    assert shown["gaussian_linear"]["runs"] == ["weight_1e-1", "jacobian_1e-1", "noise_1e-1"]  # stabilized only
    assert "or (dataset degenerate = true" in figures._missing_text("fig_sweep")
    assert len(describe(config)) == sum(
        p.startswith("results/figures/gallery/") for p in stage_files("figures", config)
    )


def test_absent_per_run_files_are_left_out(tmp_path):
    assert figures.load_runs([str(tmp_path / "results/analysis/e/s/seed0/points.csv")], "analysis") == {}


def test_a_failing_notebook_leaves_its_traceback_in_the_log(tmp_path):
    """Run as Snakemake runs a notebook: a separate Python with a ``snakemake`` object in its globals."""
    log = tmp_path / "logs" / "fig.log"
    script = tmp_path / "nb.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from types import SimpleNamespace
            from flowtheory.stages import figures
            snakemake = SimpleNamespace(log=[{str(log)!r}], rule="fig_x", params=SimpleNamespace(experiments={{}}))
            smk = figures.context(globals(), "fig_x")
            def draw():
                raise ValueError("Number of rows must be a positive integer, not 0")
            draw()
            """
        )
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    text = log.read_text()
    assert text.startswith("notebook fig_x: shows 0 experiment(s)")
    assert "Traceback" in text and "in draw" in text and "ValueError: Number of rows" in text
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        f"flowtheory: error in fig_x: Number of rows must be a positive integer, not 0 (traceback in {log})"
    ]
