"""The analysis stage's job: the flow's local covariance at validation points against the
k-nearest-neighbour covariance and the closed-form oracles, and the run's exact gap to the optimum of
what it is trained on (rule ``analysis``, ``workflow/scripts/analysis.py``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from flowtheory.datasets.truth import truth
from flowtheory.pipeline import storage
from flowtheory.pipeline.checkpoints import Trained
from flowtheory.pipeline.config import HIGHDIM, n_points
from flowtheory.pipeline.runkey import RunKey
from flowtheory.science import optimum, oracles
from flowtheory.science.covariance import (
    flow_local_cov,
    knn_local_cov,
    leading_angle_deg,
    median,
    rel_frobenius,
    shrunk_oracle,
    subspace_angle_deg,
)

__all__ = ["gap", "run", "run_many"]


def run(
    cfg: dict,
    intrinsic_dim: int | None,
    data_path: str,
    model_path: str,
    run_metrics_path: str,
    out_points: str,
    out_metrics: str,
    dataset: dict | None = None,
    data_seed: int = 0,
) -> dict:
    """Covariance analysis of one run: the flow's local covariance against kNN and closed forms,
    and its gap to the optimum (:func:`gap`).

    ``intrinsic_dim`` is the data set's true intrinsic dimension k
    (:func:`flowtheory.datasets.truth.truth`; None when unknown): where k < d the flow's and the kNN
    covariance's top-k eigenspaces (the tangent spaces) are compared. ``dataset`` is the data set's
    spec (``data.datasets.<name>``: its kind and generator parameters) and ``data_seed`` the data
    seed (``data.seed``), which seeds the gap's samples of the target.
    """
    tr = Trained.load(data_path, model_path, run_metrics_path)
    data, run, flow, lam, d = tr.data, tr.run, tr.flow, tr.lam, tr.d
    n = n_points(cfg, d, len(data["x_valid"]))
    x = data["x_valid"][:n]
    J = tr.jacobians(x)[1].double()
    s = torch.linalg.svdvals(J).numpy()
    rows: dict[str, np.ndarray] = {
        "point": np.arange(n),
        "c": data["c_valid"][:n],
        "smax": s[:, 0],
        "smin": s[:, -1],
        "logdet": np.log(s).sum(1),
    }
    metrics = {
        "run": run["run"],
        "status": run["status"],
        "lam": lam,
        "n_points": n,
        "d": d,
        "smax_median": median(s[:, 0]),
        "smin_median": median(s[:, -1]),
        "cond_median": median(s[:, 0] / s[:, -1]),
    }
    if d <= HIGHDIM:
        cov_flow = flow_local_cov(J).numpy()
        cov_knn = knn_local_cov(data["x_train"], x, cfg["knn_k"])
        for i in range(d):
            rows[f"x{i}"] = x[:, i]
        rows["relerr_knn"] = rel_frobenius(cov_flow, cov_knn)
        rows["lead_angle_knn_deg"] = leading_angle_deg(cov_flow, cov_knn)
        metrics["relerr_knn_median"] = median(rows["relerr_knn"])
        metrics["lead_angle_knn_deg_median"] = median(rows["lead_angle_knn_deg"])
        k = intrinsic_dim
        if k is not None and k < d:
            rows["tangent_angle_knn_deg"] = subspace_angle_deg(cov_flow, cov_knn, k)
            metrics["tangent_angle_knn_deg_median"] = median(rows["tangent_angle_knn_deg"])
            metrics["intrinsic_dim_true"] = k
        if "tangent_valid" in data:  # the exact oracle: analytic tangent spaces (docs/theory.md §2.3)
            _manifold_oracle(rows, metrics, J.numpy(), cov_knn, data, n, lam)
        if d <= 3:  # full matrices for the ellipse figure
            for i in range(d):
                for j in range(d):
                    rows[f"cov_flow_{i}{j}"] = cov_flow[:, i, j]
                    rows[f"cov_knn_{i}{j}"] = cov_knn[:, i, j]
        for lab, cov in (("flow", cov_flow), ("knn", cov_knn)):
            eig = np.linalg.eigvalsh(cov)[:, ::-1]
            for j in range(d):
                rows[f"eig_{lab}_{j}"] = eig[:, j]
        if data["oracle_cov"].size:
            target = shrunk_oracle(data["x_train"], lam)
            rows["relerr_oracle"] = rel_frobenius(cov_flow, target[None])
            metrics["relerr_oracle_median"] = median(rows["relerr_oracle"])
            metrics["relerr_oracle_max"] = float(np.max(rows["relerr_oracle"]))
            metrics["relerr_oracle_unshrunk_median"] = median(
                rel_frobenius(cov_flow, shrunk_oracle(data["x_train"], 0.0)[None])
            )
    g = gap(tr, dataset, data_seed, cfg["n_points"], storage.load_checkpoint(model_path)[1]["stabilizer"])
    metrics.update(gap_nats=g.nats, gap_se=g.se, gap_median=g.median, gap_kind=g.kind, gap_target_std=g.target_std)
    if tr.kind == "linear":
        W = flow.weight_matrices()[0].detach().double().numpy()
        for label, lam_ref in (("", lam), ("_unshrunk", 0.0)):
            cov = shrunk_oracle(data["x_train"], lam_ref)
            # a singular covariance (degenerate data, λ = 0) has no inverse to compare with
            singular = np.linalg.cond(cov) > 1 / np.finfo(float).eps
            metrics[f"wtw_relerr{label}"] = math.nan if singular else float(rel_frobenius(W.T @ W, np.linalg.inv(cov)))
    storage.save_csv(out_points, pd.DataFrame(rows))
    storage.save_json(out_metrics, metrics)
    return metrics


def _manifold_oracle(
    rows: dict, metrics: dict, J: np.ndarray, cov_knn: np.ndarray, data: dict, n: int, lam: float
) -> None:
    """The flow and the kNN estimate against the manifold's analytic tangent spaces, and the flow's
    normal-direction local std against the first-order prediction √(σ² + λ) (docs/theory.md §2.5).
    Only what a nonlinear flow's optimum pins down is compared: subspaces and normal scales, never
    JᵀJ within the tangent space."""
    tangent = data["tangent_valid"][:n]
    noise = float(data["noise"]) if "noise" in data else 0.0
    rows["tangent_angle_true_deg"] = oracles.tangent_angle_deg(J, tangent)
    rows["knn_tangent_angle_true_deg"] = oracles.cov_tangent_angle_deg(cov_knn, tangent)  # the kNN covariance above
    normal = oracles.normal_std(J, tangent)
    rows["normal_std"] = np.sqrt((normal**2).mean(-1))  # RMS over the normal directions
    pred = oracles.predicted_normal_std(lam, noise)
    metrics.update(
        noise=noise,
        intrinsic_dim_true=int(tangent.shape[2]),
        tangent_angle_true_deg_median=median(rows["tangent_angle_true_deg"]),
        knn_tangent_angle_true_deg_median=median(rows["knn_tangent_angle_true_deg"]),
        normal_std_median=median(rows["normal_std"]),
        normal_std_predicted=pred,
        normal_std_ratio=median(rows["normal_std"]) / pred if pred > 0 else math.nan,
    )


def gap(tr: Trained, dataset: dict | None, data_seed: int, n: int, stabilizer: dict) -> optimum.Gap:
    """The run's exact gap to the optimum of what it is trained on, in nats (docs/theory.md §2.6).

    A linear flow: its penalized training objective minus the objective's minimum, in closed form
    from the training points. Any other flow on data of known density: KL(p‖q) to the target p of
    :func:`flowtheory.science.optimum.kl_target`, from ``n`` samples of p drawn from the data seed's
    own stream (the same samples for every run of an experiment); else NaN and why.

    Arguments:
        tr: the trained run.
        dataset: the data set's spec (``data.datasets.<name>``), None when not known.
        data_seed: the data seed (``data.seed``).
        n: the number of samples of p.
        stabilizer: the run's stabilizer spec (``kind``, ``lam``; the checkpoint's meta).
    """
    stab_kind = str(stabilizer.get("kind", "none"))
    if tr.kind == "linear":
        layer = tr.flow.layers[0]
        W, b = (p.detach().double().numpy() for p in (layer.W, layer.b))
        return optimum.linear_gap(W, b, tr.data["x_train"], stab_kind, tr.lam)
    if dataset is None:
        return optimum.Gap.none(f"{optimum.NONE_UNKNOWN} (no data set spec)")
    t = truth(dataset)
    noise = float(tr.data["noise"]) if "noise" in tr.data else t.noise
    s, label = optimum.kl_target(t.kind, noise, stab_kind, tr.lam, t.degenerate)
    if not math.isfinite(s):
        return optimum.Gap.none(label)

    def log_q(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return tr.flow.log_prob(torch.as_tensor(x, dtype=tr.dtype)).double().numpy()

    return optimum.flow_gap(log_q, t.kind, dataset, s, label, n, optimum.gap_rng(data_seed))


def run_many(
    cfg: dict,
    intrinsic_dim: int | None,
    data_path: str,
    runs: list[dict],
    log=print,
    dataset: dict | None = None,
    data_seed: int = 0,
) -> list[dict]:
    """:func:`run` for every run of one experiment (``runs``: dicts of ``stabilizer``, ``seed``,
    ``model``, ``run_metrics``, ``points``, ``metrics``) on the data set ``dataset`` (its spec) drawn
    with ``data_seed``."""
    out = []
    for r in runs:
        log(f"run {RunKey('', r['stabilizer'], r['seed']).label}")
        paths = (r["model"], r["run_metrics"], r["points"], r["metrics"])
        out.append(run(cfg, intrinsic_dim, data_path, *paths, dataset=dataset, data_seed=data_seed))
    return out
