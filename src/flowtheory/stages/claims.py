"""The paper's claims as executable checks on pipeline outputs, judged at the optimum.

``paper_map.yaml`` gives each claim its figure, rule, check, threshold (with the reason for it), its
``epsilon`` (the largest distance to the optimum, in nats, at which a run still counts as at the
optimum, with its reason) and an ``applies_to`` selector (:mod:`flowtheory.pipeline.experiments`):
which experiments, and which of their runs, the claim is about, by what they are, never by name.
:func:`load_paper_map` validates the file (every key of every claim) before anything is evaluated.

The paper's claims are about *optimal* flows, so a verdict says where the runs were when it was
made. Per claim × experiment:

* ``PASS``: the theory's prediction holds on every selected run at the optimum, and there is one:
  converged (its training status, a criterion fixed in advance) and at its flow family's optimum
  (the analysis stage's exact gap ``gap_nats`` at most ε, where the gap is computable); the runs not
  at it are named in the cause and count neither way (:func:`_gated_verdict`);
* ``FAIL``: a run converged and at the optimum misses the prediction;
* ``NOT_AT_OPTIMUM``: no selected run is at the optimum (not converged, convergence unknown for a
  summary older than the criterion, or the gap above ε): its numbers are shown and it counts neither
  as a pass nor as a failure;
* ``NOT_FAR_ENOUGH``: the ill-posedness law's own state, an unregularized run whose NLL still falls
  but not yet at the law's rate (see :func:`check_illposed`);
* ``NOT RUN``: the summaries lack the runs or the metric.

Per claim: ``FAIL`` if an experiment fails, ``PASS`` if all pass, otherwise ``NOT_AT_OPTIMUM`` (or
``NOT RUN``); ``N/A`` when no experiment of the config is of the claim's kind. The ill-posedness and
stability checks judge convergence themselves (their claims are about training, not about a
property of the optimum), per run, and their verdict is judged on the same terms, on the runs whose
state is decided (:func:`_state_verdict`). Every measured value carries its metric name, its direction (``<=`` or
``>=``), its threshold and its signed margin (positive: the prediction holds with room), and is
flagged ``near_threshold`` when the margin is within its noise (the spread over seeds of one
stabilizer, or the check's standard error where there is one seed).

Then one conclusion per paper claim (docs/theory.md §1), from the verdicts of its claims
(:func:`conclude`), and, beyond the paper, each geometric claim's error against the gap over every
run where both exist (:func:`error_vs_gap`). The stage never fails because a claim does.
"""

from __future__ import annotations

import csv
import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from flowtheory.pipeline import storage
from flowtheory.pipeline.experiments import check_selector, describe_selector, select
from flowtheory.pipeline.paths import NOTEBOOKS
from flowtheory.pipeline.runkey import RunKey

__all__ = [
    "CHECKS",
    "SUMMARY_KEYS",
    "Check",
    "Outcome",
    "PaperMapError",
    "check_paper_map",
    "conclude",
    "convergence",
    "error_vs_gap",
    "evaluate",
    "load_history",
    "load_paper_map",
    "metrics",
    "render_markdown",
    "write_claims",
]

#: the stage summaries the claims read (``train_history``: the tidy history CSV of the train stage)
SUMMARY_KEYS = ["train_summary", "train_history", "analysis_summary", "components_summary"]
JSON_SUMMARIES = ("train_summary", "analysis_summary", "components_summary")
#: the rule whose runs each summary collects (a claim's ``rule`` must be the one its check reads)
RULE_OF_SUMMARY = {"train_summary": "train", "analysis_summary": "analysis", "components_summary": "components"}

PASS, FAIL, NA, NOT_RUN = "PASS", "FAIL", "N/A", "NOT RUN"
NOT_AT_OPTIMUM, NOT_FAR_ENOUGH = "NOT_AT_OPTIMUM", "NOT_FAR_ENOUGH"
#: verdicts that are neither a pass nor a failure: the runs are not (known to be) at the optimum
UNDECIDED = (NOT_AT_OPTIMUM, NOT_FAR_ENOUGH)
NO_EXPERIMENT = "no experiment of this kind in this config"

REPRODUCES = "reproduces"
WITHIN_LIMITS = "reproduces within stated limits"
DOES_NOT_REPRODUCE = "does not reproduce"
NOT_CONCLUSIVE = "not conclusive"

#: where the README's copy of results/claims.md stops (flowtheory.pipeline.hooks.splice_readme):
#: the full claim × experiment table stays in results/claims.md
README_STOP = "<!-- readme:stop -->"

CONVERGED, NOT_CONVERGED, DIVERGED, UNKNOWN = "converged", "not_converged", "diverged", "unknown"
#: keys a run summary has once training records its convergence criterion; without them a status
#: of "converged" only meant "finite" (summaries older than the criterion)
CONVERGENCE_KEYS = ("conv_window_change", "conv_tol", "objective_final")
#: gap kinds that mean "not computable" (the gap is then unknown, not infinite), besides the
#: analysis stage's ``none: <why>`` labels (flowtheory.science.optimum)
UNKNOWN_GAP_KINDS = ("", "unknown", "nan")

Runs = dict[str, dict]  # "<stabilizer>/seed<k>" -> that run's metrics


class PaperMapError(ValueError):
    """``paper_map.yaml`` is not what the claims stage can evaluate: one message naming the claim and key."""


# --------------------------------------------------------------------------------- run states


def _num(x) -> float:
    try:
        return math.nan if x is None or isinstance(x, bool) else float(x)
    except (TypeError, ValueError):
        return math.nan


def convergence(m: dict | None) -> str:
    """A run's convergence: ``converged`` (the criterion fixed in advance held), ``not_converged``
    (the epoch or iteration cap came first), ``diverged`` (non-finite) or ``unknown`` (no run
    summary, or one older than the criterion, where "converged" only meant "finite")."""
    if not m:
        return UNKNOWN
    status = m.get("status")
    if status == "diverged":
        return DIVERGED
    if status == "not_converged":
        return NOT_CONVERGED
    if status == "converged" and any(k in m for k in CONVERGENCE_KEYS):
        return CONVERGED
    return UNKNOWN


def _gap(m: dict | None) -> tuple[float | None, float | None, str | None]:
    """(gap in nats, its standard error, its kind): the gap is ``None`` where it is not computable
    (no gap in the summary, or a kind ``none: <why>``, docs/theory.md §2.6) and ``inf`` where it is
    infinite (``none: unbounded objective ...``) or computable but not finite (strict JSON writes
    both as null)."""
    if not m:
        return None, None, None
    kind = m.get("gap_kind")
    gap, se = _num(m.get("gap_nats")), _num(m.get("gap_se"))
    se_out = se if math.isfinite(se) else None
    text = kind.strip().lower() if isinstance(kind, str) else ""
    if text.startswith("none"):
        return (math.inf if "unbounded" in text else None), None, kind
    if math.isfinite(gap):
        return gap, se_out, kind
    if text in UNKNOWN_GAP_KINDS:
        return None, None, kind
    return math.inf, se_out, kind


CAUSE_TEXT = {
    UNKNOWN: "convergence unknown",
    NOT_CONVERGED: "not converged",
    DIVERGED: "diverged (non-finite)",
}


def _optimum(train: dict | None, analysis: dict | None, epsilon: float | None) -> dict:
    """Whether one run is at its flow family's optimum: converged, and its gap at most ε where the
    gap is computable (``epsilon`` None: the claim does not use the gap)."""
    conv = convergence(train)
    gap, se, kind = _gap(analysis)
    out: dict = {"convergence": conv, "gap": gap, "gap_se": se, "gap_kind": kind}
    if gap is not None and epsilon is not None:
        out["gap_margin"] = epsilon - gap
        out["gap_near_epsilon"] = bool(se is not None and math.isfinite(gap) and abs(epsilon - gap) < se)
    if conv != CONVERGED:
        out.update(at_optimum=False, cause=CAUSE_TEXT[conv], capacity=False)
    elif gap is not None and epsilon is not None and not gap <= epsilon:
        # converged, yet the gap stays above ε: the family (or this run's basin) cannot reach it
        out.update(at_optimum=False, cause=f"gap {_fmt(gap)} > ε {_fmt(epsilon)} nats", capacity=True)
    else:
        out.update(at_optimum=True, cause=None, capacity=False)
    return out


# ------------------------------------------------------------------------------- measurements


@dataclass
class Outcome:
    """What a check measured on one experiment's selected runs.

    ``measurements``: each ``{"metric", "direction" ("<=" or ">="), "threshold", "runs": {run:
    value}}`` and optionally ``"se": {run: standard error}``, the first the primary one;
    ``run_passed``: whether the prediction holds on each run (``None``: not measured);
    ``groups``: for checks that judge several runs together (a sweep's seed), each run's group;
    ``states``: for checks that judge convergence themselves, each run's verdict, with ``notes``;
    ``capacity``: the runs such a check found limited by their flow family, not by the theory."""

    measurements: list[dict]
    run_passed: dict[str, bool | None]
    detail: dict = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    states: dict[str, str] | None = None
    notes: dict[str, str] = field(default_factory=dict)
    capacity: list[str] = field(default_factory=list)


def _holds(value: float, direction: str, threshold: float) -> bool | None:
    if math.isnan(value):
        return None
    return bool(value <= threshold) if direction == "<=" else bool(value >= threshold)


def _margin(value: float, direction: str, threshold: float) -> float:
    return threshold - value if direction == "<=" else value - threshold


def _measure(metric: str, direction: str, threshold: float, runs: dict[str, float], se: dict | None = None) -> dict:
    out = {"metric": metric, "direction": direction, "threshold": threshold, "runs": runs}
    if se:
        out["se"] = se
    return out


def _noise(values: dict[str, float], se: dict[str, float] | None) -> tuple[float | None, str | None]:
    """The measurement noise of an experiment's value: the largest sample std over the seeds of one
    stabilizer, or (one seed each) the largest standard error the check gives."""
    by_stab: dict[str, list[float]] = {}
    for run, v in values.items():
        if math.isfinite(v):
            by_stab.setdefault(RunKey.from_label("", run).stabilizer, []).append(v)
    spreads = [float(np.std(v, ddof=1)) for v in by_stab.values() if len(v) >= 2]
    if spreads:
        return max(spreads), "spread over seeds"
    ses = [s for s in (se or {}).values() if s is not None and math.isfinite(s)]
    if ses:
        return max(ses), "standard error"
    return None, None


def _summarize(meas: dict) -> dict:
    """One measurement over the experiment's runs: the worst finite value, its margin (signed, in
    the check's direction), its noise and whether the margin is within it."""
    values = {r: _num(v) for r, v in meas["runs"].items()}
    direction, thr = meas["direction"], meas["threshold"]
    finite = [v for v in values.values() if not math.isnan(v)]
    worst = (max(finite) if direction == "<=" else min(finite)) if finite else math.nan
    margin = _margin(worst, direction, thr) if finite else math.nan
    noise, kind = _noise(values, meas.get("se"))
    out = {
        "metric": meas["metric"],
        "direction": direction,
        "threshold": thr,
        "value": worst,
        "margin": margin,
        "noise": noise,
        "noise_kind": kind,
        "near_threshold": bool(noise is not None and math.isfinite(margin) and abs(margin) < noise),
        "runs": values,
    }
    missing = [r for r, v in values.items() if math.isnan(v)]
    if missing:
        out["not_measured"] = missing
    return out


def _judge(runs: list[str], measurements: list[dict]) -> dict[str, bool | None]:
    """Per run: every measurement that has the run holds (``None`` if the primary one is missing)."""
    out: dict[str, bool | None] = {}
    for r in runs:
        verdicts = [_holds(_num(m["runs"].get(r)), m["direction"], m["threshold"]) for m in measurements]
        if verdicts and verdicts[0] is None:
            out[r] = None
        else:
            out[r] = all(v is not False for v in verdicts) and all(v is not None for v in verdicts)
    return out


# ------------------------------------------------------------------------------ check functions
#
# Each takes one experiment's selected runs (from the check's summary), the claim's entry, its
# threshold and a context (the same runs' train and analysis metrics, their histories and the
# experiment's properties), and returns an Outcome.


def check_max_below(runs: Runs, entry: dict, threshold: float, ctx: dict) -> Outcome:
    """Every run's ``metric`` is at most ``threshold``; a ``baseline_metric`` (e.g. the kNN
    estimate's angle to the same oracle) is reported beside it, not judged."""
    values = {r: _num(m.get(entry["metric"])) for r, m in runs.items()}
    meas = [_measure(entry["metric"], "<=", threshold, values)]
    detail: dict = {}
    if entry.get("baseline_metric"):
        base = {r: _num(m.get(entry["baseline_metric"])) for r, m in runs.items()}
        finite = [v for v in base.values() if math.isfinite(v)]
        detail["baseline"] = {
            "metric": entry["baseline_metric"],
            "runs": base,
            "median": float(np.median(finite)) if finite else math.nan,
        }
    return Outcome(meas, _judge(list(runs), meas), detail)


def check_ratio_within(runs: Runs, entry: dict, threshold: float, ctx: dict) -> Outcome:
    """Every run's ``metric`` (a measured / predicted ratio r) is within a factor ``threshold`` of 1:
    the judged value is the factor max(r, 1/r)."""
    ratios = {r: _num(m.get(entry["metric"])) for r, m in runs.items()}
    factors = {r: (max(v, 1 / v) if v > 0 else math.inf) if not math.isnan(v) else math.nan for r, v in ratios.items()}
    meas = [_measure(f"{entry['metric']}_factor", "<=", threshold, factors)]
    return Outcome(meas, _judge(list(runs), meas), {"ratios": ratios})


def check_pca(runs: Runs, entry: dict, threshold: float, ctx: dict) -> Outcome:
    """Linear flow: every component correlates with its PCA score (|r| ≥ threshold) and has the
    PCA eigenvalue as variance (within ``var_tol``)."""
    corr, var = {}, {}
    for r, m in runs.items():
        c, v = m.get("pca_abs_corr"), m.get("pca_var_ratio")
        corr[r] = float(min(c)) if c else math.nan
        var[r] = float(max(abs(_num(x) - 1) for x in v)) if v else math.nan
    meas = [
        _measure("pca_min_abs_corr", ">=", threshold, corr),
        _measure("pca_max_var_rel_dev", "<=", entry["var_tol"], var),
    ]
    return Outcome(meas, _judge(list(runs), meas))


def check_noise_tikhonov(runs: Runs, entry: dict, threshold: float, ctx: dict) -> Outcome:
    """Noise injection with σ² = λ reaches the weight penalty's closed form (Σ̂ + λI)⁻¹: its WᵀW
    error against the shrunk target is at most ``threshold`` and smaller than against Σ̂⁻¹."""
    shr = {r: _num(m.get("wtw_relerr")) for r, m in runs.items()}
    raw = {r: _num(m.get("wtw_relerr_unshrunk")) for r, m in runs.items()}
    meas = [
        _measure("wtw_relerr", "<=", threshold, shr),
        _measure("wtw_relerr_minus_unshrunk", "<=", 0.0, {r: shr[r] - raw[r] for r in runs}),
    ]
    return Outcome(meas, _judge(list(runs), meas), {"relerr_unshrunk": raw})


def check_intrinsic_dim(runs: Runs, entry: dict, threshold: int, ctx: dict) -> Outcome:
    """Every run's component spectrum gives the data set's true intrinsic dimension
    (``threshold``): judged is |counted − true| ≤ 0."""
    dims = {r: m.get("intrinsic_dim") for r, m in runs.items()}
    err = {r: abs(_num(v) - threshold) if threshold is not None else math.nan for r, v in dims.items()}
    meas = [_measure("intrinsic_dim_abs_error", "<=", 0, err)]
    return Outcome(meas, _judge(list(runs), meas), {"intrinsic_dim": dims, "true": threshold})


def _sweep_slopes(lams, stds):
    # the science's own fit; imported here so that importing this module (the Snakefile checks
    # paper_map.yaml when it is parsed) does not import torch
    from flowtheory.science.oracles import sweep_slopes

    return sweep_slopes(lams, stds)


def check_sweep_intrinsic_dim(runs: Runs, entry: dict, threshold: int, ctx: dict) -> Outcome:
    """The λ sweep gives the true intrinsic dimension (``threshold``): per seed, over the selected
    runs (one stabilizer kind at ≥ 3 strengths), the slope of log(median local std) of each
    component against log √λ (:func:`flowtheory.science.oracles.sweep_slopes`, docs/theory.md
    Eq. (16)); components with slope below ``slope_cut`` are tangent. Judged per seed: |count −
    true| ≤ 0, every run of the seed carrying its seed's value."""
    by_seed: dict[str, list[tuple[str, float, list[float]]]] = {}
    for r, m in runs.items():
        seed = RunKey.seed_name(RunKey.from_label("", r).seed)
        if _num(m.get("lam")) > 0 and m.get("scale_median"):
            by_seed.setdefault(seed, []).append((r, float(m["lam"]), [float(v) for v in m["scale_median"]]))
    detail: dict = {}
    err: dict[str, float] = {r: math.nan for r in runs}
    groups: dict[str, list[str]] = {}
    for seed, pts in sorted(by_seed.items()):
        members = [r for r, _, _ in pts]
        for r in members:
            groups[r] = members
        lams = sorted({lam for _, lam, _ in pts})
        if len(lams) < 3:
            detail[seed] = {"not_measured": f"{len(lams)} distinct strengths; a sweep needs 3"}
            continue
        # runs at one strength (two stabilizers of the kind) are averaged in log std
        stds = np.array([np.exp(np.mean([np.log(s) for _, lam, s in pts if lam == x], axis=0)) for x in lams])
        slopes = np.asarray(_sweep_slopes(np.array(lams), stds))
        k = int((slopes < entry["slope_cut"]).sum())
        detail[seed] = {"lams": lams, "slopes": slopes.tolist(), "intrinsic_dim": k}
        for r in members:
            err[r] = abs(k - threshold) if threshold is not None else math.nan
    if not by_seed:
        detail["not_measured"] = "no stabilized run with component scales"
    meas = [_measure("sweep_intrinsic_dim_abs_error", "<=", 0, err)]
    return Outcome(meas, _judge(list(runs), meas), {"seeds": detail, "true": threshold}, groups)


def _k90(var: list[float]) -> int:
    v = np.sort(np.asarray(var, float))[::-1]
    return int(np.searchsorted(np.cumsum(v) / v.sum(), 0.9) + 1)


def check_spectrum_decay(runs: Runs, entry: dict, threshold: float, ctx: dict) -> Outcome:
    """Un-whitened components concentrate the variance (90% in at most ``threshold`` × d
    components) while whitened latents spread it (at least ``whitened_min`` × d)."""
    fy, fw, fp = {}, {}, {}
    for r, m in runs.items():
        if not (m.get("var_yhat") and m.get("var_y")):
            fy[r] = fw[r] = fp[r] = math.nan
            continue
        d = len(m["var_yhat"])
        fy[r], fw[r] = _k90(m["var_yhat"]) / d, _k90(m["var_y"]) / d
        fp[r] = _k90(m["pca_eigenvalues"]) / d if m.get("pca_eigenvalues") else math.nan
    meas = [
        _measure("k90_unwhitened_frac", "<=", threshold, fy),
        _measure("k90_whitened_frac", ">=", entry["whitened_min"], fw),
    ]
    return Outcome(meas, _judge(list(runs), meas), {"k90_pca_frac": fp})


def check_local_overlap(runs: Runs, entry: dict, threshold: float, ctx: dict) -> Outcome:
    """Local principal subspaces are local: in every run the mean overlap of the top-k subspaces of
    two points of different classes is at most ``threshold`` and below the mean within a class
    (``local_overlap_*`` of the components stage, measured at ``k``; a run measured at another k
    counts as not measured)."""
    across, gap, detail = {}, {}, {}
    for r, m in runs.items():
        w, a = _num(m.get("local_overlap_within")), _num(m.get("local_overlap_across"))
        ok_k = m.get("local_overlap_k") == entry["k"]
        across[r] = a if ok_k else math.nan
        gap[r] = w - a if ok_k else math.nan
        detail[r] = {"k": m.get("local_overlap_k"), "within": w, "across": a, "pca": _num(m.get("local_overlap_pca"))}
        if not ok_k or math.isnan(w) or math.isnan(a):
            detail[r]["not_measured"] = f"needs local_overlap_within/across at k = {entry['k']}"
    meas = [
        _measure("local_overlap_across", "<=", threshold, across),
        _measure("local_overlap_within_minus_across", ">=", 0.0, gap),
    ]
    return Outcome(meas, _judge(list(runs), meas), {"runs": detail})


def check_stable(runs: Runs, entry: dict, threshold: float, ctx: dict) -> Outcome:
    """A stabilized run is stable when it converged (its status: the criterion fixed in advance
    held) with the largest singular value of J_f below ``bound_factor / √λ`` (the shrinkage floor
    of docs/theory.md Eq. (15) times the factor). Judged: s_max / bound ≤ ``threshold`` (1).

    Per run: non-finite -> FAIL; converged and below the bound -> PASS; converged above it ->
    FAIL; not (known to be) converged -> NOT_AT_OPTIMUM (a run still slowly converging is not a
    failure of the stabilizer, whichever side of the bound it is on)."""
    ratio, states, notes, detail = {}, {}, {}, {}
    for r, m in runs.items():
        lam = _num(m.get("lam"))
        bound = entry["bound_factor"] / math.sqrt(lam) if lam > 0 else math.nan
        ratio[r] = _num(m.get("smax_last")) / bound if lam > 0 else math.nan
        conv = convergence(m)
        detail[r] = {"convergence": conv, "smax_last": _num(m.get("smax_last")), "smax_bound": bound}
        if conv == DIVERGED:
            states[r], notes[r] = FAIL, "became non-finite"
        elif math.isnan(ratio[r]):
            states[r], notes[r] = NOT_RUN, "no s_max or no strength"
        elif conv == CONVERGED:
            below = ratio[r] <= threshold
            states[r] = PASS if below else FAIL
            notes[r] = "converged below the bound" if below else "converged above the bound"
        else:
            side = "below" if ratio[r] <= threshold else "above"
            states[r], notes[r] = NOT_AT_OPTIMUM, f"{CAUSE_TEXT[conv]}, s_max {side} the bound"
    meas = [_measure("smax_over_bound", "<=", threshold, ratio)]
    # the prediction (finite, below the bound) whether or not the run converged
    run_passed = {
        r: None if states[r] == NOT_RUN else bool(detail[r]["convergence"] != DIVERGED and ratio[r] <= threshold)
        for r in runs
    }
    return Outcome(meas, run_passed, {"runs": detail}, states=states, notes=notes)


def second_half(epoch: np.ndarray) -> np.ndarray:
    """The ill-posedness law's window: the epochs in the second half of training, ``epoch`` more than
    halfway from its first to its last value (a mask over ``epoch``)."""
    epoch = np.asarray(epoch, float)
    return epoch > epoch.min() + (epoch.max() - epoch.min()) / 2


def law_window(h: dict | None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
    """The ill-posedness law's data from a run's history: epoch, log s_max and training NLL over
    the second half of training (:func:`second_half`; finite rows only), or why there are none."""
    if not h:
        return "no history"
    epoch = np.asarray(h.get("epoch", []), float)
    nll = np.asarray(h.get("train_nll", []), float)
    smax = np.asarray(h.get("smax", []), float)
    ok = np.isfinite(epoch) & np.isfinite(nll) & np.isfinite(smax) & (smax > 0)
    if ok.sum() < 4:
        return f"{int(ok.sum())} finite epochs in the history"
    epoch, nll, smax = epoch[ok], nll[ok], smax[ok]
    half = second_half(epoch)
    return epoch[half], np.log(smax[half]), nll[half]


def _history_fit(h: dict | None) -> dict:
    """Least-squares slope of the training NLL against log s_max over the law's window
    (:func:`law_window`), its standard error and the range of log s_max it spans."""
    return window_fit(law_window(h))


def window_fit(window: tuple[np.ndarray, np.ndarray, np.ndarray] | str) -> dict:
    """:func:`_history_fit` on the law's window (:func:`law_window`'s answer) already taken."""
    if isinstance(window, str):
        return {"not_measured": window}
    _, x, y = window
    if len(x) < 3:
        return {"not_measured": f"{len(x)} epochs in the second half"}
    xc = x - x.mean()
    sxx = float(xc @ xc)
    log_range = float(x.max() - x.min())
    if sxx <= 0:
        return {"log_smax_range": log_range, "n_epochs": len(x), "slope": math.nan, "slope_se": math.nan}
    slope = float(xc @ (y - y.mean()) / sxx)
    resid = y - y.mean() - slope * xc
    se = math.sqrt(float(resid @ resid) / max(len(x) - 2, 1) / sxx)
    return {"slope": slope, "slope_se": se, "log_smax_range": log_range, "n_epochs": len(x)}


def check_illposed(runs: Runs, entry: dict, threshold: float, ctx: dict) -> Outcome:
    """Ill-posedness on degenerate data (docs/theory.md §2.4, Eq. (26)): an unregularized run's NLL
    keeps falling as the normal singular values of J_f grow, one nat per unit of log scale per
    normal direction, so d NLL / d log s_max → −(d − k) (ambient dimension d, intrinsic dimension
    k). Fitted over the second half of training
    from the history (:func:`_history_fit`).

    Per run, with ``threshold`` the tolerance per normal direction:

    * PASS: the slope is within ``threshold`` × (d − k) of −(d − k) while log s_max moved by at
      least ``min_log_range`` (or, d − k unknown as on MNIST, the slope is at most −(1 − threshold):
      at least one normal direction on the law); a run that became non-finite has reached the
      unbounded likelihood too;
    * FAIL: the run converged (its status: the objective stopped improving) off the law, i.e. to a
      finite optimum, which the theory says does not exist for a flow that can follow the data; a
      converged status counts only when the training NLL's least-squares trend over the last quarter
      of training (``nll_slope``) also gained less than the criterion's ``conv_tol`` per
      ``conv_window`` epochs (:func:`_still_falling`): the status's best-to-best test on the
      validation objective is defeated by that objective's noise in a run whose likelihood is
      unbounded, and such a run still falling is NOT_FAR_ENOUGH;
    * NOT_AT_OPTIMUM (capacity): the same, for a run whose flow does not follow the manifold (its own
      tangent angle to the analytic oracle, ``tangent_angle_true_deg_median`` of the analysis stage,
      above ``capacity_angle``): its family cannot reach the unbounded likelihood, which says
      nothing about the theory;
    * NOT_FAR_ENOUGH: neither: the NLL falls slower (or faster, the tangent fit still under way)
      than the law, or s_max has hardly moved, and training has not converged.
    """
    ds = ctx["dataset"]
    normal = ds["d"] - ds["intrinsic_dim"] if ds.get("intrinsic_dim") is not None else None
    values, ses, states, notes, detail, capacity = {}, {}, {}, {}, {}, []
    for r, m in runs.items():
        fit = _history_fit(ctx["history"].get(r))
        conv = convergence(m)
        slope = _num(fit.get("slope"))
        moved = _num(fit.get("log_smax_range")) >= entry["min_log_range"]
        if normal:
            values[r] = abs(slope / normal + 1) if moved else math.nan
            ses[r] = _num(fit.get("slope_se")) / normal
            on_law = moved and values[r] <= threshold
        else:
            values[r] = slope if moved else math.nan
            ses[r] = _num(fit.get("slope_se"))
            on_law = moved and slope <= -(1 - threshold)
        detail[r] = {"convergence": conv, **fit, "law": -normal if normal else None}
        if conv == DIVERGED:
            states[r], notes[r] = PASS, "became non-finite"
        elif on_law:
            states[r], notes[r] = PASS, "on the law"
        elif fit.get("not_measured") == "no history":
            states[r], notes[r] = NOT_RUN, fit["not_measured"]
        elif "not_measured" in fit and conv != CONVERGED:  # a run too short to show a rate
            states[r], notes[r] = NOT_FAR_ENOUGH, f"too short to measure the law: {fit['not_measured']}"
        elif "not_measured" in fit:
            states[r], notes[r] = NOT_RUN, fit["not_measured"]
        elif conv == CONVERGED and (fall := _still_falling(m)) is not None:
            states[r] = NOT_FAR_ENOUGH
            notes[r] = (
                f"NLL still falls ({_fmt(fall)} nats per {_fmt(_num(m.get('conv_window')))} epochs over the last "
                "quarter) though the last window's best did not improve: not stalled"
            )
        elif conv == CONVERGED:
            angle = _num((ctx.get("analysis") or {}).get(r, {}).get("tangent_angle_true_deg_median"))
            detail[r]["tangent_angle_true_deg_median"] = angle
            if entry.get("capacity_angle") is not None and angle > entry["capacity_angle"]:
                states[r] = NOT_AT_OPTIMUM
                notes[r] = f"converged off the law; the flow does not follow the manifold ({_fmt(angle)}°): capacity"
                capacity.append(r)
            else:
                states[r], notes[r] = FAIL, "converged to a finite optimum"
        elif not moved:
            states[r], notes[r] = NOT_FAR_ENOUGH, f"s_max hardly moved ({CAUSE_TEXT[conv]})"
        else:
            side = "slower" if slope > -(normal or 1) else "faster"
            states[r], notes[r] = NOT_FAR_ENOUGH, f"NLL falls {side} than the law ({CAUSE_TEXT[conv]})"
    if normal:
        meas = [_measure("nll_log_smax_slope_rel_dev", "<=", threshold, values, ses)]
    else:
        meas = [_measure("nll_log_smax_slope", "<=", -(1 - threshold), values, ses)]
    run_passed = {r: (None if s == NOT_RUN else s == PASS) for r, s in states.items()}
    detail = {"runs": detail, "normal_directions": normal}
    return Outcome(meas, run_passed, detail, states=states, notes=notes, capacity=capacity)


def _still_falling(m: dict) -> float | None:
    """How far an unregularized run's training NLL still falls per convergence window (its
    least-squares trend over the last quarter of training, ``nll_slope``, times ``conv_window``)
    when that exceeds the criterion's own tolerance ``conv_tol``: the objective has not stopped
    improving, whatever the window's best-to-best test said; None when it has, or when the summary
    lacks the numbers (the status alone then decides)."""
    slope, window, tol = _num(m.get("nll_slope")), _num(m.get("conv_window")), _num(m.get("conv_tol"))
    if not all(math.isfinite(v) for v in (slope, window, tol)):
        return None
    fall = -slope * window
    return fall if fall > tol else None


@dataclass(frozen=True)
class Check:
    """A check function, the stage summary it reads (``None``: the entry's ``stage``), the extra
    keys its entry must have (key -> kind: ``number``, ``int``, ``summary``, ``metric``) and may
    have, whether its verdict needs the runs at the optimum (``gated``; the others judge
    convergence themselves), and whether its error is compared with the gap (``geometric``)."""

    fn: Callable[[Runs, dict, float, dict], Outcome]
    summary: str | None
    keys: dict[str, str] = field(default_factory=dict)
    optional: dict[str, str] = field(default_factory=dict)
    gated: bool = True
    geometric: bool = False


_STAGE_METRIC = {"stage": "summary", "metric": "metric"}
CHECKS: dict[str, Check] = {
    "max_below": Check(check_max_below, None, _STAGE_METRIC, {"baseline_metric": "metric"}, geometric=True),
    "ratio_within": Check(check_ratio_within, None, _STAGE_METRIC, geometric=True),
    "pca": Check(check_pca, "components_summary", {"var_tol": "number"}),
    "noise_tikhonov": Check(check_noise_tikhonov, "analysis_summary", geometric=True),
    "intrinsic_dim": Check(check_intrinsic_dim, "components_summary"),
    "sweep_intrinsic_dim": Check(check_sweep_intrinsic_dim, "components_summary", {"slope_cut": "number"}),
    "spectrum_decay": Check(check_spectrum_decay, "components_summary", {"whitened_min": "number"}),
    "local_overlap": Check(check_local_overlap, "components_summary", {"k": "int"}),
    "stable": Check(check_stable, "train_summary", {"bound_factor": "number"}, gated=False),
    "illposed": Check(
        check_illposed, "train_summary", {"min_log_range": "number"}, {"capacity_angle": "number"}, gated=False
    ),
}

#: a threshold given as one of these words is that property of the experiment's data set
DATASET_THRESHOLDS = ("intrinsic_dim",)

# --------------------------------------------------------------------------- paper_map.yaml

#: keys every claim has, and what they are
CLAIM_KEYS = {
    "id": "str",
    "paper_claim": "int",
    "claim": "str",
    "figure": "figure",
    "rule": "str",
    "check": "str",
    "applies_to": "selector",
    "threshold": "threshold",
    "justification": "str",
    "epsilon": "epsilon",
    "epsilon_reason": "str",
}
OPTIONAL_CLAIM_KEYS = {"settings": "str"}
PAPER_CLAIM_KEYS = {"statement": "str", "headline": "str", "figure": "figure"}


def _close(key: str, allowed) -> str:
    near = difflib.get_close_matches(key, list(allowed), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _check_value(where: str, key: str, kind: str, value) -> None:
    bad = None
    if kind == "str" and not (isinstance(value, str) and value.strip()):
        bad = "a non-empty string"
    elif kind == "int" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        bad = "a positive integer"
    elif kind == "number" and (
        isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    ):
        bad = "a finite number"
    elif kind == "epsilon" and value is not None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            bad = "a gap in nats ≥ 0, or null where the claim does not use the gap"
    elif kind == "threshold":
        if isinstance(value, str):
            if value not in DATASET_THRESHOLDS:
                bad = f"a number or one of {list(DATASET_THRESHOLDS)}"
        elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            bad = f"a number or one of {list(DATASET_THRESHOLDS)}"
    elif kind == "figure" and value not in NOTEBOOKS:
        bad = f"one of the figures {list(NOTEBOOKS)}"
    elif kind == "summary" and value not in JSON_SUMMARIES:
        bad = f"one of the stage summaries {list(JSON_SUMMARIES)}"
    elif kind == "metric" and not (isinstance(value, str) and value.strip()):
        bad = "a metric name"
    if bad:
        raise PaperMapError(f"{where}: key {key!r} must be {bad}, got {value!r}")


def _check_claim(entry: dict, where_file: str, paper_claims: dict) -> None:
    if not isinstance(entry, dict):
        raise PaperMapError(f"{where_file}: every claim is a mapping, got {entry!r}")
    where = f"{where_file}: claim {entry.get('id')!r}"
    check_name = entry.get("check")
    if check_name not in CHECKS:
        raise PaperMapError(
            f"{where}: key 'check': unknown check {check_name!r}{_close(str(check_name), CHECKS)}; "
            f"expected one of {list(CHECKS)}"
        )
    check = CHECKS[check_name]
    required = {**CLAIM_KEYS, **check.keys}
    allowed = {**required, **OPTIONAL_CLAIM_KEYS, **check.optional}
    for key in entry:
        if key not in allowed:
            raise PaperMapError(
                f"{where}: unknown key {key!r}{_close(key, allowed)}; check {check_name!r} takes {sorted(allowed)}"
            )
    for key in required:
        if key not in entry:
            raise PaperMapError(f"{where}: missing key {key!r} (check {check_name!r} needs {sorted(required)})")
    for key, kind in allowed.items():
        if key in entry and kind != "selector":
            _check_value(where, key, kind, entry[key])
    summary = check.summary or entry["stage"]
    if entry["rule"] != RULE_OF_SUMMARY[summary]:
        raise PaperMapError(
            f"{where}: key 'rule': {entry['rule']!r} is not the rule whose runs the check reads "
            f"({summary}: rule {RULE_OF_SUMMARY[summary]!r})"
        )
    if entry["paper_claim"] not in paper_claims:
        raise PaperMapError(
            f"{where}: key 'paper_claim': {entry['paper_claim']!r} is not one of the paper claims {sorted(paper_claims)}"
        )
    try:
        check_selector(entry["applies_to"], f"{where}: applies_to")
    except ValueError as e:
        raise PaperMapError(str(e)) from None


def check_paper_map(paper_map, where: str = "paper_map.yaml") -> dict:
    """Validates a parsed ``paper_map.yaml``: the paper claims (1-5: statement, headline claim,
    figure) and every claim's keys (the common ones, the check's own, their values, the selector,
    that ``rule`` is the rule its check reads). Raises :class:`PaperMapError` naming the claim and
    the key at the first problem; returns the map."""
    if not isinstance(paper_map, dict) or not isinstance(paper_map.get("claims"), list):
        raise PaperMapError(f"{where}: expected a mapping with a list of 'claims'")
    for key in paper_map:
        if key not in ("claims", "paper_claims"):
            raise PaperMapError(f"{where}: unknown top-level key {key!r}; expected 'paper_claims' and 'claims'")
    paper_claims = paper_map.get("paper_claims")
    if not isinstance(paper_claims, dict) or not paper_claims:
        raise PaperMapError(f"{where}: 'paper_claims' must map each paper claim's number to its statement")
    numbered = {}
    for num, pc in paper_claims.items():
        pwhere = f"{where}: paper claim {num!r}"
        if isinstance(num, str) and num.isdigit():  # JSON keys are strings
            num = int(num)
        if isinstance(num, bool) or not isinstance(num, int):
            raise PaperMapError(f"{pwhere}: paper claims are numbered 1, 2, ...")
        numbered[num] = pc
        if not isinstance(pc, dict):
            raise PaperMapError(f"{pwhere}: expected a mapping of {sorted(PAPER_CLAIM_KEYS)}")
        for key in pc:
            if key not in PAPER_CLAIM_KEYS:
                raise PaperMapError(f"{pwhere}: unknown key {key!r}{_close(key, PAPER_CLAIM_KEYS)}")
        for key, kind in PAPER_CLAIM_KEYS.items():
            if key not in pc:
                raise PaperMapError(f"{pwhere}: missing key {key!r}")
            _check_value(pwhere, key, kind, pc[key])
    paper_claims = paper_map["paper_claims"] = numbered
    ids = [e.get("id") if isinstance(e, dict) else None for e in paper_map["claims"]]
    for entry in paper_map["claims"]:
        _check_claim(entry, where, paper_claims)
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise PaperMapError(f"{where}: claim ids must be unique; repeated: {dup}")
    for num, pc in paper_claims.items():
        own = [e["id"] for e in paper_map["claims"] if e["paper_claim"] == num]
        if pc["headline"] not in own:
            raise PaperMapError(
                f"{where}: paper claim {num}: key 'headline': {pc['headline']!r} is not one of its claims {own}"
            )
    return paper_map


def load_paper_map(path: str | Path) -> dict:
    """Reads and validates ``paper_map.yaml`` (:func:`check_paper_map`)."""
    try:
        paper_map = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise PaperMapError(f"{path}: cannot read ({e})") from None
    return check_paper_map(paper_map, str(path))


# ------------------------------------------------------------------------------- evaluation


def _threshold(entry: dict, props: dict):
    thr = entry["threshold"]
    return props["dataset"][thr] if isinstance(thr, str) else thr


def _runs(summary: dict, experiment: str, stabilizers: list[str]) -> Runs:
    """``{"<stabilizer>/seed<k>": metrics}`` of the selected runs of one experiment."""
    return {
        RunKey(experiment, stab, RunKey.parse_seed(seed)).label: m
        for stab, seeds in (summary or {}).get(experiment, {}).items()
        if stab in stabilizers
        for seed, m in seeds.items()
    }


def _at_optimum_runs(outcome: Outcome, optimum: dict[str, dict]) -> list[str]:
    """The runs a gated verdict is judged on: those at the optimum (for a group, every run of it)."""
    return [r for r in outcome.run_passed if all(optimum[g]["at_optimum"] for g in outcome.groups.get(r, [r]))]


def _gated_verdict(outcome: Outcome, optimum: dict[str, dict]) -> tuple[str, str | None]:
    """Judged on the runs at the optimum (:func:`_at_optimum_runs`): FAIL if one of them misses the
    prediction; NOT RUN if one lacks the metric; PASS if every one holds (the others, not at the
    optimum, are named in the cause and do not count either way); NOT_AT_OPTIMUM if no run is at it."""
    judged = _at_optimum_runs(outcome, optimum)
    fails = [r for r in judged if outcome.run_passed[r] is False]
    if fails:
        return FAIL, f"the prediction misses at the optimum: {', '.join(fails)}"
    away = {r: o["cause"] for r, o in optimum.items() if not o["at_optimum"]}
    if not judged:
        return NOT_AT_OPTIMUM, _causes(away)
    missing = [r for r in judged if outcome.run_passed[r] is None]
    if missing:
        return NOT_RUN, f"not measured: {', '.join(missing)}"
    if away:
        return (
            PASS,
            f"judged on the {len(judged)} of {len(outcome.run_passed)} runs at the optimum; not at it: {_causes(away)}",
        )
    return PASS, None


def _causes(causes: dict[str, str]) -> str:
    """``{run: cause}`` as one line, runs grouped by cause."""
    by: dict[str, list[str]] = {}
    for r, c in causes.items():
        by.setdefault(c, []).append(r)
    return "; ".join(f"{c}: {', '.join(rs)}" for c, rs in by.items())


def _runs_in(outcome: Outcome, states: tuple[str, ...]) -> dict[str, str]:
    """``{run: note}`` of the runs of an ungated check whose own state is one of ``states``."""
    return {r: outcome.notes.get(r, s) for r, s in (outcome.states or {}).items() if s in states}


def _decided_runs(outcome: Outcome) -> list[str]:
    """The runs an ungated verdict is judged on: those whose own state is decided (PASS or FAIL)."""
    return list(_runs_in(outcome, (PASS, FAIL)))


def _state_verdict(outcome: Outcome) -> tuple[str, str | None]:
    """The verdict of a check that judges convergence itself, from its runs' states, on the same
    terms as :func:`_gated_verdict`: judged on the runs whose state is decided
    (:func:`_decided_runs`): FAIL if one of them fails; PASS if every decided run passes (the
    undecided ones, not converged or not yet on the law, are named in the cause and count neither
    way); with no decided run, or a run that lacks its numbers, the first state of NOT_FAR_ENOUGH,
    NOT_AT_OPTIMUM and NOT RUN that a run has."""
    if fails := _runs_in(outcome, (FAIL,)):
        return FAIL, _causes(fails)
    judged = _decided_runs(outcome)
    if not judged or _runs_in(outcome, (NOT_RUN,)):
        for verdict in (NOT_FAR_ENOUGH, NOT_AT_OPTIMUM, NOT_RUN):
            if runs := _runs_in(outcome, (verdict,)):
                return verdict, _causes(runs)
    if undecided := _runs_in(outcome, UNDECIDED):
        n = len(outcome.states or {})
        return PASS, f"judged on the {len(judged)} of {n} runs whose state is decided; not: {_causes(undecided)}"
    return PASS, None


def _optimum_state(optimum: dict[str, dict]) -> str:
    """How an experiment's runs stand against the optimum: ``at_optimum``, ``capacity`` (every run
    away from it converged with its gap above ε), ``not_converged`` or ``unknown``."""
    away = [o for o in optimum.values() if not o["at_optimum"]]
    if not away:
        return "at_optimum"
    if all(o["capacity"] for o in away):
        return "capacity"
    if any(o["convergence"] in (NOT_CONVERGED, DIVERGED) for o in away):
        return "not_converged"
    return "unknown"


def _passed(verdict: str) -> bool | None:
    return True if verdict == PASS else False if verdict == FAIL else None


def _evaluate_experiment(entry, check, exp, stabs, props, summaries) -> dict:
    summary_key = check.summary or entry["stage"]
    threshold = _threshold(entry, props)
    runs = _runs(summaries.get(summary_key), exp, stabs)
    base = {
        "threshold": threshold,
        "stabilizers": stabs,
        "flow_family": props["flow"]["family"],
        "epsilon": entry["epsilon"],
    }
    if not runs:
        return {
            **base,
            "verdict": NOT_RUN,
            "passed": None,
            "prediction_holds": False,
            "metric": None,
            "direction": None,
            "measured": None,
            "margin": None,
            "noise": None,
            "near_threshold": False,
            "measurements": [],
            "gap_max": None,
            "optimum_state": None,
            "optimum": {},
            "n_runs": 0,
            "cause": f"no runs of {stabs} in the {summary_key}",
            "detail": {"not_run": f"no runs of {stabs} in the {summary_key}"},
        }
    train = _runs(summaries.get("train_summary"), exp, stabs)
    analysis = _runs(summaries.get("analysis_summary"), exp, stabs)
    ctx = {
        "train": train,
        "analysis": analysis,
        "history": _runs(summaries.get("train_history"), exp, stabs),
        "dataset": props["dataset"],
    }
    outcome = check.fn(runs, entry, threshold, ctx)
    optimum = {r: _optimum(train.get(r), analysis.get(r), entry["epsilon"]) for r in runs}
    if check.gated:
        verdict, cause = _gated_verdict(outcome, optimum)
    else:
        verdict, cause = _state_verdict(outcome)
    optimum_state = _optimum_state(optimum)
    if not check.gated:
        undecided = _runs_in(outcome, UNDECIDED)
        if undecided and all(r in outcome.capacity for r in undecided):
            optimum_state = "capacity"
        elif not undecided:
            optimum_state = "at_optimum"
    if verdict in (PASS, FAIL):  # the numbers of the runs the verdict is judged on
        judged = set(_at_optimum_runs(outcome, optimum) if check.gated else _decided_runs(outcome))
        for m in outcome.measurements:
            m["runs"] = {r: v for r, v in m["runs"].items() if r in judged} or m["runs"]
            if m.get("se"):
                m["se"] = {r: v for r, v in m["se"].items() if r in judged}
    measurements = [_summarize(m) for m in outcome.measurements]
    primary = measurements[0]
    gaps = [o["gap"] for o in optimum.values() if o["gap"] is not None]
    detail = dict(outcome.detail)
    if outcome.states is not None:
        detail["states"] = {r: {"verdict": s, "note": outcome.notes.get(r)} for r, s in outcome.states.items()}
    return {
        **base,
        "verdict": verdict,
        "passed": _passed(verdict),
        "prediction_holds": all(v is True for v in outcome.run_passed.values()),
        "threshold": primary["threshold"],
        "metric": primary["metric"],
        "direction": primary["direction"],
        "measured": primary["value"],
        "margin": primary["margin"],
        "noise": primary["noise"],
        "near_threshold": primary["near_threshold"],
        "measurements": measurements,
        "gap_max": max(gaps) if gaps else None,
        "optimum_state": optimum_state,
        "optimum": optimum,
        "n_runs": len(runs),
        "cause": cause,
        "detail": detail,
    }


COUNTED = (PASS, FAIL, NOT_AT_OPTIMUM, NOT_FAR_ENOUGH, NOT_RUN)


def _overall(results: dict[str, dict]) -> str:
    if not results:
        return NA
    verdicts = [r["verdict"] for r in results.values()]
    if FAIL in verdicts:
        return FAIL
    if all(v == PASS for v in verdicts):
        return PASS
    if any(v in UNDECIDED for v in verdicts):
        return NOT_AT_OPTIMUM
    return NOT_RUN


def _margin_key(res: dict) -> float:
    m = res.get("margin")
    return -math.inf if m is None or math.isnan(m) else m


def _claim_measured(verdict: str, results: dict[str, dict]) -> str | None:
    """The experiment whose number stands for the claim: the worst (smallest margin) among those
    with the claim's verdict, else among all with a number."""
    pool = [e for e, r in results.items() if r["verdict"] == verdict and r.get("measured") is not None]
    pool = pool or [e for e, r in results.items() if r.get("measured") is not None]
    return min(pool, key=lambda e: _margin_key(results[e])) if pool else None


def evaluate(
    paper_map: dict,
    summaries: dict,
    experiments: dict[str, dict],
    fragile: set[tuple[str, str | None]] | frozenset = frozenset(),
) -> dict:
    """Checks every claim on every experiment it applies to, then concludes per paper claim.

    Arguments:
        paper_map: ``paper_map.yaml`` as loaded by :func:`load_paper_map`.
        summaries: the stage summaries (:data:`SUMMARY_KEYS`; any may be missing) as
            ``{experiment: {stabilizer: {seed<k>: metrics}}}``; ``train_history`` as
            ``{experiment: {stabilizer: {seed<k>: {"epoch": [...], "train_nll": [...], "smax": [...]}}}}``
            (:func:`load_history`).
        experiments: every experiment's properties (:func:`flowtheory.pipeline.experiments.describe`).
        fragile: the (claim id, experiment) verdicts a round-off perturbation flipped
            (:func:`flowtheory.pipeline.chaos.fragile_verdicts`): marked ``fragile``, and no
            conclusion rests on them (:func:`conclude`).

    Returns:
        ``{"claims": [one record per claim], "conclusions": [one per paper claim],
        "error_vs_gap": {claim id: ...}}``.
    """
    records = []
    for entry in paper_map["claims"]:
        check = CHECKS[entry["check"]]
        results = {
            exp: _evaluate_experiment(entry, check, exp, stabs, experiments[exp], summaries)
            for exp, stabs in select(experiments, entry["applies_to"]).items()
        }
        for exp, res in results.items():
            res["fragile"] = (entry["id"], exp) in fragile
        verdict = _overall(results)
        worst = _claim_measured(verdict, results)
        record = {
            k: entry.get(k)
            for k in (
                "id",
                "claim",
                "paper_claim",
                "figure",
                "rule",
                "check",
                "threshold",
                "justification",
                "epsilon",
                "epsilon_reason",
                "settings",
            )
        }
        w = results.get(worst, {})
        record.update(
            applies_to=entry["applies_to"],
            applies_to_text=describe_selector(entry["applies_to"]),
            verdict=verdict,
            passed=_passed(verdict),
            counts={v: sum(r["verdict"] == v for r in results.values()) for v in COUNTED},
            measured=w.get("measured"),
            metric=w.get("metric"),
            direction=w.get("direction"),
            margin=w.get("margin"),
            near_threshold=w.get("near_threshold"),
            measured_experiment=worst,
            failed=[e for e, r in results.items() if r["verdict"] == FAIL],
            not_at_optimum=[e for e, r in results.items() if r["verdict"] in UNDECIDED],
            fragile=[e for e, r in results.items() if r["fragile"]],
            experiments=results,
        )
        if verdict == NA:
            record["note"] = NO_EXPERIMENT
        records.append(record)
    return {
        "conclusions": conclude(paper_map, records),
        "claims": records,
        "error_vs_gap": error_vs_gap(records),
    }


# ------------------------------------------------------------------------------ conclusions


def _number(record: dict, exp: str) -> dict:
    res = record["experiments"][exp]
    return {
        "claim": record["id"],
        "experiment": exp,
        "verdict": res["verdict"],
        "metric": res.get("metric"),
        "value": res.get("measured"),
        "direction": res.get("direction"),
        "threshold": res.get("threshold"),
        "margin": res.get("margin"),
        "near_threshold": res.get("near_threshold"),
        "figure": record["figure"],
    }


def _carrier(records: list[dict], headline: str, verdicts: tuple[str, ...]) -> dict | None:
    """The number that carries a conclusion: among the experiments with one of ``verdicts``, those
    of the headline claim first (then the claims in map order), the one with the smallest margin."""
    ordered = sorted(records, key=lambda r: r["id"] != headline)
    for r in ordered:
        pool = [
            e
            for e, res in r["experiments"].items()
            if res["verdict"] in verdicts and res.get("metric") and not res.get("fragile")
        ]
        if pool:
            return _number(r, min(pool, key=lambda e: _margin_key(r["experiments"][e])))
    return None


def conclude(paper_map: dict, records: list[dict]) -> list[dict]:
    """One conclusion per paper claim (``paper_claims`` of paper_map.yaml), from its claims'
    verdicts per experiment:

    * ``does not reproduce``: some verdict at the optimum is FAIL (a claim about optimal flows is
      contradicted by one optimal run that misses);
    * ``reproduces``: every verdict is PASS;
    * ``reproduces within stated limits``: PASS wherever the runs are at the optimum, and some
      experiments are not (the limits: the families that do not reach it);
    * ``not conclusive``: no verdict at the optimum.

    A fragile verdict (one a round-off perturbation flipped: ``results/chaos.json``) is set aside:
    counted as neither PASS nor FAIL, so a conclusion never rests on it, and named in the cause.
    Each names the flow families with a verdict at the optimum, those that converged but stay
    above ε (capacity), the number that carries it (:func:`_carrier`) and the cause of anything
    short of ``reproduces``."""
    out = []
    for num, pc in sorted(paper_map["paper_claims"].items()):
        recs = [r for r in records if r["paper_claim"] == num and r["verdict"] != NA]
        every = [(r, e, res) for r in recs for e, res in r["experiments"].items()]
        fragile = [f"{r['id']} on {e} ({res['verdict']})" for r, e, res in every if res.get("fragile")]
        results = [(r, e, res) for r, e, res in every if not res.get("fragile")]
        n = {v: sum(res["verdict"] == v for _, _, res in results) for v in COUNTED}
        if n[FAIL]:
            conclusion = DOES_NOT_REPRODUCE
            number = _carrier(recs, pc["headline"], (FAIL,))
        elif n[PASS] and n[PASS] == len(every):
            conclusion = REPRODUCES
            number = _carrier(recs, pc["headline"], (PASS,))
        elif n[PASS]:
            conclusion = WITHIN_LIMITS
            number = _carrier(recs, pc["headline"], (PASS,))
        else:
            conclusion = NOT_CONCLUSIVE
            number = _carrier(recs, pc["headline"], (*UNDECIDED, NOT_RUN))
        families_at = sorted({res["flow_family"] for _, _, res in results if res["verdict"] in (PASS, FAIL)})
        capacity_exps = [
            f"{r['id']} on {e}"
            for r, e, res in results
            if res["verdict"] in UNDECIDED and res.get("optimum_state") == "capacity"
        ]
        capacity = sorted(
            {
                res["flow_family"]
                for _, _, res in results
                if res["verdict"] in UNDECIDED and res.get("optimum_state") == "capacity"
            }
        )
        if not every:
            cause = NO_EXPERIMENT
        elif conclusion == DOES_NOT_REPRODUCE:
            cause = "FAIL at the optimum: " + ", ".join(
                f"{r['id']} on {e}" for r, e, res in results if res["verdict"] == FAIL
            )
        elif conclusion == REPRODUCES:
            cause = None
        else:
            cause = _undecided_cause(results)
        if fragile:
            cause = "; ".join(
                [*([cause] if cause else []), "set aside as fragile under round-off: " + ", ".join(fragile)]
            )
        out.append(
            {
                "id": f"paper_claim_{num}",
                "paper_claim": num,
                "statement": pc["statement"],
                "figure": pc["figure"],
                "headline": pc["headline"],
                "conclusion": conclusion,
                "number": number,
                "counts": {**n, "fragile": len(fragile)},
                "families_at_optimum": families_at,
                "families_capacity": capacity,
                "capacity": capacity_exps,
                "claims": [r["id"] for r in recs],
                "cause": cause,
            }
        )
    return out


def _undecided_cause(results: list) -> str:
    """Why experiments have no verdict at the optimum, counted by state."""
    states: dict[str, int] = {}
    for _, _, res in results:
        if res["verdict"] == NOT_FAR_ENOUGH:
            key = "ill-posedness law not reached"
        elif res["verdict"] == NOT_AT_OPTIMUM:
            key = {
                "capacity": "converged short of the optimum (capacity)",
                "not_converged": "not converged",
                "unknown": "convergence unknown",
            }.get(res.get("optimum_state"), "not at the optimum")
        elif res["verdict"] == NOT_RUN:
            key = "not run"
        else:
            continue
        states[key] = states.get(key, 0) + 1
    parts = [f"{k} ({v} of {len(results)})" for k, v in sorted(states.items(), key=lambda kv: -kv[1])]
    return "no verdict at the optimum: " + "; ".join(parts) if parts else ""


# ----------------------------------------------------------------------------- error vs gap


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    """Spearman's rank correlation and its two-sided p value: scipy.stats.spearmanr's own
    arithmetic (average ranks, their Pearson correlation, Student's t with n - 2 degrees of freedom
    through ``scipy.special.stdtr``), equal to it to the bit (``tests/stages/test_claims.py``)
    without importing scipy.stats (0.8 s on the claims job, which every figure waits for)."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    from scipy.special import stdtr

    rs = np.corrcoef(np.column_stack([_ranks(x), _ranks(y)]), rowvar=False)
    dof = len(x) - 2
    with np.errstate(divide="ignore"):
        t = rs * np.sqrt((dof / ((rs + 1.0) * (1.0 - rs))).clip(0))
    prob = 2 * stdtr(dof, -np.abs(t))
    return float(rs[1, 0]), float(prob[1, 0])


def _ranks(a: np.ndarray) -> np.ndarray:
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(1, len(a) + 1)
    for v in np.unique(a):  # ties: average rank
        ranks[a == v] = ranks[a == v].mean()
    return ranks


def error_vs_gap(records: list[dict]) -> dict:
    """Beyond the paper: for each geometric claim (its check compares a geometric error with the
    theory: tangent angle, normal-std ratio, whitening error), that error against the gap over every
    selected run where both exist: Spearman's ρ with its p value, the median error of the runs
    nearest the optimum (the lowest-gap quartile), of all runs and of the runs within ε."""
    out = {}
    for r in records:
        if not CHECKS[r["check"]].geometric or r["verdict"] == NA:
            continue
        pairs = []
        metric = None
        for e, res in r["experiments"].items():
            if not res.get("measurements"):
                continue
            meas = res["measurements"][0]
            metric = meas["metric"]
            for run, v in meas["runs"].items():
                gap = res["optimum"][run]["gap"]
                if gap is not None and math.isfinite(gap) and math.isfinite(v):
                    pairs.append((gap, v, f"{e}/{run}"))
        pairs.sort()
        entry: dict = {"metric": metric, "n_runs": len(pairs), "epsilon": r["epsilon"]}
        if pairs:
            gaps, errs = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
            rho, p = _spearman(gaps, errs)
            q = max(1, math.ceil(len(pairs) / 4))
            within = errs[gaps <= r["epsilon"]] if r["epsilon"] is not None else np.array([])
            entry.update(
                spearman_rho=rho,
                p_value=p,
                lowest_gap_quartile={
                    "n": q,
                    "gap_max": float(gaps[q - 1]),
                    "median_error": float(np.median(errs[:q])),
                },
                median_error=float(np.median(errs)),
                within_epsilon={"n": len(within), "median_error": float(np.median(within)) if len(within) else None},
            )
        out[r["id"]] = entry
    return out


# ----------------------------------------------------------------------------------- output


def _fmt(x, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, float) and not math.isfinite(x):
        return "n/a" if math.isnan(x) else ("∞" if x > 0 else "−∞")
    if isinstance(x, float):
        return f"{x:+.3g}" if signed else f"{x:.4g}"
    return f"{x:+d}" if signed and isinstance(x, int) else str(x)


def _value_text(metric, value, direction, threshold, margin, near) -> str:
    if metric is None:
        return "n/a"
    text = (
        f"{metric} = {_fmt(value)} {'≤' if direction == '<=' else '≥'} {_fmt(threshold)} (margin {_fmt(margin, True)}"
    )
    return text + (", within noise)" if near else ")")


def _number_text(num: dict | None) -> str:
    if not num:
        return "n/a"
    value = _value_text(
        num["metric"], num["value"], num["direction"], num["threshold"], num["margin"], num["near_threshold"]
    )
    return f"`{num['claim']}` on {num['experiment']}: {value} [{num['verdict']}]"


def _verdict_counts(counts: dict) -> str:
    parts = [f"{counts[v]} {v}" for v in COUNTED if counts.get(v)]
    return ", ".join(parts) or "none"


VERDICT_LEGEND = (
    "**Verdicts.** Each is judged on the experiment's runs at the optimum: converged (training's criterion "
    "fixed in advance) and at their flow family's optimum (exact gap ≤ the claim's ε in nats, where the gap is "
    "computable); for the ill-posedness and stability checks, the runs whose own state is decided. PASS: the "
    "theory's prediction holds on every one of them (the others are named in the cause and count neither "
    "way). FAIL: the prediction misses on one of them. NOT_AT_OPTIMUM: no run is at the optimum (not "
    "converged, convergence unknown for a summary older than the criterion, or the gap above ε); its numbers "
    "are shown, counted neither as pass nor fail. NOT_FAR_ENOUGH: no run decided, and an unregularized run on "
    "degenerate data has not reached the ill-posedness law yet (its NLL still falls at another rate, or its "
    "s_max has hardly moved). Margins are signed in the check's "
    "direction (positive: holds with room); *within noise*: the margin is smaller than the spread over seeds "
    "or the standard error. *(fragile)*: a round-off perturbation of the initial parameters flipped this "
    "verdict (`make chaos`, `results/chaos.json`, measured on this config); no conclusion rests on it. "
    "Thresholds and ε with their reasons: `paper_map.yaml`."
)


def render_markdown(doc: dict) -> str:
    """``results/claims.md``: the conclusions (one per paper claim), the claims, then (below
    :data:`README_STOP`, which the README's copy stops at) the error against the gap and every
    claim × experiment verdict."""
    records, conclusions = doc["claims"], doc["conclusions"]
    lines = [
        "# Claim checks",
        "",
        "Generated by the `claims` rule from `paper_map.yaml` (checks in `src/flowtheory/stages/claims.py`; "
        "each claim applies to the experiments its `applies_to` selects by what they are, "
        "`src/flowtheory/pipeline/experiments.py`); do not edit.",
        "",
        "### Conclusions",
        "",
        "| paper claim | conclusion | the number (metric, direction, margin) | figure | families with a verdict | "
        "cannot reach it (capacity) | cause |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in conclusions:
        lines.append(
            f"| {c['paper_claim']}. {c['statement']} | **{c['conclusion']}** | {_number_text(c['number'])} | "
            f"{c['figure']} | {', '.join(c['families_at_optimum']) or 'none'} | "
            f"{', '.join(c['families_capacity']) or 'none'} | {c['cause'] or ''} |"
        )
    lines += [
        "",
        VERDICT_LEGEND,
        "",
        "### Claims",
        "",
        "| id | paper claim | figure | applies to | verdict | experiments | measured (worst) | ε (nats) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if r["verdict"] == NA:
            verdict, exps, measured = f"N/A: {NO_EXPERIMENT}", "", "n/a"
        else:
            verdict, exps = r["verdict"], _verdict_counts(r["counts"])
            if r.get("fragile"):
                exps += f" ({len(r['fragile'])} fragile)"
            worst = r["experiments"].get(r["measured_experiment"], {})
            measured = _value_text(
                r["metric"], r["measured"], r["direction"], worst.get("threshold"), r["margin"], r["near_threshold"]
            )
            if len(r["experiments"]) > 1 and r["measured_experiment"]:
                measured += f" ({r['measured_experiment']})"
        lines.append(
            f"| `{r['id']}` | {r['paper_claim']}: {r['claim']} | {r['figure']} | {r['applies_to_text']} | "
            f"{verdict} | {exps} | {measured} | {_fmt(r['epsilon'])} |"
        )
    lines += [
        "",
        README_STOP,
        "",
        "### Error against optimality",
        "",
        "Beyond the paper: each geometric claim's error against the exact gap over every selected run where both "
        "exist; Spearman's ρ (p value), and the median error of the runs nearest the optimum (the lowest-gap "
        "quartile).",
        "",
        "| claim | error | runs | Spearman ρ (p) | median error, lowest-gap quartile (gap ≤) | median error, all | "
        "median error, gap ≤ ε |",
        "|---|---|---|---|---|---|---|",
    ]
    for cid, e in doc["error_vs_gap"].items():
        if not e["n_runs"]:
            lines.append(f"| `{cid}` | {e['metric'] or 'n/a'} | 0 | n/a | n/a | n/a | n/a |")
            continue
        rho = f"{_fmt(e['spearman_rho'])} ({_fmt(e['p_value'])})" if e["spearman_rho"] is not None else "n/a"
        q, w = e["lowest_gap_quartile"], e["within_epsilon"]
        lines.append(
            f"| `{cid}` | {e['metric']} | {e['n_runs']} | {rho} | {_fmt(q['median_error'])} ({q['n']} runs, "
            f"gap ≤ {_fmt(q['gap_max'])}) | {_fmt(e['median_error'])} | "
            f"{_fmt(w['median_error'])} ({w['n']} runs) |"
        )
    lines += [
        "",
        "### Per experiment",
        "",
        "Every claim on every experiment it applies to: the worst of the experiment's selected runs (all seeds); "
        "per-run values, convergence and gaps in `results/claims.json`. Claims that apply to no experiment of "
        "this config are N/A above.",
        "",
        "| claim | experiment | family | runs | verdict | measured (metric, direction, margin) | gap, worst run "
        "(nats) | cause |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:  # an N/A claim has no row here: it is N/A in the table above
        for exp, res in r["experiments"].items():
            measured = _value_text(
                res.get("metric"),
                res.get("measured"),
                res.get("direction"),
                res.get("threshold"),
                res.get("margin"),
                res.get("near_threshold"),
            )
            base = res.get("detail", {}).get("baseline")
            if base:
                measured += f"; baseline {base['metric']} median {_fmt(base['median'])}"
            verdict = f"{res['verdict']} (fragile)" if res.get("fragile") else res["verdict"]
            lines.append(
                f"| `{r['id']}` | {exp} | {res['flow_family']} | {_runs_text(res)} | {verdict} | {measured} | "
                f"{_fmt(res.get('gap_max'))} | {res.get('cause') or ''} |"
            )
    return "\n".join(lines) + "\n"


def _runs_text(res: dict) -> str:
    stabs = ", ".join(res["stabilizers"])
    n = res.get("n_runs")
    return f"{stabs} ({n} runs)" if n and n > len(res["stabilizers"]) else stabs


def metrics(doc: dict) -> dict:
    """``metrics/claims.json``, flat enough for ``dvc metrics diff``: per claim its verdict,
    ``passed`` (null unless PASS or FAIL), worst measured value and margin, the counts of verdicts
    and per experiment the same; per paper claim its conclusion and the number that carries it."""
    return {
        "claims": {
            r["id"]: {
                "verdict": r["verdict"],
                "passed": r["passed"],
                "measured": r["measured"],
                "margin": r["margin"],
                "n_experiments": len(r["experiments"]),
                "counts": r["counts"],
                "experiments": {
                    e: {
                        "verdict": res["verdict"],
                        "passed": res["passed"],
                        "measured": res["measured"],
                        "margin": res.get("margin"),
                    }
                    for e, res in r["experiments"].items()
                },
            }
            for r in doc["claims"]
        },
        "conclusions": {
            c["id"]: {
                "conclusion": c["conclusion"],
                "claim": (c["number"] or {}).get("claim"),
                "experiment": (c["number"] or {}).get("experiment"),
                "value": (c["number"] or {}).get("value"),
                "margin": (c["number"] or {}).get("margin"),
            }
            for c in doc["conclusions"]
        },
    }


def load_history(path: str | Path) -> dict:
    """The train stage's tidy history (``plots/train_history.csv``) as ``{experiment: {stabilizer:
    {seed<k>: {column: [values]}}}}`` (the epoch, training NLL and largest singular value columns)."""
    out: dict = {}
    cols = ("epoch", "train_nll", "smax")
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            run = out.setdefault(row["experiment"], {}).setdefault(row["stabilizer"], {})
            h = run.setdefault(RunKey.seed_name(int(row["seed"])), {c: [] for c in cols})
            for c in cols:
                h[c].append(_num(row.get(c)) if row.get(c) not in (None, "") else math.nan)
    return out


def _load_summary(key: str, path: str | Path):
    return load_history(path) if key == "train_history" else storage.load_json(path)


def write_claims(
    map_path: str,
    summary_paths: dict[str, str],
    experiments: dict[str, dict],
    out_json: str,
    out_md: str,
    out_metrics: str,
    log: Callable[[str], None] = print,
    chaos_path: str | None = None,
    config_digest: str | None = None,
    experiment_digests: dict[str, str] | None = None,
) -> dict:
    """Evaluates every claim and writes ``results/claims.json`` (``config_digest``,
    ``experiment_digests``, ``fragile_from``,
    ``conclusions``, ``claims``, ``error_vs_gap``), ``results/claims.md`` and ``metrics/claims.json``.

    ``chaos_path``: a chaos measurement (``results/chaos.json``, ``python -m bench.chaos``); its
    fragile verdicts are marked and set aside (:func:`evaluate`) for the experiments whose settings
    it was measured on (:func:`flowtheory.pipeline.chaos.same_settings`: the whole config,
    ``config_digest``, or the experiment's own ``experiment_digests``), on any machine; adding or
    editing one experiment leaves the others' measurement valid. The rest is ignored, with a line in
    the log."""
    from flowtheory.pipeline.chaos import fragile_verdicts, load_chaos, same_settings

    paper_map = load_paper_map(map_path)
    summaries = {k: _load_summary(k, p) for k, p in summary_paths.items()}
    chaos = load_chaos(chaos_path) if chaos_path else None
    fragile, source = set(), None
    if chaos is not None:
        digests = experiment_digests or {e: None for e in experiments}
        same = same_settings(chaos, config_digest, digests)
        fragile = {(c, e) for c, e in fragile_verdicts(chaos) if e in same}
        source = chaos_path if same else None
        whole = "" if len(same) == len(digests) else "measured on another config: "
        log(
            f"{chaos_path}: {whole}{len(fragile)} fragile verdict(s) of the {len(same)} of {len(digests)} "
            "experiment(s) whose settings it measured"
        )
    doc = {
        "config_digest": config_digest,
        "experiment_digests": experiment_digests,
        "fragile_from": source,
        **evaluate(paper_map, summaries, experiments, fragile),
    }
    for c in doc["conclusions"]:
        log(f"paper claim {c['paper_claim']}: {c['conclusion']} ({_number_text(c['number'])})")
    for r in doc["claims"]:
        per = ", ".join(f"{e} {res['verdict']} ({_fmt(res['measured'])})" for e, res in r["experiments"].items())
        log(f"{r['id']}: {r['verdict']} (threshold {_fmt(r['threshold'])}){': ' + per if per else ''}")
    storage.save_json(out_json, doc)
    storage.save_text(out_md, render_markdown(doc))
    storage.save_json(out_metrics, metrics(doc))
    return doc
