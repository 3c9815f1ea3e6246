"""Three estimates of the ill-posedness law's slope on the committed histories: the check's, and two
that would correct for log s_max's epoch-to-epoch jitter (docs/measurements.md#illposed-law).

For every unregularized run that ``manifold_unregularized_illposed`` judges (``results/claims.json``),
over the second half of training (the check's window, :func:`flowtheory.stages.claims.law_window`):

* ``ols``: the check's estimate, the least-squares slope of the training NLL against log s_max;
* ``eiv``: the same divided by the reliability of log s_max, 1 − var_jitter / var(log s_max), with
  the jitter's variance from the first differences (von Neumann: var(Δx) / 2). The classical
  errors-in-variables correction, right if the jitter is noise the NLL does not share;
* ``iv``: the ratio of the two series' least-squares trends against the epoch (the epoch as an
  instrument), which such jitter does not bias, and which is unstable where log s_max's trend is small.

A measurement, not a check: the check's estimator stays the one fixed before the results. Usage:
``python -m bench.law_estimators [--root .]`` (prints a Markdown table).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.law_parts import adam_rows
from flowtheory.stages.claims import law_window, window_fit

CLAIM = "manifold_unregularized_illposed"


def estimates(history: pd.DataFrame) -> dict[str, float]:
    """The three slopes (and the reliability) of one run's history (Adam epochs only)."""
    h = adam_rows(history)
    h = {c: h[c].tolist() for c in ("epoch", "train_nll", "smax")}
    window = law_window(h)
    fit = window_fit(window)
    if isinstance(window, str) or len(window[0]) < 4 or not math.isfinite(fit.get("slope", math.nan)):
        return {"ols": math.nan, "reliability": math.nan, "eiv": math.nan, "iv": math.nan}
    t, x, y = window
    reliability = 1 - np.diff(x).var() / 2 / x.var()
    cov_xt = np.cov(x, t)[0, 1]
    return {
        "ols": fit["slope"],
        "reliability": float(reliability),
        "eiv": fit["slope"] / reliability if reliability > 0 else math.nan,
        "iv": float(np.cov(y, t)[0, 1] / cov_xt) if cov_xt else math.nan,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="the repository whose committed results are read")
    root = Path(parser.parse_args(argv).root)
    claims = json.loads((root / "results/claims.json").read_text())
    claim = next(c for c in claims["claims"] if c["id"] == CLAIM)
    history = pd.read_csv(root / "plots/train_history.csv")
    rows = []
    for experiment, res in claim["experiments"].items():
        law = -(res["detail"].get("normal_directions") or 1)
        for run, state in res["detail"]["states"].items():
            stabilizer, seed = run.split("/")
            h = history[
                (history["experiment"] == experiment)
                & (history["stabilizer"] == stabilizer)
                & (history["seed"] == int(seed.removeprefix("seed")))
            ]
            rows.append({"experiment": experiment, "run": run, "verdict": state["verdict"], "law": law, **estimates(h)})
    print("| experiment | run | verdict | law | ols | reliability | eiv | iv |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        nums = " | ".join(f"{r[k]:.3g}" for k in ("ols", "reliability", "eiv", "iv"))
        print(f"| {r['experiment']} | {r['run']} | {r['verdict']} | {r['law']} | {nums} |")
    return rows


if __name__ == "__main__":
    main()
