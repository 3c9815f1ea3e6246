"""The ill-posedness law's slope split into its exact parts, on a rerun of unregularized runs
(docs/measurements.md#illposed-law).

A flow's NLL on a batch is, per point, the base term −log N(f(x); 0, I) less log|det J_f(x)|, and
log|det J_f| is the sum of the log singular values of J_f. On data with one normal direction (the
circle, the sphere, the surfaces in R³), s_max is the normal one and the others are tangent, so over
the check's window (the second half of training, :func:`flowtheory.stages.claims._history_fit`) the
least-squares slope of the probe batch's NLL against the mean of log s_max is exactly

    slope = −1 (s_max itself) + tangent + base,

with ``tangent`` = −(the slope of the mean of the other log s_i) and ``base`` = the slope of the
mean base term: a sum of slopes against one regressor, so the identity holds to round-off. The law
(d NLL / d log s_normal → −(D − d)) says that the tangent and base terms settle while s_normal grows.

The history records the median of s_max over the probe batch and the training NLL averaged over the
epoch's steps, not these means, so the run is retrained (the pipeline's own
:func:`flowtheory.stages.train.run`) with the diagnostics also recording the parts; that changes
nothing in training, and the rerun's medians are compared with its own history to show it. On
another host the run is another trajectory: compare with a history made on the same host.

A measurement, not a check. Usage: ``python -m bench.law_parts --config C --experiment E --seeds 0 1
[--data results/data/<dataset>.npz] [--out DIR]`` (prints one Markdown row per run).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from torch import Tensor

from flowtheory.pipeline import config as ftconfig
from flowtheory.science import training
from flowtheory.science.flows import Flow, gaussian_log_prob, gaussian_nll
from flowtheory.stages import train as stage
from flowtheory.stages.claims import _history_fit

__all__ = ["parts", "rerun", "split"]


def parts(flow: Flow, x: Tensor) -> dict[str, float]:
    """The probe batch's NLL and its exact parts (evaluation mode): ``nll`` = ``base`` − ``normal``
    − ``tangent``, with ``normal`` the mean of log s_max and ``tangent`` the mean of the sum of the
    other log s_i; ``ladj_gap``, the largest |log|det J_f| − Σ log s_i| (round-off)."""
    was = flow.training
    flow.eval()
    try:
        with torch.no_grad():
            y, ladj, jac = flow.forward_and_jacobian(x)
    finally:
        flow.train(was)
    logs = torch.linalg.svdvals(jac).log()
    base = -gaussian_log_prob(y, torch.zeros_like(ladj))  # -log N(f(x); 0, I), the flows' own density
    return {
        "nll": gaussian_nll(y, ladj).item(),
        "base": base.mean().item(),
        "normal": logs[:, 0].mean().item(),
        "tangent": logs[:, 1:].sum(-1).mean().item(),
        "ladj_gap": (ladj - logs.sum(-1)).abs().max().item(),
    }


def adam_rows(history: pd.DataFrame) -> pd.DataFrame:
    """A run's history without its L-BFGS polish (the rows of the Adam epochs, whose s_max the
    diagnostics recorded), renumbered."""
    h = history[history["phase"] != "lbfgs"] if "phase" in history else history
    return h[h["smax"].notna()].reset_index(drop=True)


def split(epoch: list[float], table: pd.DataFrame) -> dict[str, float]:
    """The slopes of ``table``'s ``nll`` (and of its parts) against its ``normal`` over the check's
    window of ``epoch``: ``nll`` = −1 + ``tangent`` + ``base``; ``identity`` is the round-off left."""

    def slope(y: pd.Series) -> float:
        fit = {"epoch": list(epoch), "train_nll": y.tolist(), "smax": np.exp(table["normal"]).tolist()}
        return _history_fit(fit).get("slope", math.nan)

    got = {"nll": slope(table["nll"]), "base": slope(table["base"]), "tangent": -slope(table["tangent"])}
    return {**got, "identity": got["nll"] - (-1 + got["tangent"] + got["base"])}


def rerun(config: dict, experiment: str, seed: int, data: str, out: Path) -> dict:
    """Retrains the run (stabilizer ``none``) recording :func:`parts` at every diagnostics pass; its
    slopes (:func:`split`), the check's own slope of the rerun's history, and the largest gap between
    the medians of s_max the two recorders saw (they see the same batch: 0 up to the CSV's digits)."""
    recorded = []
    diagnostics = training.diagnostics

    def both(flow: Flow, x: Tensor) -> dict[str, float]:
        out = diagnostics(flow, x)
        recorded.append({**parts(flow, x), "median_smax": out["smax"]})
        return out

    spec = dataclasses.asdict(ftconfig.run_spec(config, experiment, "none", seed))
    stem = out / f"{experiment}_seed{seed}"
    training.diagnostics = both
    try:
        metrics = stage.run(spec, data, f"{stem}.pt", f"{stem}.csv", f"{stem}.json", log=lambda s: None)
    finally:
        training.diagnostics = diagnostics
    if not recorded:
        raise SystemExit(
            f"{experiment}: its runs train stacked (flowtheory.science.training._StackedMembers), whose "
            "diagnostics this tool does not record; it reruns runs trained alone (the zuko flows: NSF, MAF)"
        )
    history = pd.read_csv(f"{stem}.csv")
    adam = adam_rows(history)
    table = pd.DataFrame(recorded[: len(adam)])  # the L-BFGS polish's rows come after Adam's
    epochs = adam["epoch"].tolist()
    check = _history_fit({c: adam[c].tolist() for c in ("epoch", "train_nll", "smax")})
    gap = float(np.max(np.abs(np.log(table["median_smax"]) - np.log(adam["smax"]))))
    return {
        "experiment": experiment,
        "seed": seed,
        "status": metrics["status"],
        "check": check.get("slope", math.nan),
        **split(epochs, table),
        "ladj_gap": float(table["ladj_gap"].max()),
        "median_gap": gap,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--data", default=None, help="the data set's file (default: results/data/<dataset>.npz)")
    parser.add_argument("--out", default=None, help="keep the reruns' files here (default: a temporary folder)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = yaml.safe_load(Path(args.config).read_text())
    data = args.data or f"results/data/{config['experiments'][args.experiment]['dataset']}.npz"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        print("| experiment | seed | status | check's slope | probe NLL's slope | = −1 + tangent | + base |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for seed in args.seeds:
            r = rerun(config, args.experiment, seed, data, out)
            rows.append(r)
            print(
                f"| {r['experiment']} | {seed} | {r['status']} | {r['check']:.2f} | {r['nll']:.2f} "
                f"| {r['tangent']:+.2f} | {r['base']:+.2f} |"
            )
    return rows


if __name__ == "__main__":
    main()
