"""The train stage's job: one (experiment, stabilizer, seed) run from its resolved settings to a
checkpoint, a per-epoch history and a metrics file (``workflow/scripts/train.py`` calls it)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd
import torch

from flowtheory.pipeline import storage
from flowtheory.pipeline.config import RunSpec
from flowtheory.science.flows import build_flow, count_parameters
from flowtheory.science.stabilizers import Stabilizer
from flowtheory.science.training import TrainConfig, train, trend

__all__ = ["TREND_FRACTION", "run"]

#: fraction of the epochs over which NLL and singular-value trends are fitted
TREND_FRACTION = 0.25


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config device is 'cuda' but no CUDA device is available; set device: cpu")
    return torch.device(name)


def run(
    spec: dict, data_path: str, out_model: str, out_history: str, out_metrics: str, log: Callable[[str], None] = print
) -> dict:
    """Trains one (experiment, stabilizer, seed) run and writes its checkpoint, history and metrics."""
    rs = RunSpec(**spec)
    stab = Stabilizer.from_config(rs.stabilizer, rs.stab)  # validates before any work
    cfg = TrainConfig(rs.epochs, rs.lr, rs.batch_size, rs.probe_points, rs.diagnostics_every)
    data = storage.load_dataset(data_path)
    dtype, device = getattr(torch, rs.dtype), _device(rs.device)
    x_train = torch.as_tensor(data["x_train"], dtype=dtype, device=device)
    x_valid = torch.as_tensor(data["x_valid"], dtype=dtype, device=device)
    d = x_train.shape[1]
    flow = build_flow(rs.flow, d, dtype, seed=rs.seed).to(device)
    log(
        f"run {rs.run_id}: {rs.flow['kind']} flow, {count_parameters(flow)} parameters, d={d}, "
        f"stabilizer {stab.kind} lam={stab.lam} (authors' knobs {stab.authors_knobs()}), {rs.epochs} epochs"
    )
    result = train(flow, x_train, x_valid, stab, cfg, seed=rs.seed, log=log)
    hist = pd.DataFrame(result.history)
    for col in (
        "epoch",
        "step",
        "train_nll",
        "penalty",
        "valid_nll",
        "smax",
        "smin",
        "cond",
        "cond_max",
        "max_abs_logdet",
    ):
        if col not in hist:
            hist[col] = pd.Series(dtype=float)
    metrics = {
        "run": rs.run_id,
        "status": result.status,
        "diverged_step": result.diverged_step,
        "message": "converged" if result.status == "converged" else f"diverged at step {result.diverged_step}",
        "steps": result.steps,
        "epochs_completed": len(hist),
        "checkpoint_epoch": result.checkpoint_epoch,
        "n_parameters": count_parameters(flow),
        "lam": stab.lam,
        **stab.authors_knobs(),
        **_curve_summary(hist),
    }
    storage.save_csv(out_history, hist)
    storage.save_json(out_metrics, metrics)
    meta = {"flow": rs.flow, "d": d, "dtype": rs.dtype, "seed": rs.seed, "stabilizer": rs.stab}
    # clone: the parameters are views of the optimizer's flat buffer; save each one on its own
    storage.save_checkpoint(out_model, {k: v.cpu().clone() for k, v in flow.state_dict().items()}, meta)
    return metrics


def _curve_summary(hist: pd.DataFrame) -> dict:
    if hist.empty:
        return {
            key: math.nan
            for key in (
                "final_train_nll",
                "final_valid_nll",
                "min_train_nll",
                "nll_slope",
                "nll_tail_drop",
                "smax_rel_growth",
                "smax_first",
                "smax_last",
                "smax_slope",
                "cond_last",
            )
        }
    sm = hist["smax"].dropna()
    nll = hist["train_nll"].to_numpy()
    tail = max(int(len(nll) * (1 - TREND_FRACTION)) - 1, 0)  # the epoch where the fitted tail starts
    sm_tail = sm[hist.loc[sm.index, "epoch"] >= hist["epoch"].iloc[tail]]
    return {
        # NLL(tail start) - NLL(end): > 0 while the NLL is still falling
        "nll_tail_drop": float(nll[tail] - nll[-1]),
        # (smax(end) - smax(tail start)) / smax(end): about 0.25 for linear growth, 0 when bounded
        "smax_rel_growth": float((sm_tail.iloc[-1] - sm_tail.iloc[0]) / sm_tail.iloc[-1]) if len(sm_tail) else math.nan,
        "final_train_nll": float(hist["train_nll"].iloc[-1]),
        "final_valid_nll": float(hist["valid_nll"].iloc[-1]),
        "min_train_nll": float(hist["train_nll"].min()),
        "nll_slope": trend(hist["train_nll"].to_numpy(), TREND_FRACTION),
        "smax_first": float(sm.iloc[0]) if len(sm) else math.nan,
        "smax_last": float(sm.iloc[-1]) if len(sm) else math.nan,
        "smax_slope": trend(sm.to_numpy(), TREND_FRACTION) if len(sm) > 1 else math.nan,
        "cond_last": float(hist["cond"].dropna().iloc[-1]) if hist["cond"].notna().any() else math.nan,
    }
