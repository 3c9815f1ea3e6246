# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Local covariance of the flow against the kNN covariance (paper claim 2)
# Top: ellipses of the flow's local covariance (J_fᵀJ_f)⁻¹ (blue) and of the k-nearest-neighbour
# covariance (red), both drawn at 2 standard deviations after scaling each to unit trace, at a few
# points (the x₁–x₂ plane in 2-D; the x₁–x₃ plane, where the curves bend, in 3-D). Bottom: distribution over points of the angle between the two
# estimated tangent spaces, per run.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import Ellipse

from flowtheory.stages import figures

smk = figures.context(globals(), "fig_covariance")
runs = figures.load_runs(smk.input.analysis, "analysis")
exps = [e for e in ["circle_mlp", "scurve_mlp", "swissroll_mlp"] if any(k[0] == e for k in runs)]


def ellipse(cov, at, color):
    vals, vecs = np.linalg.eigh(cov / np.trace(cov))
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    w, h = 2 * 2 * 0.3 * np.sqrt(np.maximum(vals[::-1], 1e-12))
    return Ellipse(at, w, h, angle=angle, fill=False, color=color, lw=1)


# %%
fig, axes = plt.subplots(2, max(len(exps), 1), figsize=(4.5 * max(len(exps), 1), 8), squeeze=False)
for j, exp in enumerate(exps):
    key = min((k for k in runs if k[0] == exp), key=lambda k: (k[1] == "none", k))
    p = runs[key]
    ax = axes[0, j]
    a, b = (0, 2) if "x2" in p else (0, 1)
    ax.scatter(p[f"x{a}"], p[f"x{b}"], s=2, color="0.7")
    for _, row in p.iloc[:: max(len(p) // 25, 1)].iterrows():
        for lab, color in (("flow", "C0"), ("knn", "C3")):
            cov = np.array([[row[f"cov_{lab}_{i}{k}"] for k in (a, b)] for i in (a, b)])
            ax.add_patch(ellipse(cov, (row[f"x{a}"], row[f"x{b}"]), color))
    ax.set(title=f"{exp} ({key[1]})", aspect="equal", xlabel=f"x{a + 1}", ylabel=f"x{b + 1}")
    col = "tangent_angle_knn_deg" if "tangent_angle_knn_deg" in p else "lead_angle_knn_deg"
    frames = [runs[k].assign(run=f"{k[1]}/seed{k[2]}") for k in sorted(runs) if k[0] == exp]
    sns.histplot(pd.concat(frames), x=col, hue="run", element="step", fill=False, bins=30, ax=axes[1, j])
    axes[1, j].set(xlabel="tangent-space angle, flow vs kNN (degrees)")
fig.tight_layout()
figures.save(fig, smk.output.png, smk.output.pdf)
