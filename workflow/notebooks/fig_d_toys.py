# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Figure D: the same comparison on the other toy manifolds (generality of claim 5)
# For each toy manifold (a line and an arc in 2-D, a Swiss roll in 3-D), a stabilized run: data
# coloured by the manifold coordinate, whitened latents, and the leading un-whitened components.

# %%
import matplotlib.pyplot as plt

from flowtheory.stages import figures

smk = figures.context(globals(), "fig_d_toys")
runs = figures.load_runs(smk.input.components, "components")
exps = sorted({k[0] for k in runs})

# %%
fig, axes = plt.subplots(len(exps), 3, figsize=(11, 3.3 * len(exps)), squeeze=False)
for i, exp in enumerate(exps):
    key = min((k for k in runs if k[0] == exp), key=lambda k: (k[1] == "none", k))
    r = runs[key]
    x, c = r["x"], r["c"]
    axes[i, 0].scatter(x[:, 0], x[:, -1], c=c, s=2, cmap="viridis")
    axes[i, 0].set(title=f"{exp}: data ({key[1]})", aspect="equal")
    axes[i, 1].scatter(r["y"][:, 0], r["y"][:, 1], c=c, s=2, cmap="viridis")
    axes[i, 1].set(title="whitened latents y₁, y₂")
    axes[i, 2].scatter(r["yhat"][:, 0], r["yhat"][:, 1], c=c, s=2, cmap="viridis")
    axes[i, 2].set(title="un-whitened ŷ₁, ŷ₂")
fig.tight_layout()
figures.save(fig, smk.output.png, smk.output.pdf)
