# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Figure D: the same comparison on the other toy manifolds (generality of claim 5)
# One row per experiment on a toy manifold other than the S-curve (figure C) that is not a strength
# sweep (selected by these properties, `paths.NOTEBOOK_SHOWS`; e.g. a line and an arc in 2-D, a
# Swiss roll in 3-D), from a stabilized run where there is one: data coloured by the manifold
# coordinate (x₁ against x_d for d ≤ 3, the two leading PCA axes above), whitened latents, and the
# leading un-whitened components.

# %%
import matplotlib.pyplot as plt

from flowtheory.stages import figures

smk = figures.context(globals(), "fig_d_toys")
shown = smk.params.experiments
runs = figures.load_runs(smk.params.components, "components")
exps = [e for e in shown if any(k[0] == e for k in runs)]


def row(ax, exp):
    key = min((k for k in runs if k[0] == exp), key=lambda k: (k[1] == "none", k))
    r = runs[key]
    c = r["c"]
    xy, (a, b) = figures.plane(r["x"])
    ax[0].scatter(*xy.T, c=c, s=2, cmap="viridis")
    ax[0].set(title=f"{exp}: data ({key[1]})", xlabel=a, ylabel=b, aspect="equal")
    ax[1].scatter(*figures.first_two(r["y"]).T, c=c, s=2, cmap="viridis")
    ax[1].set(title="whitened latents y₁, y₂")
    ax[2].scatter(*figures.first_two(r["yhat"]).T, c=c, s=2, cmap="viridis")
    ax[2].set(title="un-whitened ŷ₁, ŷ₂")


# %%
if exps:
    fig, axes = plt.subplots(len(exps), 3, figsize=(11, 3.3 * len(exps)), squeeze=False)
    for i, exp in enumerate(exps):
        row(axes[i], exp)
    fig.tight_layout()
else:
    fig = figures.nothing("fig_d_toys")
figures.save(fig, smk.output.png, smk.output.pdf)
