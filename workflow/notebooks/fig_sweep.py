# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Jacobian penalty and noise injection on one axis λ = 2α = σ² (paper claim 4)
# S-curve, MLP flow. Left: the flow's local standard deviation normal to the manifold (median of
# 1/s_max of J_f over validation points) against λ, with the shrinkage prediction √λ. Right: final
# validation NLL against λ.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from flowtheory.pipeline import storage
from flowtheory.stages import figures

smk = figures.context(globals(), "fig_sweep")
analysis = storage.load_json(smk.input.analysis_summary).get("scurve_sweep", {})
train = storage.load_json(smk.input.train_summary).get("scurve_sweep", {})
rows = []
for stab, seeds in analysis.items():
    for seed, m in seeds.items():
        rows.append(
            {
                "kind": stab.split("_")[0],
                "lam": m["lam"],
                "normal_std": 1 / m["smax_median"],
                "valid_nll": train[stab][seed]["final_valid_nll"],
            }
        )
df = pd.DataFrame(rows, columns=["kind", "lam", "normal_std", "valid_nll"])

# %%
fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
sns.lineplot(df, x="lam", y="normal_std", hue="kind", marker="o", ax=ax[0])
if len(df):
    lam = np.sort(df.lam.unique())
    ax[0].plot(lam, np.sqrt(lam), "k--", label="√λ")
ax[0].set(xscale="log", yscale="log", xlabel="λ = 2α = σ²", ylabel="normal-direction local std")
ax[0].legend()
sns.lineplot(df, x="lam", y="valid_nll", hue="kind", marker="o", ax=ax[1])
ax[1].set(xscale="log", xlabel="λ = 2α = σ²", ylabel="final validation NLL")
fig.tight_layout()
figures.save(fig, smk.output.png, smk.output.pdf)
