# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Local covariance of the flow against the kNN covariance (paper claim 2)
# One column per experiment with a nonlinear flow on a manifold of known intrinsic dimension that
# is not a strength sweep (selected by these properties, `paths.NOTEBOOK_SHOWS`). Top: ellipses of
# the flow's local covariance (J_fᵀJ_f)⁻¹ (blue) and of the k-nearest-neighbour covariance (red),
# both drawn at 2 standard deviations after scaling each to unit trace, at a few points of a
# stabilized run (the x₁–x₂ plane in 2-D; the x₁–x₃ plane, where the curves bend, in 3-D; above 3-D
# the points on their two leading PCA axes, without ellipses). Bottom: distribution over points of
# the angle between the two estimated tangent spaces, per run.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import Ellipse

from flowtheory.stages import figures

smk = figures.context(globals(), "fig_covariance")
shown = smk.params.experiments
runs = figures.load_runs(smk.params.analysis, "analysis")
exps = [e for e in shown if any(k[0] == e for k in runs)]


def ellipse(cov, at, color):
    vals, vecs = np.linalg.eigh(cov / np.trace(cov))
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    w, h = 2 * 2 * 0.3 * np.sqrt(np.maximum(vals[::-1], 1e-12))
    return Ellipse(at, w, h, angle=angle, fill=False, color=color, lw=1)


def column(ax_top, ax_bottom, exp):
    key = min((k for k in runs if k[0] == exp), key=lambda k: (k[1] == "none", k))
    p = runs[key]
    d = sum(c.startswith("x") and c[1:].isdigit() for c in p.columns)
    if d:
        xy, (la, lb) = figures.plane(p[[f"x{i}" for i in range(d)]].to_numpy())
        ax_top.scatter(*xy.T, s=2, color="0.7")
        a, b = (0, d - 1) if d > 1 else (0, 0)
        if 1 < d <= 3 and f"cov_flow_{a}{b}" in p:  # full covariances are kept up to 3-D
            for _, row in p.iloc[:: max(len(p) // 25, 1)].iterrows():
                for lab, color in (("flow", "C0"), ("knn", "C3")):
                    cov = np.array([[row[f"cov_{lab}_{i}{k}"] for k in (a, b)] for i in (a, b)])
                    ax_top.add_patch(ellipse(cov, (row[f"x{a}"], row[f"x{b}"]), color))
        ax_top.set(title=f"{exp} ({key[1]})", aspect="equal", xlabel=la, ylabel=lb)
    else:
        ax_top.axis("off")
        ax_top.text(0.5, 0.5, f"{exp}: no per-point coordinates (d > 16)", ha="center", va="center")
    col = next((c for c in ("tangent_angle_knn_deg", "lead_angle_knn_deg") if c in p), None)
    if col is None:
        ax_bottom.axis("off")
        ax_bottom.text(0.5, 0.5, "no angles measured", ha="center", va="center")
        return
    frames = [runs[k].assign(run=f"{k[1]}/seed{k[2]}") for k in sorted(runs) if k[0] == exp]
    sns.histplot(pd.concat(frames), x=col, hue="run", element="step", fill=False, bins=30, ax=ax_bottom)
    ax_bottom.set(xlabel="tangent-space angle, flow vs kNN (degrees)")


# %%
if exps:
    fig, axes = plt.subplots(2, len(exps), figsize=(4.5 * len(exps), 8), squeeze=False)
    for j, exp in enumerate(exps):
        column(axes[0, j], axes[1, j], exp)
    fig.tight_layout()
else:
    fig = figures.nothing("fig_covariance")
figures.save(fig, smk.output.png, smk.output.pdf)
