# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Figure C: un-whitened components and the intrinsic dimension (paper claim 5)
# Every experiment with a nonlinear flow on a manifold of known intrinsic dimension that is not a
# strength sweep (selected by these properties, `paths.NOTEBOOK_SHOWS`). Top, one run on the
# S-curve (the weakest stabilized run of the first S-curve experiment; another manifold when the
# config has no S-curve), coloured by the curve parameter t: the data, its whitened latents y and its
# un-whitened components ŷ on the same axes (a collapsed component looks collapsed) and the
# variance per component. Bottom, every stabilized run: each component's median local std over the
# shrinkage floor (`components.floor_factor` of the config times √(σ² + λ)) by its rank relative to
# the true intrinsic dimension, and the estimated against the true intrinsic dimension (the claim
# `intrinsic_dimension_manifolds`).

# %%
from flowtheory.stages import figures, paperfigs

smk = figures.context(globals(), "fig_c_scurve")
runs, paper_map = figures.shown_runs(smk)
npz = figures.load_runs(smk.params.components, "components")

# %%
if len(runs):
    fig = paperfigs.components(runs, paper_map, npz, figures.setting(smk, "components", "floor_factor"))
else:
    fig = figures.nothing("fig_c_scurve")
figures.save(fig, smk.output.png, smk.output.pdf)
