"""Claim checks (src/flowtheory/stages/claims.py) on small hand-made summaries: every check passes
on a case that holds and fails on one that does not; claims are evaluated per experiment (overall
PASS only if every applicable experiment passes, N/A when none applies); the thresholds of
paper_map.yaml are the ones fixed before the results."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from flowtheory.stages import claims
from flowtheory.stages.claims import CHECKS, evaluate, load_paper_map, metrics, render_markdown, write_claims

ROOT = Path(__file__).resolve().parents[2]


def _fn(name):
    return CHECKS[name].fn


# ----------------------------------------------------------------------------- check functions


def test_max_below():
    entry = {"metric": "err"}
    assert _fn("max_below")({"none/seed0": {"err": 0.01}, "none/seed1": {"err": 0.015}}, entry, 0.02)[:2] == (
        0.015,
        True,
    )
    measured, passed, _ = _fn("max_below")({"none/seed0": {"err": 0.01}, "none/seed1": {"err": 0.03}}, entry, 0.02)
    assert (measured, passed) == (0.03, False)
    measured, passed, detail = _fn("max_below")({"none/seed0": {"err": 0.01}, "none/seed1": {}}, entry, 0.02)
    assert math.isnan(measured) and not passed and "err missing" in detail["not_measured"]


def _pca_run(corr, ratio):
    return {"pca_abs_corr": corr, "pca_var_ratio": ratio}


def test_pca():
    entry = {"var_tol": 0.02}
    good = {"none/seed0": _pca_run([0.9999, 0.9995], [1.01, 0.99])}
    assert _fn("pca")(good, entry, 0.999)[:2] == (0.9995, True)
    low_corr = {"none/seed0": _pca_run([0.9999, 0.99], [1.0, 1.0])}
    assert _fn("pca")(low_corr, entry, 0.999)[1] is False
    wrong_var = {"none/seed0": _pca_run([1.0, 1.0], [1.0, 1.05])}
    assert _fn("pca")(wrong_var, entry, 0.999)[1] is False


def _train(status="converged", drop=0.1, growth=0.2, smax_last=10.0, lam=0.0):
    return {
        "status": status,
        "diverged_step": None if status == "converged" else 17,
        "nll_tail_drop": drop,
        "smax_rel_growth": growth,
        "smax_last": smax_last,
        "final_train_nll": -1.0,
        "lam": lam,
    }


def test_diverges():
    growing = {"none/seed0": _train(growth=0.2), "none/seed1": _train(growth=0.08)}
    assert _fn("diverges")(growing, {}, 0.05)[:2] == (0.08, True)
    non_finite = {"none/seed0": _train(status="diverged", growth=None)}
    assert _fn("diverges")(non_finite, {}, 0.05)[:2] == (math.inf, True)
    one_levels_off = {"none/seed0": _train(growth=0.2), "none/seed1": _train(growth=0.01)}
    assert _fn("diverges")(one_levels_off, {}, 0.05)[:2] == (0.01, False)
    nll_rises = {"none/seed0": _train(drop=-0.1, growth=0.2)}
    assert _fn("diverges")(nll_rises, {}, 0.05)[1] is False


def test_stable():
    entry = {"bound_factor": 3.0}  # bound 3/√0.01 = 30
    level = {"jacobian_1e-2/seed0": _train(growth=0.01, smax_last=8.0, lam=0.01)}
    assert _fn("stable")(level, entry, 0.05)[:2] == (0.01, True)
    growing = {"jacobian_1e-2/seed0": _train(growth=0.07, smax_last=8.0, lam=0.01)}
    assert _fn("stable")(growing, entry, 0.05)[:2] == (0.07, False)
    above_bound = {"jacobian_1e-2/seed0": _train(growth=0.0, smax_last=31.0, lam=0.01)}
    assert _fn("stable")(above_bound, entry, 0.05)[1] is False
    non_finite = {"noise_1e-2/seed0": _train(status="diverged", growth=0.0, smax_last=8.0, lam=0.01)}
    assert _fn("stable")(non_finite, entry, 0.05)[1] is False


def test_noise_tikhonov():
    close = {"noise_1e-1/seed0": {"wtw_relerr": 0.01, "wtw_relerr_unshrunk": 0.35}}
    assert _fn("noise_tikhonov")(close, {}, 0.05)[:2] == (0.01, True)
    far = {"noise_1e-1/seed0": {"wtw_relerr": 0.08, "wtw_relerr_unshrunk": 0.35}}
    assert _fn("noise_tikhonov")(far, {}, 0.05)[1] is False
    closer_to_unshrunk = {"noise_1e-1/seed0": {"wtw_relerr": 0.03, "wtw_relerr_unshrunk": 0.02}}
    assert _fn("noise_tikhonov")(closer_to_unshrunk, {}, 0.05)[1] is False


def test_intrinsic_dim():
    runs = {"jacobian_1e-2/seed0": {"intrinsic_dim": 2}, "noise_1e-2/seed0": {"intrinsic_dim": 2}}
    assert _fn("intrinsic_dim")(runs, {}, 2)[:2] == (2.0, True)
    runs["noise_1e-2/seed0"]["intrinsic_dim"] = 3
    assert _fn("intrinsic_dim")(runs, {}, 2)[1] is False
    assert _fn("intrinsic_dim")({"a/seed0": {"intrinsic_dim": 1}}, {}, 1)[1] is True


def test_spectrum_decay():
    entry = {"whitened_min": 0.5}
    d = 20
    decaying = [2.0**-k for k in range(d)]
    flat = [1.0] * d
    good = {"jacobian_1e-2/seed0": {"var_yhat": decaying, "var_y": flat, "pca_eigenvalues": decaying}}
    measured, passed, _ = _fn("spectrum_decay")(good, entry, 0.25)
    assert passed and measured <= 0.25
    flat_unwhitened = {"jacobian_1e-2/seed0": {"var_yhat": flat, "var_y": flat, "pca_eigenvalues": decaying}}
    assert _fn("spectrum_decay")(flat_unwhitened, entry, 0.25)[1] is False
    decaying_whitened = {"jacobian_1e-2/seed0": {"var_yhat": decaying, "var_y": decaying, "pca_eigenvalues": decaying}}
    assert _fn("spectrum_decay")(decaying_whitened, entry, 0.25)[1] is False


# ----------------------------------------------------------------------------- claims per experiment


def _props(kind, d, k, degenerate, linear, stabs):
    return {
        "dataset": {
            "kind": kind,
            "d": d,
            "intrinsic_dim": k,
            "degenerate": degenerate,
            "singular_cov": False,
            "noise": 0.0,
            "known_cov": False,
            "manifold": k is not None and k < d,
            "cov": None,
        },
        "flow": {"family": "linear" if linear else "realnvp", "linear": linear},
        "stabilizers": {s: {"kind": s.split("_")[0], "lam": 0.0 if s == "none" else 0.01} for s in stabs},
        "experiment": {"epochs": 10, "dtype": "float64", "seeds": [0], "sweep": False},
    }


#: three experiments; two are on manifolds with a nonlinear flow
TABLE = {
    "a": _props("scurve", 3, 2, True, False, ["none", "jacobian_1e-2"]),
    "b": _props("circle", 2, 1, True, False, ["jacobian_1e-2"]),
    "c": _props("gaussian", 2, 2, False, True, ["none"]),
}

PAPER_MAP = {
    "claims": [
        {
            "id": "dim",
            "claim": "intrinsic dimension",
            "figure": "fig_c_scurve",
            "rule": "components",
            "check": "intrinsic_dim",
            "applies_to": {"dataset": {"manifold": True}, "flow": {"linear": False}, "stabilizers": "any_stabilized"},
            "threshold": "intrinsic_dim",
        },
        {
            "id": "diverge",
            "claim": "diverges",
            "figure": "fig_b_training",
            "rule": "train",
            "check": "diverges",
            "applies_to": {"dataset": {"degenerate": True}, "stabilizers": "none"},
            "threshold": 0.05,
        },
        {
            "id": "mnist",
            "claim": "only MNIST",
            "figure": "fig_e_mnist",
            "rule": "train",
            "check": "diverges",
            "applies_to": {"dataset": {"kind": "mnist"}},
            "threshold": 0.05,
        },
    ]
}


def _summaries(dim_b=1, growth_a=0.2):
    return {
        "train_summary": {"a": {"none": {"seed0": _train(growth=growth_a)}}},
        "analysis_summary": {},
        "components_summary": {
            "a": {"jacobian_1e-2": {"seed0": {"intrinsic_dim": 2}}},
            "b": {"jacobian_1e-2": {"seed0": {"intrinsic_dim": dim_b}}},
        },
    }


def test_every_applicable_experiment_gets_a_verdict():
    records = {r["id"]: r for r in evaluate(PAPER_MAP, _summaries(), TABLE)}
    dim = records["dim"]
    assert dim["verdict"] == "PASS" and dim["passed"] is True and dim["failed"] == []
    assert {e: (r["verdict"], r["threshold"]) for e, r in dim["experiments"].items()} == {
        "a": ("PASS", 2),
        "b": ("PASS", 1),
    }, "the threshold is each data set's own intrinsic dimension"
    assert records["diverge"]["experiments"]["a"]["verdict"] == "PASS"
    assert list(records["diverge"]["experiments"]) == ["a"], "b has no unregularized run, c is not degenerate"
    mnist = records["mnist"]
    assert (mnist["verdict"], mnist["passed"], mnist["experiments"]) == ("N/A", None, {})
    assert mnist["note"] == "no experiment of this kind in this config"


def test_one_failing_experiment_fails_the_claim_and_is_named():
    records = {r["id"]: r for r in evaluate(PAPER_MAP, _summaries(dim_b=2), TABLE)}
    dim = records["dim"]
    assert dim["verdict"] == "FAIL" and dim["passed"] is False and dim["failed"] == ["b"]
    assert dim["experiments"]["a"]["verdict"] == "PASS", "the passing experiment keeps its own verdict"


def test_missing_runs_are_not_run_and_fail_the_claim():
    summaries = _summaries()
    summaries["train_summary"] = {}
    r = {r["id"]: r for r in evaluate(PAPER_MAP, summaries, TABLE)}["diverge"]
    assert r["experiments"]["a"]["verdict"] == "NOT RUN" and r["verdict"] == "FAIL"


def test_overall_measured_is_the_worst_failing_experiment():
    table = {**TABLE, "d": _props("line", 2, 1, True, True, ["none"])}
    summaries = _summaries(growth_a=0.2)
    summaries["train_summary"]["d"] = {"none": {"seed0": _train(growth=0.01)}}
    r = {r["id"]: r for r in evaluate(PAPER_MAP, summaries, table)}["diverge"]
    assert r["failed"] == ["d"] and r["measured"] == 0.01 and r["measured_experiment"] == "d"
    summaries["train_summary"]["d"]["none"]["seed0"]["smax_rel_growth"] = 0.3
    r = {r["id"]: r for r in evaluate(PAPER_MAP, summaries, table)}["diverge"]
    assert r["failed"] == [] and r["measured"] == 0.2 and r["measured_experiment"] == "a", "all pass: the least growth"
    assert "| `diverge` | diverges | fig_b_training |" in render_markdown([r])
    assert "| 0.2 (a) | 0.05 | PASS |" in render_markdown([r])


def test_markdown_has_claims_then_claim_by_experiment():
    md = render_markdown(evaluate(PAPER_MAP, _summaries(dim_b=2), TABLE))
    head, per = md.split("### Per experiment")
    assert "| `dim` | intrinsic dimension | fig_c_scurve |" in head and "FAIL (b)" in head
    assert "N/A: no experiment of this kind in this config" in head
    assert "1 of 3 claims pass, 1 fail, 1 not applicable" in head
    assert "| `dim` | a | jacobian_1e-2 | 2 | 2 | PASS |" in per
    assert "| `dim` | b | jacobian_1e-2 | 2 | 1 | FAIL |" in per
    assert "`mnist`" not in per, "an N/A claim has no per-experiment row"


def test_metrics_are_flat_per_claim_and_experiment():
    m = metrics(evaluate(PAPER_MAP, _summaries(), TABLE))
    assert m["dim"] == {
        "passed": True,
        "measured": 2.0,
        "n_experiments": 2,
        "experiments": {"a": {"passed": True, "measured": 2.0}, "b": {"passed": True, "measured": 1.0}},
    }
    assert m["mnist"] == {"passed": None, "measured": None, "n_experiments": 0, "experiments": {}}


def test_write_claims_writes_three_files(tmp_path):
    (tmp_path / "map.yaml").write_text(json.dumps(PAPER_MAP))
    paths = {}
    for k, v in _summaries().items():
        paths[k] = tmp_path / f"{k}.json"
        paths[k].write_text(json.dumps(v))
    out = {n: tmp_path / n for n in ("claims.json", "claims.md", "metrics.json")}
    lines = []
    write_claims(tmp_path / "map.yaml", paths, TABLE, *out.values(), log=lines.append)
    assert [r["id"] for r in json.loads(out["claims.json"].read_text())] == ["dim", "diverge", "mnist"]
    assert "### Per experiment" in out["claims.md"].read_text()
    assert set(json.loads(out["metrics.json"].read_text())) == {"dim", "diverge", "mnist"}
    assert lines[0].startswith("dim: PASS (threshold intrinsic_dim): a PASS (2), b PASS (1)")


# ----------------------------------------------------------------------------- paper_map.yaml

#: every claim's threshold, as fixed before the results (nothing is loosened)
THRESHOLDS = {
    "linear_whitening": 0.02,
    "linear_components_pca": 0.999,
    "shrinkage_closed_form": 0.02,
    "degenerate_diverges": 0.05,
    "scurve_unregularized_diverges": 0.05,
    "regularized_stable_weight": 0.05,
    "regularized_stable_jacobian": 0.05,
    "regularized_stable_noise": 0.05,
    "noise_equals_tikhonov": 0.05,
    "local_covariance_knn": 15.0,
    "intrinsic_dimension_scurve": "intrinsic_dim",
    "mnist_unregularized_diverges": 0.05,
    "mnist_spectrum_decay": 0.25,
    "local_covariance_oracle": 15.0,
    "normal_std_shrinkage": 2.0,
    "intrinsic_dimension_sweep": "intrinsic_dim",
    "mnist_components_local": 0.5,
}


def test_paper_map_thresholds_and_no_experiment_names():
    paper_map = load_paper_map(ROOT / "paper_map.yaml")
    assert {c["id"]: c["threshold"] for c in paper_map["claims"]} == THRESHOLDS
    extra = {c["id"]: (c.get("var_tol"), c.get("bound_factor"), c.get("whitened_min")) for c in paper_map["claims"]}
    assert extra["linear_components_pca"][0] == 0.02 and extra["mnist_spectrum_decay"][2] == 0.5
    assert next(c for c in paper_map["claims"] if c["id"] == "mnist_components_local")["k"] == 4
    assert all(extra[f"regularized_stable_{k}"][1] == 3.0 for k in ("weight", "jacobian", "noise"))
    text = (ROOT / "paper_map.yaml").read_text() + (ROOT / "src/flowtheory/stages/claims.py").read_text()
    for name in (
        "gaussian_linear",
        "line_linear",
        "scurve_mlp",
        "circle_mlp",
        "swissroll_mlp",
        "scurve_sweep",
        "mnist_mlp",
        "mnist_realnvp",
    ):
        assert name not in text, f"experiment name {name!r} in paper_map.yaml or claims.py"


def test_a_bad_selector_in_the_paper_map_names_the_claim(tmp_path):
    bad = {"claims": [{**PAPER_MAP["claims"][0], "applies_to": {"dataset": {"intrinsic": 2}}}]}
    (tmp_path / "map.yaml").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"claim 'dim': applies_to\.dataset: unknown field 'intrinsic'"):
        load_paper_map(tmp_path / "map.yaml")
    (tmp_path / "map.yaml").write_text(json.dumps({"claims": [{**PAPER_MAP["claims"][1], "check": "nope"}]}))
    with pytest.raises(ValueError, match="unknown check 'nope'"):
        claims.load_paper_map(tmp_path / "map.yaml")


# ------------------------------------------------------------------ the nonlinear-science checks


def test_local_overlap_needs_small_across_and_larger_within():
    entry = {"k": 4}

    def run(within, across, k=4):
        return {"local_overlap_k": k, "local_overlap_within": within, "local_overlap_across": across}

    measured, ok, _ = claims.check_local_overlap({"a/seed0": run(0.4, 0.3), "b/seed0": run(0.5, 0.2)}, entry, 0.5)
    assert ok and measured == pytest.approx(0.3)
    _, ok, _ = claims.check_local_overlap({"a/seed0": run(0.99, 0.99)}, entry, 0.5)  # a linear flow: 1 everywhere
    assert not ok
    _, ok, _ = claims.check_local_overlap({"a/seed0": run(0.2, 0.3)}, entry, 0.5)  # within must exceed across
    assert not ok
    measured, ok, detail = claims.check_local_overlap({"a/seed0": run(0.4, 0.3, k=2)}, entry, 0.5)
    assert not ok and math.isnan(measured) and "not_measured" in detail["runs"]["a/seed0"]
    _, ok, detail = claims.check_local_overlap({"a/seed0": {}}, entry, 0.5)
    assert not ok and "not_measured" in detail["runs"]["a/seed0"]


def test_ratio_within_passes_inside_the_factor_and_fails_outside():
    entry = {"metric": "normal_std_ratio"}
    measured, ok, _ = claims.check_ratio_within({"a/seed0": {"normal_std_ratio": 1.6}}, entry, 2.0)
    assert ok and measured == pytest.approx(1.6)
    measured, ok, _ = claims.check_ratio_within({"a/seed0": {"normal_std_ratio": 0.4}}, entry, 2.0)
    assert not ok and measured == pytest.approx(2.5)  # a std too small by 2.5x fails as well
    measured, ok, detail = claims.check_ratio_within({"a/seed0": {}}, entry, 2.0)
    assert not ok and "not_measured" in detail


def _sweep_runs(k: int, d: int, tangent_std: float = 1.0) -> dict:
    """Component scales of a perfect sweep: k tangent components at a fixed std, d - k normal ones
    at √λ (docs/theory.md Eq. (16))."""
    runs = {}
    for lam in (1e-3, 1e-2, 1e-1):
        scales = [tangent_std * (1 + 0.1 * j) for j in range(k)][::-1] + [np.sqrt(lam)] * (d - k)
        runs[f"jacobian_{lam}/seed0"] = {"lam": lam, "scale_median": scales}
    return runs


def test_sweep_intrinsic_dim_counts_the_flat_components():
    entry = {"slope_cut": 0.5}
    measured, ok, detail = claims.check_sweep_intrinsic_dim(_sweep_runs(2, 3), entry, 2)
    assert ok and measured == 2
    assert detail["seeds"]["seed0"]["slopes"] == pytest.approx([0.0, 0.0, 1.0])
    _, ok, _ = claims.check_sweep_intrinsic_dim(_sweep_runs(2, 3), entry, 1)  # a wrong dimension fails
    assert not ok


def test_sweep_intrinsic_dim_needs_three_strengths():
    runs = dict(list(_sweep_runs(2, 3).items())[:2])
    measured, ok, detail = claims.check_sweep_intrinsic_dim(runs, {"slope_cut": 0.5}, 2)
    assert not ok and "not_measured" in detail["seeds"]["seed0"]
