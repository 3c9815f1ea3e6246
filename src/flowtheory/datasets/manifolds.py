r"""Toy manifolds with ground truth: points, intrinsic coordinates and the exact tangent spaces.

Each generator ``(n, rng, ..., noise=0.0) -> Manifold`` draws intrinsic coordinates u from one
explicit ``numpy.random.Generator``, maps them with a smooth embedding :math:`\varphi` (the public
``*_map`` functions) and optionally adds isotropic noise :math:`N(0, \sigma^2 I)` afterwards. The
tangent space :math:`T_x = \operatorname{span}\, \partial\varphi/\partial u` at the *clean* point is
given as an orthonormal basis in closed form: the oracle that the flow's local covariance
(docs/theory.md §2.3) and the kNN estimate are scored against (``oracles.py``).

For ``line``, ``circle``, ``s_curve`` and ``swiss_roll`` the points and the colouring variable are
bit-identical to ``datasets.line``, ``circle``, ``s_curve`` and ``swiss_roll`` for the same
generator state (the same draws, in the same order, with the same arithmetic). ``sphere`` and
``sheet8`` are new.

| generator | d | k | intrinsic coordinates u | colour |
| --- | --- | --- | --- | --- |
| ``line`` | 2 | 1 | t ~ N(0, 1) | t |
| ``circle`` | 2 | 1 | angle t ~ U[0, arc) | t |
| ``s_curve`` | 3 | 2 | (t, η1), t = 3π η0, η0 ~ N(0, 0.15²), η1 ~ U(0, 1) | t |
| ``swiss_roll`` | 3 | 2 | (t, h), t = 1.5π(1 + 2u), h = 21 u' | t |
| ``sphere`` | 3 | 2 | (θ, φ): polar and azimuthal angle, uniform on S² | θ |
| ``sheet8`` | 8 | 2 | (u, v) ~ U(−1, 1)² | u |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "MANIFOLDS",
    "SHEET8_FREQ",
    "Manifold",
    "circle",
    "circle_map",
    "line",
    "line_map",
    "s_curve",
    "s_curve_map",
    "sheet8",
    "sheet8_map",
    "sphere",
    "sphere_map",
    "swiss_roll",
    "swiss_roll_map",
]

#: angular frequency of the two helices of ``sheet8`` (radius 1/2, so curvature radius ≈ 0.70)
SHEET8_FREQ = np.pi


@dataclass(frozen=True)
class Manifold:
    """Samples from a k-dimensional manifold in R^d with their ground truth.

    Attributes:
        x: points, (n, d); noisy when the generator's ``noise`` > 0.
        coords: intrinsic coordinates u of the clean points, (n, k).
        colour: a colouring variable for plots, (n,).
        tangent: an orthonormal basis of the tangent space at the clean point, (n, d, k).
        intrinsic_dim: k.
    """

    x: np.ndarray
    coords: np.ndarray
    colour: np.ndarray
    tangent: np.ndarray
    intrinsic_dim: int


def _with_noise(X: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    # as in datasets.py: isotropic N(0, noise² I) drawn after the manifold's own draws
    if noise:
        X = X + noise * rng.normal(size=X.shape)
    return X


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------------ line


def line_map(coords: np.ndarray, slope: float = 0.5) -> np.ndarray:
    """φ(t) = (t, slope · t)."""
    t = coords[:, 0]
    return np.stack([t, slope * t], axis=1)


def line(n: int, rng: np.random.Generator, slope: float = 0.5, noise: float = 0.0) -> Manifold:
    """The line x₂ = slope · x₁ in 2-D, t ~ N(0, 1) (``datasets.line``); tangent (1, slope)/‖·‖."""
    t = rng.normal(0.0, 1.0, n)
    X = _with_noise(line_map(t[:, None], slope), rng, noise)
    tangent = np.broadcast_to(_unit(np.array([1.0, slope]))[:, None], (n, 2, 1)).copy()
    return Manifold(X, t[:, None], t, tangent, 1)


# ---------------------------------------------------------------------------------------- circle


def circle_map(coords: np.ndarray, radius: float = 1.0) -> np.ndarray:
    """φ(t) = radius · (cos t, sin t)."""
    t = coords[:, 0]
    return radius * np.stack([np.cos(t), np.sin(t)], axis=1)


def circle(
    n: int, rng: np.random.Generator, radius: float = 1.0, arc: float = 1.5 * np.pi, noise: float = 0.0
) -> Manifold:
    """An arc of a circle in 2-D, angle t ~ U[0, arc) (``datasets.circle``); tangent (−sin t, cos t)."""
    t = rng.uniform(0.0, arc, n)
    X = _with_noise(circle_map(t[:, None], radius), rng, noise)
    tangent = np.stack([-np.sin(t), np.cos(t)], axis=1)[:, :, None]
    return Manifold(X, t[:, None], t, tangent, 1)


# --------------------------------------------------------------------------------------- S-curve


def s_curve_map(coords: np.ndarray) -> np.ndarray:
    """φ(t, η1) = (sin t, 2 η1, sign(t)(cos t − 1))."""
    t, eta1 = coords[:, 0], coords[:, 1]
    return np.stack([np.sin(t), 2 * eta1, np.sign(t) * (np.cos(t) - 1)], axis=1)


def s_curve(n: int, rng: np.random.Generator, scale_eta0: float = 0.15, noise: float = 0.0) -> Manifold:
    """The authors' S-curve (``datasets.s_curve``, docs/theory.md §6.1): t = 3π η0, η0 ~ N(0, scale_eta0²),
    η1 ~ U(0, 1).

    Tangent basis: ∂φ/∂t = (cos t, 0, −sign(t) sin t), already of unit length (the two halves are
    unit circles, joined at t = 0 where both derivatives are (1, 0, 0)), and ∂φ/∂η1 / 2 = e₂.
    """
    t = 3 * np.pi * rng.normal(0.0, scale_eta0, n)
    eta1 = rng.uniform(0.0, 1.0, n)
    coords = np.stack([t, eta1], axis=1)
    X = _with_noise(s_curve_map(coords), rng, noise)
    zero = np.zeros_like(t)
    d_t = np.stack([np.cos(t), zero, -np.sign(t) * np.sin(t)], axis=1)
    d_h = np.stack([zero, zero + 1.0, zero], axis=1)
    return Manifold(X, coords, t, np.stack([d_t, d_h], axis=2), 2)


# ------------------------------------------------------------------------------------ Swiss roll


def swiss_roll_map(coords: np.ndarray) -> np.ndarray:
    """φ(t, h) = (t cos t, h, t sin t) / 7."""
    t, h = coords[:, 0], coords[:, 1]
    return np.stack([t * np.cos(t), h, t * np.sin(t)], axis=1) / 7.0


def swiss_roll(n: int, rng: np.random.Generator, noise: float = 0.0) -> Manifold:
    """The Swiss roll in scikit-learn's proportions scaled by 1/7 (``datasets.swiss_roll``):
    t = 1.5π(1 + 2u), h = 21 u', u, u' ~ U(0, 1).

    Tangent basis: ∂φ/∂t ∝ (cos t − t sin t, 0, sin t + t cos t), of norm √(1 + t²)/7, and
    ∂φ/∂h ∝ e₂; the two are orthogonal.
    """
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(0.0, 1.0, n))
    h = 21 * rng.uniform(0.0, 1.0, n)
    coords = np.stack([t, h], axis=1)
    X = _with_noise(swiss_roll_map(coords), rng, noise)
    zero = np.zeros_like(t)
    d_t = np.stack([np.cos(t) - t * np.sin(t), zero, np.sin(t) + t * np.cos(t)], axis=1) / np.hypot(1.0, t)[:, None]
    d_h = np.stack([zero, zero + 1.0, zero], axis=1)
    return Manifold(X, coords, t, np.stack([d_t, d_h], axis=2), 2)


# ---------------------------------------------------------------------------------------- sphere


def sphere_map(coords: np.ndarray, radius: float = 1.0) -> np.ndarray:
    """φ(θ, φ) = radius · (sin θ cos φ, sin θ sin φ, cos θ)."""
    theta, phi = coords[:, 0], coords[:, 1]
    return radius * np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=1)


def sphere(n: int, rng: np.random.Generator, radius: float = 1.0, noise: float = 0.0) -> Manifold:
    """The sphere S² of the given radius in R³, uniform: cos θ ~ U(−1, 1) (Archimedes), φ ~ U(0, 2π).

    Tangent basis: the unit vectors e_θ = (cos θ cos φ, cos θ sin φ, −sin θ) and
    e_φ = (−sin φ, cos φ, 0), orthonormal at every point, the poles included. The normal is x / r.
    """
    theta = np.arccos(rng.uniform(-1.0, 1.0, n))
    phi = rng.uniform(0.0, 2 * np.pi, n)
    coords = np.stack([theta, phi], axis=1)
    X = _with_noise(sphere_map(coords, radius), rng, noise)
    e_theta = np.stack([np.cos(theta) * np.cos(phi), np.cos(theta) * np.sin(phi), -np.sin(theta)], axis=1)
    e_phi = np.stack([-np.sin(phi), np.cos(phi), np.zeros_like(phi)], axis=1)
    return Manifold(X, coords, theta, np.stack([e_theta, e_phi], axis=2), 2)


# ------------------------------------------------------------------------------- sheet in R^8


def sheet8_map(coords: np.ndarray) -> np.ndarray:
    r"""φ(u, v) = (u, v, ½cos ωu, ½sin ωu, ½cos ωv, ½sin ωv, uv, ½(u² − v²)), ω = π.

    The product of two helices of radius ½ and pitch 2 (coordinates 1, 3, 4 in u; 2, 5, 6 in v),
    bent by a saddle (coordinates 7, 8) that couples u and v.
    """
    u, v = coords[:, 0], coords[:, 1]
    w = SHEET8_FREQ
    return np.stack(
        [
            u,
            v,
            0.5 * np.cos(w * u),
            0.5 * np.sin(w * u),
            0.5 * np.cos(w * v),
            0.5 * np.sin(w * v),
            u * v,
            0.5 * (u**2 - v**2),
        ],
        axis=1,
    )


def _sheet8_derivatives(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w, zero, one = SHEET8_FREQ, np.zeros_like(u), np.ones_like(u)
    d_u = np.stack([one, zero, -0.5 * w * np.sin(w * u), 0.5 * w * np.cos(w * u), zero, zero, v, u], axis=1)
    d_v = np.stack([zero, one, zero, zero, -0.5 * w * np.sin(w * v), 0.5 * w * np.cos(w * v), u, -v], axis=1)
    return d_u, d_v


def sheet8(n: int, rng: np.random.Generator, noise: float = 0.0) -> Manifold:
    r"""A 2-D sheet smoothly embedded in R⁸ (:func:`sheet8_map`), (u, v) ~ U(−1, 1)².

    Unit-order scale (coordinates within ±1), bounded curvature (each helix alone has curvature
    :math:`r\omega^2 / (1 + r^2\omega^2) \approx 1.4`), and in no proper affine subspace of R⁸: the
    coordinate functions u, v, cos πu, sin πu, cos πv, sin πv, uv, u² − v² and 1 are linearly
    independent on the square. Tangent basis: Gram–Schmidt of (∂φ/∂u, ∂φ/∂v), which are never
    parallel (their first two coordinates are e₁ and e₂).
    """
    uv = rng.uniform(-1.0, 1.0, (n, 2))
    X = _with_noise(sheet8_map(uv), rng, noise)
    d_u, d_v = _sheet8_derivatives(uv[:, 0], uv[:, 1])
    e1 = _unit(d_u)
    e2 = _unit(d_v - np.sum(d_v * e1, axis=1, keepdims=True) * e1)
    return Manifold(X, uv, uv[:, 0].copy(), np.stack([e1, e2], axis=2), 2)


#: name -> generator, for sweeps over every manifold
MANIFOLDS = {
    "line": line,
    "circle": circle,
    "scurve": s_curve,
    "swissroll": swiss_roll,
    "sphere": sphere,
    "sheet8": sheet8,
}
