"""``bench.law_parts`` (docs/measurements.md#illposed-law): the probe batch's NLL split into its base,
normal and tangent terms, exactly, and the slopes of the parts summing to the NLL's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from flowtheory.science.flows import build_flow
from flowtheory.stages import data as data_stage

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def law_parts(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # bench/ sits beside the package, not in it
    import bench.law_parts

    return bench.law_parts


@pytest.mark.parametrize("kind", ["realnvp", "zuko_nsf"])
def test_the_parts_add_up_to_the_flows_own_nll(law_parts, kind):
    spec = {"realnvp": {"kind": "realnvp", "couplings": 2, "hidden": [8]}, "zuko_nsf": {"kind": "zuko_nsf"}}[kind]
    flow = build_flow({**spec, "transforms": 1, "hidden": [8, 8]} if kind == "zuko_nsf" else spec, 3, seed=1)
    x = torch.randn(32, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = law_parts.parts(flow, x)
    flow.eval()
    with torch.no_grad():
        own = flow.nll(x).item()
    assert got["nll"] == pytest.approx(own, abs=1e-10)
    assert got["nll"] == pytest.approx(got["base"] - got["normal"] - got["tangent"], abs=1e-8)
    assert got["ladj_gap"] < 1e-8  # log|det J| is the sum of the log singular values


def test_on_the_law_the_parts_are_still_and_the_slope_is_minus_one(law_parts):
    epoch = np.arange(1, 201)
    normal = 0.02 * epoch + 0.1 * np.sin(epoch / 5)
    still = pd.DataFrame({"normal": normal, "tangent": 0.3, "base": 1.4})
    got = law_parts.split(epoch.tolist(), still.assign(nll=still["base"] - still["normal"] - still["tangent"]))
    assert got["nll"] == pytest.approx(-1) and got["tangent"] == pytest.approx(0, abs=1e-12)
    assert got["base"] == pytest.approx(0, abs=1e-12)
    # a base term still falling with the stretch makes the NLL steeper than the law, by its own slope
    moving = still.assign(base=1.4 - 0.5 * normal, tangent=0.3 + 0.2 * normal)
    got = law_parts.split(epoch.tolist(), moving.assign(nll=moving["base"] - moving["normal"] - moving["tangent"]))
    assert got["base"] == pytest.approx(-0.5) and got["tangent"] == pytest.approx(-0.2)
    assert got["nll"] == pytest.approx(-1.7) and abs(got["identity"]) < 1e-12


def test_a_rerun_records_the_parts_without_changing_the_run(law_parts, tmp_path):
    config = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    config["flows"]["nsf"] = {"kind": "zuko_nsf", "transforms": 1, "hidden": [8, 8]}
    config["experiments"]["circle_nsf"] = {
        "dataset": "circle",
        "flow": "nsf",
        "epochs": 12,
        "diagnostics_every": 1,
        "stabilizers": ["none"],
    }
    data = tmp_path / "circle.npz"
    data_stage.run(config["data"]["datasets"]["circle"], config["data"]["seed"], str(data))
    got = law_parts.rerun(config, "circle_nsf", 0, str(data), tmp_path)
    assert got["median_gap"] < 1e-8  # the medians the history wrote (10 digits) are the recorder's
    assert abs(got["identity"]) < 1e-9 and got["ladj_gap"] < 1e-6
    assert np.isfinite(got["check"]) and np.isfinite(got["nll"])
    with pytest.raises(SystemExit, match="train stacked"):  # the MLP flow trains stacked: refused, not wrong
        law_parts.rerun(config, "circle_mlp", 0, str(data), tmp_path)
