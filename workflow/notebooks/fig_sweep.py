# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Jacobian penalty and noise injection on one axis λ = 2α = σ² (paper claim 4)
# Every experiment on degenerate data that sweeps the stabilizer strength (two or more λ; selected
# by these properties, `paths.NOTEBOOK_SHOWS`; in the paper config the S-curve with the MLP flow).
# Left: the flow's local standard deviation normal to the manifold (median of 1/s_max of J_f over
# validation points) against λ, with the shrinkage prediction √λ. Right: final validation NLL
# against λ.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from flowtheory.pipeline import storage
from flowtheory.stages import figures

smk = figures.context(globals(), "fig_sweep")
shown = smk.params.experiments
analysis = storage.load_json(smk.input.analysis_summary)
train = storage.load_json(smk.input.train_summary)
rows = []
for exp, props in shown.items():
    for stab in props["runs"]:
        kind = props["stabilizers"][stab]["kind"]
        for seed, m in analysis.get(exp, {}).get(stab, {}).items():
            if kind == "none":  # λ = 0 has no place on a log axis
                continue
            rows.append(
                {
                    "experiment": exp,
                    "kind": kind,
                    "lam": m["lam"],
                    "normal_std": 1 / m["smax_median"],
                    "valid_nll": train[exp][stab][seed]["final_valid_nll"],
                }
            )
df = pd.DataFrame(rows, columns=["experiment", "kind", "lam", "normal_std", "valid_nll"])
style = "experiment" if df.experiment.nunique() > 1 else None

# %%
if len(df):
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    sns.lineplot(df, x="lam", y="normal_std", hue="kind", style=style, marker="o", ax=ax[0])
    lam = np.sort(df.lam.unique())
    ax[0].plot(lam, np.sqrt(lam), "k--", label="√λ")
    ax[0].set(xscale="log", yscale="log", xlabel="λ = 2α = σ²", ylabel="normal-direction local std")
    ax[0].legend()
    sns.lineplot(df, x="lam", y="valid_nll", hue="kind", style=style, marker="o", ax=ax[1])
    ax[1].set(xscale="log", xlabel="λ = 2α = σ²", ylabel="final validation NLL")
    fig.tight_layout()
else:
    fig = figures.nothing("fig_sweep")
figures.save(fig, smk.output.png, smk.output.pdf)
