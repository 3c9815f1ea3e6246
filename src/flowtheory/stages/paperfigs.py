"""The main figures: one per claim of the paper (docs/theory.md §1), each summarizing every experiment
of its kind in panels of a fixed size (the notebooks in ``workflow/notebooks`` load the inputs and call
one function here).

Each function takes the tidy run table (:func:`flowtheory.stages.figures.run_table`) of the
experiments its notebook shows, the claims of ``paper_map.yaml`` by id (every threshold, bound and
cut comes from there) and the settings it needs from the config, and returns a matplotlib figure of a
fixed size (:mod:`flowtheory.stages.figstyle`). A panel with nothing to show says so; no function
fails on a valid config.

========================  =======  ==============================================================
function                  claim    what it shows
========================  =======  ==============================================================
:func:`linear`            1, 4, 5  eigenvalues of (WᵀW)⁻¹ against σᵢ² + λ; whitening error; PCA
:func:`covariance`        2        ellipses of the flow's and the kNN local covariance; their angle
:func:`tangent`           2        angle to the exact tangent space per manifold and family, kNN, chance
:func:`training`          3        ΔNLL/(d − k) against Δ log s_max (Eq. (26)); the law's slope; bound
:func:`shrinkage`         4        normal std against √(σ² + λ); sweep slopes (Eq. (16))
:func:`sweep`             4        linear noise vs Tikhonov (shrunk vs unshrunk target); λ sweeps
:func:`components`        5        S-curve y against ŷ; component scales against the floor; dimension
:func:`toys`              5        data, y and ŷ on shared axes, one column per manifold
:func:`mnist`             3, 5     MNIST spectra, local directions and traversals
:func:`gap`               all      geometric error against the run's gap to the optimum (nats)
========================  =======  ==============================================================
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from flowtheory.stages import figstyle as fs
from flowtheory.stages.figures import first_two, plane

__all__ = [
    "bound_claims",
    "chance_angle_deg",
    "components",
    "covariance",
    "ellipses",
    "gap",
    "illposed_claims",
    "latents",
    "linear",
    "mnist",
    "representative",
    "shrinkage",
    "style_legend",
    "sweep",
    "tangent",
    "toys",
    "training",
]

NOTHING = "nothing of this kind in this config"


# ----------------------------------------------------------------------------- shared pieces


def style_legend(fig, runs: pd.DataFrame, extra: list | None = None) -> None:
    """One figure legend for the encodings every panel shares: colour = stabilizer kind (shade = λ),
    marker = flow family; ``extra`` handles after them."""
    if not len(runs):
        return
    handles = fs.kind_handles(runs["kind"], runs["lam"]) + fs.family_handles(runs["family"]) + (extra or [])
    fig.legend(
        handles=handles,
        loc="outside right upper",
        title="colour: stabilizer (shade: λ)\nmarker: flow family",
        fontsize=8,
        title_fontsize=8,
        frameon=False,
    )


def bound_claims(pm: dict, kind: str | None = None) -> dict[str, dict]:
    """The claims of ``paper_map.yaml`` that bound the largest singular value (a ``bound_factor``:
    s_max ≤ bound_factor/√λ), by id; with ``kind``, those whose runs are of that stabilizer kind."""
    from flowtheory.pipeline.experiments import matches

    out = {}
    for cid, entry in pm.items():
        stabs = (entry.get("applies_to") or {}).get("stabilizers")
        if "bound_factor" not in entry:
            continue
        if kind is None or (isinstance(stabs, dict) and matches(kind, stabs.get("kind", kind))):
            out[cid] = entry
    return out


def _thresholds(ax, pm: dict, ids, axis: str = "y", unit: str = "", transform=None) -> None:
    """The thresholds of claims ``ids`` (``paper_map.yaml``) as labelled lines; claims that share a
    value share the line. ``transform`` maps a threshold to the plotted quantity."""
    by_value: dict[float, list[dict]] = {}
    for cid in ids:
        entry = pm.get(cid)
        if entry is None or not isinstance(entry.get("threshold"), int | float):
            continue
        value = float(entry["threshold"]) if transform is None else float(transform(entry["threshold"]))
        by_value.setdefault(value, []).append(entry)
    for value, entries in by_value.items():
        names = ", ".join(e["id"] for e in entries)
        op = {"<=": "≤", ">=": "≥"}.get(fs.direction(entries[0]) or "", "")
        shown = entries[0]["threshold"]
        label = f"threshold of {names} ({op} {shown:g}{unit})" if op else f"threshold of {names} ({shown:g}{unit})"
        (fs.hline if axis == "y" else fs.vline)(ax, value, label)


def _offsets(df: pd.DataFrame, width: float = 0.6) -> np.ndarray:
    """Offsets within a category, by flow family, then stabilizer kind, then λ, spread over ``width``
    (runs of one family, kind and λ share a position)."""
    keys_of = [
        (_family_order(f), _kind_order(k), lam) for f, k, lam in zip(df["family"], df["kind"], df["lam"], strict=True)
    ]
    keys = sorted(set(keys_of))
    if len(keys) <= 1:
        return np.zeros(len(df))
    pos = {k: i / (len(keys) - 1) - 0.5 for i, k in enumerate(keys)}
    return np.array([pos[k] * width for k in keys_of])


def _family_order(f: str) -> int:
    return fs.FAMILIES.index(f) if f in fs.FAMILIES else len(fs.FAMILIES)


def _kind_order(k: str) -> int:
    return fs.KINDS.index(k) if k in fs.KINDS else len(fs.KINDS)


def _points(ax, df: pd.DataFrame, x, y, xlim=None, ylim=None, **kw) -> None:
    """Every row of ``df`` at (x, y), in its kind's colour and family's marker, clipped to the limits."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    for (kind, lam, family), idx in df.groupby(["kind", "lam", "family"], sort=False).indices.items():
        fs.scatter(ax, x[idx], y[idx], kind, lam, family, xlim=xlim, ylim=ylim, **kw)


def _nothing(ax, text: str = NOTHING) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    fs.note(ax, text)


def _finite(values) -> np.ndarray:
    v = np.asarray(values, float)
    return v[np.isfinite(v)]


def representative(runs: pd.DataFrame) -> pd.Series | None:
    """The run a figure shows as an example of its experiment: the weakest stabilized run of the lowest
    seed (the unregularized one when there is none)."""
    if not len(runs):
        return None
    order = runs.assign(_none=runs["kind"] == "none").sort_values(["_none", "lam", "seed"], kind="stable")
    return order.iloc[0]


@functools.lru_cache(maxsize=64)
def chance_angle_deg(d: int, k: int, n: int = 4000) -> float:
    """The median largest principal angle between a fixed and a uniformly random k-dimensional
    subspace of Rᵈ (what an uninformed estimate scores; 45° for k = 1 in R², 60° for k = 2 in R³)."""
    if not 0 < k < d:
        return float("nan")
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(n, d, k)))
    smallest_cos = np.linalg.svd(q[:, :k, :], compute_uv=False).min(-1)
    return float(np.degrees(np.median(np.arccos(np.clip(smallest_cos, 0.0, 1.0)))))


def _group_axis(ax, groups: list[str], rotation: int = 0) -> None:
    ax.set_xticks(range(len(groups)), groups, rotation=rotation, ha="right" if rotation else "center")
    ax.set_xlim(-0.6, len(groups) - 0.4)
    for i in range(1, len(groups)):
        ax.axvline(i - 0.5, color="0.85", lw=0.8, zorder=0)


def _groups(runs: pd.DataFrame, column: str = "dataset") -> list[str]:
    """The data sets in a stable order: by kind as first met, clean before noisy."""
    first = {k: i for i, k in enumerate(dict.fromkeys(runs["data_kind"]))}
    labels = runs.drop_duplicates(column)[[column, "data_kind", "noise"]]
    return [
        r[column]
        for _, r in labels.sort_values(["data_kind", "noise"], key=lambda s: s.map(first).fillna(s)).iterrows()
    ]


# ----------------------------------------------------------------------------- claim 1 (and 4, 5)


def linear(runs: pd.DataFrame, pm: dict):
    """Claim 1: eigenvalues of (WᵀW)⁻¹ (the squared component scales of a linear flow) against the
    data's PCA eigenvalues plus λ, for every linear run (weight, Jacobian and noise alike); the
    whitening error per run; the un-whitened components against the PCA scores (claim 5)."""
    fig, (a, b, c) = fs.figure(
        fs.WIDE, "Claim 1: an optimal linear flow whitens the data; stabilizers shrink it by λ", ncols=3
    )
    # (a) eigenvalues of (WᵀW)⁻¹ against σᵢ² + λ
    rows = []
    for r in runs.itertuples():
        scale, eig = r.comp_scale_median, r.comp_pca_eigenvalues
        if isinstance(scale, list) and isinstance(eig, list):
            for s, e in zip(scale, eig, strict=False):
                rows.append({"kind": r.kind, "lam": r.lam, "family": r.family, "x": e + r.lam, "y": s * s})
    pts = pd.DataFrame(rows, columns=["kind", "lam", "family", "x", "y"])
    if len(pts):
        lim = fs.robust_limits(np.r_[pts.x, pts.y], log=True)
        _points(a, pts, pts.x, pts.y, xlim=lim, ylim=lim)
        fs.identity(a, *lim, label="y = x: (WᵀW)⁻¹ = Σ̂ + λI (Eqs. (3), (11))")
        a.set(xscale="log", yscale="log", xlim=lim, ylim=lim, aspect="equal")
        fs.legend(a, loc="upper left")
    else:
        _nothing(a, "no linear-flow components in the components summary")
    a.set(
        title="(a) eigenvalues of (WᵀW)⁻¹ against σᵢ² + λ",
        xlabel="σᵢ² + λ (PCA eigenvalue of the data + strength)",
        ylabel="eigenvalue of (WᵀW)⁻¹ (component scale²)",
    )

    # (b) whitening error per run, by stabilizer kind
    err = np.where(runs["kind"] == "none", runs["wtw_relerr_unshrunk"], runs["wtw_relerr"]).astype(float)
    ok = np.isfinite(err) & (err > 0)
    if ok.any():
        sub = runs[ok].reset_index(drop=True)
        kinds = sorted(sub["kind"].unique(), key=_kind_order)
        x = np.array([kinds.index(k) for k in sub["kind"]], float) + _offsets(sub, 0.5)
        thr = [
            v
            for k in ("linear_whitening", "shrinkage_closed_form", "noise_equals_tikhonov")
            if k in pm
            for v in [pm[k].get("threshold")]
            if isinstance(v, int | float)
        ]
        lim = fs.robust_limits(err[ok], log=True, include=thr)
        _points(b, sub, x, err[ok], ylim=lim)
        _thresholds(b, pm, ["linear_whitening", "shrinkage_closed_form", "noise_equals_tikhonov"])
        b.set_xticks(range(len(kinds)), [fs.KIND_SHORT.get(k, k) for k in kinds])
        b.set(yscale="log", ylim=lim, xlim=(-0.6, len(kinds) - 0.4))
        fs.legend(b, loc="upper left")
    else:
        _nothing(b, "no finite whitening error (no linear flow, or singular data only)")
    missing = int((~ok).sum())
    if missing and ok.any():
        fs.note(b, f"{missing} run(s) without a finite error (singular Σ̂ at λ = 0)", loc="lower right")
    b.set(
        title="(b) ‖WᵀW − target‖ / ‖target‖ per run",
        ylabel="relative error (none: vs Σ̂⁻¹; stabilized: vs (Σ̂ + λI)⁻¹)",
    )

    # (c) un-whitened components against PCA scores
    rows = []
    for r in runs.itertuples():
        corr, ratio, eig = r.comp_pca_abs_corr, r.comp_pca_var_ratio, r.comp_pca_eigenvalues
        full_rank = isinstance(eig, list) and eig and min(eig) > 1e-9 * max(eig)
        if full_rank and isinstance(corr, list) and isinstance(ratio, list) and corr and ratio:
            rows.append(
                {
                    "kind": r.kind,
                    "lam": r.lam,
                    "family": r.family,
                    "x": 1 - min(corr),
                    "y": max(abs(v - 1) for v in ratio),
                }
            )
    pts = pd.DataFrame(rows, columns=["kind", "lam", "family", "x", "y"])
    entry = pm.get("linear_components_pca")
    if len(pts):
        box = (1 - entry["threshold"], entry.get("var_tol")) if entry else (None, None)
        xlim = fs.robust_limits(pts.x, log=True, include=[box[0]])
        ylim = fs.robust_limits(pts.y, log=True, include=[box[1]])
        if entry and box[1] is not None:
            c.fill_between(
                [xlim[0], box[0]],
                ylim[0],
                box[1],
                color="#d9f0d3",
                zorder=0,
                label=f"pass region of linear_components_pca (|r| ≥ {entry['threshold']:g}, "
                f"variance within {box[1]:.0%})",
            )
        _points(c, pts, pts.x, pts.y, xlim=xlim, ylim=ylim)
        c.set(xscale="log", yscale="log", xlim=xlim, ylim=ylim)
        fs.legend(c, loc="upper left")
    else:
        _nothing(c, "no linear-flow components on data of full rank")
    c.set(
        title="(c) components against PCA scores",
        xlabel="1 − min |corr(ŷᵢ, PCA score i)|",
        ylabel="max |var(ŷᵢ) / PCA eigenvalue − 1|",
    )
    style_legend(fig, runs)
    return fig


# ----------------------------------------------------------------------------- claim 2


def tangent(runs: pd.DataFrame, pm: dict, knn_k: int | None):
    """Claim 2 against the exact oracle: per manifold (x) and flow family (marker), each run's median
    angle between the flow's top-k local covariance eigenspace and the analytic tangent space, beside
    the kNN estimate's angle to the same oracle and the angle of a random subspace (chance)."""
    fig, axes = fs.figure(
        fs.WIDE, "Claim 2: a nonlinear flow learns the local covariance (exact tangent spaces)", ncols=1, squeeze=False
    )
    ax = axes[0, 0]
    sub = runs[np.isfinite(runs["tangent_angle_true_deg_median"].astype(float))].reset_index(drop=True)
    if not len(sub):
        _nothing(ax, "no run with an analytic tangent space in the analysis summary")
        ax.set(title="angle to the analytic tangent space")
        return fig
    entry = pm.get("local_covariance_oracle") or {}
    baseline = entry.get("baseline_metric", "knn_tangent_angle_true_deg_median")  # the claim's own baseline
    _angle_strip(ax, sub, "tangent_angle_true_deg_median", pm, "local_covariance_oracle", knn_k, baseline)
    ax.set(
        ylabel="median angle to the analytic tangent space (degrees)",
        title="largest principal angle between the flow's top-k eigenspace of (J_fᵀJ_f)⁻¹ and the true tangent space, per run",
    )
    style_legend(fig, sub)
    return fig


def _ellipse(cov: np.ndarray, at, scale: float, **kw):
    from matplotlib.patches import Ellipse

    vals, vecs = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    w, h = 2 * scale * np.sqrt(np.maximum(vals[::-1], 0.0))
    return Ellipse(at, w, h, angle=angle, fill=False, **kw)


def ellipses(ax, points: pd.DataFrame, kind: str, lam: float, tangent: np.ndarray | None = None, n: int = 24) -> bool:
    """The flow's (solid, stabilizer colour) and the kNN (dotted black) local covariance at ``n`` of the
    analysed points, each scaled to unit trace and drawn at 2 standard deviations in the plane
    :func:`flowtheory.stages.figures.plane` shows; the exact tangent space (dashed grey, its
    projector) where ``tangent`` (n_points, d, k) is given. False when there is nothing to draw."""
    d = sum(c.startswith("x") and c[1:].isdigit() for c in points.columns)
    if not d:
        return False
    xy, (la, lb) = plane(points[[f"x{i}" for i in range(d)]].to_numpy())
    ax.scatter(*xy.T, s=3, color="0.75", zorder=1, label="analysed points")
    ax.set(xlabel=la, ylabel=lb, aspect="equal")
    a, b = (0, d - 1) if d > 1 else (0, 0)
    if not (1 < d <= 3 and f"cov_flow_{a}{b}" in points):
        return True
    span = float(np.ptp(xy, axis=0).max()) or 1.0
    scale = 0.035 * span
    step = max(len(points) // n, 1)
    first = True
    for i in range(0, len(points), step):
        row = points.iloc[i]
        at = (row[f"x{a}"], row[f"x{b}"])
        covs = {lab: np.array([[row[f"cov_{lab}_{p}{q}"] for q in (a, b)] for p in (a, b)]) for lab in ("flow", "knn")}
        if tangent is not None and i < len(tangent):
            T = tangent[i][[a, b]]
            covs["tangent"] = T @ T.T
        styles = {
            "flow": {"color": fs.color(kind, lam), "lw": 1.4, "ls": "-", "label": "flow (J_fᵀJ_f)⁻¹"},
            "knn": {"color": "black", "lw": 1.0, "ls": ":", "label": "kNN covariance"},
            "tangent": {"color": "0.35", "lw": 1.0, "ls": "--", "label": "exact tangent space (projector)"},
        }
        for lab, cov in covs.items():
            tr = float(np.trace(cov))
            if not np.isfinite(tr) or tr <= 0:
                continue
            st = dict(styles[lab])
            if not first:
                st.pop("label")
            ax.add_patch(_ellipse(cov / tr, at, scale * 2, **st))  # 2 standard deviations
        first = False
    return True


def _angle_strip(
    ax, sub: pd.DataFrame, column: str, pm: dict, claim: str | None, knn_k: int | None, baseline: str | None
):
    """Per data set (x) and flow family (marker), each run's median angle (``column``), with the
    chance angle of a random subspace, the kNN ``baseline`` column's median and ``claim``'s threshold."""
    groups = _groups(sub)
    gi = {g: i for i, g in enumerate(groups)}
    x = np.array([gi[g] for g in sub["dataset"]], float)
    for _g, idx in sub.groupby("dataset").indices.items():
        x[idx] += _offsets(sub.iloc[idx], 0.6)
    _points(ax, sub, x, sub[column], ylim=(0, 90))
    first_knn = first_chance = True
    for g in groups:
        rows = sub[sub["dataset"] == g]
        i = gi[g]
        knn = _finite(rows[baseline]) if baseline and baseline in rows else np.zeros(0)
        if len(knn):
            label = f"kNN covariance (k = {knn_k}) to the same oracle, median" if knn_k else "kNN covariance, median"
            ax.hlines(np.median(knn), i - 0.4, i + 0.4, label=label if first_knn else None, **fs.REF["baseline"])
            first_knn = False
        d, k = int(rows["d"].iloc[0]), rows["intrinsic_dim"].iloc[0]
        if k is not None and np.isfinite(k):
            label = "chance: a random k-plane in Rᵈ (median)" if first_chance else None
            ax.hlines(chance_angle_deg(d, int(k)), i - 0.4, i + 0.4, label=label, **fs.REF["chance"])
            first_chance = False
    if claim:
        _thresholds(ax, pm, [claim], unit="°")
    _group_axis(ax, groups, rotation=20 if len(groups) > 6 else 0)
    ax.set(ylim=(0, 90))
    fs.legend(ax, loc="upper left", ncols=2)


def covariance(runs: pd.DataFrame, pm: dict, points: dict, knn_k: int | None, max_panels: int = 4):
    """Claim 2 against the kNN covariance: ellipses of the flow's and the kNN local covariance for one
    stabilized run of up to ``max_panels`` data sets in 2-D or 3-D (top), and every run's median angle
    between the two tangent spaces per data set and flow family (bottom)."""
    fig, _ = fs.figure(fs.MAIN, "Claim 2: the flow's local covariance against the k-nearest-neighbour covariance")
    grid = fig.add_gridspec(2, max_panels, height_ratios=[1.25, 1])
    groups = _groups(runs) if len(runs) else []
    shown = []
    for g in groups:
        rows = runs[(runs["dataset"] == g) & (runs["d"] <= 3)]
        rows = rows[[k in points for k in zip(rows["experiment"], rows["stabilizer"], rows["seed"], strict=True)]]
        rep = representative(rows[rows["kind"] != "none"]) if len(rows) else None
        if rep is not None:
            shown.append((g, rep))
    for i in range(max_panels):
        ax = fig.add_subplot(grid[0, i])
        if i >= len(shown):
            ax.axis("off")
            if i == len(shown):
                fs.note(ax, "no stabilized run with per-point covariances" if not shown else "")
            continue
        g, rep = shown[i]
        ellipses(ax, points[(rep["experiment"], rep["stabilizer"], rep["seed"])], rep["kind"], rep["lam"])
        ax.set_title(f"{g}: {rep['experiment']} / {rep['stabilizer']}", fontsize=9)
        if i == 0:
            fs.legend(ax, loc="lower left", fontsize=6)
    if len(shown) > max_panels:
        fs.note(
            fig.axes[max_panels - 1], f"+{len(shown) - max_panels} more data sets in the gallery", loc="lower right"
        )
    ax = fig.add_subplot(grid[1, :])
    sub = runs[np.isfinite(runs["tangent_angle_knn_deg_median"].astype(float))].reset_index(drop=True)
    if len(sub):
        _angle_strip(ax, sub, "tangent_angle_knn_deg_median", pm, None, knn_k, None)
    else:
        _nothing(ax, "no run with a known intrinsic dimension below d")
    ax.set(
        ylabel="median angle (degrees)",
        title=f"tangent-space angle per run: the flow's against the kNN (k = {knn_k}) covariance's top-k eigenspace"
        if knn_k
        else "tangent-space angle per run, flow against kNN",
    )
    style_legend(fig, runs)
    return fig


# ----------------------------------------------------------------------------- claim 3


#: bins over which the second half of a run's training is averaged in the Eq. (10) panel
LAW_BINS = 8


def _tail_law(history: pd.DataFrame) -> pd.DataFrame:
    """Per run, the second half of training relative to its start: Δ log s_max and ΔNLL, each the
    median within :data:`LAW_BINS` equal spans of epochs (the epoch-to-epoch jitter of Adam averaged
    out), the first span the reference."""
    from flowtheory.stages.claims import second_half  # the check's window, not a second one

    out = []
    for (exp, stab, seed), h in history.groupby(["experiment", "stabilizer", "seed"], sort=False):
        h = h[np.isfinite(h["smax"].astype(float)) & np.isfinite(h["train_nll"].astype(float)) & (h["smax"] > 0)]
        if h.empty:
            continue
        half = h[second_half(h["epoch"].to_numpy(float))]
        if len(half) < 2:
            continue
        span = np.minimum(
            ((half["epoch"] - half["epoch"].min()) * LAW_BINS) // max(np.ptp(half["epoch"]), 1), LAW_BINS - 1
        )
        binned = (
            half.assign(logs=np.log(half["smax"].astype(float)), span=span)
            .groupby("span")[["logs", "train_nll"]]
            .median()
        )
        out.append(
            pd.DataFrame(
                {
                    "experiment": exp,
                    "stabilizer": stab,
                    "seed": seed,
                    "dlog": binned["logs"].to_numpy() - binned["logs"].iloc[0],
                    "dnll": binned["train_nll"].to_numpy() - binned["train_nll"].iloc[0],
                }
            )
        )
    return (
        pd.concat(out, ignore_index=True)
        if out
        else pd.DataFrame(columns=["experiment", "stabilizer", "seed", "dlog", "dnll"])
    )


def illposed_claims(pm: dict) -> list[dict]:
    """The claims of ``paper_map.yaml`` that test the ill-posedness law (check ``illposed``)."""
    return [e for e in pm.values() if e.get("check") == "illposed"]


def _normal_dims(runs: pd.DataFrame) -> np.ndarray:
    """d − k per run (NaN where the intrinsic dimension is unknown)."""
    k = pd.to_numeric(runs["intrinsic_dim"], errors="coerce").to_numpy(float)
    return runs["d"].to_numpy(float) - k


def _law_slopes(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Per run, the claims' own least-squares slope of the NLL against log s_max over the second half
    of training (:func:`flowtheory.stages.claims._history_fit`) and the range of log s_max it spans."""
    from flowtheory.stages.claims import _history_fit  # the fit the verdicts use, not a second one

    by_run = {key: h for key, h in history.groupby(["experiment", "stabilizer", "seed"], sort=False)}
    rows = []
    for r in runs.itertuples():
        h = by_run.get((r.experiment, r.stabilizer, r.seed))
        fit = _history_fit({c: h[c].tolist() for c in ("epoch", "train_nll", "smax")} if h is not None else None)
        rows.append({"slope": fit.get("slope", np.nan), "log_range": fit.get("log_smax_range", np.nan)})
    return pd.DataFrame(rows, index=runs.index, columns=["slope", "log_range"])


def training(runs: pd.DataFrame, history: pd.DataFrame, pm: dict):
    """Claim 3 (and 4's stability): (a) the ill-posedness law of docs/theory.md Eq. (26) over the second
    half of training, ΔNLL/(d − k) against Δ log s_max, one line per run; (b) the law's slope per run
    (the claims' fit) over d − k, by stabilizer kind; (c) the stabilized runs' final s_max·√λ against
    the level bound of ``regularized_stable_*``."""

    fig, (a, b, c) = fs.figure(
        fs.WIDE, "Claim 3: maximum likelihood is ill-posed on degenerate data; claim 4: stabilizers stop it", ncols=3
    )
    runs = runs.reset_index(drop=True)
    normal = _normal_dims(runs)
    known = np.isfinite(normal) & (normal > 0)
    per = np.where(known, normal, 1.0)  # d − k unknown (MNIST): at least one normal direction
    meta = runs.assign(per=per, known=known).set_index(["experiment", "stabilizer", "seed"])
    keys = set(meta.index)
    hist = history[[k in keys for k in zip(history["experiment"], history["stabilizer"], history["seed"], strict=True)]]
    laws = illposed_claims(pm)
    tol = float(laws[0]["threshold"]) if laws else None
    band_label = f"on the law: within {tol:g} of −1 per normal direction (the *_illposed claims)" if laws else None
    unknown = fs.open_marker("d − k unknown: ΔNLL itself")
    # (a) the law along each run
    law = _tail_law(hist)
    if len(law):
        law = law.assign(
            y=law["dnll"]
            / [
                meta.loc[(e, s_, k), "per"]
                for e, s_, k in zip(law["experiment"], law["stabilizer"], law["seed"], strict=True)
            ]
        )
        xlim = fs.robust_limits(law["dlog"], include=[0])
        ylim = fs.robust_limits(law["y"], include=[0])
        for (exp, stab, seed), g in law.groupby(["experiment", "stabilizer", "seed"], sort=False):
            m = meta.loc[(exp, stab, seed)]
            x, _ = fs.clip(g["dlog"], xlim)
            y, _ = fs.clip(g["y"], ylim)
            a.plot(x, y, color=fs.color(m["kind"], m["lam"]), lw=1.0, alpha=0.7)
            fs.scatter(
                a,
                [g["dlog"].iloc[-1]],
                [g["y"].iloc[-1]],
                m["kind"],
                m["lam"],
                m["family"],
                xlim=xlim,
                ylim=ylim,
                hollow=not m["known"],
            )
        grid = np.array(xlim)
        if tol is not None:
            a.fill_between(grid, -(1 + tol) * grid, -(1 - tol) * grid, color="0.9", zorder=0, label=band_label)
        fs.ref_line(a, grid, -grid, "Eq. (26): −1 nat per unit of log s_max per normal direction")
        a.set(xlim=xlim, ylim=ylim)
        fs.legend(a, [unknown] if (~known).any() else [], loc="lower left")
    else:
        _nothing(a, "no per-epoch s_max in the training history")
    a.set(
        title="(a) Eq. (26): the NLL falls as s_max grows",
        xlabel="Δ log s_max(J_f) since mid-training (binned)",
        ylabel="Δ training NLL / (d − k) since mid-training",
    )
    # (b) the law's slope per run
    fits = _law_slopes(runs, hist)
    slope = fits["slope"].to_numpy(float) / per
    ok = np.isfinite(slope)
    if ok.any():
        sub = runs[ok].reset_index(drop=True)
        kinds = sorted(sub["kind"].unique(), key=_kind_order)
        x = np.array([kinds.index(k) for k in sub["kind"]], float) + _offsets(sub, 0.5)
        lim = fs.robust_limits(slope[ok], include=[0, -1 - (tol or 0)])
        min_range = max((float(e.get("min_log_range", 0.0)) for e in laws), default=0.0)
        moved = fits["log_range"].to_numpy(float)[ok] >= min_range
        if tol is not None:
            b.axhspan(-1 - tol, -1 + tol, color="0.9", zorder=0, label=band_label)
        _points(b, sub[moved], x[moved], slope[ok][moved], ylim=lim)
        _points(b, sub[~moved], x[~moved], slope[ok][~moved], ylim=lim, hollow=True)
        fs.hline(b, -1.0, "the law: −1 per normal direction (Eq. (26))", role="prediction")
        fs.hline(b, 0.0, "0: a finite optimum", role="chance")
        b.set_xticks(range(len(kinds)), [fs.KIND_SHORT.get(k, k) for k in kinds])
        b.set(ylim=lim, xlim=(-0.6, len(kinds) - 0.4))
        extra = [fs.open_marker(f"open: log s_max moved < {min_range:g} (slope not judged)")] if (~moved).any() else []
        fs.legend(b, extra, loc="lower left")
    else:
        _nothing(b, "no run with s_max per epoch over the second half")
    b.set(title="(b) the law's slope per run", ylabel="slope of NLL against log s_max, / (d − k)")
    # (c) stabilized runs: s_max · √λ against the bound factor, at convergence
    st = runs[(runs["kind"] != "none") & (runs["lam"] > 0)].reset_index(drop=True)
    if len(st):
        kinds = sorted(st["kind"].unique(), key=_kind_order)
        x = np.array([kinds.index(k) for k in st["kind"]], float) + _offsets(st, 0.5)
        y = st["smax_last"].astype(float).to_numpy() * np.sqrt(st["lam"].to_numpy())
        bounds: dict[float, list[str]] = {}
        for entry in bound_claims(pm).values():
            bounds.setdefault(float(entry["bound_factor"]), []).append(entry["id"])
        lim = fs.robust_limits(y, log=True, include=[1.0, *bounds])
        conv = (st["status"] == "converged").to_numpy()
        _points(c, st[conv], x[conv], y[conv], ylim=lim)
        _points(c, st[~conv], x[~conv], y[~conv], ylim=lim, hollow=True)
        for value, ids in sorted(bounds.items()):
            names = ids[0] if len(ids) == 1 else "the regularized_stable_* claims"
            fs.hline(c, value, f"level bound s_max ≤ {value:g}/√λ ({names})", role="bound")
        fs.hline(c, 1.0, "1/√λ: one linear layer at the optimum", role="prediction")
        c.set_xticks(range(len(kinds)), [fs.KIND_SHORT.get(k, k) for k in kinds])
        c.set(yscale="log", ylim=lim, xlim=(-0.6, len(kinds) - 0.4))
        extra = [fs.open_marker("open: not converged (judged at convergence)")] if (~conv).any() else []
        fs.legend(c, extra, loc="upper right")
    else:
        _nothing(c, "no stabilized run on degenerate data")
    c.set(title="(c) stabilized runs against the bound", ylabel="final s_max(J_f) · √λ")
    style_legend(fig, runs)
    return fig


# ----------------------------------------------------------------------------- claim 4


def _sweep_slopes(runs: pd.DataFrame) -> pd.DataFrame:
    """Per sweep experiment and seed, the slope of log(median component std) against log √λ for each
    component (docs/theory.md Eq. (16)), over the runs of one stabilizer kind with ≥ 3 strengths."""
    rows = []
    sweeps = runs[runs["sweep"] & (runs["kind"] != "none") & (runs["lam"] > 0)]
    for (exp, kind, seed), g in sweeps.groupby(["experiment", "kind", "seed"], sort=False):
        scales = [
            (lam, s) for lam, s in zip(g["lam"], g["comp_scale_median"], strict=True) if isinstance(s, list) and s
        ]
        lams = np.array([lam for lam, _ in scales])
        if len(np.unique(lams)) < 3 or len({len(s) for _, s in scales}) != 1:
            continue
        stds = np.array([s for _, s in scales], float)
        if not (stds > 0).all():
            continue
        x = 0.5 * np.log(lams)
        x = x - x.mean()
        y = np.log(stds)
        slopes = x @ (y - y.mean(0)) / (x @ x)
        first = g.iloc[0]
        k = first["intrinsic_dim"]
        for j, sl in enumerate(slopes):
            rows.append(
                {
                    "experiment": exp,
                    "kind": kind,
                    "lam": float(np.median(lams)),
                    "family": first["family"],
                    "seed": seed,
                    "rank": j + 1 - (int(k) if k is not None and np.isfinite(k) else 0),
                    "slope": float(sl),
                }
            )
    return pd.DataFrame(rows, columns=["experiment", "kind", "lam", "family", "seed", "rank", "slope"])


#: a legend under the axes' label, for panels whose points may lie anywhere inside
LEGEND_BELOW = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.14), "ncol": 2}


def shrinkage(runs: pd.DataFrame, pm: dict):
    """Claim 4 on nonlinear flows: (a) each run's normal-direction local std against the first-order
    prediction √(σ² + λ) (Eq. (15)); (b) in every λ sweep, each component's slope of log std against
    log √λ, by its rank relative to the true intrinsic dimension (Eq. (16))."""
    fig, (a, b) = fs.figure(fs.WIDE, "Claim 4: shrinkage λ sets the normal-direction std of a nonlinear flow", ncols=2)
    sub = runs[np.isfinite(runs["normal_std_median"].astype(float)) & (runs["normal_std_predicted"].astype(float) > 0)]
    sub = sub[sub["kind"].isin(["jacobian", "noise"])].reset_index(drop=True)
    if len(sub):
        # a small fixed spread in x (±4%) keeps runs of one prediction apart
        spread = 1 + 0.08 * _offsets(sub, 1.0)
        x = sub["normal_std_predicted"].to_numpy(float) * spread
        y = sub["normal_std_median"].to_numpy(float)
        entry = pm.get("normal_std_shrinkage")
        f = float(entry["threshold"]) if entry else None
        lim = fs.robust_limits(np.r_[x, y], log=True)
        if f:
            g = np.array(lim)
            a.fill_between(
                g,
                g / f,
                g * f,
                color="0.9",
                zorder=0,
                label=f"within a factor {f:g} (threshold of normal_std_shrinkage)",
            )
        noisy = sub["noise"].to_numpy() > 0
        _points(a, sub[~noisy], x[~noisy], y[~noisy], xlim=lim, ylim=lim)
        _points(a, sub[noisy], x[noisy], y[noisy], xlim=lim, ylim=lim, edgecolor="black", linewidths=0.9)
        fs.identity(a, *lim, label="y = x: std = √(σ² + λ) (Eq. (15))")
        from matplotlib.lines import Line2D

        extra = (
            [
                Line2D(
                    [],
                    [],
                    ls="none",
                    marker="o",
                    color="0.6",
                    markeredgecolor="black",
                    label="black edge: noisy data (σ > 0)",
                )
            ]
            if noisy.any()
            else []
        )
        a.set(xscale="log", yscale="log", xlim=lim, ylim=lim, aspect="equal")
        fs.legend(a, extra, **LEGEND_BELOW)
    else:
        _nothing(a, "no Jacobian-penalty or noise run on a manifold with analytic tangent spaces")
    a.set(
        title="(a) normal-direction local std per run",
        xlabel="prediction √(σ² + λ) (±4% spread for legibility)",
        ylabel="flow's median local std along the normal space",
    )
    sl = _sweep_slopes(runs)
    if len(sl):
        x = sl["rank"].to_numpy(float) + _offsets(sl, 0.5)
        lim = fs.robust_limits(sl["slope"], include=[0, 1])
        _points(b, sl, x, sl["slope"], ylim=lim)
        fs.hline(b, 0.0, "tangent: λ-insensitive (slope 0)", role="prediction")
        fs.hline(b, 1.0, "normal: std ∝ √λ (slope 1, Eq. (16))", role="prediction", color="0.5")
        entry = pm.get("intrinsic_dimension_sweep")
        if entry and "slope_cut" in entry:
            fs.hline(b, entry["slope_cut"], f"cut of intrinsic_dimension_sweep ({entry['slope_cut']:g})")
        fs.vline(b, 0.5, "true intrinsic dimension (tangent ≤ 0 < normal)", role="chance")
        ranks = sorted(sl["rank"].unique())
        b.set_xticks(ranks, [f"{r:+d}" if r else "0" for r in ranks])
        b.set(ylim=lim)
        fs.legend(b, **LEGEND_BELOW)
    else:
        _nothing(b, "no λ sweep with 3 or more strengths of one kind")
    b.set(
        title="(b) λ sweeps: slope of log component std against log √λ",
        xlabel="component rank − true intrinsic dimension",
        ylabel="slope",
    )
    style_legend(fig, pd.concat([sub, runs[runs["sweep"]]], ignore_index=True))
    return fig


def sweep(runs: pd.DataFrame, pm: dict):
    """Claim 4, penalty and noise on one axis λ = 2α = σ²: (a) linear flows, each stabilized run's
    WᵀW error against the shrunk target (Σ̂ + λI)⁻¹ and against the unshrunk Σ̂⁻¹ (noise must reach
    the shrunk one like the penalties); (b) nonlinear sweeps, the normal-direction std against λ with
    √λ; (c) their final validation NLL against λ."""
    fig, (a, b, c) = fs.figure(
        fs.WIDE, "Claim 4: Tikhonov penalty and noise injection are one shrinkage, λ = 2α = σ²", ncols=3
    )
    lin = runs[runs["linear"] & (runs["kind"] != "none")]
    lin = lin[
        np.isfinite(lin["wtw_relerr"].astype(float)) & np.isfinite(lin["wtw_relerr_unshrunk"].astype(float))
    ].reset_index(drop=True)
    if len(lin):
        # a small fixed spread in x (×/÷ 1.3) keeps runs of one error apart
        x = lin["wtw_relerr_unshrunk"].to_numpy(float) * 1.3 ** (2 * _offsets(lin, 1.0))
        y = lin["wtw_relerr"].to_numpy(float)
        thr = [pm[k]["threshold"] for k in ("noise_equals_tikhonov", "shrinkage_closed_form") if k in pm]
        lim = fs.robust_limits(np.r_[x, y], log=True, include=thr)
        _points(a, lin, x, y, xlim=lim, ylim=lim)
        fs.identity(a, *lim, label="y = x: as far from (Σ̂ + λI)⁻¹ as from Σ̂⁻¹")
        _thresholds(a, pm, ["noise_equals_tikhonov", "shrinkage_closed_form"])
        a.set(xscale="log", yscale="log", xlim=lim, ylim=lim, aspect="equal")
        fs.legend(a, loc="upper left")
    else:
        _nothing(a, "no stabilized linear flow on data of known, invertible covariance")
    a.set(
        title="(a) linear flows: which target does WᵀW reach?",
        xlabel="error against Σ̂⁻¹ (unshrunk; spread ×/÷ 1.3 for legibility)",
        ylabel="error against (Σ̂ + λI)⁻¹ (shrunk)",
    )
    nl = runs[(~runs["linear"]) & runs["sweep"] & (runs["kind"] != "none") & (runs["lam"] > 0)].reset_index(drop=True)
    normal = nl["normal_std_median"].astype(float).to_numpy()
    fallback = 1 / nl["smax_median"].astype(float).to_numpy() if len(nl) else np.zeros(0)
    normal = np.where(np.isfinite(normal), normal, fallback)
    for ax, values, label in (
        (b, normal, "normal-direction local std (median)"),
        (c, nl["final_valid_nll"].astype(float).to_numpy() if len(nl) else np.zeros(0), "final validation NLL (nats)"),
    ):
        ok = np.isfinite(values)
        if not ok.any():
            _nothing(ax, "no nonlinear λ sweep (two or more strengths) on degenerate data")
            ax.set(title=label)
            continue
        log = ax is b
        ylim = fs.robust_limits(values[ok], log=log, include=(np.sqrt(nl["lam"]) if log else []))
        for (_exp, kind, _seed), idx in nl.groupby(["experiment", "kind", "seed"], sort=False).indices.items():
            idx = idx[np.argsort(nl["lam"].to_numpy()[idx])]
            yv, _ = fs.clip(values[idx], ylim)
            ax.plot(nl["lam"].to_numpy()[idx], yv, color=fs.color(kind), lw=1, alpha=0.8)
        _points(ax, nl, nl["lam"], values, ylim=ylim)
        if log:
            lam = np.sort(nl["lam"].unique())
            fs.ref_line(ax, lam, np.sqrt(lam), "√λ: first-order prediction (Eq. (15), σ = 0)")
        ax.set(xscale="log", yscale="log" if log else "linear", ylim=ylim, xlabel="λ = 2α = σ²", ylabel=label)
        fs.legend(ax, loc="upper left")
    b.set(title="(b) nonlinear sweeps: normal std against λ")
    c.set(title="(c) nonlinear sweeps: fit against λ")
    style_legend(fig, pd.concat([lin, nl], ignore_index=True))
    return fig


# ----------------------------------------------------------------------------- claim 5


def _swarm(x: np.ndarray, y: np.ndarray, df: pd.DataFrame, step: float = 0.07) -> tuple[np.ndarray, np.ndarray]:
    """Points that share an integer position (x, y) spread on a small grid around it (ordered by kind,
    family and λ), so that each run is one visible dot."""
    order = np.lexsort(
        (df["lam"].to_numpy(), [_family_order(f) for f in df["family"]], [_kind_order(k) for k in df["kind"]])
    )
    ox, oy = np.zeros(len(x)), np.zeros(len(y))
    cells: dict[tuple[float, float], list[int]] = {}
    for i in order:
        cells.setdefault((x[i], y[i]), []).append(i)
    for members in cells.values():
        side = int(np.ceil(np.sqrt(len(members))))
        for n, i in enumerate(members):
            ox[i] = (n % side - (side - 1) / 2) * step
            oy[i] = (n // side - (side - 1) / 2) * step
    return x + ox, y + oy


def _latent_limits(*arrays) -> tuple[float, float]:
    """One symmetric limit for latent scatters, so that a collapsed component looks collapsed."""
    v = np.concatenate([np.abs(np.asarray(a, float)).ravel() for a in arrays if a is not None and len(a)])
    v = v[np.isfinite(v)]
    m = float(np.percentile(v, 99.5)) * 1.1 if len(v) else 1.0
    return (-m, m)


def component_variances(ax, r, rep, floor_label: str) -> None:
    """Bars of the whitened (y) and un-whitened (ŷ) latents' variance per component (the first 16),
    with the shrinkage floor σ² + λ of a stabilized run (docs/theory.md §2.5)."""
    var_y, var_h = np.var(r["y"], 0), np.var(r["yhat"], 0)
    n = min(len(var_h), 16)
    kk = np.arange(1, n + 1)
    ax.bar(kk - 0.2, var_y[:n], width=0.4, color="0.6", label="whitened y")
    ax.bar(kk + 0.2, var_h[:n], width=0.4, color=fs.color(rep["kind"], rep["lam"]), label="un-whitened ŷ")
    if rep["lam"] > 0:
        fs.hline(ax, rep["lam"] + rep["noise"] ** 2, floor_label, role="prediction")
    ax.set(yscale="log", xticks=kk, xlabel="component", ylabel="variance", title="variance per component")
    fs.legend(ax, loc="upper right")


def latents(ax_y, ax_h, run: dict, title_suffix: str = "") -> None:
    """Whitened latents y and un-whitened components ŷ of one run on the same square axes (the same
    limits for both), the first component against the last (the least significant: collapsed where
    the data has no extent), coloured by the data's manifold coordinate."""
    y, h = np.asarray(run["y"], float), np.asarray(run["yhat"], float)
    last_y, last_h = y.shape[1], h.shape[1]
    y2 = y[:, [0, last_y - 1]] if last_y > 1 else first_two(y)
    h2 = (h[:, [0, last_h - 1]] if last_h > 1 else first_two(h)) - np.nanmean(h, 0)[[0, max(last_h - 1, 0)]]
    lim = _latent_limits(y2, h2)
    c = run.get("c")
    sub = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
    for ax, pts, title, labels in (
        (ax_y, y2, "whitened latents y", ("y₁", f"y{last_y}".translate(sub))),
        (ax_h, h2, "un-whitened ŷ", ("ŷ₁", f"ŷ{last_h}".translate(sub))),
    ):
        vals, side = fs.clip(pts, lim)
        ax.scatter(*vals.T, c=c, s=3, cmap="viridis", rasterized=True)
        if side.any():
            fs.note(
                ax, f"{int(side.any(1).sum())} point(s) beyond ±{lim[1]:.3g} on the edge", loc="lower right", fontsize=6
            )
        ax.set(xlim=lim, ylim=lim, aspect="equal", title=title + title_suffix, xlabel=labels[0], ylabel=labels[1])


def components(runs: pd.DataFrame, pm: dict, npz: dict, floor_factor: float | None):
    """Claim 5: (top) one S-curve run, data, whitened latents y and un-whitened components ŷ on the
    same axes, and the variance of each; (bottom) every stabilized run on a manifold, each component's
    median local std over the shrinkage floor by its rank relative to the true intrinsic dimension,
    and the estimated against the true intrinsic dimension."""
    fig, _ = fs.figure(
        fs.MAIN, "Claim 5: un-whitened components are scaled by manifold significance and show the intrinsic dimension"
    )
    grid = fig.add_gridspec(2, 4, height_ratios=[1, 1.15])
    top = [fig.add_subplot(grid[0, i]) for i in range(4)]
    ex_rows = runs[[k in npz for k in zip(runs["experiment"], runs["stabilizer"], runs["seed"], strict=True)]]
    scurve = ex_rows[ex_rows["data_kind"] == "scurve"]
    rep = representative(scurve if len(scurve) else ex_rows)
    if rep is not None:
        r = npz[(rep["experiment"], rep["stabilizer"], rep["seed"])]
        xy, (la, lb) = plane(r["x"])
        top[0].scatter(*xy.T, c=r["c"], s=3, cmap="viridis", rasterized=True)
        top[0].set(title=f"data: {rep['experiment']} / {rep['stabilizer']}", xlabel=la, ylabel=lb, aspect="equal")
        latents(top[1], top[2], r)
        component_variances(top[3], r, rep, "σ² + λ: the shrinkage floor")
    else:
        for ax in top[1:]:
            ax.axis("off")
        _nothing(top[0], "no run with per-point components here")
    a = fig.add_subplot(grid[1, :2])
    b = fig.add_subplot(grid[1, 2:])
    st = runs[(runs["kind"] != "none") & (runs["lam"] > 0)].reset_index(drop=True)
    rows = []
    for r in st.itertuples():
        if (
            isinstance(r.comp_scale_median, list)
            and np.isfinite(r.comp_floor)
            and r.comp_floor > 0
            and r.intrinsic_dim is not None
            and np.isfinite(r.intrinsic_dim)
        ):
            for j, s in enumerate(r.comp_scale_median):
                rows.append(
                    {
                        "kind": r.kind,
                        "lam": r.lam,
                        "family": r.family,
                        "run": (r.experiment, r.stabilizer, r.seed),
                        "rank": j + 1 - int(r.intrinsic_dim),
                        "y": s / r.comp_floor,
                    }
                )
    prof = pd.DataFrame(rows, columns=["kind", "lam", "family", "run", "rank", "y"])
    if len(prof):
        lim = fs.robust_limits(prof["y"], log=True, include=[1.0])
        for _run, g in prof.groupby("run", sort=False):
            yv, _ = fs.clip(g["y"], lim)
            a.plot(g["rank"], yv, color=fs.color(g["kind"].iloc[0], g["lam"].iloc[0]), lw=0.8, alpha=0.6)
        _points(a, prof, prof["rank"] + _offsets(prof, 0.3), prof["y"], ylim=lim)
        floor = f"{floor_factor:g}" if floor_factor else "floor factor ×"
        fs.hline(a, 1.0, f"shrinkage floor {floor}·√(σ² + λ) (components.floor_factor)", role="threshold")
        fs.vline(a, 0.5, "true intrinsic dimension (tangent ≤ 0 < normal)", role="chance")
        ranks = sorted(prof["rank"].unique())
        a.set_xticks(ranks, [f"{r:+d}" if r else "0" for r in ranks])
        a.set(yscale="log", ylim=lim)
        fs.legend(a, loc="upper right")
    else:
        _nothing(a, "no stabilized run on a manifold of known intrinsic dimension")
    a.set(
        title="component scales over the floor, every stabilized run",
        xlabel="component rank − true intrinsic dimension",
        ylabel="median local std / floor",
    )
    est = st[np.isfinite(st["comp_intrinsic_dim"].astype(float)) & st["intrinsic_dim"].notna()].reset_index(drop=True)
    if len(est):
        true = est["intrinsic_dim"].astype(float).to_numpy()
        got = est["comp_intrinsic_dim"].astype(float).to_numpy()
        tx, ty = _swarm(true, got, est)
        lo, hi = min(true.min(), got.min()) - 0.6, max(true.max(), got.max()) + 0.6
        _points(b, est, tx, ty, s=28)
        fs.identity(b, lo, hi, label="estimate = truth")
        hit = int((np.round(got) == true).sum())
        fs.note(b, f"{hit} of {len(est)} runs on the diagonal (one dot per run)", loc="lower right")
        ticks = np.arange(np.ceil(lo), np.floor(hi) + 1)
        b.set(xlim=(lo, hi), ylim=(lo, hi), xticks=ticks, yticks=ticks)
        fs.legend(b, loc="upper left")
    else:
        _nothing(b, "no intrinsic-dimension estimate in the components summary")
    b.set(
        title="estimated intrinsic dimension (components above the floor)",
        xlabel="true intrinsic dimension",
        ylabel="estimated intrinsic dimension",
    )
    style_legend(fig, st if len(st) else runs)
    return fig


def toys(runs: pd.DataFrame, npz: dict, max_columns: int = 6):
    """Claim 5 on every other manifold: one column per data set (up to ``max_columns``; one run each):
    the data, its whitened latents y and its un-whitened components ŷ, the last two on the same axes."""
    have = runs[[k in npz for k in zip(runs["experiment"], runs["stabilizer"], runs["seed"], strict=True)]]
    groups = _groups(have) if len(have) else []
    n_cols = min(max(len(groups), 3), max_columns)  # the figure's size is fixed; the panels share it
    fig, axes = fs.figure(
        fs.MAIN,
        "Claim 5 on other manifolds: whitened latents y against un-whitened components ŷ (first against last)",
        nrows=3,
        ncols=n_cols,
        squeeze=False,
    )
    for j in range(n_cols):
        col = axes[:, j]
        if j >= len(groups):
            for ax in col:
                ax.axis("off")
            continue
        rep = representative(have[have["dataset"] == groups[j]])
        r = npz[(rep["experiment"], rep["stabilizer"], rep["seed"])]
        xy, (la, lb) = plane(r["x"])
        col[0].scatter(*xy.T, c=r["c"], s=3, cmap="viridis", rasterized=True)
        col[0].set(
            title=f"{groups[j]}\n{rep['experiment']} / {rep['stabilizer']}", xlabel=la, ylabel=lb, aspect="equal"
        )
        latents(col[1], col[2], r)
    if not groups:
        fs.note(axes[1, 0], "no run with components on a manifold other than the S-curve")
    elif len(groups) > n_cols:
        fs.note(axes[2, -1], f"+{len(groups) - n_cols} more data sets in the gallery", loc="lower right")
    return fig


# ----------------------------------------------------------------------------- the gap


def _epsilons(pm: dict, ids) -> dict[float, list[str]]:
    """The ``epsilon`` of claims ``ids`` (the largest gap at which a run counts as at the optimum), by value."""
    out: dict[float, list[str]] = {}
    for cid in ids:
        eps = (pm.get(cid) or {}).get("epsilon")
        if isinstance(eps, int | float) and not isinstance(eps, bool) and eps > 0:
            out.setdefault(float(eps), []).append(cid)
    return out


def gap(runs: pd.DataFrame, pm: dict):
    """Geometric error against the run's gap to the optimum (nats, log x): the tangent angle, the
    normal-std factor and the whitening error, each with its claim's threshold. Where the analysis
    summary has no gap (``gap_nats``), the panels say so."""
    fig, axes = fs.figure(
        fs.WIDE,
        "Is the error the geometry's or the optimizer's? Geometric error against the gap to the optimum",
        ncols=3,
        sharex=True,
    )
    g = runs["gap_nats"].astype(float) if "gap_nats" in runs else pd.Series(np.nan, index=runs.index)
    known = np.isfinite(g.to_numpy())
    ratio = runs["normal_std_ratio"].astype(float).to_numpy()
    factor = np.where(ratio > 0, np.maximum(ratio, 1 / np.where(ratio > 0, ratio, 1)), np.nan)
    wtw = np.where(runs["kind"] == "none", runs["wtw_relerr_unshrunk"], runs["wtw_relerr"]).astype(float)
    panels = [
        (
            runs["tangent_angle_true_deg_median"].astype(float).to_numpy(),
            "(a) claim 2: tangent angle",
            "median angle to the analytic tangent space (°)",
            ["local_covariance_oracle"],
            False,
            "°",
        ),
        (
            factor,
            "(b) claim 4: normal std",
            "normal std factor max(r, 1/r), r = measured / √(σ² + λ)",
            ["normal_std_shrinkage"],
            True,
            "",
        ),
        (
            wtw,
            "(c) claim 1: whitening",
            "‖WᵀW − target‖ / ‖target‖",
            ["linear_whitening", "shrinkage_closed_form"],
            True,
            "",
        ),
    ]
    gv = g.to_numpy()
    pos = gv[known & (gv > 0)]
    eps = [e for _, _, _, ids, _, _ in panels for e in _epsilons(pm, ids)]
    xlim = fs.robust_limits(pos, log=True, include=eps) if len(pos) else None
    for ax, (y, title, label, ids, log, unit) in zip(axes, panels, strict=True):
        ok = known & np.isfinite(y)
        ax.set(title=title, ylabel=label, xlabel="gap to the optimum (nats, log)")
        if not ok.any():
            why = (
                "no run with both a gap to the optimum (gap_nats) and this error"
                if known.any()
                else "no gap to the optimum (gap_nats) in the analysis summary yet"
            )
            _nothing(ax, why)
            continue
        sub = runs[ok].reset_index(drop=True)
        thr = [pm[i]["threshold"] for i in ids if i in pm and isinstance(pm[i].get("threshold"), int | float)]
        ylim = fs.robust_limits(y[ok], log=log, include=thr)
        if "gap_se" in sub:
            se = sub["gap_se"].astype(float).to_numpy()
            xs = gv[ok]
            good = np.isfinite(se) & (xs > 0)
            if good.any():
                ax.errorbar(
                    xs[good], np.clip(y[ok][good], *ylim), xerr=se[good], fmt="none", ecolor="0.6", lw=0.8, zorder=2
                )
        _points(ax, sub, gv[ok], y[ok], xlim=xlim, ylim=ylim)
        _thresholds(ax, pm, ids, unit=unit)
        for value, names in _epsilons(pm, ids).items():
            if xlim is None or xlim[0] <= value <= xlim[1]:
                fs.vline(
                    ax, value, f"ε of {', '.join(names)} ({value:g} nats): at the optimum to its left", role="bound"
                )
        ax.set(xscale="log", yscale="log" if log else "linear", ylim=ylim)
        if xlim:
            ax.set_xlim(xlim)
        fs.note(
            ax,
            f"{int((~known & np.isfinite(y)).sum())} run(s) without a known gap left out",
            loc="lower right",
            fontsize=7,
        )
        fs.legend(ax, loc="upper left")
    style_legend(fig, runs[known] if known.any() else runs)
    return fig


# ----------------------------------------------------------------------------- MNIST (claims 3, 5)

#: local directions shown per digit, digit classes shown
MNIST_DIRS = 2
MNIST_CLASSES = 10
#: a variance at most this fraction of its spectrum's largest is zero (float64 round-off of an exact
#: zero: MNIST's pixels that are constant over the data have none, nor do a linear flow's latents
#: along them): a log axis has no place for it, so a spectrum is drawn down to its last non-zero value
ZERO_VARIANCE = 1e-12


def _nonzero(v: np.ndarray) -> np.ndarray:
    """A spectrum sorted in decreasing order, less its zero variances (:data:`ZERO_VARIANCE`)."""
    top = v.max() if v.size else 0.0
    return v[v > ZERO_VARIANCE * top] if top > 0 else v[:0]


def _mnist_spectrum(ax, spectra: pd.DataFrame, runs: pd.DataFrame) -> None:
    from matplotlib.lines import Line2D

    meta = runs.drop_duplicates(["experiment", "stabilizer", "seed"]).set_index(["experiment", "stabilizer", "seed"])
    values, zeros = [], []
    for (exp, stab, seed), g in spectra.groupby(["experiment", "stabilizer", "seed"], sort=False):
        known = (exp, stab, seed) in meta.index
        kind, lam, family = meta.loc[(exp, stab, seed), ["kind", "lam", "family"]] if known else ("?", 0.0, "?")
        vy, vh = np.sort(g.var_y.to_numpy())[::-1], np.sort(g.var_yhat.to_numpy())[::-1]
        zeros.append(len(vh) - len(vh := _nonzero(vh)))
        vy = _nonzero(vy)
        # the flow family's marker every 25 components: the families' spectra differ in shape
        style = {"color": fs.color(kind, lam), "marker": fs.marker(family), "markevery": 25, "ms": 3.5}
        ax.plot(np.arange(1, len(vh) + 1), vh, lw=1.4, **style)
        ax.plot(np.arange(1, len(vy) + 1), vy, lw=1.0, ls="--", **style)
        values += [vh, vy]
    first = spectra[spectra.experiment == spectra.experiment.iloc[0]]
    pca = np.sort(first.groupby("component").pca_eigenvalue.first().to_numpy())[::-1]
    pca_zeros = len(pca) - len(pca := _nonzero(pca))
    ax.plot(np.arange(1, len(pca) + 1), pca, color="black", ls=":", lw=1.5)
    lim = fs.robust_limits(np.concatenate(values + [pca]), log=True)
    if lim:
        ax.set_ylim(max(lim[0], 1e-8), lim[1])
    if pca_zeros or any(zeros):
        text = f"not drawn (zero variance):\n{pca_zeros} global PCA eigenvalues\n(pixels constant in the data)"
        text += f",\nup to {max(zeros)} per run" if any(zeros) else ""
        fs.note(ax, text, loc="lower left", fontsize=7)
    ax.set(yscale="log", xlabel="component (sorted)", ylabel="variance", title="variance spectra")
    handles = [
        Line2D([], [], color="0.3", lw=1.4, label="un-whitened ŷ (per run)"),
        Line2D([], [], color="0.3", lw=1.0, ls="--", label="whitened y (per run)"),
        Line2D([], [], color="black", lw=1.5, ls=":", label="global PCA eigenvalues"),
    ]
    ax.legend(handles=handles, fontsize=7, loc="upper right")


def _mnist_run(runs: pd.DataFrame, npz: dict):
    """The weakest stabilized run (else any) of a nonlinear flow (else a linear one: its local
    directions are the same at every digit) whose directions are square images."""
    import math

    have = runs[[k in npz for k in zip(runs["experiment"], runs["stabilizer"], runs["seed"], strict=True)]]
    order = have.assign(_none=have["kind"] == "none", _linear=have["linear"]).sort_values(
        ["_linear", "_none", "lam", "seed"], kind="stable"
    )
    for r in order.itertuples():
        key = (r.experiment, r.stabilizer, r.seed)
        d = npz[key]["directions"].shape[1] if npz[key]["directions"].ndim == 3 else 0
        side = math.isqrt(d)
        if d and side * side == d and len(npz[key]["c"]):
            return key, npz[key], side
    return None, None, 0


def _image(ax, values, side, title=None, ylabel=None, diverging=True) -> None:
    v = np.asarray(values, dtype=float).reshape(side, side)
    if diverging:
        lim = np.nanmax(np.abs(v)) if np.isfinite(v).any() else 1.0
        ax.imshow(v, cmap="RdBu_r", vmin=-lim, vmax=lim)
    else:
        ax.imshow(v, cmap="gray_r", vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7, fontweight="normal")
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=7)


def mnist(spectra: pd.DataFrame, runs: pd.DataFrame, npz: dict):
    """Claims 3 and 5 on MNIST: (left) the variance spectrum of the un-whitened components, of the
    whitened latents and the global PCA eigenvalues, per run; (right) from one stabilized run, the
    global PCA directions, then per digit class an example, its local principal directions with their
    |cos| to the global ones, and the images along its top component."""
    fig, _ = fs.figure(fs.MAIN, "MNIST: un-whitened components are local, and their spectrum decays like PCA's")
    key, r, side = _mnist_run(runs, npz)
    n_steps = len(r.get("traversal_steps", np.zeros(0))) if r is not None else 0
    n_cols = 1 + MNIST_DIRS + 1 + n_steps  # digit, directions, spacer, traversal
    outer = fig.add_gridspec(1, 2, width_ratios=[1, 2.2 if key is not None else 0.01])
    ax = fig.add_subplot(outer[0, 0])
    if len(spectra):
        _mnist_spectrum(ax, spectra, runs)
    else:
        _nothing(ax, "no component spectra")
    style_legend(fig, runs)
    if key is None:
        return fig
    labels = r["c"].astype(int)
    classes = sorted(set(labels.tolist()))[:MNIST_CLASSES]
    grid = outer[0, 1].subgridspec(
        len(classes) + 1, n_cols, width_ratios=[1] * (1 + MNIST_DIRS) + [0.3] + [1] * n_steps
    )
    dirs = r["directions"]
    n_dirs = min(MNIST_DIRS, dirs.shape[2])
    axes = r.get("pca_axes")
    steps = r.get("traversal_steps", np.zeros(0))
    trav_points = list(r.get("traversal_points", np.zeros(0, dtype=int)))
    trav = r.get("traversals")
    for k in range(n_dirs if axes is not None else 0):
        _image(fig.add_subplot(grid[0, 1 + k]), axes[k], side, title=f"global PC{k + 1}")
    for row, lab in enumerate(classes, start=1):
        p = int(np.flatnonzero(labels == lab)[0])
        first = row == 1
        _image(fig.add_subplot(grid[row, 0]), r["x"][p], side, "example" if first else None, f"digit {lab}", False)
        for k in range(n_dirs):
            a = fig.add_subplot(grid[row, 1 + k])
            _image(a, dirs[p, :, k], side, title=f"local v{k + 1}" if first else None)
            if axes is not None:
                a.set_xlabel(f"|cos PC{k + 1}| {abs(dirs[p, :, k] @ axes[k]):.2f}", fontsize=6)
        if trav is not None and p in trav_points:
            imgs = trav[trav_points.index(p)]
            for j, t in enumerate(steps):
                title = f"t = {t:+g}" if first else None
                _image(fig.add_subplot(grid[row, 2 + MNIST_DIRS + j]), imgs[j], side, title=title, diverging=False)
    fig.text(
        0.99,
        0.005,
        f"right: {key[0]} / {key[1]} / seed {key[2]}: local directions v₁, v₂ and images g(f(x) + tσu₁) along the top component",
        ha="right",
        fontsize=8,
    )
    return fig
