"""The train stage's job: one (experiment, stabilizer, seed) run from its resolved settings to a
checkpoint, a per-epoch history and a metrics file (``workflow/scripts/train.py`` calls it)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from flowtheory.pipeline import storage
from flowtheory.pipeline.config import RunSpec
from flowtheory.science.flows import Flow, build_flow, count_parameters
from flowtheory.science.stabilizers import Stabilizer
from flowtheory.science.training import TrainConfig, TrainResult, batching, ensemble_family, train_ensemble, trend

__all__ = ["PERTURB_INIT", "TREND_FRACTION", "perturb_init", "perturb_ulps", "run", "run_many"]

#: fraction of the epochs over which NLL and singular-value trends are fitted
TREND_FRACTION = 0.25
#: The round-off switch (``bench/chaos.py``, docs/measurements.md#ensembles): an environment
#: variable that moves every initial parameter of every run (after ``build_flow``) by whole ulps of
#: its dtype (``torch.nextafter``): ``up`` or ``1`` one ulp towards +inf, ``down`` or ``-1`` one
#: towards -inf, a signed integer N that many; unset, empty or ``0``: off. It stands in for another
#: host's round-off. Deliberately not a config key: the DAG, the params and DVC's records stay those
#: of the unperturbed run, so a perturbed run is a replica of that run (rerun it with
#: ``snakemake --forcerun train``).
PERTURB_INIT = "FLOWTHEORY_PERTURB_INIT"


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config device is 'cuda' but no CUDA device is available; set device: cpu")
    return torch.device(name)


@dataclass
class _Run:
    """One run, set up: its settings, stabilizer, flow and output paths."""

    rs: RunSpec
    stab: Stabilizer
    cfg: TrainConfig
    flow: Flow
    out: tuple[str, str, str]  # model, history, metrics

    def group_key(self) -> tuple:
        """Runs with equal keys train together as one batched ensemble."""
        family = ensemble_family(self.stab, self.flow.d)
        if family is None:  # trained alone
            return (id(self),)
        return (family, json.dumps(self.rs.flow, sort_keys=True), self.rs.dtype, self.rs.device, self.cfg)


def _setup(spec: dict, d: int, out: tuple[str, str, str]) -> _Run:
    rs = RunSpec(**spec)
    stab = Stabilizer.from_config(rs.stabilizer, rs.stab)  # validates before any work
    cfg = TrainConfig(rs.epochs, rs.lr, rs.batch_size, rs.probe_points, rs.diagnostics_every, **rs.schedule)
    flow = build_flow(rs.flow, d, getattr(torch, rs.dtype), seed=rs.seed).to(_device(rs.device))
    perturb_init(flow, os.environ.get(PERTURB_INIT, ""))
    return _Run(rs, stab, cfg, flow, out)


def perturb_ulps(value: str | None) -> int:
    """The signed number of ulps a :data:`PERTURB_INIT` value asks for (0: off)."""
    text = (value or "").strip().lower()
    named = {"": 0, "up": 1, "down": -1}
    if text in named:
        return named[text]
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{PERTURB_INIT}={value!r}: expected up, down or a signed number of ulps") from None


def perturb_init(flow: torch.nn.Module, ulps: int | str) -> int:
    """Moves every parameter of ``flow`` by ``ulps`` ulps of its own dtype (> 0 towards +inf, < 0
    towards -inf; a string as :func:`perturb_ulps` reads it), in place. Returns the ulps."""
    n = perturb_ulps(ulps) if isinstance(ulps, str) else int(ulps)
    if n == 0:
        return 0
    with torch.no_grad():
        for p in flow.parameters():
            target = torch.full_like(p, math.copysign(math.inf, n))
            for _ in range(abs(n)):
                p.copy_(torch.nextafter(p, target))
    return n


def _tensors(data: dict, r: _Run) -> tuple[Tensor, Tensor]:
    dtype, device = getattr(torch, r.rs.dtype), _device(r.rs.device)
    return (
        torch.as_tensor(data["x_train"], dtype=dtype, device=device),
        torch.as_tensor(data["x_valid"], dtype=dtype, device=device),
    )


def _announce(r: _Run, d: int, log: Callable[[str], None], together: int = 1) -> None:
    log(
        f"run {r.rs.run_id}: {r.rs.flow['kind']} flow, {count_parameters(r.flow)} parameters, d={d}, "
        f"stabilizer {r.stab.kind} lam={r.stab.lam} (authors' knobs {r.stab.authors_knobs()}), {r.rs.epochs} epochs"
        + (f", batched with {together - 1} other run(s)" if together > 1 else "")
        + (
            f"; initial parameters moved {n:+d} ulp(s) ({PERTURB_INIT})"
            if (n := perturb_ulps(os.environ.get(PERTURB_INIT)))
            else ""
        )
    )


def run(
    spec: dict, data_path: str, out_model: str, out_history: str, out_metrics: str, log: Callable[[str], None] = print
) -> dict:
    """Trains one (experiment, stabilizer, seed) run and writes its checkpoint, history and metrics."""
    return run_many(
        [{"spec": spec, "model": out_model, "history": out_history, "metrics": out_metrics}], data_path, log
    )[0]


def run_many(runs: list[dict], data_path: str, log: Callable[[str], None] = print, batched: bool = True) -> list[dict]:
    """Trains the runs of one experiment (``runs``: dicts of ``spec``, ``model``, ``history``,
    ``metrics``) and writes each one's checkpoint, history and metrics.

    Runs of one :func:`~flowtheory.science.training.ensemble_family` (exact Jacobian penalties; or
    none, weight and noise) whose flows can be batched (:func:`~flowtheory.science.training.batching`:
    stacked, or zuko's mapped) train together as one ensemble
    (:func:`flowtheory.science.training.train_ensemble`, ``batched``); the others one at a time.
    Either way a run's result equals training it alone up to float round-off."""
    for r in runs:  # every run's settings are checked before any data are read
        Stabilizer.from_config(r["spec"]["stabilizer"], dict(r["spec"]["stab"]))
    data = storage.load_dataset(data_path)
    d = int(data["x_train"].shape[1])
    setups = [_setup(dict(r["spec"]), d, (r["model"], r["history"], r["metrics"])) for r in runs]
    groups: dict[tuple, list[_Run]] = {}
    for r in setups:
        groups.setdefault(r.group_key() if batched else (id(r),), []).append(r)
    metrics: dict[int, dict] = {}
    for group in groups.values():
        x_train, x_valid = _tensors(data, group[0])
        if batching([r.flow for r in group], [r.stab for r in group]) is None:
            parts = [[r] for r in group]  # flows that cannot be batched: an ensemble of one each
        else:
            parts = [group]
        for part in parts:
            for r in part:
                _announce(r, d, log, len(part))
            results = train_ensemble(
                [r.flow for r in part],
                x_train,
                x_valid,
                [r.stab for r in part],
                part[0].cfg,
                [r.rs.seed for r in part],
                log=log,
                polish=[r.rs.polish for r in part],
            )
            for r, result in zip(part, results, strict=True):
                metrics[id(r)] = _write(r, d, result)
    return [metrics[id(r)] for r in setups]


def _write(r: _Run, d: int, result: TrainResult) -> dict:
    rs, stab, flow = r.rs, r.stab, r.flow
    out_model, out_history, out_metrics = r.out
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
        "message": _message(result),
        "steps": result.steps,
        "epochs_completed": int((hist["phase"] != "lbfgs").sum()) if "phase" in hist else len(hist),
        "checkpoint_epoch": result.checkpoint_epoch,
        "n_parameters": count_parameters(flow),
        "lam": stab.lam,
        **stab.authors_knobs(),
        **result.convergence,
        **_curve_summary(hist),
    }
    storage.save_csv(out_history, hist)
    storage.save_json(out_metrics, metrics)
    meta = {"flow": rs.flow, "d": d, "dtype": rs.dtype, "seed": rs.seed, "stabilizer": rs.stab}
    # clone: the parameters are views of the optimizer's flat buffer; save each one on its own
    storage.save_checkpoint(out_model, {k: v.cpu().clone() for k, v in flow.state_dict().items()}, meta)
    return metrics


def _message(result: TrainResult) -> str:
    if result.status == "diverged":
        return f"diverged at step {result.diverged_step}"
    c = result.convergence
    change = c.get("conv_window_change", math.nan)
    polish = f", L-BFGS {c['polish_iters']} iterations" if c.get("polish_iters") else ""
    if result.status == "converged":
        return f"converged after {result.steps} steps{polish} (last window improved {change:.3g} nats)"
    return (
        f"not converged: cap reached after {result.steps} steps{polish}; the objective still improved "
        f"{change:.3g} nats over the last {c.get('conv_window', '?')} epochs (tol {c.get('conv_tol', math.nan):.3g})"
    )


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
    final = hist  # every row, the polish's included: the final state
    if "phase" in hist:  # the trends are those of the Adam epochs
        hist = hist[hist["phase"] != "lbfgs"].reset_index(drop=True)
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
        "final_valid_nll": float(final["valid_nll"].iloc[-1]),
        "min_train_nll": float(hist["train_nll"].min()),
        "nll_slope": trend(hist["train_nll"].to_numpy(), TREND_FRACTION),
        "smax_first": float(sm.iloc[0]) if len(sm) else math.nan,
        "smax_last": float(final["smax"].dropna().iloc[-1]) if final["smax"].notna().any() else math.nan,
        "smax_slope": trend(sm.to_numpy(), TREND_FRACTION) if len(sm) > 1 else math.nan,
        "cond_last": float(final["cond"].dropna().iloc[-1]) if final["cond"].notna().any() else math.nan,
    }
