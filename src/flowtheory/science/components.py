r"""Un-whitened latent components: the authors' algorithm (docs/theory.md §3), batched.

For each point: :math:`J_f(x_i) = U_i\,\mathrm{diag}(s_i)\,V_i^\top` with descending s, the
``svd_flip`` sign convention (the largest-|entry| of each column of U made positive, the matching
row of Vᵀ flipped with it), :math:`\hat y_i = y_i U_i \mathrm{diag}(1/s_i)`, and the component order
reversed so that the most significant component (smallest singular value of J_f, largest local
standard deviation 1/s) comes first. Equivalently :math:`\hat y = V^\top J_f^{-1} y`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from flowtheory.science.stats import knn_indices

__all__ = [
    "Components",
    "align_signs",
    "class_overlaps",
    "extract",
    "intrinsic_dimension",
    "reference_components",
    "subspace_overlaps",
    "svd_flip",
]


@dataclass
class Components:
    """Per point (n) and component (d), most significant first.

    Attributes:
        yhat: un-whitened components ŷ, (n, d).
        scale: local standard deviations 1/s, (n, d).
        directions: local principal directions; ``directions[i, :, k]`` is v_k(x_i), (n, d, d).
    """

    yhat: Tensor
    scale: Tensor
    directions: Tensor


def svd_flip(U: Tensor, Vh: Tensor) -> tuple[Tensor, Tensor]:
    """Batched ``sklearn.utils.extmath.svd_flip(U, Vh, u_based_decision=True)``."""
    rows = U.abs().argmax(dim=-2, keepdim=True)  # (..., 1, k): row of the largest |entry| per column
    signs = torch.sign(torch.gather(U, -2, rows))  # (..., 1, k)
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return U * signs, Vh * signs.mT


def extract(J: Tensor, y: Tensor) -> Components:
    """The authors' component algorithm for all points at once.

    Arguments:
        J: Jacobians of the normalizing map at the data points, (n, d, d).
        y: latents f(x), (n, d).
    """
    U, s, Vh = torch.linalg.svd(J)  # s descending
    U, Vh = svd_flip(U, Vh)
    # ŷ_i = y_i U_i diag(1/s_i)
    yhat = torch.einsum("ni,nij->nj", y, U) / s
    # reverse: smallest s (largest local std 1/s) first
    return Components(yhat=yhat.flip(-1), scale=(1 / s).flip(-1), directions=Vh.mT.flip(-1))


def reference_components(J: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The authors' per-point loop (numpy SVD + scikit-learn ``svd_flip``), for tests and benchmarks."""
    from sklearn.utils.extmath import svd_flip as sk_svd_flip

    yhat = np.zeros_like(y)
    for i in range(len(y)):
        U, s, Vt = np.linalg.svd(J[i])
        U, Vt = sk_svd_flip(U, Vt)
        yhat[i] = y[i] @ U @ np.diag(1 / s)
    return yhat[:, ::-1]


def align_signs(comp: Components, x: np.ndarray, k: int = 10) -> Components:
    """Make each component's sign vary smoothly over the data (our simple substitute for the
    authors' MRF tool).

    Breadth-first search over the symmetrised k-nearest-neighbour graph (i and j are linked when
    either is among the other's k nearest neighbours) from point 0, one search per connected
    component; each newly reached point flips component j if its direction v_j has a negative dot
    product with the direction of the point it was reached from. ŷ_j flips with v_j
    (ŷ_j = v_jᵀ J⁻¹ y), so the representation stays exact.

    The graph must be symmetrised: on the directed kNN graph a point that is in nobody's
    neighbour list (an "anti-hub") is never reached from another point, so it would start a
    search of its own and keep its arbitrary sign.
    """
    from collections import deque

    n = len(x)
    k = min(k, n - 1)
    if k < 1:
        return comp
    nbrs = knn_indices(x, x, k + 1)[:, 1:]
    adjacency: list[set[int]] = [set() for _ in range(n)]
    for i in range(n):
        for j in nbrs[i]:
            if j != i:
                adjacency[i].add(int(j))
                adjacency[int(j)].add(i)
    V = comp.directions.detach().cpu().numpy().copy()
    signs = np.ones(comp.yhat.shape)
    seen = np.zeros(n, dtype=bool)
    for root in range(n):
        if seen[root]:
            continue
        seen[root] = True
        queue = deque([root])
        while queue:
            i = queue.popleft()
            for j in sorted(adjacency[i]):
                if seen[j]:
                    continue
                seen[j] = True
                dots = (V[j] * V[i]).sum(0)  # per component
                flip = np.where(dots < 0, -1.0, 1.0)
                V[j] = V[j] * flip
                signs[j] = flip
                queue.append(j)
    signs_t = torch.as_tensor(signs, dtype=comp.yhat.dtype, device=comp.yhat.device)
    return Components(
        yhat=comp.yhat * signs_t,
        scale=comp.scale,
        directions=torch.as_tensor(V, dtype=comp.directions.dtype, device=comp.directions.device),
    )


def intrinsic_dimension(scale: Tensor, lam: float, floor_factor: float = 3.0) -> int:
    """Number of components whose median local std 1/s exceeds ``floor_factor`` × √λ.

    With shrinkage λ the flow's local standard deviation normal to the data saturates at about
    √λ (docs/theory.md §2.5), so components above a few times that floor are manifold directions. With
    λ = 0 there is no floor; then the largest gap in the log median scales separates them.
    """
    med = scale.median(0).values.double()
    if lam > 0:
        return int((med > floor_factor * math.sqrt(lam)).sum().item())
    logs = torch.log(med)
    if len(logs) < 2:
        return len(logs)
    gaps = logs[:-1] - logs[1:]
    return int(torch.argmax(gaps).item()) + 1


def subspace_overlaps(directions: np.ndarray, k: int, reference: np.ndarray | None = None) -> np.ndarray:
    r"""Pairwise overlaps of the points' top-k local subspaces.

    For orthonormal bases :math:`U_a, U_b` (d × k) the overlap is
    :math:`\lVert U_a^\top U_b\rVert_F^2 / k`, the mean squared cosine of the k principal angles
    between the two subspaces: 1 for the same subspace, 0 for orthogonal ones, k/d on average for
    independent uniformly random subspaces.

    Arguments:
        directions: per-point directions, (n, d, m) with m ≥ k; the first k columns span the
            subspace (columns ordered most significant first, as :class:`Components`).
        k: subspace dimension.
        reference: optional basis (d, ≥ k); then the overlap of every point's subspace with the
            reference's first k columns is returned, shape (n,), instead of the (n, n) matrix.

    Returns:
        the (n, n) overlap matrix (1 on the diagonal), or (n,) with ``reference``.
    """
    U = np.asarray(directions, dtype=np.float64)
    if U.ndim != 3 or not 1 <= k <= U.shape[2]:
        raise ValueError(f"directions must be (n, d, m >= k) with k >= 1; got shape {U.shape} and k={k}")
    U = U[:, :, :k]
    if reference is not None:
        R = np.asarray(reference, dtype=np.float64)[:, :k]
        return (np.einsum("nik,il->nkl", U, R) ** 2).sum((1, 2)) / k
    G = np.einsum("aik,bil->abkl", U, U)
    return (G**2).sum((2, 3)) / k


def class_overlaps(overlaps: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean off-diagonal overlap within a class and across classes (NaN where there is no pair).

    Arguments:
        overlaps: (n, n) symmetric pairwise overlaps (:func:`subspace_overlaps`).
        labels: class of each point, (n,).
    """
    labels = np.asarray(labels)
    n = len(labels)
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(n, dtype=bool)
    within, across = overlaps[same & off], overlaps[~same]
    return (
        float(within.mean()) if within.size else math.nan,
        float(across.mean()) if across.size else math.nan,
    )
