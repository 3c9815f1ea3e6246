# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Figure C: S-curve, whitened latents vs un-whitened components (paper claim 5)
# Points coloured by the curve parameter t. Whitened latents y have unit variance in every
# direction (the normal direction is inflated); the un-whitened components ŷ put the two manifold
# directions first, with the third (normal) component near zero.

# %%
import matplotlib.pyplot as plt

from flowtheory.stages import figures

smk = figures.context(globals(), "fig_c_scurve")
runs = figures.load_runs(smk.input.components, "components")
stabs = sorted({k[1] for k in runs}, key=lambda s: (s != "none", s))

# %%
fig, axes = plt.subplots(len(stabs), 4, figsize=(15, 3.3 * len(stabs)), squeeze=False)
for i, stab in enumerate(stabs):
    key = min(k for k in runs if k[1] == stab)
    r = runs[key]
    c = r["c"]
    axes[i, 0].scatter(r["x"][:, 0], r["x"][:, 2], c=c, s=2, cmap="viridis")
    axes[i, 0].set(title=f"data (x₁, x₃), {stab}", aspect="equal")
    axes[i, 1].scatter(r["y"][:, 0], r["y"][:, 1], c=c, s=2, cmap="viridis")
    axes[i, 1].set(title="whitened latents y₁, y₂")
    axes[i, 2].scatter(r["yhat"][:, 0], r["yhat"][:, 1], c=c, s=2, cmap="viridis")
    axes[i, 2].set(title="un-whitened ŷ₁, ŷ₂")
    var_y, var_h = r["y"].var(0), r["yhat"].var(0)
    axes[i, 3].bar([k - 0.2 for k in range(3)], var_y, width=0.4, label="whitened y")
    axes[i, 3].bar([k + 0.2 for k in range(3)], var_h, width=0.4, label="un-whitened ŷ")
    axes[i, 3].set(yscale="log", title="variance per component", xticks=range(3))
    axes[i, 3].legend()
fig.tight_layout()
figures.save(fig, smk.output.png, smk.output.pdf)
