# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Figure C: S-curve, whitened latents vs un-whitened components (paper claim 5)
# One row per run (the lowest seed) of each experiment with a nonlinear flow on the S-curve that is
# not a strength sweep (selected by these properties, `paths.NOTEBOOK_SHOWS`); points coloured by
# the curve parameter t. Whitened latents y have unit variance in every direction (the normal
# direction is inflated); the un-whitened components ŷ put the two manifold directions first, with
# the third (normal) component near zero.

# %%
import matplotlib.pyplot as plt

from flowtheory.stages import figures

smk = figures.context(globals(), "fig_c_scurve")
shown = smk.params.experiments
runs = figures.load_runs(smk.params.components, "components")
# per experiment: the unregularized run first, then the stabilizers by name
rows = [(e, s) for e, p in shown.items() for s in sorted(p["runs"], key=lambda s: (s != "none", s))]


def row(ax, exp, stab):
    key = min(k for k in runs if k[:2] == (exp, stab))
    r = runs[key]
    c = r["c"]
    xy, (a, b) = figures.plane(r["x"])
    ax[0].scatter(*xy.T, c=c, s=2, cmap="viridis")
    ax[0].set(title=f"data ({a}, {b}), {stab}" + (f" [{exp}]" if len(shown) > 1 else ""), aspect="equal")
    ax[1].scatter(*figures.first_two(r["y"]).T, c=c, s=2, cmap="viridis")
    ax[1].set(title="whitened latents y₁, y₂")
    ax[2].scatter(*figures.first_two(r["yhat"]).T, c=c, s=2, cmap="viridis")
    ax[2].set(title="un-whitened ŷ₁, ŷ₂")
    var_y, var_h = r["y"].var(0), r["yhat"].var(0)
    n = len(var_h)
    ax[3].bar([k - 0.2 for k in range(n)], var_y[:n], width=0.4, label="whitened y")
    ax[3].bar([k + 0.2 for k in range(n)], var_h, width=0.4, label="un-whitened ŷ")
    ax[3].set(yscale="log", title="variance per component", xticks=range(n))
    ax[3].legend()


# %%
if rows:
    fig, axes = plt.subplots(len(rows), 4, figsize=(15, 3.3 * len(rows)), squeeze=False)
    for i, (exp, stab) in enumerate(rows):
        row(axes[i], exp, stab)
    fig.tight_layout()
else:
    fig = figures.nothing("fig_c_scurve")
figures.save(fig, smk.output.png, smk.output.pdf)
