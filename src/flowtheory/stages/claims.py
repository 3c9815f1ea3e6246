"""The paper's claims as executable checks on pipeline outputs.

``paper_map.yaml`` links each claim to its figure, rule, metrics, runs and threshold (with the
reason for the threshold); each entry's ``check`` names a function in :data:`CHECKS` that
computes the measured value from the stage summaries and compares it with the threshold. A claim
that does not hold is reported as failing with its measured value; a claim whose runs are not in
the config is reported as failing with ``not run``. The stage never fails because a claim does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from flowtheory.pipeline import storage

__all__ = ["CHECKS", "SUMMARY_KEYS", "evaluate", "write_claims"]

SUMMARY_KEYS = ["train_summary", "analysis_summary", "components_summary"]


class NotRun(LookupError):
    """The runs a claim needs are not in this config."""


def _runs(summary: dict, experiment: str, stabilizers: list[str] | None = None) -> dict[str, dict]:
    """``{"<stabilizer>/seed<k>": metrics}`` of one experiment, optionally only some stabilizers."""
    if experiment not in summary:
        raise NotRun(f"experiment {experiment!r} not in this config")
    out = {}
    for stab, seeds in summary[experiment].items():
        if stabilizers is None or stab in stabilizers:
            out.update({f"{stab}/{seed}": m for seed, m in seeds.items()})
    if not out:
        raise NotRun(f"no runs of {experiment!r} with stabilizers {stabilizers}")
    return out


def _stabilized(summary: dict, experiment: str) -> list[str]:
    return [s for s in summary.get(experiment, {}) if s != "none"]


def _num(x) -> float:
    return math.nan if x is None else float(x)


def _max_metric(S: dict, stage: str, entry: dict, key: str) -> tuple[float, dict]:
    runs = {}
    for exp in entry["experiments"]:
        for r, m in _runs(S[stage], exp, entry.get("stabilizers")).items():
            runs[f"{exp}/{r}"] = _num(m.get(key))
    vals = np.array(list(runs.values()))
    return (float(np.max(vals)) if not np.isnan(vals).any() else math.nan), runs


def check_max_below(S: dict, entry: dict) -> tuple[float, bool, dict]:
    """The worst run's ``metric`` is at most ``threshold``."""
    worst, runs = _max_metric(S, entry["stage"], entry, entry["metric"])
    return worst, bool(worst <= entry["threshold"]), runs


def check_pca(S: dict, entry: dict) -> tuple[float, bool, dict]:
    """Linear flow: every component correlates with its PCA score (|r| ≥ threshold) and has the
    PCA eigenvalue as variance (within ``var_tol``)."""
    worst_corr, worst_var, runs = 1.0, 0.0, {}
    for exp in entry["experiments"]:
        for r, m in _runs(S["components_summary"], exp, entry.get("stabilizers")).items():
            corr = min(m["pca_abs_corr"])
            var = max(abs(v - 1) for v in m["pca_var_ratio"])
            runs[f"{exp}/{r}"] = {"min_abs_corr": corr, "max_var_rel_dev": var}
            worst_corr, worst_var = min(worst_corr, corr), max(worst_var, var)
    passed = worst_corr >= entry["threshold"] and worst_var <= entry["var_tol"]
    return worst_corr, bool(passed), {"max_var_rel_dev": worst_var, "runs": runs}


def _diverging(m: dict, growth: float) -> bool:
    """Diverged to non-finite values, or still diverging: the NLL still falls and the largest
    singular value of J_f still grows by at least ``growth`` over the last quarter of training."""
    if m["status"] == "diverged":
        return True
    return _num(m.get("nll_tail_drop")) > 0 and _num(m.get("smax_rel_growth")) >= growth


def check_diverges(S: dict, entry: dict) -> tuple[float, bool, dict]:
    """Every unregularized run on degenerate data diverges, and every stabilized run does not."""
    growth = entry["threshold"]
    runs, ok = {}, True
    for exp in entry["experiments"]:
        for r, m in _runs(S["train_summary"], exp, ["none"]).items():
            runs[f"{exp}/{r}"] = _describe(m)
            ok &= _diverging(m, growth)
    measured = min(_num(v["smax_rel_growth"]) if v["status"] == "converged" else math.inf for v in runs.values())
    return measured, bool(ok), runs


def check_stable(S: dict, entry: dict) -> tuple[float, bool, dict]:
    """Every stabilized run stays finite, stops growing, and keeps its largest singular value of
    J_f below ``bound_factor / sqrt(λ)``."""
    runs, ok, worst = {}, True, -math.inf
    for exp in entry["experiments"]:
        for r, m in _runs(S["train_summary"], exp, _stabilized(S["train_summary"], exp)).items():
            bound = entry["bound_factor"] / math.sqrt(m["lam"])
            desc = _describe(m) | {"smax_bound": bound}
            runs[f"{exp}/{r}"] = desc
            growth = _num(m.get("smax_rel_growth"))
            ok &= m["status"] == "converged" and growth < entry["threshold"] and _num(m["smax_last"]) <= bound
            worst = max(worst, growth)
    return worst, bool(ok), runs


def _describe(m: dict) -> dict:
    return {
        k: m.get(k)
        for k in ("status", "diverged_step", "nll_tail_drop", "smax_rel_growth", "smax_last", "final_train_nll")
    }


def check_noise_tikhonov(S: dict, entry: dict) -> tuple[float, bool, dict]:
    """Noise injection with σ² = λ reaches the weight penalty's closed form (Σ̂ + λI)⁻¹: its WᵀW
    error against the shrunk target is at most ``threshold`` and smaller than against Σ̂⁻¹."""
    runs, ok, worst = {}, True, 0.0
    for exp in entry["experiments"]:
        for r, m in _runs(S["analysis_summary"], exp, entry["stabilizers"]).items():
            shr, raw = _num(m["wtw_relerr"]), _num(m["wtw_relerr_unshrunk"])
            runs[f"{exp}/{r}"] = {"relerr_shrunk": shr, "relerr_unshrunk": raw}
            ok &= shr <= entry["threshold"] and shr < raw
            worst = max(worst, shr)
    return worst, bool(ok), runs


def check_intrinsic_dim(S: dict, entry: dict) -> tuple[float, bool, dict]:
    """Every stabilized run's component spectrum gives the expected intrinsic dimension."""
    runs = {}
    for exp in entry["experiments"]:
        for r, m in _runs(S["components_summary"], exp, _stabilized(S["components_summary"], exp)).items():
            runs[f"{exp}/{r}"] = m["intrinsic_dim"]
    wrong = [v for v in runs.values() if v != entry["threshold"]]
    measured = float(np.median(list(runs.values())))
    return measured, not wrong, runs


def _k90(var: list[float]) -> int:
    v = np.sort(np.asarray(var, float))[::-1]
    return int(np.searchsorted(np.cumsum(v) / v.sum(), 0.9) + 1)


def check_spectrum_decay(S: dict, entry: dict) -> tuple[float, bool, dict]:
    """Un-whitened components concentrate the variance (90% in at most ``threshold`` × d
    components) while whitened latents spread it (at least ``whitened_min`` × d)."""
    runs, ok, worst = {}, True, 0.0
    for exp in entry["experiments"]:
        for r, m in _runs(S["components_summary"], exp, _stabilized(S["components_summary"], exp)).items():
            d = len(m["var_yhat"])
            fy, fw, fp = _k90(m["var_yhat"]) / d, _k90(m["var_y"]) / d, _k90(m["pca_eigenvalues"]) / d
            runs[f"{exp}/{r}"] = {"k90_unwhitened_frac": fy, "k90_whitened_frac": fw, "k90_pca_frac": fp}
            ok &= fy <= entry["threshold"] and fw >= entry["whitened_min"]
            worst = max(worst, fy)
    return worst, bool(ok), runs


CHECKS: dict[str, Callable[[dict, dict], tuple[float, bool, dict]]] = {
    "max_below": check_max_below,
    "pca": check_pca,
    "diverges": check_diverges,
    "stable": check_stable,
    "noise_tikhonov": check_noise_tikhonov,
    "intrinsic_dim": check_intrinsic_dim,
    "spectrum_decay": check_spectrum_decay,
}


def evaluate(paper_map: dict, summaries: dict[str, dict]) -> list[dict]:
    """Runs every claim's check; returns one record per claim."""
    out = []
    for entry in paper_map["claims"]:
        record = {
            k: entry.get(k)
            for k in ("id", "claim", "paper_claim", "figure", "rule", "threshold", "justification", "settings")
        }
        try:
            measured, passed, detail = CHECKS[entry["check"]](summaries, entry)
        except NotRun as e:
            measured, passed, detail = None, False, {"not_run": str(e)}
        record.update(measured=measured, passed=bool(passed), detail=detail)
        out.append(record)
    return out


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a" if x is None else str(x)
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def write_claims(
    map_path: str,
    summary_paths: dict[str, str],
    out_json: str,
    out_md: str,
    out_metrics: str,
    log: Callable[[str], None] = print,
) -> list[dict]:
    paper_map = yaml.safe_load(Path(map_path).read_text())
    summaries = {k: storage.load_json(p) for k, p in summary_paths.items()}
    records = evaluate(paper_map, summaries)
    lines = [
        "# Claim checks",
        "",
        "Generated by the `claims` rule from `paper_map.yaml` (checks in `src/flowtheory/claims.py`); do not edit.",
        "",
        "| id | paper claim | figure | measured | threshold | result |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        verdict = "PASS" if r["passed"] else ("NOT RUN" if "not_run" in r["detail"] else "FAIL")
        lines.append(
            f"| `{r['id']}` | {r['claim']} | {r['figure']} | {_fmt(r['measured'])} | "
            f"{_fmt(r['threshold'])} | {verdict} |"
        )
        log(f"{r['id']}: {verdict} (measured {_fmt(r['measured'])}, threshold {_fmt(r['threshold'])})")
    passed = sum(r["passed"] for r in records)
    lines += ["", f"{passed} of {len(records)} claims pass.", ""]
    storage.save_json(out_json, records)
    storage.save_text(out_md, "\n".join(lines))
    storage.save_json(out_metrics, {r["id"]: {"passed": r["passed"], "measured": r["measured"]} for r in records})
    return records
