"""One function per pipeline job. ``workflow/scripts/*.py`` unpack the Snakemake object and call
these; all arguments are plain paths and dicts, so every job also runs outside Snakemake.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from . import storage
from .components import align_signs, extract, intrinsic_dimension
from .config import HIGHDIM, RunSpec
from .covariance import (
    flow_local_cov,
    jacobians,
    knn_local_cov,
    leading_angle_deg,
    median,
    rel_frobenius,
    shrunk_oracle,
    subspace_angle_deg,
)
from .datasets import make_dataset
from .flows import Flow, build_flow, count_parameters
from .stabilizers import Stabilizer
from .training import TrainConfig, train, trend

__all__ = [
    "INTRINSIC_DIM",
    "analyze_run",
    "components_run",
    "load_flow",
    "make_data",
    "set_threads",
    "train_run",
]

#: true intrinsic dimension of each toy data set kind (None: unknown or d)
INTRINSIC_DIM = {"line": 1, "circle": 1, "scurve": 2, "swissroll": 2, "gaussian": None, "mnist": None}
#: components (and directions) kept per point when d > HIGHDIM
HIGHDIM_COMPONENTS = 16
#: fraction of the epochs over which NLL and singular-value trends are fitted
TREND_FRACTION = 0.25


def set_threads(n: int = 1) -> None:
    """One torch thread per job: parallelism comes from Snakemake jobs, and results are bitwise stable."""
    torch.set_num_threads(n)


def make_data(spec: dict, seed: int, out: str) -> None:
    data = make_dataset(spec, seed)
    for key in ("x_train", "x_valid"):
        if not np.isfinite(data[key]).all():
            raise storage.DataError(f"data set {spec.get('kind')!r}: {key} contains NaN or inf values")
    storage.save_npz(out, **data)


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config device is 'cuda' but no CUDA device is available; set device: cpu")
    return torch.device(name)


def train_run(spec: dict, data_path: str, out_model: str, out_history: str, out_metrics: str,
              log: Callable[[str], None] = print) -> dict:
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
    log(f"run {rs.run_id}: {rs.flow['kind']} flow, {count_parameters(flow)} parameters, d={d}, "
        f"stabilizer {stab.kind} lam={stab.lam} (authors' knobs {stab.authors_knobs()}), {rs.epochs} epochs")
    result = train(flow, x_train, x_valid, stab, cfg, seed=rs.seed, log=log)
    hist = pd.DataFrame(result.history)
    for col in ("epoch", "step", "train_nll", "penalty", "valid_nll", "smax", "smin", "cond", "cond_max",
                "max_abs_logdet"):
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
    storage.save_checkpoint(out_model, {k: v.cpu() for k, v in flow.state_dict().items()}, meta)
    return metrics


def _curve_summary(hist: pd.DataFrame) -> dict:
    if hist.empty:
        return {key: math.nan for key in ("final_train_nll", "final_valid_nll", "min_train_nll", "nll_slope",
                                          "nll_tail_drop", "smax_rel_growth", "smax_first", "smax_last",
                                          "smax_slope", "cond_last")}
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


def load_flow(model_path: str, device: str = "cpu") -> tuple[Flow, dict]:
    """Rebuilds a trained flow from its checkpoint (loaded with ``weights_only=True``)."""
    state, meta = storage.load_checkpoint(model_path)
    flow = build_flow(meta["flow"], meta["d"], getattr(torch, meta["dtype"]), seed=meta["seed"])
    try:
        flow.load_state_dict(state)
    except RuntimeError as e:
        raise storage.DataError(f"{model_path}: checkpoint does not match its flow config ({e})") from None
    return flow.to(device).eval(), meta


def _points(config_section: dict, d: int, n_avail: int) -> int:
    n = config_section.get("max_points_highdim", config_section["n_points"]) if d > HIGHDIM else config_section["n_points"]
    return min(n, n_avail)


def analyze_run(cfg: dict, dataset_kind: str, data_path: str, model_path: str, run_metrics_path: str,
                out_points: str, out_metrics: str) -> dict:
    """Covariance analysis of one run: the flow's local covariance against kNN and closed forms."""
    data = storage.load_dataset(data_path)
    run = storage.load_json(run_metrics_path)
    flow, meta = load_flow(model_path)
    dtype = getattr(torch, meta["dtype"])
    lam = float(meta["stabilizer"].get("lam", 0.0))
    d = data["x_train"].shape[1]
    n = _points(cfg, d, len(data["x_valid"]))
    x = data["x_valid"][:n]
    _, J = jacobians(flow, torch.as_tensor(x, dtype=dtype))
    J = J.double()
    s = torch.linalg.svdvals(J).numpy()
    rows: dict[str, np.ndarray] = {"point": np.arange(n), "c": data["c_valid"][:n],
                                   "smax": s[:, 0], "smin": s[:, -1], "logdet": np.log(s).sum(1)}
    metrics = {"run": run["run"], "status": run["status"], "lam": lam, "n_points": n, "d": d,
               "smax_median": median(s[:, 0]), "smin_median": median(s[:, -1]),
               "cond_median": median(s[:, 0] / s[:, -1])}
    if d <= HIGHDIM:
        cov_flow = flow_local_cov(J).numpy()
        cov_knn = knn_local_cov(data["x_train"], x, cfg["knn_k"])
        for i in range(d):
            rows[f"x{i}"] = x[:, i]
        rows["relerr_knn"] = rel_frobenius(cov_flow, cov_knn)
        rows["lead_angle_knn_deg"] = leading_angle_deg(cov_flow, cov_knn)
        metrics["relerr_knn_median"] = median(rows["relerr_knn"])
        metrics["lead_angle_knn_deg_median"] = median(rows["lead_angle_knn_deg"])
        k = INTRINSIC_DIM.get(dataset_kind)
        if k is not None and k < d:
            rows["tangent_angle_knn_deg"] = subspace_angle_deg(cov_flow, cov_knn, k)
            metrics["tangent_angle_knn_deg_median"] = median(rows["tangent_angle_knn_deg"])
            metrics["intrinsic_dim_true"] = k
        if d <= 3:  # full matrices for the ellipse figure
            for i in range(d):
                for j in range(d):
                    rows[f"cov_flow_{i}{j}"] = cov_flow[:, i, j]
                    rows[f"cov_knn_{i}{j}"] = cov_knn[:, i, j]
        for i, lab in ((0, "flow"), (1, "knn")):
            eig = np.linalg.eigvalsh(cov_flow if i == 0 else cov_knn)[:, ::-1]
            for j in range(d):
                rows[f"eig_{lab}_{j}"] = eig[:, j]
        if data["oracle_cov"].size:
            target = shrunk_oracle(data["x_train"], lam)
            rows["relerr_oracle"] = rel_frobenius(cov_flow, target[None])
            metrics["relerr_oracle_median"] = median(rows["relerr_oracle"])
            metrics["relerr_oracle_max"] = float(np.max(rows["relerr_oracle"]))
            metrics["relerr_oracle_unshrunk_median"] = median(
                rel_frobenius(cov_flow, shrunk_oracle(data["x_train"], 0.0)[None]))
    if meta["flow"]["kind"] == "linear":
        W = flow.weight_matrices()[0].detach().double().numpy()
        for label, lam_ref in (("", lam), ("_unshrunk", 0.0)):
            cov = shrunk_oracle(data["x_train"], lam_ref)
            # a singular covariance (degenerate data, λ = 0) has no inverse to compare with
            singular = np.linalg.cond(cov) > 1 / np.finfo(float).eps
            metrics[f"wtw_relerr{label}"] = math.nan if singular else float(
                rel_frobenius(W.T @ W, np.linalg.inv(cov)))
    storage.save_csv(out_points, pd.DataFrame(rows))
    storage.save_json(out_metrics, metrics)
    return metrics


def components_run(cfg: dict, data_path: str, model_path: str, run_metrics_path: str,
                   out_npz: str, out_csv: str, out_metrics: str) -> dict:
    """Un-whitened components of one run (paper.md §3), sign-aligned, with PCA comparisons."""
    from sklearn.decomposition import PCA

    data = storage.load_dataset(data_path)
    run = storage.load_json(run_metrics_path)
    flow, meta = load_flow(model_path)
    dtype = getattr(torch, meta["dtype"])
    lam = float(meta["stabilizer"].get("lam", 0.0))
    d = data["x_train"].shape[1]
    n = _points(cfg, d, len(data["x_train"]))
    x = data["x_train"][:n]
    y, J = jacobians(flow, torch.as_tensor(x, dtype=dtype))
    comp = extract(J.double(), y.double())
    if d <= HIGHDIM:
        comp = align_signs(comp, x, cfg.get("align_k", 10))
    yhat, scale = comp.yhat.numpy(), comp.scale.numpy()
    keep = d if d <= HIGHDIM else min(d, HIGHDIM_COMPONENTS)
    pca = PCA().fit(data["x_train"])
    scores = pca.transform(x)
    var_yhat = yhat.var(0)
    metrics = {
        "run": run["run"], "status": run["status"], "lam": lam, "n_points": n, "d": d,
        "intrinsic_dim": intrinsic_dimension(comp.scale, lam, cfg.get("floor_factor", 3.0)),
        "intrinsic_dim_gap": intrinsic_dimension(comp.scale, 0.0),
        "floor": math.sqrt(lam) * cfg.get("floor_factor", 3.0),
        "scale_median": np.median(scale, 0).tolist(),
        "var_yhat": var_yhat.tolist(),
        "var_y": y.double().numpy().var(0).tolist(),
        # PCA has min(n, d) eigenvalues; beyond the rank they are zero
        "pca_eigenvalues": np.pad(pca.explained_variance_, (0, d - len(pca.explained_variance_))).tolist(),
    }
    corr = [abs(np.corrcoef(yhat[:, k], scores[:, k])[0, 1]) for k in range(keep)]
    metrics["pca_abs_corr"] = corr
    metrics["pca_abs_corr_min"] = float(np.min(corr))
    metrics["pca_var_ratio"] = (var_yhat[:keep] / scores.var(0)[:keep]).tolist()
    frame = pd.DataFrame({
        "point": np.repeat(np.arange(n), keep),
        "component": np.tile(np.arange(keep), n),
        "value": yhat[:, :keep].ravel(),
        "scale": scale[:, :keep].ravel(),
    })
    if d <= HIGHDIM:
        dirs = comp.directions.numpy()  # (n, d, k)
        for i in range(d):
            frame[f"dir_{i}"] = dirs[:, i, :keep].ravel()
    storage.save_npz(out_npz, x=x, c=data["c_train"][:n], y=y.double().numpy(), yhat=yhat[:, :keep],
                     scale=scale[:, :keep], directions=comp.directions.numpy()[:, :, :keep])
    storage.save_csv(out_csv, frame)
    storage.save_json(out_metrics, metrics)
    return metrics


def asdict(spec: RunSpec) -> dict:
    return dataclasses.asdict(spec)
