r"""Exact oracles for the nonlinear claims: the flow's local covariance against analytic tangent spaces.

Theory (docs/theory.md §2.3–§2.5). Near the optimum :math:`J_f^\top J_f \approx \Sigma_{loc}^{-1}`, so the
flow's local covariance is :math:`\Sigma_{flow} = (J_f^\top J_f)^{-1} = V S^{-2} V^\top` for
:math:`J_f = U S V^\top`: its top-k eigenspace is spanned by the k right singular vectors of
:math:`J_f` with the *smallest* singular values, and its standard deviations are :math:`1/s_i`. On
a k-dimensional manifold with noise σ and shrinkage λ, to first order

.. math:: \Sigma_{loc} + \lambda I \approx P_T \Sigma_T P_T + (\sigma^2 + \lambda) I,

so the top-k eigenspace should be the tangent space T (:func:`tangent_angle_deg`) and the standard
deviation along every normal direction should be :math:`\sqrt{\sigma^2 + \lambda}`
(:func:`normal_std`, :func:`predicted_normal_std`). Across a sweep of λ the tangent stds hardly
move while the normal ones grow like √λ: the slope of log std against log √λ is ≈ 0 along the
manifold and ≈ 1 off it (:func:`sweep_slopes`, :func:`intrinsic_dim_from_slopes`; the inflation
relation of Horvat & Pfister, NeurIPS 2022, code chrvt/ID-NF).

Every function takes per-point Jacobians ``J`` of shape (n, d, d) (numpy or torch) and orthonormal
tangent bases of shape (n, d, k) (``manifolds.Manifold.tangent``), and returns numpy arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "cov_tangent_angle_deg",
    "flow_tangent",
    "intrinsic_dim_from_slopes",
    "knn_tangent_angle_deg",
    "largest_principal_angle_deg",
    "local_stds",
    "normal_std",
    "predicted_normal_std",
    "sweep_slopes",
    "tangent_angle_deg",
]

#: default cut between tangent (slope ≈ 0) and normal (slope ≈ 1) components of a λ sweep
SLOPE_CUT = 0.5


def _array(a) -> np.ndarray:
    """A numpy float64 copy of a numpy array or a (possibly grad-carrying) torch tensor."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _check(J: np.ndarray, tangent: np.ndarray) -> None:
    if J.ndim != 3 or J.shape[1] != J.shape[2]:
        raise ValueError(f"J must have shape (n, d, d), got {J.shape}")
    n, d, _ = J.shape
    if tangent.ndim != 3 or tangent.shape[:2] != (n, d) or not 1 <= tangent.shape[2] < d:
        raise ValueError(f"tangent must have shape ({n}, {d}, k) with 1 <= k < {d}, got {tangent.shape}")


def largest_principal_angle_deg(A, B) -> np.ndarray:
    r"""Largest principal angle in degrees between the spans of orthonormal bases ``A``, ``B`` (n, d, k).

    :math:`\theta_{max} = \operatorname{atan2}(\|(I - AA^\top) B\|_2,\ \sigma_{min}(A^\top B))`: the sine
    keeps full precision near 0, where :math:`\arccos` of the cosine alone loses half the digits.
    """
    A, B = _array(A), _array(B)
    AtB = np.swapaxes(A, -2, -1) @ B
    cos = np.linalg.svd(AtB, compute_uv=False)[..., -1]
    sin = np.linalg.svd(B - A @ AtB, compute_uv=False)[..., 0]
    return np.degrees(np.arctan2(sin, cos))


def flow_tangent(J, k: int) -> np.ndarray:
    """The flow's estimate of the tangent space: the top-k eigenvectors of (J_fᵀJ_f)⁻¹, i.e. the k right
    singular vectors of J_f with the smallest singular values, shape (n, d, k)."""
    _, _, Vh = np.linalg.svd(_array(J))  # singular values descending
    return np.swapaxes(Vh[..., -k:, :], -2, -1)


def tangent_angle_deg(J, tangent) -> np.ndarray:
    """Per point, the largest principal angle (degrees) between the flow's top-k local-covariance
    eigenspace (:func:`flow_tangent`) and the analytic tangent space, k = ``tangent.shape[2]``."""
    J, tangent = _array(J), _array(tangent)
    _check(J, tangent)
    return largest_principal_angle_deg(flow_tangent(J, tangent.shape[2]), tangent)


def cov_tangent_angle_deg(C, tangent) -> np.ndarray:
    """Per point, the largest principal angle (degrees) between the top-k eigenspace of a local
    covariance ``C`` (n, d, d) and the analytic tangent space."""
    C, tangent = _array(C), _array(tangent)
    _check(C, tangent)
    _, vecs = np.linalg.eigh(C)  # ascending
    return largest_principal_angle_deg(vecs[..., -tangent.shape[2] :], tangent)


def knn_tangent_angle_deg(reference: np.ndarray, points: np.ndarray, tangent, k_neighbours: int) -> np.ndarray:
    """The same angle for the ``k_neighbours``-nearest-neighbour covariance (``covariance.knn_local_cov``)
    of ``reference`` around each of ``points``: the baseline the flow is compared with."""
    from flowtheory.science.covariance import knn_local_cov  # torch: not for the claims job's sweep_slopes

    return cov_tangent_angle_deg(knn_local_cov(reference, points, k_neighbours), tangent)


def local_stds(J) -> np.ndarray:
    """The flow's local standard deviations 1/s_i (square roots of the eigenvalues of (J_fᵀJ_f)⁻¹),
    per point and in descending order, shape (n, d)."""
    return 1.0 / np.linalg.svd(_array(J), compute_uv=False)[..., ::-1]


def normal_std(J, tangent) -> np.ndarray:
    r"""Per point, the flow's local standard deviations along the normal space N = T^⊥, shape (n, d − k),
    descending: the square roots of the eigenvalues of :math:`N^\top \Sigma_{flow} N` (Σ_flow compressed
    to N, for an orthonormal basis N of the complement of the analytic tangent space).

    Computed without forming Σ_flow: with :math:`J = U S V^\top`,
    :math:`N^\top \Sigma_{flow} N = M^\top M` for :math:`M = S^{-1} V^\top N`, so they are the singular
    values of M. For d − k = 1 this is the single normal std; over several normal directions their
    RMS, ``np.sqrt((normal_std(J, T) ** 2).mean(-1))``, is the root of the mean normal variance.
    Compare with :func:`predicted_normal_std`.
    """
    J, tangent = _array(J), _array(tangent)
    _check(J, tangent)
    k = tangent.shape[2]
    N = np.linalg.svd(tangent, full_matrices=True)[0][..., k:]  # (n, d, d - k), orthonormal, ⟂ T
    _, s, Vh = np.linalg.svd(J)
    M = (Vh @ N) / s[..., :, None]
    return np.linalg.svd(M, compute_uv=False)


def predicted_normal_std(lam: float, noise: float = 0.0) -> float:
    """The first-order prediction √(σ² + λ) for the normal std (docs/theory.md §2.5)."""
    return float(np.sqrt(noise**2 + lam))


def sweep_slopes(lams, local_stds) -> np.ndarray:
    r"""Least-squares slope of log(std) against log √λ, per component.

    Arguments:
        lams: the strengths λ > 0 of the sweep, shape (m,), m ≥ 3 distinct values.
        local_stds: per-component local stds of the same points at each λ, shape (m, ...), e.g.
            (m, n, d) from :func:`local_stds` of each run.

    Returns:
        The slopes, shape ``local_stds.shape[1:]``: ≈ 0 for tangent components (λ-insensitive), ≈ 1
        for normal ones (std ≈ √λ).
    """
    lams, stds = np.asarray(lams, dtype=np.float64), _array(local_stds)
    if lams.ndim != 1 or len(lams) < 3 or len(np.unique(lams)) != len(lams):
        raise ValueError(f"sweep_slopes needs at least 3 distinct strengths, got {lams.tolist()}")
    if not (np.isfinite(lams).all() and (lams > 0).all()):
        raise ValueError(f"strengths must be finite and > 0 (log √λ), got {lams.tolist()}")
    if stds.shape[:1] != lams.shape or not (stds > 0).all():
        raise ValueError(f"local_stds must have shape ({len(lams)}, ...) and be > 0, got shape {stds.shape}")
    x = 0.5 * np.log(lams)
    x = x - x.mean()
    y = np.log(stds)
    y = y - y.mean(0)
    # slope = Σ (x - x̄)(y - ȳ) / Σ (x - x̄)², over the sweep axis
    return np.tensordot(x, y, axes=(0, 0)) / (x @ x)


def intrinsic_dim_from_slopes(slopes, cut: float = SLOPE_CUT) -> np.ndarray:
    """The number of λ-insensitive components (slope < ``cut``) along the last axis: the intrinsic
    dimension estimate (per point for slopes of shape (n, d))."""
    return (np.asarray(slopes) < cut).sum(-1)
