# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Jacobian penalty and noise injection on one axis λ = 2α = σ² (paper claim 4)
# Every stabilized linear flow on data of known, invertible covariance and every strength sweep on
# degenerate data (selected by these properties, `paths.NOTEBOOK_SHOWS`). (a) The comparison the
# claim `noise_equals_tikhonov` is about: per linear run, the error of WᵀW against the shrunk target
# (Σ̂ + λI)⁻¹ against its error against the unshrunk Σ̂⁻¹; noise injection must sit below y = x like
# the penalties (thresholds from paper_map.yaml). (b) Nonlinear sweeps: the normal-direction local
# std against λ, with the prediction √λ. (c) Their final validation NLL against λ.

# %%
from flowtheory.stages import figures, paperfigs

smk = figures.context(globals(), "fig_sweep")
runs, paper_map = figures.shown_runs(smk)

# %%
fig = paperfigs.sweep(runs, paper_map) if len(runs) else figures.nothing("fig_sweep")
figures.save(fig, smk.output.png, smk.output.pdf)
