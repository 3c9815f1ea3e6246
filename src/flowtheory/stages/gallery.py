"""One page per experiment, of a fixed size: the detail behind the main figures.

:func:`page` draws, for one experiment:

* training NLL per epoch of every run, with the optimum's level where the analysis knows the run's
  gap to it (``gap_nats``: the level is the final NLL minus the gap), on robust limits;
* the largest singular value of J_f per epoch with each stabilized run's bound ``bound_factor/√λ``
  (``paper_map.yaml``, the claims ``regularized_stable_*``);
* the claims' verdicts on this experiment (``results/claims.json``);
* one run's data, whitened latents y and un-whitened components ŷ (y and ŷ on the same axes) and the
  variance per component;
* local-covariance ellipses of the flow against the kNN covariance and the exact tangent space, and
  histograms of the tangent angles and of the normal-direction std against √(σ² + λ);
* a table of every run's status and final numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from flowtheory.stages import figstyle as fs
from flowtheory.stages import paperfigs, scorecard
from flowtheory.stages.figures import plane

__all__ = ["DPI", "page", "tangents"]

DPI = fs.GALLERY_DPI
#: the page's grid in figure fractions, fixed: the page has one size and one arrangement, so its
#: margins need not be measured (constrained layout took half of a page's time to draw;
#: docs/measurements.md#figure-jobs). Room for the suptitle at the top and the legend of stabilizer
#: kinds at the bottom; the space between panels holds their titles and tick labels.
PAGE_MARGINS = {"left": 0.045, "right": 0.985, "bottom": 0.075, "top": 0.925, "wspace": 0.27, "hspace": 0.36}


def _near_levels(levels: np.ndarray, nll: np.ndarray) -> np.ndarray:
    """Which optimum levels (final NLL − gap) the NLL panel draws: those within three times the
    curves' robust range of it. A level further off (a gap of 10⁵ nats, from a flow whose density
    misses a few of the truth's samples by far) would flatten every curve to a line; it is named in
    a note instead."""
    levels = np.asarray(levels, dtype=float)
    lim = fs.robust_limits(nll)
    if lim is None:
        return np.isfinite(levels)
    span = lim[1] - lim[0]
    with np.errstate(invalid="ignore"):
        return np.isfinite(levels) & (levels >= lim[0] - 3 * span) & (levels <= lim[1] + 3 * span)


def _curves(ax, history: pd.DataFrame, runs: pd.DataFrame, column: str, log: bool, include=()):
    """Every run's ``column`` per epoch on robust limits (that also show ``include``)."""
    meta = runs.drop_duplicates(["stabilizer", "seed"]).set_index(["stabilizer", "seed"])
    vals = history[column].astype(float).to_numpy()
    lim = fs.robust_limits(vals, log=log, include=include)
    for (stab, seed), h in history.groupby(["stabilizer", "seed"], sort=False):
        if (stab, seed) not in meta.index:
            continue
        m = meta.loc[(stab, seed)]
        h = h[np.isfinite(h[column].astype(float))]
        if not len(h):
            continue
        y, side = fs.clip(h[column], lim)
        ax.plot(h["epoch"], y, color=fs.color(m["kind"], m["lam"]), lw=1.3, label=f"{stab} (seed {seed})")
        if side.any():
            ax.scatter(
                h["epoch"][side != 0],
                y[side != 0],
                marker="^",
                facecolor="none",
                edgecolor=fs.color(m["kind"], m["lam"]),
                s=18,
                label=fs.CLIPPED_LABEL,
                zorder=4,
                clip_on=False,
            )
        if m["status"] == "diverged":
            ax.scatter(
                h["epoch"].iloc[-1],
                y[-1],
                marker="x",
                color="black",
                s=50,
                zorder=5,
                label="last finite epoch (diverged)",
            )
    if lim:
        ax.set_ylim(lim)
    if log:
        ax.set_yscale("log")
    return lim


#: a verdict as the gallery writes it (short enough for its column)
_VERDICT_LABELS = {
    "pass": "PASS",
    "fail": "FAIL",
    "not_at_optimum": "NOT AT OPT.",
    "cannot_reach": "CAPACITY",
    "not_run": "NOT RUN",
    "na": "N/A",
}


def _verdicts(ax, records: list[dict], experiment: str, pm: dict) -> None:
    ax.axis("off")
    ax.set_title("verdicts of the claims on this experiment", fontsize=10)
    rows = [(r, r["experiments"][experiment]) for r in records if experiment in (r.get("experiments") or {})]
    if not rows:
        fs.note(ax, "no claim applies to this experiment" if records else "results/claims.json not available")
        return
    y = 0.98
    step = min(0.09, 0.95 / len(rows))
    size = 8 if step >= 0.07 else 6.5
    for r, res in rows:
        cat = scorecard.category(res)
        colour = {"pass": "#1a9850", "fail": "#d73027", "not_at_optimum": "#b8860b", "cannot_reach": "#5e3c99"}.get(
            cat, "0.4"
        )
        m = scorecard.margin(res, r, pm.get(r["id"]))
        measured = res.get("measured")
        shown = f"{measured:.3g}" if isinstance(measured, int | float) and measured is not None else "n/a"
        thr = res.get("threshold")
        thr = f"{thr:.3g}" if isinstance(thr, int | float) else str(thr)
        direction = res.get("direction") or r.get("direction") or fs.direction(pm.get(r["id"]))
        op = {"<=": "≤", ">=": "≥", "==": "="}.get(direction or "", "vs")
        margin = f", margin {m:+.0%}" if math.isfinite(m) and abs(m) < 10 else ""
        metric = res.get("metric") or r.get("metric") or "measured"
        label = _VERDICT_LABELS.get(cat, str(res.get("verdict", "?")))
        if res.get("fragile"):  # a round-off perturbation flipped it (results/chaos.json): as in claims.md
            ax.text(
                0.0, y - step * 0.45, "(fragile)", color=colour, fontsize=size - 1, transform=ax.transAxes, va="top"
            )
        ax.text(
            0.0,
            y,
            label,
            color=colour,
            fontweight="bold",
            fontsize=size,
            transform=ax.transAxes,
            va="top",
        )
        ax.text(
            0.25, y, f"{r['id']} (claim {r.get('paper_claim', '?')})", fontsize=size, transform=ax.transAxes, va="top"
        )
        ax.text(
            0.25,
            y - step * 0.45,
            f"{metric} {shown} {op} {thr}{margin}",
            fontsize=size - 1,
            color="0.35",
            transform=ax.transAxes,
            va="top",
        )
        y -= step


def _run_table(ax, runs: pd.DataFrame) -> None:
    ax.axis("off")
    ax.set_title("runs", fontsize=10)
    if not len(runs):
        fs.note(ax, "no run in the summaries")
        return

    def f(v, fmt="{:.3g}"):
        return fmt.format(v) if isinstance(v, int | float) and np.isfinite(v) else "–"

    cells = [
        [
            r.stabilizer,
            str(r.seed),
            r.status or "?",
            f(r.final_train_nll),
            f(r.final_valid_nll),
            f(r.smax_last),
            f(r.gap_nats),
        ]
        for r in runs.itertuples()
    ][:14]
    table = ax.table(
        cellText=cells,
        colLabels=["stabilizer", "seed", "status", "train NLL", "valid NLL", "s_max", "gap (nats)"],
        loc="upper center",
        cellLoc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.auto_set_column_width(list(range(len(cells[0]))))
    table.scale(1.0, 1.25)
    if len(runs) > 14:
        fs.note(ax, f"+{len(runs) - 14} more runs in metrics/train.json", loc="lower left")


def tangents(data_paths: list[str]) -> np.ndarray | None:
    """The exact tangent bases of the analysed validation points (``tangent_valid`` of the data set,
    (n, d, k)); None when the data set has none or cannot be read."""
    from flowtheory.pipeline import storage

    for path in data_paths or []:
        try:
            data = storage.load_dataset(path)
        except storage.DataError:
            return None
        return np.asarray(data["tangent_valid"]) if "tangent_valid" in data else None
    return None


def page(
    experiment: str,
    props: dict,
    runs: pd.DataFrame,
    history: pd.DataFrame,
    npz: dict,
    points: dict,
    tangents: np.ndarray | None,
    records: list[dict],
    pm: dict,
    knn_k: int | None = None,
):
    """The gallery page of one experiment (see the module docstring)."""
    ds = props["dataset"]
    k = ds.get("intrinsic_dim")
    noise = f", noise σ = {ds['noise']:g}" if ds.get("noise") else ""
    title = (
        f"{experiment}: {props['flow']['family']} flow on {ds['kind']} (d = {ds['d']}, intrinsic dimension "
        f"{k if k is not None else 'unknown'}{noise}), {props['experiment']['epochs']} epochs"
    )
    fig, _ = fs.figure(fs.GALLERY, title, layout="none")
    grid = fig.add_gridspec(3, 4, **PAGE_MARGINS)
    hist = history[history["experiment"] == experiment] if len(history) else history

    # row 1: training curves and verdicts
    ax = fig.add_subplot(grid[0, 0:2])
    if len(hist):
        gap = runs["gap_nats"].astype(float).to_numpy()
        levels = runs["final_train_nll"].astype(float).to_numpy() - gap
        near = _near_levels(levels, hist["train_nll"].astype(float).to_numpy())
        _curves(ax, hist, runs, "train_nll", log=False, include=levels[near])
        first, far = True, []
        for r, level, shown in zip(runs.itertuples(), levels, near, strict=True):
            if shown:
                label = "optimum level (final NLL − gap)" if first else None
                ax.axhline(level, color=fs.color(r.kind, r.lam), ls=":", lw=1.2, label=label)
                first = False
            elif np.isfinite(level):
                far.append(f"{r.stabilizer} (seed {r.seed}): gap {r.gap_nats:.3g} nats")
        if far:
            fs.note(ax, "optimum level far below the axis: " + "; ".join(far), loc="lower left", fontsize=7)
        fs.legend(ax, loc="upper right", ncols=2, fontsize=6)
    else:
        paperfigs._nothing(ax, "no training history")
    ax.set(title="training NLL per epoch", xlabel="epoch", ylabel="training NLL (nats)")
    ax = fig.add_subplot(grid[0, 2])
    if len(hist) and hist["smax"].notna().any():
        lim = _curves(ax, hist, runs, "smax", log=True)
        shown = set()
        for r in runs.itertuples():
            entry = next(iter(paperfigs.bound_claims(pm, r.kind).values()), None)
            if r.lam > 0 and entry and "bound_factor" in entry and r.lam not in shown:
                bound = entry["bound_factor"] / math.sqrt(r.lam)
                fs.hline(
                    ax,
                    bound,
                    f"bound of {entry['id']} ({entry['bound_factor']:g}/√λ, λ = {fs.lam_text(r.lam)})",
                    role="bound",
                    color=fs.color(r.kind, r.lam),
                )
                shown.add(r.lam)
                if lim and bound > lim[1]:
                    ax.set_ylim(lim[0], bound * 1.3)
        fs.legend(ax, loc="upper left", fontsize=6)
    else:
        paperfigs._nothing(ax, "no per-epoch s_max")
    ax.set(title="largest singular value of J_f", xlabel="epoch", ylabel="s_max(J_f) on the probe batch")
    _verdicts(fig.add_subplot(grid[0, 3]), records, experiment, pm)

    # row 2: one run's latents
    axes = [fig.add_subplot(grid[1, i]) for i in range(4)]
    have = runs[[k in npz for k in zip(runs["experiment"], runs["stabilizer"], runs["seed"], strict=True)]]
    rep = paperfigs.representative(have)
    if rep is not None:
        r = npz[(rep["experiment"], rep["stabilizer"], rep["seed"])]
        xy, (la, lb) = plane(r["x"])
        axes[0].scatter(*xy.T, c=r["c"], s=4, cmap="viridis", rasterized=True)
        axes[0].set(title=f"data ({rep['stabilizer']}, seed {rep['seed']})", xlabel=la, ylabel=lb, aspect="equal")
        paperfigs.latents(axes[1], axes[2], r)
        paperfigs.component_variances(axes[3], r, rep, "σ² + λ (shrinkage floor)")
    else:
        for a in axes:
            paperfigs._nothing(a, "no components of this experiment")

    # row 3: local covariance
    ax = fig.add_subplot(grid[2, 0])
    prep = paperfigs.representative(
        runs[[k in points for k in zip(runs["experiment"], runs["stabilizer"], runs["seed"], strict=True)]]
    )
    if prep is not None:
        key = (prep["experiment"], prep["stabilizer"], prep["seed"])
        drawn = paperfigs.ellipses(ax, points[key], prep["kind"], prep["lam"], tangent=tangents)
        if drawn:
            fs.legend(ax, loc="lower left", fontsize=6)
            ax.set_title(f"local covariance ({prep['stabilizer']}), unit trace, 2 sd", fontsize=10)
        else:
            paperfigs._nothing(ax, "no per-point coordinates (d > 16)")
    else:
        paperfigs._nothing(ax, "no analysed points")
    ax = fig.add_subplot(grid[2, 1])
    drew = False
    bins = np.linspace(0, 90, 31)
    for key, p in sorted(points.items()):  # the flow against the exact tangent space, every run
        r = runs[(runs["stabilizer"] == key[1]) & (runs["seed"] == key[2])]
        if len(r) and "tangent_angle_true_deg" in p:
            r = r.iloc[0]
            label = f"flow vs exact: {key[1]} (seed {key[2]})"
            ax.hist(
                p["tangent_angle_true_deg"].clip(0, 90),
                bins=bins,
                histtype="step",
                color=fs.color(r["kind"], r["lam"]),
                lw=1.4,
                label=label,
            )
            drew = True
    if prep is not None:  # the kNN estimate, and the flow against it, for the run of the ellipses
        p = points[(prep["experiment"], prep["stabilizer"], prep["seed"])]
        knn = f"kNN (k = {knn_k})" if knn_k else "kNN"
        for col, label, ls in (
            ("knn_tangent_angle_true_deg", f"{knn} vs exact", ":"),
            ("tangent_angle_knn_deg", f"flow vs {knn}: {prep['stabilizer']}", "--"),
        ):
            if col in p:
                ax.hist(p[col].clip(0, 90), bins=bins, histtype="step", color="black", ls=ls, lw=1.2, label=label)
                drew = True
    if drew:
        if "local_covariance_oracle" in pm:
            entry = pm["local_covariance_oracle"]
            fs.vline(ax, entry["threshold"], fs.threshold_label(entry, unit="°") + " (on the median)")
        fs.legend(ax, loc="upper right", fontsize=6)
    else:
        paperfigs._nothing(ax, "no tangent angles\n(intrinsic dimension unknown or d > 16)")
    ax.set(title="tangent-space angles over points", xlabel="angle (degrees)", ylabel="points")
    ax = fig.add_subplot(grid[2, 2])
    drew = False
    for key, p in sorted(points.items()):
        r = runs[(runs["stabilizer"] == key[1]) & (runs["seed"] == key[2])]
        if not len(r) or "normal_std" not in p:
            continue
        r = r.iloc[0]
        pred = math.sqrt(r["noise"] ** 2 + r["lam"])
        if pred <= 0:
            continue
        ratio = np.log10(p["normal_std"].to_numpy(float) / pred)
        ax.hist(
            np.clip(ratio[np.isfinite(ratio)], -2, 2),
            bins=np.linspace(-2, 2, 41),
            histtype="step",
            color=fs.color(r["kind"], r["lam"]),
            lw=1.3,
            label=f"{key[1]} (seed {key[2]})",
        )
        drew = True
    if drew:
        fs.vline(ax, 0.0, "measured = √(σ² + λ) (Eq. (15))", role="prediction")
        entry = pm.get("normal_std_shrinkage")
        if entry:
            f = math.log10(entry["threshold"])
            ax.axvspan(
                -f, f, color="0.92", zorder=0, label=f"within a factor {entry['threshold']:g} (normal_std_shrinkage)"
            )
        fs.legend(ax, loc="upper left", fontsize=6)
    else:
        paperfigs._nothing(ax, "no normal-direction std\n(no analytic tangent space, or λ = σ = 0)")
    ax.set(title="normal-direction std over points", xlabel="log₁₀(normal std / √(σ² + λ))", ylabel="points")
    _run_table(fig.add_subplot(grid[2, 3]), runs)
    handles = fs.kind_handles(runs["kind"], runs["lam"]) if len(runs) else []
    if handles:
        fig.legend(handles=handles, loc="lower center", ncols=len(handles), fontsize=8, frameon=False)
    return fig
