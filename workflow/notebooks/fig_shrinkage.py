# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Shrinkage on manifolds: the normal-direction local std against √(σ² + λ) (paper claim 4)
# Every experiment of a nonlinear flow on a toy manifold with known tangent spaces (selected by
# these properties, `paths.NOTEBOOK_SHOWS`). Left: per run with the Jacobian penalty or noise
# injection, the median over validation points of the flow's local std along the analytic normal
# space against the first-order prediction √(σ² + λ) (docs/theory.md Eq. (15)), with the line y = x
# and the factor-2 band of the claim `normal_std_shrinkage`. Right: for every strength sweep, the
# median local std of each un-whitened component against λ: tangent components stay flat, normal
# ones follow √λ (docs/theory.md Eq. (16), the claim `intrinsic_dimension_sweep`).

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from flowtheory.pipeline import storage
from flowtheory.stages import figures

smk = figures.context(globals(), "fig_shrinkage")
shown = smk.params.experiments
analysis = storage.load_json(smk.input.analysis_summary)
comps = storage.load_json(smk.input.components_summary)
rows, sweep = [], []
for exp, props in shown.items():
    family = props["flow"]["family"]
    for stab in props["runs"]:
        kind = props["stabilizers"][stab]["kind"]
        for m in analysis.get(exp, {}).get(stab, {}).values():
            if kind in ("jacobian", "noise") and "normal_std_median" in m:
                rows.append(
                    {
                        "experiment": exp,
                        "family": family,
                        "kind": kind,
                        "noise": m.get("noise", 0.0),
                        "predicted": m["normal_std_predicted"],
                        "measured": m["normal_std_median"],
                    }
                )
        if props["experiment"]["sweep"] and kind == "jacobian":
            for m in comps.get(exp, {}).get(stab, {}).values():
                for j, v in enumerate(m["scale_median"]):
                    sweep.append({"experiment": exp, "component": j + 1, "lam": m["lam"], "std": v})
df = pd.DataFrame(rows, columns=["experiment", "family", "kind", "noise", "predicted", "measured"])
sw = pd.DataFrame(sweep, columns=["experiment", "component", "lam", "std"])

# %%
if len(df):
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    df["data"] = np.where(df.noise > 0, "noisy (σ = " + df.noise.astype(str) + ")", "noiseless")
    sns.scatterplot(df, x="predicted", y="measured", hue="family", style="data", ax=ax[0], s=30)
    lo, hi = 0.5 * df[["predicted", "measured"]].min().min(), 2 * df[["predicted", "measured"]].max().max()
    grid = np.array([lo, hi])
    ax[0].plot(grid, grid, "k-", lw=1, label="y = x")
    ax[0].fill_between(grid, grid / 2, grid * 2, color="0.85", zorder=0, label="factor 2")
    ax[0].set(xscale="log", yscale="log", xlabel="√(σ² + λ)", ylabel="flow's normal local std (median)")
    ax[0].legend(fontsize=6)
    if len(sw):
        sw = sw.groupby(["experiment", "component", "lam"], as_index=False)["std"].median()
        sns.lineplot(sw, x="lam", y="std", hue="experiment", style="component", marker="o", ax=ax[1])
        lam = np.sort(sw.lam.unique())
        ax[1].plot(lam, np.sqrt(lam), "k--", label="√λ")
        ax[1].set(xscale="log", yscale="log", xlabel="λ (Jacobian penalty)", ylabel="component local std (median)")
        ax[1].legend(fontsize=5, ncol=2)
    else:
        ax[1].text(0.5, 0.5, "no strength sweep in this config", ha="center", va="center", transform=ax[1].transAxes)
        ax[1].set_axis_off()
    fig.tight_layout()
else:
    fig = figures.nothing("fig_shrinkage")
figures.save(fig, smk.output.png, smk.output.pdf)
