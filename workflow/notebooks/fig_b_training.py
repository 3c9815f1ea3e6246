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
# without and with each stabilizer, one column per experiment on degenerate data that has an
# unregularized run (selected by these properties, `paths.NOTEBOOK_SHOWS`). Unregularized runs on
# degenerate data keep falling and their Jacobian keeps growing; a cross marks a run that became
# non-finite.

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from flowtheory.pipeline import storage
from flowtheory.stages import figures

smk = figures.context(globals(), "fig_b_training")
shown = smk.params.experiments
hist = pd.read_csv(smk.input.train_history)
summary = storage.load_json(smk.input.train_summary)
exps = [e for e in shown if e in set(hist.experiment)]


def column(ax_nll, ax_smax, exp):
    h = hist[hist.experiment == exp]
    sns.lineplot(h, x="epoch", y="train_nll", hue="stabilizer", units="seed", estimator=None, lw=0.8, ax=ax_nll)
    smax = h.dropna(subset=["smax"])
    if len(smax):
        sns.lineplot(
            smax, x="epoch", y="smax", hue="stabilizer", units="seed", estimator=None, lw=0.8, ax=ax_smax, legend=False
        )
    for stab, seeds in summary.get(exp, {}).items():
        for seed, m in seeds.items():
            if m["status"] == "diverged":
                last = h[(h.stabilizer == stab) & (h.seed == int(seed[4:]))].tail(1)
                ax_nll.scatter(last.epoch, last.train_nll, marker="x", color="k", s=60, zorder=5)
    ax_nll.set(title=exp, ylabel="training NLL")
    ax_smax.set(yscale="log", ylabel="largest singular value of J_f")


# %%
if exps:
    fig, axes = plt.subplots(2, len(exps), figsize=(4 * len(exps), 6.5), squeeze=False)
    for j, exp in enumerate(exps):
        column(axes[0, j], axes[1, j], exp)
    fig.tight_layout()
else:
    fig = figures.nothing("fig_b_training")
figures.save(fig, smk.output.png, smk.output.pdf)
