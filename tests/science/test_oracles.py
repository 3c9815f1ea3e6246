"""Exact oracles (src/flowtheory/oracles.py) on constructions whose answers are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowtheory.datasets import manifolds
from flowtheory.science.covariance import knn_local_cov, subspace_angle_deg
from flowtheory.science.oracles import (
    cov_tangent_angle_deg,
    flow_tangent,
    intrinsic_dim_from_slopes,
    knn_tangent_angle_deg,
    largest_principal_angle_deg,
    local_stds,
    normal_std,
    predicted_normal_std,
    sweep_slopes,
    tangent_angle_deg,
)

#: angles of exact constructions, in degrees (float64 SVDs of small matrices; the atan2 form keeps
#: full precision near 0)
ATOL_ANGLE_DEG = 1e-9
#: stds and slopes of exact constructions
RTOL_EXACT = 1e-10
#: kNN (k = 30) tangent angle on 2,000 S-curve points: ~1° median (see test_covariance.py)
KNN_TANGENT_TOL_DEG = 3.0


def _orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    return np.linalg.qr(rng.normal(size=(d, d)))[0]


def _rot_x(theta_deg: float) -> np.ndarray:
    t = np.radians(theta_deg)
    return np.array([[1.0, 0.0, 0.0], [0.0, np.cos(t), -np.sin(t)], [0.0, np.sin(t), np.cos(t)]])


def _flow_with(V: np.ndarray, s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A linear "flow" J = U diag(s) Vᵀ with a random left rotation U (which no oracle may see)."""
    return _orthogonal(len(s), rng) @ np.diag(s) @ V.T


@pytest.mark.parametrize(("d", "k"), [(2, 1), (3, 2), (3, 1), (8, 2)])
def test_tangent_angle_is_zero_when_smallest_singular_directions_are_the_tangent(d, k):
    rng = np.random.default_rng(d + k)
    Js, Ts = [], []
    for _ in range(5):
        V = _orthogonal(d, rng)
        s = np.sort(rng.uniform(5.0, 20.0, d))[::-1]  # normal: large singular values (small std)
        s[-k:] = rng.uniform(0.2, 1.0, k)  # tangent: small singular values (large std)
        Js.append(_flow_with(V, s, rng))
        T = V[:, -k:] @ _orthogonal(k, rng)  # any basis of the same tangent space
        Ts.append(T)
    J, T = np.stack(Js), np.stack(Ts)
    np.testing.assert_allclose(tangent_angle_deg(J, T), 0.0, atol=ATOL_ANGLE_DEG)
    # torch input gives the same
    np.testing.assert_allclose(tangent_angle_deg(torch.as_tensor(J), T), 0.0, atol=ATOL_ANGLE_DEG)


@pytest.mark.parametrize("theta", [0.0, 1e-4, 7.0, 35.0, 90.0])
def test_tangent_angle_of_a_rotated_flow_is_the_rotation(theta):
    """Tangent plane span(e1, e2); the flow's large-std plane is it rotated by θ about e1."""
    T = np.eye(3)[:, :2][None]
    V = _rot_x(theta)  # columns: e1, rotated e2, rotated e3
    J = _flow_with(V[:, [2, 1, 0]], np.array([10.0, 1.0, 0.5]), np.random.default_rng(0))[None]
    np.testing.assert_allclose(tangent_angle_deg(J, T), theta, atol=ATOL_ANGLE_DEG)
    np.testing.assert_allclose(flow_tangent(J, 1)[0, :, 0] ** 2, [1.0, 0.0, 0.0], atol=1e-12)


def test_principal_angle_is_basis_free_and_symmetric():
    rng = np.random.default_rng(1)
    A = np.linalg.qr(rng.normal(size=(6, 4, 2)))[0]
    B = np.linalg.qr(rng.normal(size=(6, 4, 2)))[0]
    R = np.stack([_orthogonal(2, rng) for _ in range(6)])
    np.testing.assert_allclose(
        largest_principal_angle_deg(A, B), largest_principal_angle_deg(B @ R, A), atol=ATOL_ANGLE_DEG
    )
    np.testing.assert_allclose(largest_principal_angle_deg(A, A @ R), 0.0, atol=ATOL_ANGLE_DEG)
    # against the covariance module's eigen-based angle (an independent implementation)
    CA, CB = A @ np.swapaxes(A, 1, 2) + 1e-3 * np.eye(4), B @ np.swapaxes(B, 1, 2) + 1e-3 * np.eye(4)
    np.testing.assert_allclose(largest_principal_angle_deg(A, B), subspace_angle_deg(CA, CB, 2), atol=1e-5)
    np.testing.assert_allclose(cov_tangent_angle_deg(CA, B), subspace_angle_deg(CA, CB, 2), atol=1e-5)


def test_local_stds_are_inverse_singular_values_descending():
    rng = np.random.default_rng(2)
    s = np.array([4.0, 2.0, 0.5])
    J = _flow_with(_orthogonal(3, rng), s, rng)[None]
    np.testing.assert_allclose(local_stds(J)[0], [2.0, 0.5, 0.25], rtol=RTOL_EXACT)


@pytest.mark.parametrize(("d", "k"), [(3, 2), (3, 1), (8, 2)])
def test_normal_std_returns_the_normal_singular_values(d, k):
    rng = np.random.default_rng(3)
    V = _orthogonal(d, rng)
    s = np.concatenate([np.linspace(20.0, 5.0, d - k), np.linspace(1.0, 0.3, k)])
    J = _flow_with(V, s, rng)[None]
    out = normal_std(J, V[None, :, d - k :])
    assert out.shape == (1, d - k)
    np.testing.assert_allclose(out[0], np.sort(1 / s[: d - k])[::-1], rtol=RTOL_EXACT)


@pytest.mark.parametrize("theta", [0.0, 20.0, 60.0, 90.0])
def test_normal_std_of_a_misaligned_flow_mixes_in_closed_form(theta):
    """2-D: the flow's axes (std a along u, b along u⊥) at angle θ to the tangent line t: the normal
    variance is nᵀΣn = a² sin²θ + b² cos²θ."""
    a, b = 1.5, 0.1
    t = np.radians(theta)
    u = np.array([np.cos(t), np.sin(t)])
    V = np.stack([[-u[1], u[0]], u], 1)  # columns: u⊥ (large singular value 1/b), u (small, 1/a)
    J = _flow_with(V, np.array([1 / b, 1 / a]), np.random.default_rng(4))[None]
    T = np.array([[1.0], [0.0]])[None]
    np.testing.assert_allclose(
        normal_std(J, T)[0, 0], np.sqrt(a**2 * np.sin(t) ** 2 + b**2 * np.cos(t) ** 2), rtol=RTOL_EXACT
    )
    np.testing.assert_allclose(tangent_angle_deg(J, T), theta, atol=ATOL_ANGLE_DEG)


def test_predicted_normal_std():
    assert predicted_normal_std(0.01) == pytest.approx(0.1, rel=RTOL_EXACT)
    assert predicted_normal_std(0.0016, noise=0.03) == pytest.approx(0.05, rel=RTOL_EXACT)


# ------------------------------------------------------------------------------------ λ sweeps


def _slope_closed_form(lams: np.ndarray, a: float) -> float:
    x = 0.5 * np.log(lams)
    y = 0.5 * np.log(a**2 + lams)
    return float(np.polyfit(x, y, 1)[0])


def test_sweep_slopes_of_shrunk_stds():
    """stds √(a² + λ): a ≫ √λ (tangent) gives slope ≈ 0, a = 0 (normal) exactly 1."""
    lams = np.array([1e-4, 1e-3, 1e-2])
    a = np.array([1.0, 0.5, 0.0])  # two tangent components, one normal
    stds = np.sqrt(a[None, None, :] ** 2 + lams[:, None, None]) * np.ones((1, 4, 1))  # (m, n = 4, d = 3)
    slopes = sweep_slopes(lams, stds)
    assert slopes.shape == (4, 3)
    expected = [_slope_closed_form(lams, ai) if ai else 1.0 for ai in a]
    np.testing.assert_allclose(slopes, np.broadcast_to(expected, (4, 3)), rtol=RTOL_EXACT, atol=1e-14)
    assert (np.abs(slopes[:, :2]) < 0.05).all()
    np.testing.assert_array_equal(intrinsic_dim_from_slopes(slopes), [2, 2, 2, 2])
    assert intrinsic_dim_from_slopes(np.array([0.1, 0.9, 0.4]), cut=0.5) == 2


def test_sweep_slopes_from_flows_that_shrink_their_normal_direction():
    """End to end on exact flows: for each λ, J has the tangent std fixed and the normal std √(σ² + λ)."""
    rng = np.random.default_rng(5)
    V = _orthogonal(3, rng)
    lams = np.array([0.003, 0.01, 0.03, 0.1])
    stds = []
    for lam in lams:
        s = 1 / np.array([np.sqrt(lam), 0.8, 1.3])  # normal direction first (largest singular value)
        stds.append(local_stds(_flow_with(V, s, rng)[None]))
    slopes = sweep_slopes(lams, np.stack(stds))
    np.testing.assert_allclose(slopes[0], [0.0, 0.0, 1.0], atol=1e-10)
    assert intrinsic_dim_from_slopes(slopes)[0] == 2


@pytest.mark.parametrize(
    ("lams", "stds", "match"),
    [
        ([0.1, 0.2], np.ones((2, 3)), "at least 3 distinct"),
        ([0.1, 0.1, 0.2], np.ones((3, 3)), "at least 3 distinct"),
        ([0.0, 0.1, 0.2], np.ones((3, 3)), "finite and > 0"),
        ([0.1, 0.2, 0.3], np.ones((4, 3)), r"shape \(3, ...\)"),
        ([0.1, 0.2, 0.3], np.zeros((3, 3)), "be > 0"),
    ],
)
def test_sweep_slopes_rejects_bad_sweeps(lams, stds, match):
    with pytest.raises(ValueError, match=match):
        sweep_slopes(lams, stds)


@pytest.mark.parametrize(
    ("J_shape", "T_shape"), [((4, 3, 3), (4, 3, 3)), ((4, 3, 3), (5, 3, 2)), ((4, 3, 2), (4, 3, 1))]
)
def test_shape_checks(J_shape, T_shape):
    with pytest.raises(ValueError, match="must have shape"):
        tangent_angle_deg(np.ones(J_shape), np.ones(T_shape))


# ------------------------------------------------------------------------------------------ kNN


def test_knn_tangent_angle_is_zero_on_a_plane():
    rng = np.random.default_rng(6)
    basis = _orthogonal(3, rng)[:, :2]
    X = rng.normal(size=(400, 2)) @ basis.T + np.array([1.0, -2.0, 0.5])
    T = np.broadcast_to(basis, (400, 3, 2))
    np.testing.assert_allclose(knn_tangent_angle_deg(X, X, T, 30), 0.0, atol=1e-6)


def test_knn_tangent_angle_on_the_s_curve():
    m = manifolds.s_curve(2000, np.random.default_rng(0))
    angles = knn_tangent_angle_deg(m.x, m.x, m.tangent, 30)
    assert np.median(angles) < KNN_TANGENT_TOL_DEG
    np.testing.assert_allclose(angles, cov_tangent_angle_deg(knn_local_cov(m.x, m.x, 30), m.tangent), atol=0)
