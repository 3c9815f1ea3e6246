# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Geometric error against the gap to the optimum (every paper claim)
# Every experiment (selected by these properties, `paths.NOTEBOOK_SHOWS`), every run whose gap to
# the optimum is known (`gap_nats` of the analysis summary, with its standard error `gap_se`):
# the geometric errors the claims test (the tangent angle of claim 2, the normal-std factor of
# claim 4, the whitening error of claim 1) against the gap in nats, on a log axis, with each claim's
# threshold (paper_map.yaml). An error that shrinks with the gap is the optimizer's; one that stays
# at a small gap is the theory's. Runs without a known gap are counted, not drawn.

# %%
from flowtheory.stages import figures, paperfigs

smk = figures.context(globals(), "fig_gap")
runs, paper_map = figures.shown_runs(smk)

# %%
fig = paperfigs.gap(runs, paper_map) if len(runs) else figures.nothing("fig_gap")
figures.save(fig, smk.output.png, smk.output.pdf)
