"""The analysis stage's gap to the optimum (docs/theory.md §2.6): which runs get which gap, written
to the per-run metrics, deterministically."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flowtheory.datasets.build import make_dataset
from flowtheory.pipeline import storage
from flowtheory.science import optimum
from flowtheory.science.flows import build_flow
from flowtheory.stages import analysis

CFG = {"n_points": 60, "knn_k": 10}
GAP_KEYS = ("gap_nats", "gap_se", "gap_median", "gap_kind", "gap_target_std")


def _quiet(_message: str) -> None:
    pass


def _data(tmp_path, spec: dict, seed: int = 0) -> tuple[str, dict]:
    path = str(tmp_path / f"{spec['kind']}.npz")
    data = make_dataset(spec, seed)
    storage.save_npz(path, **data)
    return path, data


def _run(tmp_path, name: str, flow, flow_spec: dict, stab: dict) -> dict:
    """A run's files as the train stage writes them (checkpoint, training metrics) and the analysis
    outputs' paths."""
    d = tmp_path / name
    d.mkdir()
    meta = {"flow": flow_spec, "d": flow.d, "dtype": "float64", "seed": 0, "stabilizer": stab}
    storage.save_checkpoint(d / "model.pt", flow.state_dict(), meta)
    storage.save_json(d / "run.json", {"run": name, "status": "converged"})
    return {
        "stabilizer": name,
        "seed": 0,
        "model": str(d / "model.pt"),
        "run_metrics": str(d / "run.json"),
        "points": str(d / "points.csv"),
        "metrics": str(d / "metrics.json"),
    }


def test_linear_flow_gets_the_closed_form(tmp_path):
    """At its optimum the linear flow's gap is 0; perturbed, the closed form; on the line without a
    stabilizer +∞ (null in the JSON, and gap_kind says why)."""
    spec = {"kind": "gaussian", "n_train": 300, "n_valid": 60, "mean": [1.0, -1.0], "cov": [[2.0, 1.2], [1.2, 1.0]]}
    data_path, data = _data(tmp_path, spec)
    lam = 0.1
    W, b = optimum.linear_optimum(data["x_train"], lam)
    runs = []
    for name, scale in (("at_optimum", 1.0), ("perturbed", 1.1)):
        flow = build_flow({"kind": "linear"}, 2)
        with torch.no_grad():
            flow.layers[0].W.copy_(torch.as_tensor(scale * W))
            flow.layers[0].b.copy_(torch.as_tensor(b))
        runs.append(_run(tmp_path, name, flow, {"kind": "linear"}, {"kind": "noise", "lam": lam}))
    at_opt, perturbed = analysis.run_many(CFG, 2, data_path, runs, _quiet, dataset=spec, data_seed=0)
    assert abs(at_opt["gap_nats"]) < 1e-12 and at_opt["gap_kind"] == optimum.LINEAR
    assert at_opt["gap_target_std"] == pytest.approx(math.sqrt(lam)) and at_opt["gap_se"] == 0.0
    assert perturbed["gap_nats"] == pytest.approx(1.1**2 - 1 - 2 * math.log(1.1), rel=1e-10)  # (d/2)(κ − 1 − log κ)

    line_path, _ = _data(tmp_path, {"kind": "line", "n_train": 300, "n_valid": 60})
    run = _run(tmp_path, "line_none", build_flow({"kind": "linear"}, 2), {"kind": "linear"}, {"kind": "none"})
    (m,) = analysis.run_many(CFG, 1, line_path, [run], _quiet, dataset={"kind": "line"})
    assert m["gap_nats"] == math.inf and m["gap_kind"].startswith("none: unbounded")
    assert storage.load_json(run["metrics"])["gap_nats"] is None


def test_nonlinear_flow_gets_the_kl_to_its_target(tmp_path):
    """An MLP flow on the noisy arc: per stabilizer the right target std and label, NaN with a
    reason where there is no exact target; the KL is the one flow_gap gives for the data seed's
    stream, and a rerun writes the same bytes."""
    spec = {"kind": "circle", "n_train": 300, "n_valid": 60, "noise": 0.05}
    data_path, _ = _data(tmp_path, spec, seed=3)
    flow_spec = {"kind": "mlp", "hidden_layers": 1}
    flow = build_flow(flow_spec, 2, seed=0)
    stabs = {
        "none": {"kind": "none"},
        "jacobian": {"kind": "jacobian", "lam": 0.01},
        "noise": {"kind": "noise", "lam": 0.01},
        "weight": {"kind": "weight", "lam": 0.01},
    }
    runs = [_run(tmp_path, name, flow, flow_spec, stab) for name, stab in stabs.items()]
    out = dict(zip(stabs, analysis.run_many(CFG, 1, data_path, runs, _quiet, dataset=spec, data_seed=3), strict=True))
    assert out["none"]["gap_kind"] == optimum.KL_MANIFOLD and out["none"]["gap_target_std"] == 0.05
    assert out["jacobian"]["gap_kind"] == optimum.KL_JACOBIAN
    assert out["noise"]["gap_kind"] == optimum.KL_MANIFOLD
    for name in ("jacobian", "noise"):
        assert out[name]["gap_target_std"] == pytest.approx(math.sqrt(0.05**2 + 0.01))
    assert out["jacobian"]["gap_nats"] == out["noise"]["gap_nats"]  # same flow, same target, same samples
    assert math.isnan(out["weight"]["gap_nats"]) and out["weight"]["gap_kind"] == optimum.NONE_WEIGHT
    for m in out.values():
        assert set(GAP_KEYS) <= set(m)

    def log_q(x):
        with torch.no_grad():
            return flow.log_prob(torch.as_tensor(x)).numpy()

    ref = optimum.flow_gap(log_q, "circle", spec, 0.05, optimum.KL_MANIFOLD, CFG["n_points"], optimum.gap_rng(3))
    assert out["none"]["gap_nats"] == ref.nats and ref.nats > 0 and ref.se > 0
    assert out["none"]["gap_se"] == ref.se and out["none"]["gap_median"] == ref.median

    first = [open(r["metrics"], "rb").read() for r in runs]
    analysis.run_many(CFG, 1, data_path, runs, _quiet, dataset=spec, data_seed=3)
    assert [open(r["metrics"], "rb").read() for r in runs] == first


def test_no_exact_target_is_nan_with_the_reason(tmp_path):
    """Noiseless arc without a stabilizer: p is singular; no data set spec: nothing to compare with."""
    spec = {"kind": "circle", "n_train": 300, "n_valid": 60}
    data_path, _ = _data(tmp_path, spec)
    flow_spec = {"kind": "mlp", "hidden_layers": 1}
    run = _run(tmp_path, "none", build_flow(flow_spec, 2), flow_spec, {"kind": "none"})
    (m,) = analysis.run_many(CFG, 1, data_path, [run], _quiet, dataset=spec)
    assert math.isnan(m["gap_nats"]) and m["gap_kind"] == optimum.NONE_SINGULAR
    (m,) = analysis.run_many(CFG, 1, data_path, [run], _quiet)
    assert math.isnan(m["gap_nats"]) and m["gap_kind"].startswith("none: unknown data density")
    assert np.isnan(m["gap_target_std"])
