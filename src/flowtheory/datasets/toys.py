"""Toy data sets as (points, colouring variable) pairs: the correlated Gaussian, and the toy
manifolds of :mod:`flowtheory.datasets.manifolds` without their ground truth. Each generator takes
one explicit ``numpy.random.Generator``."""

from __future__ import annotations

import numpy as np

from flowtheory.datasets import manifolds

__all__ = ["circle", "gaussian", "line", "s_curve", "swiss_roll"]


def s_curve(n: int, rng: np.random.Generator, scale_eta0: float = 0.15, noise: float = 0.0):
    """The authors' S-curve (``util.make_s_curve``, docs/theory.md §6.1), not scikit-learn's.

    η0 ~ N(0, scale_eta0²), η1 ~ U(0, 1), t = 3π η0; x = (sin t, 2 η1, sign(t)(cos t − 1)) plus
    optional isotropic noise. With ``noise=0`` it is an exactly 2-D sheet in R³.

    Returns:
        ``(X, t)`` with shapes (n, 3) and (n,).
    """
    m = manifolds.s_curve(n, rng, scale_eta0, noise)
    return m.x, m.colour


def gaussian(n: int, rng: np.random.Generator, mean, cov):
    """A correlated Gaussian; the colouring variable is the projection on the leading PCA axis.

    Returns:
        ``(X, c)`` with shapes (n, d) and (n,), d = ``len(mean)``.

    Raises:
        ValueError: unless ``mean`` is a finite vector and ``cov`` a finite symmetric positive
            semi-definite d × d matrix.
    """
    mean, cov = _check_gaussian(mean, cov)
    X = rng.multivariate_normal(mean, cov, n)
    lead = np.linalg.eigh(cov)[1][:, -1]
    return X, (X - mean) @ lead


def _check_gaussian(mean, cov) -> tuple[np.ndarray, np.ndarray]:
    mean, cov = np.asarray(mean, float), np.asarray(cov, float)
    if mean.ndim != 1 or mean.size == 0 or cov.shape != (mean.size, mean.size):
        raise ValueError(f"gaussian: expected a d-vector mean and a d × d cov, got shapes {mean.shape} and {cov.shape}")
    if not (np.isfinite(mean).all() and np.isfinite(cov).all()):
        raise ValueError("gaussian: mean and cov must be finite")
    scale = max(float(np.abs(cov).max()), 1.0)
    if not np.allclose(cov, cov.T, rtol=0.0, atol=1e-12 * scale):
        raise ValueError(f"gaussian: cov must be symmetric, got {cov.tolist()}")
    if np.linalg.eigvalsh(cov).min() < -1e-10 * scale:
        raise ValueError(f"gaussian: cov must be positive semi-definite, got {cov.tolist()}")
    return mean, cov


def line(n: int, rng: np.random.Generator, slope: float = 0.5, noise: float = 0.0):
    """Points on the line x₂ = slope · x₁ in 2-D (a singular covariance), t ~ N(0, 1)."""
    m = manifolds.line(n, rng, slope, noise)
    return m.x, m.colour


def circle(n: int, rng: np.random.Generator, radius: float = 1.0, arc: float = 1.5 * np.pi, noise: float = 0.0):
    """A 1-D arc of a circle in 2-D, angle uniform on [0, arc)."""
    m = manifolds.circle(n, rng, radius, arc, noise)
    return m.x, m.colour


def swiss_roll(n: int, rng: np.random.Generator, noise: float = 0.0):
    """The Swiss roll, a 2-D sheet in 3-D, in scikit-learn's proportions (t ~ U(1.5π, 4.5π),
    height ~ U(0, 21)) scaled by 1/7 to unit order of magnitude."""
    m = manifolds.swiss_roll(n, rng, noise)
    return m.x, m.colour
