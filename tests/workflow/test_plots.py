"""What `dvc plots show` draws, read back from `dvc plots show --json` on the committed plot files:
the plots of dvc.yaml's top-level `plots:` (flowtheory.pipeline.dvc_export.PLOTS), each with its
x, y, title and axis labels, one line per run (experiment/stabilizer/seed), one row of panels per
experiment, one column per y field and the revision as the dash; and nothing else."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from flowtheory.pipeline.dvc_export import PLOTS

#: per plot: the x column, the y columns (one panel column each) and the plotted file
EXPECTED = {
    "nll": ("epoch", ["train_nll", "valid_nll"], "plots/train_history.csv"),
    "smax": ("epoch", ["smax"], "plots/train_history.csv"),
    "component_spectra": ("component", ["var_yhat"], "plots/component_spectra.csv"),
}


@pytest.fixture(scope="module")
def shown(request) -> dict:
    root = request.config.rootpath
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "show", "--json"], cwd=root, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["data"]


def test_only_the_defined_plots_are_drawn(shown):
    """The plot files are not drawn on their own (their last column against the row index)."""
    assert set(shown) == set(PLOTS) == set(EXPECTED)


@pytest.mark.parametrize("plot", EXPECTED)
def test_plot_axes_titles_and_one_line_per_run(shown, plot, root):
    x, ys, path = EXPECTED[plot]
    (entry,) = shown[plot]
    spec = entry["content"]
    values = spec["data"]["values"]
    calc = {t["as"]: t["calculate"] for t in spec["transform"] if "calculate" in t}
    enc = spec["spec"]["encoding"]

    # x and y: the named columns, converted to numbers; the labels and title of dvc.yaml
    y_field = ys[0] if len(ys) == 1 else "dvc_inferred_y_value"  # DVC's name for several y fields
    assert calc["x"] == f"toNumber(datum['{x}'])" and calc["y"] == f"toNumber(datum['{y_field}'])"
    assert (enc["x"]["field"], enc["y"]["field"]) == ("x", "y")
    assert enc["x"]["title"] == PLOTS[plot]["x_label"] and enc["y"]["title"] == PLOTS[plot]["y_label"]
    assert spec["title"]["text"] == PLOTS[plot]["title"]
    assert (enc["y"]["scale"].get("type") == "log") == (plot == "component_spectra")

    # one line per run: grouped by run = experiment/stabilizer/seed, coloured by stabilizer, dashed
    # by revision; a row of panels per experiment (own axes), a column per y field
    assert calc["run"] == "datum.experiment + '/' + datum.stabilizer + '/seed' + datum.seed"
    assert enc["detail"]["field"] == "run" and enc["color"]["field"] == "stabilizer"
    assert enc["strokeDash"]["field"] == "rev"
    assert spec["facet"]["row"]["field"] == "experiment" and spec["facet"]["column"]["field"] == "field"
    assert spec["resolve"]["scale"] == {"x": "independent", "y": "independent"}

    # the data: every row of the file once per y field, every run of the file
    with open(root / path, newline="") as f:
        rows = list(csv.DictReader(f))
    runs = {(r["experiment"], r["stabilizer"], r["seed"]) for r in rows}
    assert len(values) == len(rows) * len(ys)
    assert {v["field"] for v in values} == set(ys) and {v["rev"] for v in values} == {"workspace"}
    assert {(v["experiment"], v["stabilizer"], v["seed"]) for v in values} == runs
    assert len(runs) > 1
