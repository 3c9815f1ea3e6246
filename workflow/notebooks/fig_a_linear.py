# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Figure A: the linear theory (paper claim 1, with claims 4 and 5 for the linear flow)
# Every experiment with a linear flow y = W(x − b), on any data (selected by these properties,
# `paths.NOTEBOOK_SHOWS`): at the optimum WᵀW = (Σ̂ + λI)⁻¹ for the weight penalty, the Jacobian
# penalty and noise of variance λ alike (docs/theory.md Eqs. (3), (11)). (a) Each run's eigenvalues of
# (WᵀW)⁻¹ (the squared un-whitened component scales) against the data's PCA eigenvalues σᵢ² plus λ,
# with y = x. (b) ‖WᵀW − target‖/‖target‖ per run with the thresholds of `linear_whitening`,
# `shrinkage_closed_form` and `noise_equals_tikhonov` (paper_map.yaml). (c) The un-whitened
# components against the PCA scores with the pass region of `linear_components_pca`. The data and
# latents of each run are on its gallery page.

# %%
from flowtheory.stages import figures, paperfigs

smk = figures.context(globals(), "fig_a_linear")
runs, paper_map = figures.shown_runs(smk)

# %%
fig = paperfigs.linear(runs, paper_map) if len(runs) else figures.nothing("fig_a_linear")
figures.save(fig, smk.output.png, smk.output.pdf)
