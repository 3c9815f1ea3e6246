"""Exact k-nearest neighbours and PCA, small enough to need no scikit-learn at run time.

Importing scikit-learn in every analysis and components job costs more than these few lines
(measured in ``results/benchmarks.md``). scikit-learn stays the oracle: ``tests/science/test_stats.py``
checks both functions against it.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["knn_indices", "pca"]

#: pairwise distances computed per chunk of query points (at most this many pairs per chunk)
KNN_CHUNK_PAIRS = 4_000_000


def knn_indices(reference: np.ndarray, points: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` nearest ``reference`` rows of each row of ``points``, nearest first.

    Exact Euclidean distances (no ``‖a‖² + ‖b‖² − 2ab`` expansion, which loses the order of close
    neighbours); ties go to the lower index. A query point that is itself in ``reference`` comes
    first, at distance 0, as with ``sklearn.neighbors.NearestNeighbors.kneighbors``.
    """
    if not 1 <= k <= len(reference):
        raise ValueError(f"k must be in [1, {len(reference)}], got {k}")
    ref = torch.as_tensor(np.ascontiguousarray(reference, dtype=np.float64))
    pts = torch.as_tensor(np.ascontiguousarray(points, dtype=np.float64))
    rows = max(1, KNN_CHUNK_PAIRS // max(1, len(ref)))
    out = []
    for chunk in pts.split(rows):
        dist = torch.cdist(chunk, ref, compute_mode="donot_use_mm_for_euclid_dist")
        out.append(torch.argsort(dist, dim=1, stable=True)[:, :k])
    return torch.cat(out).numpy() if out else np.zeros((0, k), dtype=np.int64)


def pca(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal components of ``x`` (n, d): ``(eigenvalues, axes, mean)``.

    ``eigenvalues`` (d,) are the variances along the axes (ddof 1, as scikit-learn's
    ``explained_variance_``), in decreasing order, floored at 0; ``axes`` (d, d) holds the unit
    principal axes as rows, so the scores are ``(x - mean) @ axes.T``. Signs are arbitrary.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"pca needs an (n >= 2, d) array, got shape {x.shape}")
    mean = x.mean(0)
    xc = x - mean
    evals, evecs = np.linalg.eigh(xc.T @ xc / (len(x) - 1))
    order = np.argsort(evals)[::-1]
    return np.clip(evals[order], 0.0, None), evecs[:, order].T, mean
