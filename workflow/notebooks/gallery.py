# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Gallery: one page per experiment (the detail behind every paper claim's figure)
# One experiment (the rule's `{experiment}` wildcard; in Jupyter the first of the config), every run:
# training NLL per epoch (with the optimum's level where the gap is known) and the largest singular
# value of J_f with the bound of `regularized_stable_*` (paper_map.yaml); the claims' verdicts on it
# (results/claims.json); one run's data, whitened latents y and un-whitened components ŷ on the same
# axes; local-covariance ellipses of the flow against the kNN covariance and the exact tangent space;
# the per-point tangent angles and normal-direction stds; every run's status.

# %%
import pandas as pd

from flowtheory.stages import figures, gallery, scorecard

smk = figures.context(globals(), "gallery")
((experiment, props),) = smk.params.experiments.items()
runs, paper_map = figures.shown_runs(smk)
history = pd.read_csv(smk.input.train_history)
npz = figures.load_runs(smk.params.components, "components")
points = figures.load_runs(smk.params.analysis, "analysis")
records, _ = scorecard.load(getattr(smk.input, "claims", None))
tangents = gallery.tangents(smk.input.data)

# %%
fig = gallery.page(
    experiment,
    props,
    runs,
    history,
    npz,
    points,
    tangents,
    records,
    paper_map,
    figures.setting(smk, "analysis", "knn_k"),
)
figures.save(fig, smk.output.png, dpi=gallery.DPI)
