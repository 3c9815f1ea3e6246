# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Figure B: ill-posed maximum likelihood on degenerate data, and its fix (paper claims 3 and 4)
# Every run of every experiment on degenerate data that has an unregularized run (selected by these
# properties, `paths.NOTEBOOK_SHOWS`). (a) The law of docs/theory.md Eq. (26) over the second half of
# training: the NLL falls one nat per unit of log s_max per normal direction, so ΔNLL/(d − k)
# against Δ log s_max follows y = −x for an unregularized run and stays at the origin for a
# stabilized one. (b) The law's slope per run (the fit of the claims `*_illposed`, their band from
# paper_map.yaml). (c) Each stabilized run's final s_max·√λ against the level bound of
# `regularized_stable_*`, judged at convergence. Per-run training curves are on the gallery pages.

# %%
import pandas as pd

from flowtheory.stages import figures, paperfigs

smk = figures.context(globals(), "fig_b_training")
runs, paper_map = figures.shown_runs(smk, every_run=True)  # selected for their unregularized run
history = pd.read_csv(smk.input.train_history)

# %%
fig = paperfigs.training(runs, history, paper_map) if len(runs) else figures.nothing("fig_b_training")
figures.save(fig, smk.output.png, smk.output.pdf)
