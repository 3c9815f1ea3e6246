# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Shrinkage on manifolds: the normal-direction local std against √(σ² + λ) (paper claim 4)
# Every experiment of a nonlinear flow on a toy manifold with known tangent spaces (selected by
# these properties, `paths.NOTEBOOK_SHOWS`). (a) Per Jacobian-penalty or noise run, the median over
# validation points of the flow's local std along the analytic normal space against the first-order
# prediction √(σ² + λ) (docs/theory.md Eq. (15)), with y = x and the band of `normal_std_shrinkage`
# (paper_map.yaml). (b) For every strength sweep, each un-whitened component's slope of log median
# local std against log √λ, by its rank relative to the true intrinsic dimension: ≈ 0 along the
# manifold, ≈ 1 off it (docs/theory.md Eq. (16)), with the cut of `intrinsic_dimension_sweep`.

# %%
from flowtheory.stages import figures, paperfigs

smk = figures.context(globals(), "fig_shrinkage")
runs, paper_map = figures.shown_runs(smk)

# %%
fig = paperfigs.shrinkage(runs, paper_map) if len(runs) else figures.nothing("fig_shrinkage")
figures.save(fig, smk.output.png, smk.output.pdf)
