# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Local covariance of the flow against the kNN covariance (paper claim 2, the kNN baseline)
# Every experiment with a nonlinear flow on a manifold of known intrinsic dimension that is not a
# strength sweep (selected by these properties, `paths.NOTEBOOK_SHOWS`). Top, one stabilized run
# per data set in 2-D or 3-D (up to four): ellipses of the flow's local covariance (J_fᵀJ_f)⁻¹ (solid,
# the stabilizer's colour) and of the k-nearest-neighbour covariance (dotted black; k is
# `analysis.knn_k` of the config), each scaled to unit trace and drawn at 2 standard deviations, in
# the x₁–x_d plane. Below, every run: the median angle between the two tangent spaces, with the angle
# of a random subspace. The claim itself is checked against the exact tangent spaces (Figure tangent).

# %%
from flowtheory.stages import figures, paperfigs

smk = figures.context(globals(), "fig_covariance")
runs, paper_map = figures.shown_runs(smk)
points = figures.load_runs(smk.params.analysis, "analysis")

# %%
if len(runs):
    fig = paperfigs.covariance(runs, paper_map, points, figures.setting(smk, "analysis", "knn_k"))
else:
    fig = figures.nothing("fig_covariance")
figures.save(fig, smk.output.png, smk.output.pdf)
