"""Claim checks (src/flowtheory/stages/claims.py) on small hand-made summaries.

* every check measures what it says: metric, direction, signed margin, noise;
* every verdict path: PASS, FAIL at the optimum, NOT_AT_OPTIMUM (not converged, convergence unknown,
  gap above ε), NOT RUN, N/A; the ill-posedness law's states (on the law, not far enough, a finite
  optimum) on synthetic histories and on a real short training of a linear flow on a line; the
  stability check at convergence;
* one conclusion per paper claim, each of the five kinds; the error against the gap;
* paper_map.yaml validated when loaded: one error naming the claim and key;
* summaries older than the convergence criterion and the gap (the committed ones) do not crash.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from flowtheory.pipeline import paths
from flowtheory.pipeline.experiments import describe
from flowtheory.pipeline.hooks import BEGIN, END, splice_readme
from flowtheory.stages import claims
from flowtheory.stages.claims import (
    CHECKS,
    README_STOP,
    PaperMapError,
    check_paper_map,
    convergence,
    evaluate,
    load_paper_map,
    metrics,
    render_markdown,
    write_claims,
)
from pipeline_project import fresh_python

ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- fabricated runs


def _train(status="converged", conv=True, lam=0.0, smax_last=10.0, **extra) -> dict:
    """A train-summary run; ``conv``: it has the convergence criterion's keys (a summary written
    after training recorded it)."""
    m = {"status": status, "lam": lam, "smax_last": smax_last, "final_train_nll": 1.0, **extra}
    if conv:
        m.update(objective_final=1.0, conv_window_change=1e-6, conv_tol=1e-4, conv_lr_final=1e-5, polish_iters=0)
    return m


def _analysis(gap=0.01, kind="kl_quadrature", se=0.002, **metrics_) -> dict:
    return {"gap_nats": gap, "gap_se": se, "gap_median": gap, "gap_kind": kind, **metrics_}


def _props(kind, d, k, degenerate, family, stabs, noise=0.0):
    return {
        "dataset": {
            "kind": kind,
            "d": d,
            "intrinsic_dim": k,
            "degenerate": degenerate,
            "singular_cov": False,
            "noise": noise,
            "known_cov": False,
            "manifold": k is not None and k < d,
            "cov": None,
        },
        "flow": {"family": family, "linear": family == "linear"},
        "stabilizers": {s: {"kind": s.split("_")[0], "lam": 0.0 if s == "none" else 0.01} for s in stabs},
        "experiment": {"epochs": 10, "dtype": "float64", "seeds": [0, 1], "sweep": False},
    }


def _claim(cid, paper_claim, check, applies_to, threshold, epsilon=0.1, **extra) -> dict:
    return {
        "id": cid,
        "paper_claim": paper_claim,
        "claim": f"the claim {cid}",
        "figure": "fig_tangent",
        "rule": extra.pop("rule", "analysis"),
        "check": check,
        "applies_to": applies_to,
        "threshold": threshold,
        "justification": "a reason",
        "epsilon": epsilon,
        "epsilon_reason": "a reason for ε",
        **extra,
    }


MANIFOLD_NONLINEAR = {"dataset": {"manifold": True}, "flow": {"linear": False}, "stabilizers": {"kind": "jacobian"}}
ANGLE = _claim(
    "angle",
    2,
    "max_below",
    MANIFOLD_NONLINEAR,
    15.0,
    stage="analysis_summary",
    metric="tangent_angle_true_deg_median",
    baseline_metric="knn_tangent_angle_true_deg_median",
)
ILLPOSED = _claim(
    "illposed",
    3,
    "illposed",
    {"dataset": {"degenerate": True}, "stabilizers": "none"},
    0.25,
    epsilon=None,
    rule="train",
    min_log_range=0.05,
)
STABLE = _claim(
    "stable",
    4,
    "stable",
    {"dataset": {"degenerate": True}, "stabilizers": "any_stabilized"},
    1.0,
    epsilon=None,
    rule="train",
    bound_factor=3.0,
)
DIM = _claim(
    "dim",
    5,
    "intrinsic_dim",
    {"dataset": {"manifold": True}, "flow": {"linear": False}, "stabilizers": "any_stabilized"},
    "intrinsic_dim",
    epsilon=0.5,
    rule="components",
)
MNIST_ONLY = _claim(
    "mnist", 1, "illposed", {"dataset": {"kind": "mnist"}}, 0.25, None, rule="train", min_log_range=0.05
)


def _paper_map(*entries, headlines=None) -> dict:
    entries = entries or (ANGLE, ILLPOSED, STABLE, DIM, MNIST_ONLY)
    heads = headlines or {}
    for e in entries:
        heads.setdefault(e["paper_claim"], e["id"])
    return {
        "paper_claims": {
            n: {"statement": f"paper claim {n}", "headline": h, "figure": "fig_tangent"} for n, h in heads.items()
        },
        "claims": [copy.deepcopy(e) for e in entries],
    }


#: an S-curve with a RealNVP (unregularized and Jacobian runs), a circle with an MLP flow, a Gaussian
TABLE = {
    "a": _props("scurve", 3, 2, True, "realnvp", ["none", "jacobian_1e-2"]),
    "b": _props("circle", 2, 1, True, "mlp", ["jacobian_1e-2"]),
    "c": _props("gaussian", 2, 2, False, "linear", ["none"]),
}


def _summaries(angle_a=(5.0, 6.0), angle_b=(8.0, 9.0), gap_a=(0.01, 0.02), gap_b=(0.02, 0.03), train=None):
    """Two seeds per run; angles and gaps per seed; every run converged unless ``train`` says."""
    train = train or {}
    ts = {
        "a": {
            "none": {f"seed{k}": _train() for k in (0, 1)},
            "jacobian_1e-2": {f"seed{k}": train.get(("a", k), _train(lam=0.01, smax_last=8.0)) for k in (0, 1)},
        },
        "b": {"jacobian_1e-2": {f"seed{k}": train.get(("b", k), _train(lam=0.01, smax_last=8.0)) for k in (0, 1)}},
    }
    an = {
        "a": {
            "jacobian_1e-2": {
                f"seed{k}": _analysis(
                    gap_a[k], tangent_angle_true_deg_median=angle_a[k], knn_tangent_angle_true_deg_median=1.0
                )
                for k in (0, 1)
            }
        },
        "b": {
            "jacobian_1e-2": {
                f"seed{k}": _analysis(
                    gap_b[k], tangent_angle_true_deg_median=angle_b[k], knn_tangent_angle_true_deg_median=2.0
                )
                for k in (0, 1)
            }
        },
    }
    comp = {
        "a": {"jacobian_1e-2": {f"seed{k}": {"intrinsic_dim": 2} for k in (0, 1)}},
        "b": {"jacobian_1e-2": {f"seed{k}": {"intrinsic_dim": 1} for k in (0, 1)}},
    }
    return {"train_summary": ts, "analysis_summary": an, "components_summary": comp, "train_history": {}}


def _record(doc, cid):
    return next(r for r in doc["claims"] if r["id"] == cid)


def _angle(summaries, table=TABLE):
    return _record(evaluate(_paper_map(ANGLE), summaries, table), "angle")


# ----------------------------------------------------------------------------- run states


def test_convergence_reads_the_criterion_and_treats_old_summaries_as_unknown():
    assert convergence(_train()) == "converged"
    assert convergence(_train(status="not_converged")) == "not_converged"
    assert convergence(_train(status="diverged", conv=False)) == "diverged"
    assert convergence(_train(conv=False)) == "unknown", "an old 'converged' only meant 'finite'"
    assert convergence(None) == convergence({}) == "unknown"


def test_gap_unknown_where_not_computable_and_infinite_where_not_finite():
    assert claims._gap(_analysis(0.05)) == (0.05, 0.002, "kl_quadrature")
    assert claims._gap({"gap_nats": None, "gap_kind": None})[0] is None
    assert claims._gap({}) == (None, None, None)
    assert claims._gap({"gap_nats": None, "gap_kind": "kl_quadrature"})[0] == math.inf, "strict JSON wrote inf as null"
    # the analysis stage's labels (flowtheory.science.optimum, docs/theory.md §2.6)
    assert (
        claims._gap({"gap_nats": None, "gap_kind": "none: singular target (noiseless data, no stabilizer)"})[0] is None
    )
    assert claims._gap({"gap_nats": None, "gap_kind": "none: unknown data density (mnist)"})[0] is None
    unbounded = "none: unbounded objective (singular data covariance, no stabilizer): gap +inf"
    assert claims._gap({"gap_nats": None, "gap_kind": unbounded})[0] == math.inf


# ----------------------------------------------------------------------------- the verdicts


def test_pass_every_run_converged_within_epsilon_and_holding():
    r = _angle(_summaries())
    assert r["verdict"] == "PASS" and r["passed"] is True
    a = r["experiments"]["a"]
    assert (a["verdict"], a["metric"], a["direction"], a["measured"], a["threshold"]) == (
        "PASS",
        "tangent_angle_true_deg_median",
        "<=",
        6.0,
        15.0,
    )
    assert a["margin"] == pytest.approx(9.0) and a["optimum_state"] == "at_optimum"
    assert a["detail"]["baseline"]["median"] == 1.0, "kNN is reported beside the oracle, not judged"
    assert r["counts"]["PASS"] == 2


def test_fail_at_the_optimum_names_the_run():
    r = _angle(_summaries(angle_b=(8.0, 20.0)))
    b = r["experiments"]["b"]
    assert b["verdict"] == "FAIL" and b["passed"] is False and "jacobian_1e-2/seed1" in b["cause"]
    assert b["margin"] == pytest.approx(-5.0)
    assert r["verdict"] == "FAIL" and r["failed"] == ["b"] and r["measured_experiment"] == "b"
    assert r["experiments"]["a"]["verdict"] == "PASS", "the passing experiment keeps its own verdict"


def test_a_miss_on_a_converged_run_without_a_computable_gap_fails():
    s = _summaries(angle_b=(8.0, 20.0))
    for m in s["analysis_summary"]["b"]["jacobian_1e-2"].values():
        m.update(gap_nats=None, gap_kind=None)
    assert _angle(s)["experiments"]["b"]["verdict"] == "FAIL"


def test_not_converged_is_not_at_optimum_even_when_the_prediction_misses():
    s = _summaries(angle_b=(30.0, 40.0), train={("b", 1): _train(status="not_converged", lam=0.01)})
    for m in s["train_summary"]["b"]["jacobian_1e-2"].values():
        m["status"] = "not_converged"
    b = _angle(s)["experiments"]["b"]
    assert b["verdict"] == "NOT_AT_OPTIMUM" and b["passed"] is None
    assert b["prediction_holds"] is False and b["measured"] == 40.0, "its numbers are shown"
    assert "not converged" in b["cause"] and b["optimum_state"] == "not_converged"


def test_gap_above_epsilon_is_not_at_optimum_and_counts_as_capacity():
    b = _angle(_summaries(angle_b=(30.0, 40.0), gap_b=(0.5, 0.8)))["experiments"]["b"]
    assert b["verdict"] == "NOT_AT_OPTIMUM" and b["optimum_state"] == "capacity"
    assert "gap 0.8 > ε 0.1 nats" in b["cause"]
    assert b["optimum"]["jacobian_1e-2/seed1"]["gap_margin"] == pytest.approx(-0.7)
    assert b["gap_max"] == 0.8


def test_a_failure_at_the_optimum_outweighs_another_run_away_from_it():
    s = _summaries(angle_b=(20.0, 9.0), train={("b", 1): _train(status="not_converged", lam=0.01)})
    assert _angle(s)["experiments"]["b"]["verdict"] == "FAIL"


def test_a_pass_is_judged_on_the_runs_at_the_optimum_and_names_the_others():
    """Seed 1 of b is far from its optimum (gap above ε) and misses; seed 0 is at it and holds: b
    passes on seed 0 alone, its numbers are seed 0's, and the cause names seed 1 as not judged."""
    b = _angle(_summaries(angle_b=(8.0, 40.0), gap_b=(0.02, 0.8)))["experiments"]["b"]
    assert b["verdict"] == "PASS" and b["measured"] == 8.0
    assert "judged on the 1 of 2 runs at the optimum" in b["cause"] and "jacobian_1e-2/seed1" in b["cause"]


def test_old_summaries_are_convergence_unknown():
    s = _summaries()
    for stabs in s["train_summary"].values():
        for seeds in stabs.values():
            for m in seeds.values():
                for k in claims.CONVERGENCE_KEYS + ("conv_tol", "conv_lr_final", "polish_iters"):
                    m.pop(k, None)
    for stabs in s["analysis_summary"].values():
        for seeds in stabs.values():
            for m in seeds.values():
                for k in ("gap_nats", "gap_se", "gap_median", "gap_kind"):
                    m.pop(k)
    r = _angle(s)
    assert r["verdict"] == "NOT_AT_OPTIMUM"
    assert all(e["cause"].startswith("convergence unknown") for e in r["experiments"].values())
    assert all(e["prediction_holds"] for e in r["experiments"].values())


def test_near_threshold_when_the_margin_is_within_the_spread_over_seeds():
    b = _angle(_summaries(angle_b=(13.0, 14.5)))["experiments"]["b"]
    assert b["verdict"] == "PASS" and b["margin"] == pytest.approx(0.5)
    assert b["noise"] == pytest.approx(np.std([13.0, 14.5], ddof=1)) and b["near_threshold"] is True
    a = _angle(_summaries())["experiments"]["a"]
    assert a["near_threshold"] is False


def test_gap_near_epsilon_is_flagged_by_its_standard_error():
    b = _angle(_summaries(gap_b=(0.099, 0.02)))["experiments"]["b"]
    assert b["optimum"]["jacobian_1e-2/seed0"]["gap_near_epsilon"] is True
    assert b["optimum"]["jacobian_1e-2/seed1"]["gap_near_epsilon"] is False


def test_missing_runs_are_not_run_and_a_claim_of_no_kind_is_na():
    s = _summaries()
    s["analysis_summary"].pop("b")
    doc = evaluate(_paper_map(ANGLE, MNIST_ONLY), s, TABLE)
    r = _record(doc, "angle")
    assert r["experiments"]["b"]["verdict"] == "NOT RUN" and r["experiments"]["a"]["verdict"] == "PASS"
    assert r["verdict"] == "NOT RUN" and r["passed"] is None, "a missing run is neither a pass nor a failure"
    mnist = _record(doc, "mnist")
    assert (mnist["verdict"], mnist["passed"], mnist["experiments"]) == ("N/A", None, {})
    assert mnist["note"] == "no experiment of this kind in this config"
    assert metrics(doc)["claims"]["angle"]["experiments"]["b"]["verdict"] == "NOT RUN"
    assert "| `angle` | b | mlp | jacobian_1e-2 | NOT RUN | n/a |" in render_markdown(doc)


# ----------------------------------------------------------------------------- the check functions


def _outcome(name, runs, entry, threshold, ctx=None):
    return CHECKS[name].fn(runs, entry, threshold, ctx or {})


def _summary(outcome, i=0):
    return claims._summarize(outcome.measurements[i])


def test_ratio_within_judges_the_factor_both_ways():
    entry = {"metric": "normal_std_ratio"}
    o = _outcome("ratio_within", {"a/seed0": {"normal_std_ratio": 1.6}, "a/seed1": {"normal_std_ratio": 0.4}}, entry, 2)
    assert o.run_passed == {"a/seed0": True, "a/seed1": False}
    s = _summary(o)
    assert (s["metric"], s["value"], s["margin"]) == ("normal_std_ratio_factor", 2.5, pytest.approx(-0.5))
    o = _outcome("ratio_within", {"a/seed0": {}}, entry, 2)
    assert o.run_passed == {"a/seed0": None} and _summary(o)["not_measured"] == ["a/seed0"]


def test_pca_needs_correlation_and_variance():
    entry = {"var_tol": 0.02}

    def run(corr, ratio):
        return {"pca_abs_corr": corr, "pca_var_ratio": ratio}

    o = _outcome("pca", {"none/seed0": run([0.9999, 0.9995], [1.01, 0.99])}, entry, 0.999)
    assert o.run_passed == {"none/seed0": True}
    s = _summary(o)
    assert (s["direction"], s["value"], s["margin"]) == (">=", 0.9995, pytest.approx(0.0005))
    assert _outcome("pca", {"r/seed0": run([0.9999, 0.99], [1.0, 1.0])}, entry, 0.999).run_passed["r/seed0"] is False
    assert _outcome("pca", {"r/seed0": run([1.0, 1.0], [1.0, 1.05])}, entry, 0.999).run_passed["r/seed0"] is False


def test_noise_tikhonov_needs_the_shrunk_target_closer_than_the_unshrunk():
    def run(shr, raw):
        return {"n/seed0": {"wtw_relerr": shr, "wtw_relerr_unshrunk": raw}}

    assert _outcome("noise_tikhonov", run(0.01, 0.35), {}, 0.05).run_passed == {"n/seed0": True}
    assert _outcome("noise_tikhonov", run(0.08, 0.35), {}, 0.05).run_passed == {"n/seed0": False}
    assert _outcome("noise_tikhonov", run(0.03, 0.02), {}, 0.05).run_passed == {"n/seed0": False}


def test_intrinsic_dim_is_an_absolute_error_of_zero():
    o = _outcome("intrinsic_dim", {"j/seed0": {"intrinsic_dim": 2}, "n/seed0": {"intrinsic_dim": 3}}, {}, 2)
    assert o.run_passed == {"j/seed0": True, "n/seed0": False}
    assert _summary(o)["metric"] == "intrinsic_dim_abs_error" and _summary(o)["value"] == 1


def test_spectrum_decay():
    entry = {"whitened_min": 0.5}
    d = 20
    decaying, flat = [2.0**-k for k in range(d)], [1.0] * d
    good = {"j/seed0": {"var_yhat": decaying, "var_y": flat, "pca_eigenvalues": decaying}}
    assert _outcome("spectrum_decay", good, entry, 0.25).run_passed == {"j/seed0": True}
    flat_unwhitened = {"j/seed0": {"var_yhat": flat, "var_y": flat, "pca_eigenvalues": decaying}}
    assert _outcome("spectrum_decay", flat_unwhitened, entry, 0.25).run_passed == {"j/seed0": False}
    decaying_whitened = {"j/seed0": {"var_yhat": decaying, "var_y": decaying, "pca_eigenvalues": decaying}}
    assert _outcome("spectrum_decay", decaying_whitened, entry, 0.25).run_passed == {"j/seed0": False}


def test_local_overlap_needs_small_across_and_larger_within():
    entry = {"k": 4}

    def run(within, across, k=4):
        return {"local_overlap_k": k, "local_overlap_within": within, "local_overlap_across": across}

    o = _outcome("local_overlap", {"a/seed0": run(0.4, 0.3), "b/seed0": run(0.5, 0.2)}, entry, 0.5)
    assert all(o.run_passed.values()) and _summary(o)["value"] == pytest.approx(0.3)
    assert _outcome("local_overlap", {"a/seed0": run(0.99, 0.99)}, entry, 0.5).run_passed["a/seed0"] is False
    assert _outcome("local_overlap", {"a/seed0": run(0.2, 0.3)}, entry, 0.5).run_passed["a/seed0"] is False
    o = _outcome("local_overlap", {"a/seed0": run(0.4, 0.3, k=2)}, entry, 0.5)
    assert o.run_passed["a/seed0"] is None and "not_measured" in o.detail["runs"]["a/seed0"]


def _sweep_runs(k: int, d: int, seeds=(0,)) -> dict:
    """Component scales of a perfect sweep: k tangent components at a fixed std, d - k normal ones
    at √λ (docs/theory.md Eq. (16))."""
    runs = {}
    for seed in seeds:
        for lam in (1e-3, 1e-2, 1e-1):
            scales = [1.0 + 0.1 * j for j in range(k)][::-1] + [np.sqrt(lam)] * (d - k)
            runs[f"jacobian_{lam}/seed{seed}"] = {"lam": lam, "scale_median": scales}
    return runs


def test_sweep_counts_the_flat_components_with_the_sciences_own_fit(monkeypatch):
    from flowtheory.science import oracles

    calls = []
    real = oracles.sweep_slopes
    monkeypatch.setattr(oracles, "sweep_slopes", lambda lams, stds: calls.append(1) or real(lams, stds))
    o = _outcome("sweep_intrinsic_dim", _sweep_runs(2, 3, seeds=(0, 1)), {"slope_cut": 0.5}, 2)
    assert calls == [1, 1], "one fit per seed, by flowtheory.science.oracles.sweep_slopes"
    assert all(o.run_passed.values())
    assert o.detail["seeds"]["seed0"]["slopes"] == pytest.approx([0.0, 0.0, 1.0])
    assert sorted(o.groups["jacobian_0.01/seed0"]) == sorted(r for r in o.groups if r.endswith("seed0"))
    assert not any(_outcome("sweep_intrinsic_dim", _sweep_runs(2, 3), {"slope_cut": 0.5}, 1).run_passed.values())


def test_sweep_needs_three_strengths():
    runs = dict(list(_sweep_runs(2, 3).items())[:2])
    o = _outcome("sweep_intrinsic_dim", runs, {"slope_cut": 0.5}, 2)
    assert set(o.run_passed.values()) == {None} and "not_measured" in o.detail["seeds"]["seed0"]


# ----------------------------------------------------------------------------- stability


def _stable(run: dict) -> str:
    o = _outcome("stable", {"jacobian_1e-2/seed0": run}, {"bound_factor": 3.0}, 1.0)
    return claims._state_verdict(o)[0]


def test_stable_is_converged_below_the_level_bound():
    # bound 3/√0.01 = 30
    assert _stable(_train(lam=0.01, smax_last=8.0)) == "PASS"
    assert _stable(_train(lam=0.01, smax_last=31.0)) == "FAIL", "converged above the bound"
    assert _stable(_train(status="diverged", lam=0.01, smax_last=8.0)) == "FAIL"
    assert _stable(_train(status="not_converged", lam=0.01, smax_last=8.0)) == "NOT_AT_OPTIMUM"
    assert _stable(_train(status="not_converged", lam=0.01, smax_last=31.0)) == "NOT_AT_OPTIMUM"
    assert _stable(_train(conv=False, lam=0.01, smax_last=8.0)) == "NOT_AT_OPTIMUM", "convergence unknown"
    o = _outcome("stable", {"j/seed0": _train(lam=0.01, smax_last=15.0)}, {"bound_factor": 3.0}, 1.0)
    assert _summary(o)["metric"] == "smax_over_bound" and _summary(o)["value"] == pytest.approx(0.5)


# ----------------------------------------------------------------------------- the ill-posedness law


def _history(slope, epochs=100, growth=1.0, flat_after=None):
    """A history on which the NLL falls ``slope`` nats per unit of log s_max, with log s_max growing
    by ``growth`` over training (flat after epoch ``flat_after``)."""
    epoch = np.arange(1, epochs + 1)
    log_s = growth * epoch / epochs
    if flat_after is not None:
        log_s = np.minimum(log_s, growth * flat_after / epochs)
    rng = np.random.default_rng(0)
    nll = 2.0 + slope * log_s + 1e-4 * rng.standard_normal(epochs)
    return {"epoch": epoch.tolist(), "train_nll": nll.tolist(), "smax": np.exp(log_s).tolist()}


def _law(history, train=None, d=2, k=1):
    ctx = {"history": {"none/seed0": history}, "dataset": {"d": d, "intrinsic_dim": k}}
    runs = {"none/seed0": train or _train(status="not_converged")}
    o = CHECKS["illposed"].fn(runs, {"min_log_range": 0.05}, 0.25, ctx)
    return claims._state_verdict(o)[0], _summary(o), o


def test_the_law_minus_one_nat_per_normal_direction_passes():
    verdict, s, o = _law(_history(-1.0))
    assert verdict == "PASS" and s["metric"] == "nll_log_smax_slope_rel_dev"
    assert o.detail["runs"]["none/seed0"]["slope"] == pytest.approx(-1.0, abs=1e-2) and s["value"] < 0.01
    assert o.detail["normal_directions"] == 1
    # six normal directions (a sheet in R⁸): the law is −6
    assert _law(_history(-5.5), d=8, k=2)[0] == "PASS"
    assert _law(_history(-1.0), d=8, k=2)[0] == "NOT_FAR_ENOUGH"


def test_a_slope_between_zero_and_the_law_has_not_gone_far_enough():
    verdict, s, o = _law(_history(-0.5))
    assert verdict == "NOT_FAR_ENOUGH" and s["margin"] == pytest.approx(-0.25, abs=0.01)
    assert "slower than the law" in o.notes["none/seed0"]
    assert _law(_history(-1.5))[0] == "NOT_FAR_ENOUGH", "steeper: the tangent fit is still under way"
    verdict, _, o = _law(_history(-1.0, growth=0.02))
    assert verdict == "NOT_FAR_ENOUGH" and "hardly moved" in o.notes["none/seed0"]
    assert _law(_history(0.1), train=_train(conv=False))[0] == "NOT_FAR_ENOUGH", "old summary: never FAIL"


def test_a_converged_run_off_the_law_is_a_finite_optimum_and_fails():
    verdict, _, o = _law(_history(-1.0, flat_after=20), train=_train())
    assert verdict == "FAIL" and o.notes["none/seed0"] == "converged to a finite optimum"
    assert _law(_history(-0.5), train=_train())[0] == "FAIL"
    assert _law(_history(-1.0), train=_train())[0] == "PASS", "on the law even if its criterion held"


def test_a_converged_status_whose_nll_still_falls_is_not_a_finite_optimum():
    """The sphere's unregularized NSF (paper config): its noisy validation objective failed the
    window's best-to-best test at the constant rate ("converged"), while its training NLL still fell
    0.044 nats per 20-epoch window over the last quarter: not stalled, so not a finite optimum."""
    history = _history(-0.6)
    falling = _train(nll_slope=-0.0022, conv_window=20)
    verdict, _, o = _law(history, train=falling)
    assert verdict == "NOT_FAR_ENOUGH" and "still falls (0.044 nats per 20 epochs" in o.notes["none/seed0"]
    # the same run stalled (trend within the criterion's tolerance per window): a finite optimum
    assert _law(history, train=_train(nll_slope=-1e-6, conv_window=20))[0] == "FAIL"
    assert _law(history, train=_train(nll_slope=+0.001, conv_window=20))[0] == "FAIL"
    assert _law(_history(-1.0), train=falling)[0] == "PASS", "on the law whatever its trend"


def test_a_converged_run_whose_flow_does_not_follow_the_manifold_is_capacity_not_failure():
    history = _history(-1.0, flat_after=20)
    for angle, verdict in ((60.0, "NOT_AT_OPTIMUM"), (5.0, "FAIL")):
        ctx = {
            "history": {"none/seed0": history},
            "dataset": {"d": 3, "intrinsic_dim": 2},
            "analysis": {"none/seed0": {"tangent_angle_true_deg_median": angle}},
        }
        entry = {"min_log_range": 0.05, "capacity_angle": 15.0}
        o = CHECKS["illposed"].fn({"none/seed0": _train()}, entry, 0.25, ctx)
        assert claims._state_verdict(o)[0] == verdict
        assert o.capacity == (["none/seed0"] if verdict == "NOT_AT_OPTIMUM" else [])
    s = _summaries()
    s["train_history"] = {"a": {"none": {f"seed{k}": history for k in (0, 1)}}}
    s["analysis_summary"]["a"]["none"] = {f"seed{k}": {"tangent_angle_true_deg_median": 60.0} for k in (0, 1)}
    doc = evaluate(_paper_map({**ILLPOSED, "capacity_angle": 15.0}), s, TABLE)
    a = _record(doc, "illposed")["experiments"]["a"]
    assert a["verdict"] == "NOT_AT_OPTIMUM" and a["optimum_state"] == "capacity"
    assert _conclusion(doc, 3)["families_capacity"] == ["realnvp"]


def test_a_non_finite_run_reached_the_unbounded_likelihood_and_a_missing_history_is_not_run():
    assert _law(_history(-0.2), train=_train(status="diverged", conv=False))[0] == "PASS"
    assert _law(None)[0] == "NOT RUN"


def test_the_law_with_an_unknown_number_of_normal_directions():
    verdict, s, _ = _law(_history(-3.0), d=196, k=None)
    assert verdict == "PASS" and s["metric"] == "nll_log_smax_slope" and s["threshold"] == -0.75
    assert _law(_history(-0.5), d=196, k=None)[0] == "NOT_FAR_ENOUGH"


def _real_history(flow_kind, X, kind, lam):
    """The law's history of a short real training (60 epochs at rate 1e-2, seed 0) of ``flow_kind``
    on the first 1,000 points of ``X``, validated on the rest."""
    import torch

    from flowtheory.science.flows import build_flow
    from flowtheory.science.stabilizers import Stabilizer
    from flowtheory.science.training import TrainConfig, train

    X = torch.as_tensor(X, dtype=torch.float64)
    flow = build_flow({"kind": flow_kind}, X.shape[1], seed=0)
    cfg = TrainConfig(60, lr=1e-2)
    result = train(flow, X[:1_000], X[1_000:], Stabilizer(kind, kind, lam), cfg, seed=0, log=lambda _: None)
    return {k: [row.get(k) for row in result.history] for k in ("epoch", "train_nll", "smax")}


def test_the_law_on_a_real_linear_flow_on_a_line():
    """A short real training (0.3 s): the unregularized linear flow on a line is on the law
    d NLL / d log s_max = −1 (D − d = 1); a weight-penalized one (λ = 1: its plateau s = 1/√λ is
    reached within the run), labelled converged, sits at a finite optimum."""
    from flowtheory.datasets.toys import line

    X, _ = line(1_100, np.random.default_rng(0), slope=0.5)
    verdict, s, o = _law(_real_history("linear", X, "none", 0.0))
    assert verdict == "PASS", o.detail
    assert o.detail["runs"]["none/seed0"]["slope"] == pytest.approx(-1.0, abs=0.05)
    verdict, _, o = _law(_real_history("linear", X, "weight", 1.0), train=_train())
    assert verdict == "FAIL", o.detail


def test_the_law_on_a_real_radial_flow_on_a_sphere():
    """The sphere's counterpart (docs/theory.md §2.4.1): the radial flow follows the sphere's normal
    (the radius) at every point, so its unregularized run is on the law −1 (D − d = 1) too; a short
    real training (about 1 s)."""
    from flowtheory.datasets.manifolds import sphere

    verdict, _, o = _law(_real_history("radial", sphere(1_100, np.random.default_rng(0)).x, "none", 0.0), d=3, k=2)
    assert verdict == "PASS", o.detail
    assert o.detail["runs"]["none/seed0"]["slope"] == pytest.approx(-1.0, abs=0.05)


def test_a_history_too_short_for_the_law_has_not_gone_far_enough():
    verdict, _, o = _law(_history(-1.0, epochs=3), train=_train(status="not_converged"))
    assert verdict == "NOT_FAR_ENOUGH" and "too short" in o.notes["none/seed0"]


def test_illposed_claims_read_the_history_from_the_summaries():
    s = _summaries()
    s["train_summary"]["a"]["none"] = {"seed0": _train(status="not_converged"), "seed1": _train(status="not_converged")}
    s["train_history"] = {"a": {"none": {"seed0": _history(-1.0), "seed1": _history(-0.98)}}}
    r = _record(evaluate(_paper_map(ILLPOSED), s, TABLE), "illposed")
    assert list(r["experiments"]) == ["a"] and r["verdict"] == "PASS"
    assert r["experiments"]["a"]["noise"] == pytest.approx(r["experiments"]["a"]["measurements"][0]["noise"])
    s["train_history"]["a"]["none"] = {"seed0": _history(-0.4), "seed1": _history(-0.3)}
    r = _record(evaluate(_paper_map(ILLPOSED), s, TABLE), "illposed")
    assert r["verdict"] == "NOT_AT_OPTIMUM" and r["experiments"]["a"]["verdict"] == "NOT_FAR_ENOUGH"
    assert r["not_at_optimum"] == ["a"]


def test_an_ungated_verdict_is_judged_on_the_runs_whose_state_is_decided():
    """As a gated verdict is judged on the runs at the optimum: seed 0 is on the law, seed 1 has not
    gone far enough. The experiment passes on seed 0 alone, its number is seed 0's and the cause
    names seed 1; a run that fails still outweighs every other."""
    s = _summaries()
    s["train_summary"]["a"]["none"] = {"seed0": _train(status="not_converged"), "seed1": _train(status="not_converged")}
    s["train_history"] = {"a": {"none": {"seed0": _history(-1.0), "seed1": _history(-0.3)}}}
    a = _record(evaluate(_paper_map(ILLPOSED), s, TABLE), "illposed")["experiments"]["a"]
    assert a["verdict"] == "PASS" and a["measured"] < 0.01 and a["prediction_holds"] is False
    assert "judged on the 1 of 2 runs whose state is decided" in a["cause"] and "none/seed1" in a["cause"]
    assert "seed1" not in str(a["measurements"][0]["runs"])
    s["train_summary"]["a"]["none"]["seed1"] = _train()  # converged off the law: a finite optimum
    a = _record(evaluate(_paper_map(ILLPOSED), s, TABLE), "illposed")["experiments"]["a"]
    assert a["verdict"] == "FAIL" and "none/seed1" in a["cause"]
    # stability: one strength converged below its bound, another still converging
    runs = {"j/seed0": _train(lam=0.01, smax_last=8.0), "k/seed0": _train(status="not_converged", lam=0.01)}
    o = _outcome("stable", runs, {"bound_factor": 3.0}, 1.0)
    verdict, cause = claims._state_verdict(o)
    assert verdict == "PASS" and "k/seed0" in cause
    runs["k/seed0"] = _train(lam=0.01, smax_last=31.0)
    assert claims._state_verdict(_outcome("stable", runs, {"bound_factor": 3.0}, 1.0))[0] == "FAIL"


def test_load_history_reads_the_tidy_csv(tmp_path):
    csv = tmp_path / "h.csv"
    csv.write_text(
        "experiment,stabilizer,seed,epoch,train_nll,valid_nll,smax,smin,cond\n"
        "a,none,0,1,2.0,2.1,1.0,0.5,2\n"
        "a,none,0,2,1.5,1.6,,0.5,2\n"
    )
    h = claims.load_history(csv)
    assert h["a"]["none"]["seed0"]["train_nll"] == [2.0, 1.5]
    assert math.isnan(h["a"]["none"]["seed0"]["smax"][1])


# ----------------------------------------------------------------------------- conclusions


def _conclusion(doc, n):
    return next(c for c in doc["conclusions"] if c["paper_claim"] == n)


def test_the_five_conclusions():
    table = {**TABLE, "d": _props("sphere", 3, 2, True, "mlp", ["jacobian_1e-2"])}
    s = _summaries()
    s["train_summary"]["d"] = {"jacobian_1e-2": {"seed0": _train(lam=0.01)}}
    s["analysis_summary"]["d"] = {"jacobian_1e-2": {"seed0": _analysis(0.9, tangent_angle_true_deg_median=80.0)}}
    s["components_summary"]["d"] = {"jacobian_1e-2": {"seed0": {"intrinsic_dim": 2}}}
    pm = _paper_map(ANGLE, DIM, MNIST_ONLY)

    # the angle claim: PASS on a and b, d converged with its gap above ε (capacity)
    doc = evaluate(pm, s, table)
    c2 = _conclusion(doc, 2)
    assert c2["conclusion"] == "reproduces within stated limits"
    assert c2["families_at_optimum"] == ["mlp", "realnvp"] and c2["families_capacity"] == ["mlp"]
    assert c2["capacity"] == ["angle on d"], "the sphere MLP converged above ε; the circle MLP reached it"
    assert c2["number"]["claim"] == "angle" and c2["number"]["verdict"] == "PASS"
    assert "converged short of the optimum (capacity) (1 of 3)" in c2["cause"]
    assert _conclusion(doc, 1)["conclusion"] == "not conclusive" and _conclusion(doc, 1)["cause"] == (
        "no experiment of this kind in this config"
    )

    s2 = copy.deepcopy(s)
    s2["analysis_summary"]["d"]["jacobian_1e-2"]["seed0"]["gap_nats"] = 0.05
    doc = evaluate(pm, s2, table)
    c2 = _conclusion(doc, 2)
    assert c2["conclusion"] == "does not reproduce" and c2["cause"] == "FAIL at the optimum: angle on d"
    assert c2["number"]["experiment"] == "d" and c2["number"]["margin"] == pytest.approx(-65.0)
    assert _conclusion(doc, 5)["conclusion"] == "reproduces"

    s3 = _summaries()
    for stabs in s3["train_summary"].values():
        for seeds in stabs.values():
            for m in seeds.values():
                m["status"] = "not_converged"
    doc = evaluate(_paper_map(ANGLE), s3, TABLE)
    c2 = _conclusion(doc, 2)
    assert c2["conclusion"] == "not conclusive" and c2["families_at_optimum"] == []
    assert c2["cause"] == "no verdict at the optimum: not converged (2 of 2)"
    assert c2["number"]["verdict"] == "NOT_AT_OPTIMUM"


def test_a_fragile_verdict_is_marked_and_no_conclusion_rests_on_it():
    """A verdict a round-off perturbation flipped (results/chaos.json) is named, counted neither as
    PASS nor FAIL, and a conclusion that it alone decided becomes undecided."""
    s = _summaries(angle_b=(8.0, 20.0))  # b fails at the optimum, a passes
    assert _conclusion(evaluate(_paper_map(ANGLE), s, TABLE), 2)["conclusion"] == "does not reproduce"
    doc = evaluate(_paper_map(ANGLE), s, TABLE, fragile={("angle", "b")})
    r = _record(doc, "angle")
    assert r["experiments"]["b"]["fragile"] and not r["experiments"]["a"]["fragile"] and r["fragile"] == ["b"]
    assert r["experiments"]["b"]["verdict"] == "FAIL", "the verdict itself is kept, marked"
    c = _conclusion(doc, 2)
    assert c["conclusion"] == "reproduces within stated limits", "resting on a alone"
    assert c["number"]["experiment"] == "a" and c["counts"]["fragile"] == 1
    assert "set aside as fragile under round-off: angle on b (FAIL)" in c["cause"]
    md = render_markdown(doc)
    assert "| FAIL (fragile) |" in md and "(1 fragile)" in md
    # both fragile: nothing left to conclude from
    doc = evaluate(_paper_map(ANGLE), s, TABLE, fragile={("angle", "a"), ("angle", "b")})
    assert _conclusion(doc, 2)["conclusion"] == "not conclusive"


def _chaos_case(tmp_path, **measured) -> tuple[dict, Path, list[Path]]:
    """Summaries where run b fails claim 2, a chaos measurement (``measured``: its digests) that
    found b's verdict fragile, and the three output paths of :func:`write_claims`."""
    (tmp_path / "map.yaml").write_text(json.dumps(_paper_map(ANGLE)))
    paths_ = {}
    for k, v in _summaries(angle_b=(8.0, 20.0)).items():
        if k != "train_history":
            paths_[k] = tmp_path / f"{k}.json"
            paths_[k].write_text(json.dumps(v))
    chaos = tmp_path / "chaos.json"
    fragile = [{"claim": "angle", "experiment": "b", "file": "results/claims.json", "where": "x"}]
    chaos.write_text(json.dumps({"format": "flowtheory-chaos/1", **measured, "fragile": fragile}))
    return paths_, chaos, [tmp_path / n for n in ("claims.json", "claims.md", "metrics.json")]


def test_write_claims_applies_a_chaos_measurement_of_its_own_config_only(tmp_path):
    paths_, chaos, out = _chaos_case(tmp_path, config_digest="sha256:aaa")
    for digest, expected in (("sha256:aaa", "reproduces within stated limits"), ("sha256:bbb", "does not reproduce")):
        lines = []
        write_claims(
            tmp_path / "map.yaml", paths_, TABLE, *out, log=lines.append, chaos_path=str(chaos), config_digest=digest
        )
        doc = json.loads(out[0].read_text())
        assert _conclusion(doc, 2)["conclusion"] == expected, digest
        assert doc["config_digest"] == digest
        assert (doc["fragile_from"] == str(chaos)) == (digest == "sha256:aaa")
    assert "measured on another config" in lines[0]


def test_a_chaos_measurement_still_applies_to_the_experiments_whose_own_digest_is_unchanged(tmp_path):
    """Another config (another experiment added or edited): the fragile verdicts of an experiment
    are kept while its own digest is the measured one, and dropped once it changed."""
    measured = {"a": "sha256:a1", "b": "sha256:b1"}
    paths_, chaos, out = _chaos_case(tmp_path, config_digest="sha256:aaa", experiment_digests=measured)
    for b_digest, expected in (("sha256:b1", "reproduces within stated limits"), ("sha256:b2", "does not reproduce")):
        lines = []
        write_claims(
            tmp_path / "map.yaml",
            paths_,
            TABLE,
            *out,
            log=lines.append,
            chaos_path=str(chaos),
            config_digest="sha256:other",
            experiment_digests={"a": "sha256:a1", "b": b_digest},
        )
        doc = json.loads(out[0].read_text())
        assert _conclusion(doc, 2)["conclusion"] == expected, b_digest
        assert doc["experiment_digests"]["b"] == b_digest
        fragile = 1 if b_digest == "sha256:b1" else 0
        assert f"{fragile} fragile verdict(s)" in lines[0]


def test_capacity_names_the_family_that_converged_above_epsilon():
    s = _summaries(gap_b=(0.5, 0.6))
    c = _conclusion(evaluate(_paper_map(ANGLE), s, TABLE), 2)
    assert c["conclusion"] == "reproduces within stated limits"
    assert c["families_at_optimum"] == ["realnvp"] and c["families_capacity"] == ["mlp"]


def test_the_carrier_prefers_the_headline_claim():
    other = _claim("other", 2, "max_below", MANIFOLD_NONLINEAR, 100.0, stage="analysis_summary", metric="x")
    s = _summaries()
    for stabs in s["analysis_summary"].values():
        for seeds in stabs.values():
            for m in seeds.values():
                m["x"] = 99.0  # a smaller margin than the headline's
    doc = evaluate(_paper_map(ANGLE, other, headlines={2: "angle"}), s, TABLE)
    assert _conclusion(doc, 2)["number"]["claim"] == "angle"


# ----------------------------------------------------------------------------- error against the gap


def test_error_vs_gap_rank_correlation_and_the_runs_nearest_the_optimum():
    s = _summaries(angle_a=(5.0, 6.0), angle_b=(8.0, 9.0), gap_a=(0.01, 0.02), gap_b=(0.03, 0.04))
    e = evaluate(_paper_map(ANGLE), s, TABLE)["error_vs_gap"]["angle"]
    assert e["metric"] == "tangent_angle_true_deg_median" and e["n_runs"] == 4
    assert e["spearman_rho"] == pytest.approx(1.0) and e["p_value"] < 0.05
    assert e["lowest_gap_quartile"] == {"n": 1, "gap_max": 0.01, "median_error": 5.0}
    assert e["median_error"] == pytest.approx(7.0) and e["within_epsilon"] == {"n": 4, "median_error": 7.0}
    s["analysis_summary"]["b"]["jacobian_1e-2"]["seed0"]["gap_nats"] = None
    s["analysis_summary"]["b"]["jacobian_1e-2"]["seed0"]["gap_kind"] = None
    assert evaluate(_paper_map(ANGLE), s, TABLE)["error_vs_gap"]["angle"]["n_runs"] == 3
    assert claims._spearman(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == (None, None)
    assert "dim" not in evaluate(_paper_map(DIM), _summaries(), TABLE)["error_vs_gap"], "not a geometric claim"


def test_spearman_is_scipys_to_the_bit():
    """Our Spearman (no scipy.stats import) against scipy.stats.spearmanr, ties and perfect order
    included: statistic and p value equal, not close."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(7)
    cases = [(np.arange(5.0), np.arange(5.0) + 1), (np.arange(5.0), -np.arange(5.0))]
    for n in (3, 4, 7, 26, 100):
        for i in range(40):
            x, y = rng.normal(size=n), rng.normal(size=n)
            y = y + rng.normal() * x
            cases.append((np.round(x) if i % 3 == 0 else x, np.round(y, 1) if i % 4 == 0 else y))
    checked = 0
    for x, y in cases:
        ours = claims._spearman(x, y)
        if ours == (None, None):
            continue
        ref = spearmanr(x, y)
        assert ours == (float(ref.statistic), float(ref.pvalue)), (x, y)
        checked += 1
    assert checked > 150


def test_the_claims_job_imports_neither_torch_nor_scipy_stats():
    """The claims job is on the way to every figure: the sweep's slopes and the rank correlation
    must not pull in torch or scipy.stats (1.5 s and 0.8 s of its start-up)."""
    code = (
        "import sys, numpy as np; from flowtheory.stages import claims; "
        "claims._sweep_slopes(np.array([1e-3, 1e-2, 1e-1]), np.ones((3, 2))); "
        "claims._spearman(np.arange(4.0), np.array([1.0, 3.0, 2.0, 4.0])); "
        "print(sorted(m for m in ('torch', 'scipy.stats') if m in sys.modules))"
    )
    assert fresh_python(code).strip() == "[]"


# ----------------------------------------------------------------------------- outputs


def test_markdown_opens_with_the_conclusions_and_keeps_the_full_table_below_the_readme_stop():
    doc = evaluate(_paper_map(ANGLE, DIM, MNIST_ONLY), _summaries(angle_b=(8.0, 20.0)), TABLE)
    md = render_markdown(doc)
    head, tail = md.split(README_STOP)
    assert head.index("### Conclusions") < head.index("### Claims")
    assert "| 2. paper claim 2 | **does not reproduce** | `angle` on b: tangent_angle_true_deg_median = 20 ≤ 15" in head
    assert "(margin -5, within noise) [FAIL]" in head, "the spread over seeds (8, 20) exceeds the margin"
    assert "| `angle` | 2: the claim angle | fig_tangent |" in head and "| `mnist` |" in head
    assert "N/A: no experiment of this kind in this config" in head
    assert "### Per experiment" not in head and "### Per experiment" in tail and "### Error against optimality" in tail
    assert "| `angle` | b | mlp | jacobian_1e-2 (2 runs) | FAIL |" in tail
    assert "baseline knn_tangent_angle_true_deg_median median 2" in tail
    assert "`mnist`" not in tail.split("### Per experiment")[1], "an N/A claim has no per-experiment row"


def test_the_readme_opens_with_the_conclusions_and_links_the_full_table(tmp_path):
    md = render_markdown(evaluate(_paper_map(ANGLE), _summaries(), TABLE))
    readme, claims_md = tmp_path / "README.md", tmp_path / "claims.md"
    readme.write_text(f"intro\n{BEGIN}\nold\n{END}\nafter\n")
    claims_md.write_text(md)
    assert splice_readme(readme, claims_md) == "readme: claims table updated"
    block = readme.read_text().split(BEGIN)[1].split(END)[0]
    assert block.lstrip().startswith("### Conclusions") and "### Claims" in block
    assert "### Per experiment" not in block and "[`results/claims.md`](results/claims.md)" in block


def test_metrics_are_flat_per_claim_and_per_paper_claim():
    m = metrics(evaluate(_paper_map(ANGLE, MNIST_ONLY), _summaries(), TABLE))
    assert m["claims"]["angle"]["verdict"] == "PASS" and m["claims"]["angle"]["n_experiments"] == 2
    assert m["claims"]["angle"]["experiments"]["a"] == {
        "verdict": "PASS",
        "passed": True,
        "measured": 6.0,
        "margin": 9.0,
    }
    assert m["claims"]["mnist"]["passed"] is None and m["claims"]["mnist"]["experiments"] == {}
    assert m["conclusions"]["paper_claim_2"]["conclusion"] == "reproduces"


def test_write_claims_writes_three_files(tmp_path):
    (tmp_path / "map.yaml").write_text(json.dumps(_paper_map(ANGLE, ILLPOSED)))
    paths_ = {}
    for k, v in _summaries().items():
        if k == "train_history":
            continue
        paths_[k] = tmp_path / f"{k}.json"
        paths_[k].write_text(json.dumps(v))
    out = {n: tmp_path / n for n in ("claims.json", "claims.md", "metrics.json")}
    lines = []
    write_claims(tmp_path / "map.yaml", paths_, TABLE, *out.values(), log=lines.append)
    doc = json.loads(out["claims.json"].read_text())
    assert set(doc) == {"config_digest", "experiment_digests", "fragile_from", "conclusions", "claims", "error_vs_gap"}
    assert doc["fragile_from"] is None
    assert [r["id"] for r in doc["claims"]] == ["angle", "illposed"]
    assert doc["claims"][1]["experiments"]["a"]["verdict"] == "NOT RUN", "no history: not measured"
    assert "### Per experiment" in out["claims.md"].read_text()
    assert set(json.loads(out["metrics.json"].read_text())) == {"claims", "conclusions"}
    assert lines[0].startswith("paper claim 2: reproduces")


def test_the_committed_summaries_without_the_new_keys_do_not_crash(tmp_path):
    """The summaries in the repository may predate the convergence criterion and the gap: every
    verdict that needs them is NOT_AT_OPTIMUM (convergence unknown), none crashes."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    summaries = {k: ROOT / paths.SUMMARIES[k] for k in claims.SUMMARY_KEYS}
    if not all(p.is_file() for p in summaries.values()):
        pytest.skip("no committed summaries")
    out = [tmp_path / n for n in ("claims.json", "claims.md", "metrics.json")]
    doc = write_claims(ROOT / "paper_map.yaml", summaries, describe(config), *out, log=lambda _: None)
    assert len(doc["conclusions"]) == 5
    verdicts = {res["verdict"] for r in doc["claims"] for res in r["experiments"].values()}
    assert verdicts <= {"PASS", "FAIL", "NOT_AT_OPTIMUM", "NOT_FAR_ENOUGH", "NOT RUN"}


# ----------------------------------------------------------------------------- paper_map.yaml

#: every claim's threshold and ε, as fixed before the results (nothing is loosened)
THRESHOLDS = {
    "linear_whitening": (0.02, 2.5e-5),
    "linear_components_pca": (0.999, 2.5e-5),
    "shrinkage_closed_form": (0.02, 2.5e-5),
    "linear_singular_illposed": (0.25, None),
    "manifold_unregularized_illposed": (0.25, None),
    "regularized_stable_weight": (1.0, None),
    "regularized_stable_jacobian": (1.0, None),
    "regularized_stable_noise": (1.0, None),
    "noise_equals_tikhonov": (0.05, 1.5e-4),
    "intrinsic_dimension_manifolds": ("intrinsic_dim", 0.5),
    "local_covariance_oracle": (15.0, 0.1),
    "normal_std_shrinkage": (2.0, 0.1),
    "intrinsic_dimension_sweep": ("intrinsic_dim", 0.2),
    "intrinsic_dimension_sweep_noise": ("intrinsic_dim", 0.2),
    "mnist_unregularized_illposed": (0.25, None),
    "mnist_spectrum_decay": (0.25, None),
    "mnist_components_local": (0.5, None),
}


def test_paper_map_thresholds_epsilons_and_no_experiment_names():
    paper_map = load_paper_map(ROOT / "paper_map.yaml")
    assert {c["id"]: (c["threshold"], c["epsilon"]) for c in paper_map["claims"]} == THRESHOLDS
    assert sorted(paper_map["paper_claims"]) == [1, 2, 3, 4, 5]
    by_id = {c["id"]: c for c in paper_map["claims"]}
    assert by_id["linear_components_pca"]["var_tol"] == 0.02 and by_id["mnist_spectrum_decay"]["whitened_min"] == 0.5
    assert by_id["mnist_components_local"]["k"] == 4
    assert all(by_id[f"regularized_stable_{k}"]["bound_factor"] == 3.0 for k in ("weight", "jacobian", "noise"))
    assert by_id["local_covariance_oracle"]["baseline_metric"] == "knn_tangent_angle_true_deg_median"
    assert all(c["epsilon_reason"].strip() for c in paper_map["claims"])
    text = (ROOT / "paper_map.yaml").read_text() + (ROOT / "src/flowtheory/stages/claims.py").read_text()
    for name in ("gaussian_linear", "line_linear", "scurve_mlp", "circle_mlp", "scurve_sweep", "mnist_mlp"):
        assert name not in text, f"experiment name {name!r} in paper_map.yaml or claims.py"


def test_claim_ids_say_what_they_select():
    """Renamed claims are gone everywhere (docs, README, tests, code); kNN is no claim of its own."""
    old = ("scurve_unregularized_diverges", "intrinsic_dimension_scurve", "local_covariance_knn", "degenerate_diverges")
    ids = {c["id"] for c in load_paper_map(ROOT / "paper_map.yaml")["claims"]}
    assert not ids & set(old)
    old += ("mnist_unregularized_diverges",)
    for rel in ("README.md", "docs", "workflow/report", "workflow/notebooks", "src", "tests/e2e", "tests/pipeline"):
        files = sorted((ROOT / rel).rglob("*.*")) if (ROOT / rel).is_dir() else [ROOT / rel]
        for f in files:
            if f.suffix not in (".md", ".rst", ".py", ".smk", ".yaml"):
                continue
            text = f.read_text()
            if f.name == "README.md" and BEGIN in text:  # the generated block is the pipeline's to rewrite
                text = text.split(BEGIN)[0] + text.split(END)[1]
            assert not [o for o in old if o in text], f


def _write_map(tmp_path, pm) -> Path:
    p = tmp_path / "map.yaml"
    p.write_text(yaml.safe_dump(pm, allow_unicode=True))
    return p


def _bad(tmp_path, edit) -> str:
    pm = yaml.safe_load((ROOT / "paper_map.yaml").read_text())
    edit(pm)
    with pytest.raises(PaperMapError) as err:
        load_paper_map(_write_map(tmp_path, pm))
    return str(err.value)


def _entry(pm, cid):
    return next(c for c in pm["claims"] if c["id"] == cid)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda pm: _entry(pm, "regularized_stable_noise").update(bound_facter=3.0),
            r"claim 'regularized_stable_noise': unknown key 'bound_facter' \(did you mean 'bound_factor'\?\)",
        ),
        (
            lambda pm: _entry(pm, "normal_std_shrinkage").pop("epsilon"),
            r"claim 'normal_std_shrinkage': missing key 'epsilon'",
        ),
        (
            lambda pm: _entry(pm, "linear_whitening").pop("epsilon_reason"),
            r"claim 'linear_whitening': missing key 'epsilon_reason'",
        ),
        (
            lambda pm: _entry(pm, "intrinsic_dimension_sweep").pop("slope_cut"),
            r"claim 'intrinsic_dimension_sweep': missing key 'slope_cut'",
        ),
        (
            lambda pm: _entry(pm, "local_covariance_oracle").update(epsilon=-0.1),
            r"claim 'local_covariance_oracle': key 'epsilon' must be a gap in nats ≥ 0",
        ),
        (
            lambda pm: _entry(pm, "mnist_components_local").update(k=2.5),
            r"claim 'mnist_components_local': key 'k' must be a positive integer",
        ),
        (
            lambda pm: _entry(pm, "linear_whitening").update(check="max_bellow"),
            r"claim 'linear_whitening': key 'check': unknown check 'max_bellow' \(did you mean 'max_below'\?\)",
        ),
        (
            lambda pm: _entry(pm, "linear_whitening").update(rule="components"),
            r"claim 'linear_whitening': key 'rule': 'components' is not the rule whose runs the check reads",
        ),
        (
            lambda pm: _entry(pm, "linear_whitening").update(stage="analysis"),
            r"claim 'linear_whitening': key 'stage' must be one of the stage summaries",
        ),
        (
            lambda pm: _entry(pm, "linear_whitening").update(figure="fig_z"),
            r"claim 'linear_whitening': key 'figure' must be one of the figures",
        ),
        (
            lambda pm: _entry(pm, "linear_whitening").update(threshold="intrinsic_dimension"),
            r"claim 'linear_whitening': key 'threshold' must be a number or one of",
        ),
        (
            lambda pm: _entry(pm, "linear_whitening").update(paper_claim=6),
            r"claim 'linear_whitening': key 'paper_claim': 6 is not one of the paper claims",
        ),
        (
            lambda pm: _entry(pm, "linear_whitening").update(applies_to={"dataset": {"intrinsic": 2}}),
            r"claim 'linear_whitening': applies_to\.dataset: unknown field 'intrinsic'",
        ),
        (
            lambda pm: pm["paper_claims"][2].update(headline="linear_whitening"),
            r"paper claim 2: key 'headline': 'linear_whitening' is not one of its claims",
        ),
        (
            lambda pm: pm["claims"].append(copy.deepcopy(pm["claims"][0])),
            r"claim ids must be unique; repeated: \['linear_whitening'\]",
        ),
        (lambda pm: pm.update(claim=[]), r"unknown top-level key 'claim'"),
    ],
    ids=[
        "typo",
        "no-epsilon",
        "no-epsilon-reason",
        "check-key",
        "negative-epsilon",
        "k",
        "check",
        "rule",
        "stage",
        "figure",
        "threshold",
        "paper-claim",
        "selector",
        "headline",
        "duplicate",
        "top-level",
    ],
)
def test_a_bad_paper_map_is_one_error_naming_the_claim_and_key(tmp_path, edit, message):
    assert re.search(message, _bad(tmp_path, edit))


def test_check_paper_map_accepts_the_fabricated_maps():
    check_paper_map(_paper_map())


def test_the_snakefile_validates_the_paper_map_before_any_job():
    common = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    assert "ftclaims.load_paper_map(paths.PAPER_MAP)" in common
