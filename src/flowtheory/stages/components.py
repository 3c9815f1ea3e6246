"""The components stage's job: the authors' un-whitened components (docs/theory.md §3) at training
points, sign-aligned, with PCA comparisons and the intrinsic dimension
(``workflow/scripts/components.py``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from flowtheory.pipeline import storage
from flowtheory.pipeline.checkpoints import Trained
from flowtheory.pipeline.config import ALIGN_K, HIGHDIM, n_points
from flowtheory.science.components import align_signs, extract, intrinsic_dimension
from flowtheory.science.stats import pca

__all__ = ["HIGHDIM_COMPONENTS", "run"]

#: components (and directions) kept per point when d > HIGHDIM
HIGHDIM_COMPONENTS = 16


def run(
    cfg: dict, data_path: str, model_path: str, run_metrics_path: str, out_npz: str, out_csv: str, out_metrics: str
) -> dict:
    """Un-whitened components of one run (docs/theory.md §3), sign-aligned, with PCA comparisons."""
    tr = Trained.load(data_path, model_path, run_metrics_path)
    data, run, lam, d = tr.data, tr.run, tr.lam, tr.d
    # the normal local std saturates at √(σ² + λ) on data with noise σ (docs/theory.md §2.5)
    noise = float(data["noise"]) if "noise" in data else 0.0
    floor_var = lam + noise**2
    n = n_points(cfg, d, len(data["x_train"]))
    x = data["x_train"][:n]
    y, J = tr.jacobians(x)
    comp = extract(J.double(), y.double())
    if d <= HIGHDIM:
        comp = align_signs(comp, x, cfg.get("align_k", ALIGN_K))
    yhat, scale = comp.yhat.numpy(), comp.scale.numpy()
    keep = d if d <= HIGHDIM else min(d, HIGHDIM_COMPONENTS)
    eigenvalues, axes, mean = pca(data["x_train"])
    scores = (x - mean) @ axes.T
    var_yhat = yhat.var(0)
    metrics = {
        "run": run["run"],
        "status": run["status"],
        "lam": lam,
        "n_points": n,
        "d": d,
        "noise": noise,
        "intrinsic_dim": intrinsic_dimension(comp.scale, floor_var, cfg.get("floor_factor", 3.0)),
        "intrinsic_dim_gap": intrinsic_dimension(comp.scale, 0.0),
        "floor": math.sqrt(floor_var) * cfg.get("floor_factor", 3.0),
        "scale_median": np.median(scale, 0).tolist(),
        "var_yhat": var_yhat.tolist(),
        "var_y": y.double().numpy().var(0).tolist(),
        "pca_eigenvalues": eigenvalues.tolist(),
    }
    corr = [abs(np.corrcoef(yhat[:, k], scores[:, k])[0, 1]) for k in range(keep)]
    metrics["pca_abs_corr"] = corr
    metrics["pca_abs_corr_min"] = float(np.min(corr))
    metrics["pca_var_ratio"] = (var_yhat[:keep] / scores.var(0)[:keep]).tolist()
    frame = pd.DataFrame(
        {
            "point": np.repeat(np.arange(n), keep),
            "component": np.tile(np.arange(keep), n),
            "value": yhat[:, :keep].ravel(),
            "scale": scale[:, :keep].ravel(),
        }
    )
    if d <= HIGHDIM:
        dirs = comp.directions.numpy()  # (n, d, k)
        for i in range(d):
            frame[f"dir_{i}"] = dirs[:, i, :keep].ravel()
    storage.save_npz(
        out_npz,
        x=x,
        c=data["c_train"][:n],
        y=y.double().numpy(),
        yhat=yhat[:, :keep],
        scale=scale[:, :keep],
        directions=comp.directions.numpy()[:, :, :keep],
    )
    storage.save_csv(out_csv, frame)
    storage.save_json(out_metrics, metrics)
    return metrics
