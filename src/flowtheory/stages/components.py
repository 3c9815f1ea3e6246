"""The components stage's job: the authors' un-whitened components (docs/theory.md §3) at training
points, sign-aligned, with PCA comparisons and the intrinsic dimension
(``workflow/scripts/components.py``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from flowtheory.pipeline import storage
from flowtheory.pipeline.checkpoints import Trained
from flowtheory.pipeline.config import ALIGN_K, HIGHDIM, n_points
from flowtheory.pipeline.runkey import RunKey
from flowtheory.science.components import align_signs, class_overlaps, extract, intrinsic_dimension, subspace_overlaps
from flowtheory.science.stats import pca

__all__ = ["HIGHDIM_COMPONENTS", "LOCAL_K", "TRAVERSAL_STEPS", "locality", "run", "run_many", "traversals"]

#: components (and directions) kept per point when d > HIGHDIM
HIGHDIM_COMPONENTS = 16
#: dimension of the local subspaces compared by the locality metric (paper_map.yaml
#: ``mnist_components_local``: small against MNIST's intrinsic dimension, the k of the old measurement)
LOCAL_K = 4
#: steps t (in the data's latent standard deviations along u_1) of the traversals x(t) = g(f(x) + t σ u_1);
#: within ±1.5: the MLP flow's generative map (sinh activations) explodes beyond about one std on
#: one side (docs/measurements.md#mnist-flow)
TRAVERSAL_STEPS = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
#: example points (the first of each class among the analysed points) that get a traversal
TRAVERSAL_CLASSES = 10


def locality(directions: np.ndarray, labels: np.ndarray, pca_axes: np.ndarray, k: int = LOCAL_K) -> dict:
    """How local the local principal subspaces are (d > HIGHDIM, labelled data).

    Overlap of two points' top-k subspaces: ||U_aᵀ U_b||_F² / k, the mean squared cosine of their
    principal angles (:func:`subspace_overlaps`); averaged over the pairs within a class and across
    classes, and each point's overlap with the global PCA top-k subspace for reference. A flow that
    is linear on the data gives 1 everywhere.
    """
    k = min(k, directions.shape[2])
    overlaps = subspace_overlaps(directions, k)
    within, across = class_overlaps(overlaps, labels)
    v1 = np.abs(np.einsum("ni,mi->nm", directions[:, :, 0], directions[:, :, 0]))
    off = ~np.eye(len(v1), dtype=bool)
    return {
        "local_overlap_k": k,
        "local_overlap_within": within,
        "local_overlap_across": across,
        "local_overlap_pca": float(subspace_overlaps(directions, k, pca_axes.T).mean()),
        "local_v1_abs_cos": float(v1[off].mean()) if off.any() else math.nan,
    }


def traversals(flow, x: np.ndarray, y: np.ndarray, J: np.ndarray, directions: np.ndarray, labels: np.ndarray):
    """Images along each example point's top un-whitened component: x(t) = g(f(x) + t σ u_1).

    u_1 = J_f(x) v_1 / |J_f(x) v_1| is the latent-space singular vector paired with the top local
    direction v_1 (local std 1/s_1 along v_1 in data space is one latent std along u_1); σ is the
    std of the analysed points' latents along u_1, so that t counts the data's latent stds. One
    example per class (the first analysed point of each, at most :data:`TRAVERSAL_CLASSES`).

    Returns:
        ``(points, images)``: the example indices (m,) and the images, (m, len(TRAVERSAL_STEPS), d)
        (NaN where the generative map is not finite).
    """
    classes = sorted(set(labels.tolist()))[:TRAVERSAL_CLASSES]
    points = np.array([int(np.flatnonzero(labels == c)[0]) for c in classes], dtype=np.int64)
    if not len(points):
        return points, np.zeros((0, len(TRAVERSAL_STEPS), x.shape[1]))
    u = np.einsum("nij,nj->ni", J[points], directions[points, :, 0])
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    # one step: the analysed points' latent std along u (1 for latents ~ N(0, I); less on clean
    # data when the flow was fitted with a stabilizer, docs/theory.md §2.5), so the steps stay
    # within the data's range
    sigma = (y @ u.T).std(0)
    steps = np.asarray(TRAVERSAL_STEPS)
    latents = y[points][:, None, :] + steps[None, :, None] * (sigma[:, None] * u)[:, None, :]
    dtype = next(flow.parameters()).dtype
    with torch.no_grad():
        images = flow.generate(torch.as_tensor(latents.reshape(-1, x.shape[1]), dtype=dtype)).double().numpy()
    images = images.reshape(len(points), len(steps), x.shape[1])
    return points, np.where(np.isfinite(images), images, np.nan)


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
    extra = {}
    if d <= HIGHDIM:
        dirs = comp.directions.numpy()  # (n, d, k)
        for i in range(d):
            frame[f"dir_{i}"] = dirs[:, i, :keep].ravel()
    elif np.isfinite(scale).all():
        # image data: are the local principal subspaces local (docs/measurements.md#mnist-flow)?
        labels = data["c_train"][:n]
        dirs = comp.directions.numpy()[:, :, :keep]
        metrics.update(locality(dirs, labels, axes))
        points, images = traversals(tr.flow, x, y.double().numpy(), J.double().numpy(), dirs, labels)
        extra = {"traversal_points": points, "traversal_steps": np.asarray(TRAVERSAL_STEPS), "traversals": images}
    storage.save_npz(
        out_npz,
        x=x,
        c=data["c_train"][:n],
        y=y.double().numpy(),
        yhat=yhat[:, :keep],
        scale=scale[:, :keep],
        directions=comp.directions.numpy()[:, :, :keep],
        pca_axes=axes[:keep],
        **extra,
    )
    storage.save_csv(out_csv, frame)
    storage.save_json(out_metrics, metrics)
    return metrics


def run_many(cfg: dict, data_path: str, runs: list[dict], log=print) -> list[dict]:
    """:func:`run` for every run of one experiment (``runs``: dicts of ``stabilizer``, ``seed``,
    ``model``, ``run_metrics``, ``npz``, ``csv``, ``metrics``)."""
    out = []
    for r in runs:
        log(f"run {RunKey('', r['stabilizer'], r['seed']).label}")
        out.append(run(cfg, data_path, r["model"], r["run_metrics"], r["npz"], r["csv"], r["metrics"]))
    return out
