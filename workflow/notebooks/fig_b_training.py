# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Figure B: ill-posedness on degenerate data and its fix (paper claims 3 and 4)
# Training NLL per epoch (every seed) and the largest singular value of J_f on a fixed probe batch,
# without and with each stabilizer. Unregularized runs on degenerate data keep falling and their
# Jacobian keeps growing; a cross marks a run that became non-finite.

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from flowtheory.pipeline import storage
from flowtheory.stages import figures

smk = figures.context(globals(), "fig_b_training")
hist = pd.read_csv(smk.input.train_history)
summary = storage.load_json(smk.input.train_summary)
exps = [
    e for e in ["line_linear", "scurve_mlp", "circle_mlp", "swissroll_mlp", "mnist_mlp"] if e in set(hist.experiment)
]

# %%
fig, axes = plt.subplots(2, len(exps), figsize=(4 * len(exps), 6.5), squeeze=False)
for j, exp in enumerate(exps):
    h = hist[hist.experiment == exp]
    sns.lineplot(h, x="epoch", y="train_nll", hue="stabilizer", units="seed", estimator=None, lw=0.8, ax=axes[0, j])
    sns.lineplot(
        h.dropna(subset=["smax"]),
        x="epoch",
        y="smax",
        hue="stabilizer",
        units="seed",
        estimator=None,
        lw=0.8,
        ax=axes[1, j],
        legend=False,
    )
    for stab, seeds in summary.get(exp, {}).items():
        for seed, m in seeds.items():
            if m["status"] == "diverged":
                last = h[(h.stabilizer == stab) & (h.seed == int(seed[4:]))].tail(1)
                axes[0, j].scatter(last.epoch, last.train_nll, marker="x", color="k", s=60, zorder=5)
    axes[0, j].set(title=exp, ylabel="training NLL")
    axes[1, j].set(yscale="log", ylabel="largest singular value of J_f")
fig.tight_layout()
figures.save(fig, smk.output.png, smk.output.pdf)
