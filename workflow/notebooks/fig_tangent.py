# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # The flow's local covariance against the exact oracle (paper claim 2)
# Every experiment of a nonlinear flow on a toy manifold whose tangent spaces are known in closed
# form (selected by these properties, `paths.NOTEBOOK_SHOWS`), every Jacobian-penalty or noise run:
# the median over validation points of the largest principal angle between the analytic tangent
# space and the flow's top-k local covariance eigenspace (k the known intrinsic dimension), per data
# set (x) and flow family (marker). Beside them, per data set, the k-nearest-neighbour covariance's
# angle to the same oracle (k = `analysis.knn_k` of the config) and the angle of a random
# k-dimensional subspace (chance); the threshold is that of `local_covariance_oracle`
# (paper_map.yaml). Only the subspace is compared: a nonlinear flow's JᵀJ inside the tangent space is
# not identifiable (docs/theory.md §2.3.1). Per-point distributions are on the gallery pages.

# %%
from flowtheory.stages import figures, paperfigs

smk = figures.context(globals(), "fig_tangent")
runs, paper_map = figures.shown_runs(smk)

# %%
if len(runs):
    fig = paperfigs.tangent(runs, paper_map, figures.setting(smk, "analysis", "knn_k"))
else:
    fig = figures.nothing("fig_tangent")
figures.save(fig, smk.output.png, smk.output.pdf)
