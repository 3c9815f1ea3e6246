# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Figure D: the same on the other toy manifolds (generality of paper claim 5)
# Every experiment on a toy manifold other than the S-curve that is not a strength sweep (selected by
# these properties, `paths.NOTEBOOK_SHOWS`), one column per data set (up to six; the rest are on the
# gallery pages), from one run each (the weakest stabilized run of the first experiment on it): the
# data coloured by the manifold coordinate (x₁ against x_d for d ≤ 3, the two leading PCA axes
# above), its whitened latents y and its un-whitened components ŷ on the same axes.

# %%
from flowtheory.stages import figures, paperfigs

smk = figures.context(globals(), "fig_d_toys")
runs, _ = figures.shown_runs(smk)
npz = figures.load_runs(smk.params.components, "components")

# %%
fig = paperfigs.toys(runs, npz) if len(runs) else figures.nothing("fig_d_toys")
figures.save(fig, smk.output.png, smk.output.pdf)
