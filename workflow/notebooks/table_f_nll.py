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
# the largest singular value of J_f at the end, and how the seeds ended: `non_finite`, the seeds whose
# loss or parameters became non-finite (training stopped at `diverged_step`), and the count of each
# training status
# (`converged`, `not_converged`, `diverged`; older summaries know only the first and the last). A
# run on the ill-posedness law of the claims (docs/theory.md Eq. (26)) may still be finite.

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
                    "smax": m.get("smax_last"),
                    "status": m.get("status", "unknown"),
                    # stopped at a non-finite loss or parameters (older summaries: status diverged)
                    "non_finite": (m["diverged_step"] is not None)
                    if "diverged_step" in m
                    else m.get("status") == "diverged",
                }
            )
df = pd.DataFrame(rows)
STATUSES = ["converged", "not_converged", "diverged"]

# %%
if len(df):
    table = (
        df.groupby(["experiment", "stabilizer", "lam"], sort=False)
        .agg(
            seeds=("seed", "count"),
            non_finite=("non_finite", "sum"),
            train_nll_mean=("train_nll", "mean"),
            train_nll_std=("train_nll", "std"),
            valid_nll_mean=("valid_nll", "mean"),
            valid_nll_std=("valid_nll", "std"),
            smax_mean=("smax", "mean"),
        )
        .reset_index()
    )
    status = df.groupby(["experiment", "stabilizer", "lam"], sort=False)["status"]
    for name in STATUSES + sorted(set(df.status) - set(STATUSES)):
        table[f"status_{name}"] = status.apply(lambda s, n=name: int((s == n).sum())).to_numpy()
else:
    table = figures.nothing_table("table_f_nll")
storage.save_csv(smk.output.csv, table)
storage.save_text(smk.output.md, table.to_markdown(index=False, floatfmt=".4g") + "\n")
