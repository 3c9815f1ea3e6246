"""The paper's claims as executable checks on pipeline outputs, per experiment.

``paper_map.yaml`` gives each claim its figure, rule, check, threshold (with the reason for it) and
an ``applies_to`` selector (:mod:`flowtheory.pipeline.experiments`): which experiments, and which
of their runs, the claim is about, by what they are (the data set's ground truth, the flow family,
the stabilizer kind and strength), never by name. Each claim is checked on every experiment it
applies to, on that experiment's selected runs (every seed):

* per experiment: PASS or FAIL with the measured value (the worst selected run) and threshold;
  NOT RUN if the summaries lack the runs (a summary older than the config);
* per claim: PASS only if every applicable experiment passes; FAIL lists the experiments that do
  not; N/A when no experiment of this config is of the claim's kind (not a failure of the run).

Each ``check`` names a :class:`Check`: a function of one experiment's runs (``{"<stabilizer>/
seed<k>": metrics}`` from one stage summary), the claim's entry and the threshold, returning
``(measured, passed, detail)``. A threshold may name a property of the experiment's data set
(``intrinsic_dim``: the true intrinsic dimension). The stage never fails because a claim does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from flowtheory.pipeline import storage
from flowtheory.pipeline.experiments import check_selector, describe_selector, select

__all__ = ["CHECKS", "SUMMARY_KEYS", "Check", "evaluate", "load_paper_map", "render_markdown", "write_claims"]

SUMMARY_KEYS = ["train_summary", "analysis_summary", "components_summary"]
PASS, FAIL, NA, NOT_RUN = "PASS", "FAIL", "N/A", "NOT RUN"
NO_EXPERIMENT = "no experiment of this kind in this config"

Runs = dict[str, dict]  # "<stabilizer>/seed<k>" -> that run's metrics


def _num(x) -> float:
    return math.nan if x is None else float(x)


def _worst(values: list[float], direction: str) -> float:
    """The worst value (NaN if any is missing): the largest for ``max``, the smallest for ``min``."""
    vals = np.array(values, dtype=float)
    if not len(vals) or np.isnan(vals).any():
        return math.nan
    return float(vals.max() if direction == "max" else vals.min())


def check_max_below(runs: Runs, entry: dict, threshold: float) -> tuple[float, bool, dict]:
    """The worst run's ``metric`` is at most ``threshold`` (a run lacking it fails)."""
    values = {r: _num(m.get(entry["metric"])) for r, m in runs.items()}
    worst = _worst(list(values.values()), "max")
    detail: dict = {"runs": values}
    missing = [r for r, v in values.items() if math.isnan(v)]
    if missing:
        detail["not_measured"] = f"{entry['metric']} missing or not finite for {missing}"
    return worst, bool(worst <= threshold), detail


def check_pca(runs: Runs, entry: dict, threshold: float) -> tuple[float, bool, dict]:
    """Linear flow: every component correlates with its PCA score (|r| ≥ threshold) and has the
    PCA eigenvalue as variance (within ``var_tol``)."""
    detail = {
        r: {
            "min_abs_corr": float(min(m["pca_abs_corr"])),
            "max_var_rel_dev": float(max(abs(v - 1) for v in m["pca_var_ratio"])),
        }
        for r, m in runs.items()
    }
    corr = _worst([v["min_abs_corr"] for v in detail.values()], "min")
    var = _worst([v["max_var_rel_dev"] for v in detail.values()], "max")
    passed = corr >= threshold and var <= entry["var_tol"]
    return corr, bool(passed), {"max_var_rel_dev": var, "runs": detail}


def _describe(m: dict) -> dict:
    return {
        k: m.get(k)
        for k in ("status", "diverged_step", "nll_tail_drop", "smax_rel_growth", "smax_last", "final_train_nll")
    }


def _diverging(m: dict, growth: float) -> bool:
    """Diverged to non-finite values, or still diverging: the NLL still falls and the largest
    singular value of J_f still grows by at least ``growth`` over the last quarter of training."""
    if m["status"] == "diverged":
        return True
    return _num(m.get("nll_tail_drop")) > 0 and _num(m.get("smax_rel_growth")) >= growth


def check_diverges(runs: Runs, entry: dict, threshold: float) -> tuple[float, bool, dict]:
    """Every selected (unregularized) run diverges: measured is the smallest growth of the largest
    singular value of J_f (inf for a run that became non-finite)."""
    detail = {r: _describe(m) for r, m in runs.items()}
    ok = all(_diverging(m, threshold) for m in runs.values())
    measured = min(_num(m.get("smax_rel_growth")) if m["status"] == "converged" else math.inf for m in runs.values())
    return measured, bool(ok), {"runs": detail}


def check_stable(runs: Runs, entry: dict, threshold: float) -> tuple[float, bool, dict]:
    """Every selected (stabilized) run stays finite, stops growing (largest singular value of J_f
    grows by less than ``threshold`` over the last quarter) and stays below ``bound_factor / √λ``."""
    detail, ok = {}, True
    for r, m in runs.items():
        bound = entry["bound_factor"] / math.sqrt(m["lam"])
        detail[r] = _describe(m) | {"smax_bound": bound}
        growth = _num(m.get("smax_rel_growth"))
        ok &= m["status"] == "converged" and growth < threshold and _num(m.get("smax_last")) <= bound
    worst = _worst([_num(m.get("smax_rel_growth")) for m in runs.values()], "max")
    return worst, bool(ok), {"runs": detail}


def check_noise_tikhonov(runs: Runs, entry: dict, threshold: float) -> tuple[float, bool, dict]:
    """Noise injection with σ² = λ reaches the weight penalty's closed form (Σ̂ + λI)⁻¹: its WᵀW
    error against the shrunk target is at most ``threshold`` and smaller than against Σ̂⁻¹."""
    detail, ok = {}, True
    for r, m in runs.items():
        shr, raw = _num(m.get("wtw_relerr")), _num(m.get("wtw_relerr_unshrunk"))
        detail[r] = {"relerr_shrunk": shr, "relerr_unshrunk": raw}
        ok &= shr <= threshold and shr < raw
    worst = _worst([v["relerr_shrunk"] for v in detail.values()], "max")
    return worst, bool(ok), {"runs": detail}


def check_intrinsic_dim(runs: Runs, entry: dict, threshold: int) -> tuple[float, bool, dict]:
    """Every selected run's component spectrum gives the data set's true intrinsic dimension
    (``threshold``): measured is the median over runs."""
    dims = {r: m.get("intrinsic_dim") for r, m in runs.items()}
    ok = threshold is not None and all(v == threshold for v in dims.values())
    measured = float(np.median([_num(v) for v in dims.values()]))
    return measured, bool(ok), {"runs": dims}


def check_ratio_within(runs: Runs, entry: dict, threshold: float) -> tuple[float, bool, dict]:
    """Every run's ``metric`` (a measured / predicted ratio) is within a factor ``threshold`` of 1:
    measured is the worst factor max(r, 1/r) (a run lacking it fails)."""
    values = {r: _num(m.get(entry["metric"])) for r, m in runs.items()}
    factors = {r: max(v, 1 / v) if v > 0 else math.inf for r, v in values.items() if not math.isnan(v)}
    detail: dict = {"runs": values}
    missing = [r for r, v in values.items() if math.isnan(v)]
    if missing:
        detail["not_measured"] = f"{entry['metric']} missing or not finite for {missing}"
        return math.nan, False, detail
    worst = max(factors.values())
    return worst, bool(worst <= threshold), detail


def check_sweep_intrinsic_dim(runs: Runs, entry: dict, threshold: int) -> tuple[float, bool, dict]:
    """The λ sweep gives the true intrinsic dimension (``threshold``): per seed, over the selected
    runs (one stabilizer kind at ≥ 3 strengths), the least-squares slope of log(median local std) of
    each component against log √λ (docs/theory.md Eq. (16)); components with slope below
    ``slope_cut`` are tangent (λ-insensitive), the rest normal. Measured is the median count."""
    by_seed: dict[str, list[tuple[float, list[float]]]] = {}
    for r, m in runs.items():
        stab, seed = r.rsplit("/", 1)
        if m.get("lam", 0) > 0 and m.get("scale_median"):
            by_seed.setdefault(seed, []).append((float(m["lam"]), [float(v) for v in m["scale_median"]]))
    detail: dict = {}
    counts = []
    for seed, pts in sorted(by_seed.items()):
        lams = np.array([lam for lam, _ in pts])
        if len(np.unique(lams)) < 3:
            detail[seed] = {"not_measured": f"{len(np.unique(lams))} distinct strengths; a sweep needs 3"}
            counts.append(math.nan)
            continue
        stds = np.log(np.array([v for _, v in pts]))
        x = 0.5 * np.log(lams) - (0.5 * np.log(lams)).mean()
        slopes = x @ (stds - stds.mean(0)) / (x @ x)
        k = int((slopes < entry["slope_cut"]).sum())
        detail[seed] = {"lams": lams.tolist(), "slopes": slopes.tolist(), "intrinsic_dim": k}
        counts.append(k)
    if not counts:
        return math.nan, False, {"not_measured": "no stabilized run with component scales"}
    ok = threshold is not None and all(c == threshold for c in counts)
    return float(np.median(counts)), bool(ok), {"seeds": detail}


def _k90(var: list[float]) -> int:
    v = np.sort(np.asarray(var, float))[::-1]
    return int(np.searchsorted(np.cumsum(v) / v.sum(), 0.9) + 1)


def check_spectrum_decay(runs: Runs, entry: dict, threshold: float) -> tuple[float, bool, dict]:
    """Un-whitened components concentrate the variance (90% in at most ``threshold`` × d
    components) while whitened latents spread it (at least ``whitened_min`` × d)."""
    detail, ok = {}, True
    for r, m in runs.items():
        d = len(m["var_yhat"])
        fy, fw, fp = _k90(m["var_yhat"]) / d, _k90(m["var_y"]) / d, _k90(m["pca_eigenvalues"]) / d
        detail[r] = {"k90_unwhitened_frac": fy, "k90_whitened_frac": fw, "k90_pca_frac": fp}
        ok &= fy <= threshold and fw >= entry["whitened_min"]
    worst = _worst([v["k90_unwhitened_frac"] for v in detail.values()], "max")
    return worst, bool(ok), {"runs": detail}


def check_local_overlap(runs: Runs, entry: dict, threshold: float) -> tuple[float, bool, dict]:
    """Local principal subspaces are local: in every run the mean overlap of the top-k subspaces of
    two points of different classes is at most ``threshold`` and below the mean within a class
    (``local_overlap_*`` of the components stage, measured at ``k``). Measured is the worst (largest)
    across-class overlap; a run without the metric at the claim's k fails."""
    detail, ok = {}, True
    for r, m in runs.items():
        within, across = _num(m.get("local_overlap_within")), _num(m.get("local_overlap_across"))
        k = m.get("local_overlap_k")
        detail[r] = {"k": k, "within": within, "across": across, "pca": _num(m.get("local_overlap_pca"))}
        if k != entry["k"] or math.isnan(within) or math.isnan(across):
            detail[r]["not_measured"] = f"needs local_overlap_within/across at k = {entry['k']}"
            ok = False
            continue
        ok &= across <= threshold and within > across
    worst = _worst([v["across"] if v["k"] == entry["k"] else math.nan for v in detail.values()], "max")
    return worst, bool(ok), {"runs": detail}


@dataclass(frozen=True)
class Check:
    """A check function, the stage summary it reads (``None``: the entry's ``stage``) and which
    measured value is the worst across experiments (``max``, ``min``; ``None``: not comparable)."""

    fn: Callable[[Runs, dict, float], tuple[float, bool, dict]]
    summary: str | None
    worst: str | None


CHECKS: dict[str, Check] = {
    "max_below": Check(check_max_below, None, "max"),
    "pca": Check(check_pca, "components_summary", "min"),
    "diverges": Check(check_diverges, "train_summary", "min"),
    "stable": Check(check_stable, "train_summary", "max"),
    "noise_tikhonov": Check(check_noise_tikhonov, "analysis_summary", "max"),
    "intrinsic_dim": Check(check_intrinsic_dim, "components_summary", None),
    "spectrum_decay": Check(check_spectrum_decay, "components_summary", "max"),
    "ratio_within": Check(check_ratio_within, None, "max"),
    "sweep_intrinsic_dim": Check(check_sweep_intrinsic_dim, "components_summary", None),
    "local_overlap": Check(check_local_overlap, "components_summary", "max"),
}

#: a threshold given as one of these words is that property of the experiment's data set
DATASET_THRESHOLDS = ("intrinsic_dim",)


def load_paper_map(path: str | Path) -> dict:
    """Reads ``paper_map.yaml`` and checks every claim's check name and selector."""
    paper_map = yaml.safe_load(Path(path).read_text())
    for entry in paper_map["claims"]:
        where = f"{path}: claim {entry.get('id')!r}"
        if entry.get("check") not in CHECKS:
            raise ValueError(f"{where}: unknown check {entry.get('check')!r}; expected one of {list(CHECKS)}")
        if "applies_to" not in entry:
            raise ValueError(f"{where}: no applies_to selector")
        check_selector(entry["applies_to"], f"{where}: applies_to")
        thr = entry.get("threshold")
        if isinstance(thr, str) and thr not in DATASET_THRESHOLDS:
            raise ValueError(f"{where}: threshold {thr!r} is neither a number nor one of {DATASET_THRESHOLDS}")
    return paper_map


def _threshold(entry: dict, props: dict):
    thr = entry["threshold"]
    return props["dataset"][thr] if isinstance(thr, str) else thr


def _runs(summary: dict, experiment: str, stabilizers: list[str]) -> Runs:
    """``{"<stabilizer>/seed<k>": metrics}`` of the selected runs of one experiment."""
    return {
        f"{stab}/{seed}": m
        for stab, seeds in summary.get(experiment, {}).items()
        if stab in stabilizers
        for seed, m in seeds.items()
    }


def _overall(check: Check, results: dict[str, dict]) -> tuple[str, float | None, str | None, list[str]]:
    """The claim's verdict, measured value and the experiment it comes from (the worst experiment,
    among the failing ones if any; a missing value is the worst), and the failing experiments."""
    if not results:
        return NA, None, None, []
    failed = [e for e, r in results.items() if r["verdict"] != PASS]
    pool = [e for e in (failed or list(results)) if results[e]["measured"] is not None]
    if not pool:
        return (FAIL if failed else PASS), None, None, failed
    values = {e: results[e]["measured"] for e in pool}
    missing = [e for e, v in values.items() if math.isnan(v)]
    if missing or check.worst is None:
        worst = (missing or pool)[0]
    else:
        worst = (max if check.worst == "max" else min)(pool, key=values.get)
    return (FAIL if failed else PASS), values[worst], worst, failed


def evaluate(paper_map: dict, summaries: dict[str, dict], experiments: dict[str, dict]) -> list[dict]:
    """Checks every claim on every experiment it applies to; returns one record per claim.

    Arguments:
        paper_map: ``paper_map.yaml`` as loaded by :func:`load_paper_map`.
        summaries: the stage summaries (:data:`SUMMARY_KEYS`) as ``{experiment: {stabilizer:
            {seed<k>: metrics}}}``.
        experiments: every experiment's properties (:func:`flowtheory.pipeline.experiments.describe`).
    """
    out = []
    for entry in paper_map["claims"]:
        check = CHECKS[entry["check"]]
        summary = summaries[check.summary or entry["stage"]]
        results = {}
        for exp, stabs in select(experiments, entry["applies_to"]).items():
            threshold = _threshold(entry, experiments[exp])
            runs = _runs(summary, exp, stabs)
            if not runs:
                results[exp] = {
                    "verdict": NOT_RUN,
                    "passed": False,
                    "measured": None,
                    "threshold": threshold,
                    "stabilizers": stabs,
                    "detail": {"not_run": f"no runs of {stabs} in the {check.summary or entry['stage']}"},
                }
                continue
            measured, passed, detail = check.fn(runs, entry, threshold)
            results[exp] = {
                "verdict": PASS if passed else FAIL,
                "passed": bool(passed),
                "measured": measured,
                "threshold": threshold,
                "stabilizers": stabs,
                "n_runs": len(runs),
                "detail": detail,
            }
        verdict, measured, worst, failed = _overall(check, results)
        record = {
            k: entry.get(k)
            for k in ("id", "claim", "paper_claim", "figure", "rule", "threshold", "justification", "settings")
        }
        record.update(
            applies_to=entry["applies_to"],
            applies_to_text=describe_selector(entry["applies_to"]),
            verdict=verdict,
            passed=None if verdict == NA else verdict == PASS,
            measured=measured,
            measured_experiment=worst,
            failed=failed,
            experiments=results,
        )
        if verdict == NA:
            record["note"] = NO_EXPERIMENT
        out.append(record)
    return out


def _fmt(x) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _result(r: dict) -> str:
    if r["verdict"] == NA:
        return f"N/A: {NO_EXPERIMENT}"
    if r["verdict"] == FAIL:
        return f"FAIL ({', '.join(r['failed'])})"
    return PASS


def _runs_text(res: dict) -> str:
    stabs = ", ".join(res["stabilizers"])
    n = res.get("n_runs")
    return f"{stabs} ({n} runs)" if n and n > len(res["stabilizers"]) else stabs


def render_markdown(records: list[dict]) -> str:
    """``results/claims.md``: one row per claim with its overall verdict, then one row per claim and
    experiment (the README splices everything below the title)."""
    lines = [
        "# Claim checks",
        "",
        "Generated by the `claims` rule from `paper_map.yaml` (checks in `src/flowtheory/stages/claims.py`; "
        "each claim applies to the experiments its `applies_to` selects by what they are, "
        "`src/flowtheory/pipeline/experiments.py`); do not edit.",
        "",
        "| id | paper claim | figure | applies to | measured | threshold | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        measured = _fmt(r["measured"])
        if len(r["experiments"]) > 1 and r["measured_experiment"]:
            measured += f" ({r['measured_experiment']})"
        lines.append(
            f"| `{r['id']}` | {r['claim']} | {r['figure']} | {r['applies_to_text']} | {measured} | "
            f"{_fmt(r['threshold'])} | {_result(r)} |"
        )
    counts = {v: sum(r["verdict"] == v for r in records) for v in (PASS, FAIL, NA)}
    summary = f"{counts[PASS]} of {len(records)} claims pass"
    if counts[FAIL]:
        summary += f", {counts[FAIL]} fail"
    if counts[NA]:
        summary += f", {counts[NA]} not applicable ({NO_EXPERIMENT})"
    lines += [
        "",
        summary + ".",
        "",
        "### Per experiment",
        "",
        "Every claim on every experiment it applies to: the worst of the experiment's selected runs (all seeds); "
        "per-run values in `results/claims.json`. Claims that apply to no experiment of this config are N/A above.",
        "",
        "| claim | experiment | runs | measured | threshold | result |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:  # an N/A claim has no row here: it is N/A in the table above
        for exp, res in r["experiments"].items():
            lines.append(
                f"| `{r['id']}` | {exp} | {_runs_text(res)} | {_fmt(res['measured'])} | "
                f"{_fmt(res['threshold'])} | {res['verdict']} |"
            )
    return "\n".join(lines) + "\n"


def metrics(records: list[dict]) -> dict:
    """``metrics/claims.json``, flat enough for ``dvc metrics diff``: per claim the overall
    ``passed`` (null for N/A), ``measured`` and number of experiments, and per claim × experiment
    ``passed`` and ``measured``."""
    return {
        r["id"]: {
            "passed": r["passed"],
            "measured": r["measured"],
            "n_experiments": len(r["experiments"]),
            "experiments": {
                e: {"passed": res["passed"], "measured": res["measured"]} for e, res in r["experiments"].items()
            },
        }
        for r in records
    }


def write_claims(
    map_path: str,
    summary_paths: dict[str, str],
    experiments: dict[str, dict],
    out_json: str,
    out_md: str,
    out_metrics: str,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Evaluates every claim and writes ``results/claims.json``, ``results/claims.md`` and
    ``metrics/claims.json``."""
    paper_map = load_paper_map(map_path)
    summaries = {k: storage.load_json(p) for k, p in summary_paths.items()}
    records = evaluate(paper_map, summaries, experiments)
    for r in records:
        per = ", ".join(f"{e} {res['verdict']} ({_fmt(res['measured'])})" for e, res in r["experiments"].items())
        log(f"{r['id']}: {r['verdict']} (threshold {_fmt(r['threshold'])}){': ' + per if per else ''}")
    storage.save_json(out_json, records)
    storage.save_text(out_md, render_markdown(records))
    storage.save_json(out_metrics, metrics(records))
    return records
