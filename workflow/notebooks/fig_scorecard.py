# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Scorecard: every claim check on every experiment, and the five conclusions
# Every check of paper_map.yaml (rows, grouped by the paper claim it tests, docs/theory.md §1) on every
# experiment it applies to (columns; selected by these properties, `paths.NOTEBOOK_SHOWS`), from
# results/claims.json: each cell coloured by its margin in the check's direction (green passes, red
# fails, darker further from the threshold), hatched where the run is not at the optimum or the
# flow cannot reach it. Beside it, each paper claim's conclusion (reproduces / within stated limits /
# does not reproduce), as the claims stage writes it or, where it does not, derived from the verdicts.

# %%
from flowtheory.stages import figures, scorecard

smk = figures.context(globals(), "fig_scorecard")
_, paper_map = figures.shown_runs(smk)
records, conclusions = scorecard.load(getattr(smk.input, "claims", None))

# %%
statements = figures.paper_claims(getattr(smk.input, "paper_map", None))
fig = scorecard.draw(records, conclusions, list(smk.params.experiments), paper_map, statements)
figures.save(fig, smk.output.png, smk.output.pdf)
