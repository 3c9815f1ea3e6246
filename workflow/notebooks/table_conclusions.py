# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # The conclusions: one row per claim of the paper
# For each of the five claims of the paper (docs/theory.md §1): its conclusion (reproduces / within
# stated limits / does not reproduce / not tested) from results/claims.json, or derived from the
# verdicts of its checks where the claims file has none, and how many checks passed, failed, were not
# at the optimum or could not reach it, over every experiment (selected by these properties,
# `paths.NOTEBOOK_SHOWS`). The report's front page shows this table.

# %%
from flowtheory.pipeline import storage
from flowtheory.stages import figures, scorecard

smk = figures.context(globals(), "table_conclusions")
records, conclusions = scorecard.load(getattr(smk.input, "claims", None))
table = scorecard.conclusions_table(records, conclusions, figures.paper_claims(getattr(smk.input, "paper_map", None)))

# %%
storage.save_csv(smk.output.csv, table)
storage.save_text(smk.output.md, table.to_markdown(index=False) + "\n")
