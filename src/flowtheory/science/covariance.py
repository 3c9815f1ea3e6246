r"""The flow's Jacobian as a scientific output: local covariance, kNN and closed-form oracles.

Theory (docs/theory.md §2.2–2.3): at the optimum a linear flow y = W(x − b) satisfies
:math:`W^\top W = \Sigma^{-1}`, and with shrinkage λ, :math:`W^\top W = (\Sigma + \lambda I)^{-1}`.
A nonlinear flow does this locally: :math:`J_f(x)^\top J_f(x) \approx \Sigma_{loc}(x)^{-1}`, so the
flow's local covariance is :math:`\Sigma_{flow}(x) = (J_f^\top J_f)^{-1} = V S^{-2} V^\top`.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch import Tensor

from flowtheory.science.flows import Flow
from flowtheory.science.stats import knn_indices

__all__ = [
    "CHUNK_BYTES",
    "flow_local_cov",
    "jacobians",
    "knn_local_cov",
    "leading_angle_deg",
    "rel_frobenius",
    "subspace_angle_deg",
]

#: Jacobians are computed in chunks of at most this many bytes of (n, d, d) output
CHUNK_BYTES = 256 * 2**20


@torch.no_grad()
def jacobians(flow: Flow, x: Tensor, chunk_bytes: int = CHUNK_BYTES) -> tuple[Tensor, Tensor]:
    """Latents and per-sample Jacobians ``(y, J_f(x))`` in evaluation mode, chunked so that the
    working memory stays near ``chunk_bytes`` (about 4 intermediate (n, d, d) tensors)."""
    flow.eval()
    d = x.shape[1]
    per_point = d * d * x.element_size() * 4
    step = max(1, chunk_bytes // per_point)
    ys, Js = [], []
    for i in range(0, len(x), step):
        xb = x[i : i + step]
        ys.append(flow(xb)[0])
        with torch.enable_grad() if not flow.analytic_jacobian else contextlib.nullcontext():
            Js.append(flow.jacobian(xb).detach())  # autograd fall-backs (couplings, zuko) need grad
    return torch.cat(ys), torch.cat(Js)


def flow_local_cov(J: Tensor) -> Tensor:
    """:math:`(J^\\top J)^{-1}` per point, through the SVD (stable when J is ill conditioned)."""
    _, s, Vh = torch.linalg.svd(J)
    V = Vh.mT
    return (V / s[:, None, :] ** 2) @ Vh


def knn_local_cov(reference: np.ndarray, points: np.ndarray, k: int) -> np.ndarray:
    """Empirical covariance of the ``k`` nearest reference points of each point."""
    nbrs = reference[knn_indices(reference, points, k)]  # (n, k, d)
    centred = nbrs - nbrs.mean(1, keepdims=True)
    return np.einsum("nki,nkj->nij", centred, centred) / k


def rel_frobenius(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """‖A − B‖_F / ‖B‖_F over the last two axes."""
    return np.linalg.norm(A - B, axis=(-2, -1)) / np.linalg.norm(B, axis=(-2, -1))


def _top_eigvecs(C: np.ndarray, k: int) -> np.ndarray:
    _, vecs = np.linalg.eigh(C)  # ascending
    return vecs[..., :, ::-1][..., :, :k]


def leading_angle_deg(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Angle in degrees (0–90, sign-free) between the leading eigenvectors of A and B."""
    a, b = _top_eigvecs(A, 1)[..., 0], _top_eigvecs(B, 1)[..., 0]
    cos = np.clip(np.abs(np.sum(a * b, -1)), 0.0, 1.0)
    return np.degrees(np.arccos(cos))


def subspace_angle_deg(A: np.ndarray, B: np.ndarray, k: int) -> np.ndarray:
    """Largest principal angle in degrees between the top-``k`` eigenspaces of A and B
    (for k = intrinsic dimension: the angle between the estimated tangent planes)."""
    Qa, Qb = _top_eigvecs(A, k), _top_eigvecs(B, k)
    sv = np.linalg.svd(np.swapaxes(Qa, -2, -1) @ Qb, compute_uv=False)
    return np.degrees(np.arccos(np.clip(sv[..., -1], 0.0, 1.0)))


def shrunk_oracle(x_train: np.ndarray, lam: float) -> np.ndarray:
    """The closed-form optimum of a linear flow with shrinkage λ: Σ̂ + λI (Σ̂ with 1/N)."""
    S = np.cov(x_train.T, bias=True)
    return S + lam * np.eye(S.shape[0])


def median(values: np.ndarray) -> float:
    values = np.asarray(values, float)
    return float(np.median(values)) if values.size else math.nan
