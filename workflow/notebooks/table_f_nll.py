# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Table F: train and validation NLL against stabilizer type and strength (paper claim 4)
# Every experiment: mean ± standard deviation over seeds of the final training and validation NLL,
# with how many seeds diverged (non-finite) and the largest singular value of J_f at the end.

# %%
import pandas as pd

from flowtheory.pipeline import storage
from flowtheory.stages import figures

smk = figures.context(globals(), "table_f_nll")
shown = smk.params.experiments
summary = storage.load_json(smk.input.train_summary)
rows = []
for exp, stabs in summary.items():
    if exp not in shown:
        continue
    for stab, seeds in stabs.items():
        for seed, m in seeds.items():
            rows.append(
                {
                    "experiment": exp,
                    "stabilizer": stab,
                    "lam": m["lam"],
                    "seed": seed,
                    "train_nll": m["final_train_nll"],
                    "valid_nll": m["final_valid_nll"],
                    "smax": m["smax_last"],
                    "diverged": m["status"] == "diverged",
                }
            )
df = pd.DataFrame(rows)

# %%
if len(df):
    table = (
        df.groupby(["experiment", "stabilizer", "lam"], sort=False)
        .agg(
            seeds=("seed", "count"),
            diverged=("diverged", "sum"),
            train_nll_mean=("train_nll", "mean"),
            train_nll_std=("train_nll", "std"),
            valid_nll_mean=("valid_nll", "mean"),
            valid_nll_std=("valid_nll", "std"),
            smax_mean=("smax", "mean"),
        )
        .reset_index()
    )
else:
    table = figures.nothing_table("table_f_nll")
storage.save_csv(smk.output.csv, table)
storage.save_text(smk.output.md, table.to_markdown(index=False, floatfmt=".4g") + "\n")
