"""The flow's local covariance (docs/theory.md §2.3), the kNN estimator it is compared with, the
chunked Jacobians, and the comparison metrics, each against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowtheory.datasets import toys
from flowtheory.science import covariance
from flowtheory.science.covariance import (
    CHUNK_BYTES,
    flow_local_cov,
    jacobians,
    knn_local_cov,
    leading_angle_deg,
    rel_frobenius,
    shrunk_oracle,
    subspace_angle_deg,
)
from flowtheory.science.flows import Flow, build_flow

#: float64 closed forms (a handful of d x d products, inverses and eigendecompositions)
RTOL_CLOSED_FORM = 1e-10
#: angles in degrees from arccos, which loses precision near 0 (arccos(1 − ε) ≈ √(2ε))
ATOL_ANGLE_DEG = 1e-5
#: the same Jacobians computed in chunks of different sizes
ATOL_CHUNKS = 1e-13
#: kNN neighbourhood size for the local covariance (the pipeline's knn_k)
KNN_K = 30
#: median angle between the kNN tangent plane of the S-curve and the analytic one. The bias of a
#: kNN tangent estimate is about r / (2R) for a one-sided neighbourhood of radius r on a surface of
#: curvature radius R, and ~0 for a symmetric one. The S-curve is made of unit circles (R = 1); with
#: 2,000 points its areal density near the centre is ~140 per unit area, so k = 30 neighbours lie
#: within r ≈ √(30 / (140 π)) ≈ 0.26: ≤ 7.5° at the edges, ~0 in the interior. Measured: 1.0°
#: median, 2.8° at the 90th percentile.
KNN_TANGENT_TOL_DEG = 3.0
#: median angle between the flow's tangent plane and the kNN one. The kNN part is the ~1° above;
#: the rest is the flow's own error after a short training, which shrinks with epochs (measured
#: medians 17°, 11°, 9.7°, 8.1°, 6.6° after 200, 400, 600, 800, 1,000 epochs). Chance level for
#: two random planes in R³ (the angle between their normals) is a 60° median, so 15° still
#: means "agrees in direction".
FLOW_TANGENT_TOL_DEG = 15.0


def _rotation(theta_deg: float) -> np.ndarray:
    t = np.radians(theta_deg)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


# ------------------------------------------------------------------------------ flow_local_cov


def test_flow_local_cov_is_inverse_of_jtj():
    rng = np.random.default_rng(0)
    J = np.eye(4) + rng.normal(size=(20, 4, 4)) / 2
    C = flow_local_cov(torch.as_tensor(J)).numpy()
    expected = np.linalg.inv(np.swapaxes(J, -1, -2) @ J)
    assert rel_frobenius(C, expected).max() < RTOL_CLOSED_FORM


def test_flow_local_cov_ill_conditioned_closed_form():
    """J = U diag(s) Vᵀ with s spanning 1e4 … 1e-3: Σ_flow = V diag(1/s²) Vᵀ."""
    rng = np.random.default_rng(1)
    U = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    V = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    s = np.array([1e4, 1.0, 1e-3])
    J = U @ np.diag(s) @ V.T
    C = flow_local_cov(torch.as_tensor(J)[None]).numpy()[0]
    expected = V @ np.diag(s**-2.0) @ V.T
    assert rel_frobenius(C, expected) < 1e-8  # cond(J) = 1e7 costs ~1e-9 of float64 accuracy


def test_linear_flow_local_cov_is_shrunk_covariance():
    rng = np.random.default_rng(2)
    X, _ = toys.gaussian(500, rng, [0.0, 1.0, 2.0], np.diag([3.0, 1.0, 0.2]) + 0.1)
    for lam in (0.0, 0.5):
        evals, E = np.linalg.eigh(shrunk_oracle(X, lam))
        flow = build_flow({"kind": "linear"}, 3)
        with torch.no_grad():
            flow.layers[0].W.copy_(torch.as_tensor(np.diag(evals**-0.5) @ E.T))
        _, J = jacobians(flow, torch.as_tensor(X))
        C = flow_local_cov(J).numpy()
        assert rel_frobenius(C, shrunk_oracle(X, lam)[None]).max() < RTOL_CLOSED_FORM
        assert rel_frobenius(C, np.cov(X.T, bias=True)[None]).max() < RTOL_CLOSED_FORM + lam


def test_shrunk_oracle_closed_form():
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])  # mean 0, 1/N covariance diag(0.5, 2)
    np.testing.assert_allclose(shrunk_oracle(X, 0.0), np.diag([0.5, 2.0]), rtol=RTOL_CLOSED_FORM)
    np.testing.assert_allclose(shrunk_oracle(X, 0.25), np.diag([0.75, 2.25]), rtol=RTOL_CLOSED_FORM)


# ------------------------------------------------------------------------------- knn_local_cov


def test_knn_cov_on_a_line_is_rank_one_closed_form():
    """Evenly spaced points t_i = i h on a line: the k = 2m + 1 nearest neighbours of an interior
    point are i − m … i + m, whose (1/k) covariance is h²(k² − 1)/12 · uuᵀ."""
    h, k = 0.1, 31
    u = np.array([1.0, 0.5]) / np.hypot(1.0, 0.5)
    t = h * np.arange(200)
    X = t[:, None] * u + np.array([0.3, -2.0])
    C = knn_local_cov(X, X, k)
    interior = slice(k, len(X) - k)
    expected = h**2 * (k**2 - 1) / 12 * np.outer(u, u)
    np.testing.assert_allclose(C[interior], np.broadcast_to(expected, C[interior].shape), rtol=0, atol=1e-10)
    # every point, edges included: rank 1 along the line
    evals = np.linalg.eigvalsh(C)
    assert (evals[:, 0] < 1e-12 * evals[:, 1]).all()
    np.testing.assert_allclose(leading_angle_deg(C, np.outer(u, u)[None]), 0.0, atol=ATOL_ANGLE_DEG)


def test_knn_cov_of_other_points_uses_the_reference_set():
    ref = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [10.0, 10.0]])
    C = knn_local_cov(ref, np.array([[0.1, 0.1]]), 3)[0]  # neighbours: the first three
    np.testing.assert_allclose(C, np.cov(ref[:3].T, bias=True), rtol=RTOL_CLOSED_FORM)


def _s_curve_tangent_projector(t: np.ndarray) -> np.ndarray:
    """Orthogonal projector on the S-curve's tangent plane at parameter t (a rank-2 "covariance")."""
    T1 = np.stack([np.cos(t), np.zeros_like(t), -np.sign(t) * np.sin(t)], 1)  # d/dt of the curve
    T2 = np.broadcast_to([0.0, 1.0, 0.0], T1.shape)  # the width direction
    return np.einsum("ni,nj->nij", T1, T1) + np.einsum("ni,nj->nij", T2, T2)


def test_knn_tangent_plane_on_s_curve():
    X, t = toys.s_curve(2000, np.random.default_rng(0))
    angles = subspace_angle_deg(knn_local_cov(X, X, KNN_K), _s_curve_tangent_projector(t), 2)
    assert np.median(angles) < KNN_TANGENT_TOL_DEG, np.median(angles)


@pytest.mark.slow
def test_flow_local_cov_agrees_with_knn_on_s_curve(trained_scurve):
    """Claim 2 (docs/theory.md §2.3): a regularized nonlinear flow's local covariance (J_fᵀJ_f)⁻¹ spans the
    data's local tangent plane. Direction only: the kNN covariance's scale depends on k."""
    X, t, flow = trained_scurve.X, trained_scurve.t, trained_scurve.flow
    x = torch.as_tensor(X)
    assert trained_scurve.result.status != "diverged"
    _, J = jacobians(flow, x)
    C = flow_local_cov(J).numpy()
    angles = subspace_angle_deg(C, knn_local_cov(X, X, KNN_K), 2)
    assert np.median(angles) < FLOW_TANGENT_TOL_DEG, f"median {np.median(angles):.1f} deg"
    # the same against the analytic tangent plane
    truth = subspace_angle_deg(C, _s_curve_tangent_projector(t), 2)
    assert np.median(truth) < FLOW_TANGENT_TOL_DEG, f"median {np.median(truth):.1f} deg"


# ----------------------------------------------------------------------------------- jacobians


@pytest.mark.parametrize(
    "spec", [{"kind": "mlp", "hidden_layers": 2, "init_scale": 0.5}, {"kind": "realnvp", "couplings": 3, "hidden": [8]}]
)
def test_jacobians_chunking_does_not_change_results(spec):
    flow = build_flow(spec, 3, seed=4)
    with torch.no_grad():  # RealNVP couplings start as the identity: make every layer do something
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.as_tensor(np.random.default_rng(3).normal(size=(37, 3)))
    y_small, J_small = jacobians(flow, x, chunk_bytes=1)  # one point per chunk
    y_large, J_large = jacobians(flow, x, chunk_bytes=2**40)  # one chunk
    torch.testing.assert_close(y_small, y_large, rtol=0, atol=ATOL_CHUNKS)
    torch.testing.assert_close(J_small, J_large, rtol=0, atol=ATOL_CHUNKS)
    torch.testing.assert_close(y_large, flow(x)[0].detach(), rtol=0, atol=ATOL_CHUNKS)
    # against autograd, point by point
    for i in (0, 36):
        Ji = torch.autograd.functional.jacobian(lambda xi: flow(xi[None])[0][0], x[i])
        torch.testing.assert_close(J_large[i], Ji, rtol=0, atol=1e-12)


class _SpyFlow(Flow):
    """Identity flow that records the chunk sizes and returns a cheap (unmaterialised) Jacobian."""

    def __init__(self, d: int) -> None:
        super().__init__([], d)
        self.chunks: list[int] = []

    def forward(self, x):
        return x, x.new_zeros(len(x))

    def jacobian(self, x):
        self.chunks.append(len(x))
        return torch.eye(self.d, dtype=x.dtype).expand(len(x), -1, -1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_jacobians_chunks_bound_memory_at_d784(dtype):
    d = 784
    itemsize = torch.empty((), dtype=dtype).element_size()
    per_point = d * d * itemsize * 4  # ~4 (n, d, d) intermediates per point
    step = CHUNK_BYTES // per_point
    assert step >= 1
    flow = _SpyFlow(d)
    n = step + 3
    _, J = jacobians(flow, torch.zeros(n, d, dtype=dtype))
    assert flow.chunks == [step, 3]
    assert max(flow.chunks) * per_point <= CHUNK_BYTES
    assert J.shape == (n, d, d)
    del J
    # a budget below one point still makes progress, one point at a time
    flow = _SpyFlow(d)
    jacobians(flow, torch.zeros(2, d, dtype=dtype), chunk_bytes=per_point - 1)
    assert flow.chunks == [1, 1]


def test_chunk_budget_default():
    # 256 MiB: at d = 784 in float64 that is 13 points per chunk
    assert covariance.CHUNK_BYTES == 256 * 2**20
    assert CHUNK_BYTES // (784 * 784 * 8 * 4) == 13


# ------------------------------------------------------------------------------------- metrics


def test_rel_frobenius_hand_made():
    B = np.diag([3.0, 4.0])  # ‖B‖_F = 5
    assert rel_frobenius(B, B) == 0.0
    np.testing.assert_allclose(rel_frobenius(2 * B, B), 1.0, rtol=RTOL_CLOSED_FORM)
    np.testing.assert_allclose(rel_frobenius(B + np.array([[0.0, 1.0], [0.0, 0.0]]), B), 0.2, rtol=RTOL_CLOSED_FORM)
    # batched over the leading axes, normalised by B (not symmetric)
    out = rel_frobenius(np.stack([B, 2 * B, 0 * B]), B[None])
    np.testing.assert_allclose(out, [0.0, 1.0, 1.0], rtol=RTOL_CLOSED_FORM)
    np.testing.assert_allclose(rel_frobenius(B, 2 * B), 0.5, rtol=RTOL_CLOSED_FORM)


@pytest.mark.parametrize(
    "theta, expected", [(0.0, 0.0), (20.0, 20.0), (90.0, 90.0), (150.0, 30.0), (180.0, 0.0), (-45.0, 45.0)]
)
def test_leading_angle_hand_made(theta, expected):
    """Leading axis of diag(3, 1) is e1; rotating the ellipse by θ turns it by θ, as an unsigned line."""
    A = np.diag([3.0, 1.0])
    R = _rotation(theta)
    np.testing.assert_allclose(leading_angle_deg(R @ A @ R.T, A), expected, atol=ATOL_ANGLE_DEG)
    np.testing.assert_allclose(leading_angle_deg(A, R @ A @ R.T), expected, atol=ATOL_ANGLE_DEG)


def test_leading_angle_is_scale_free_and_batched():
    A = np.diag([3.0, 1.0])
    np.testing.assert_allclose(leading_angle_deg(A, 100 * A), 0.0, atol=ATOL_ANGLE_DEG)
    np.testing.assert_allclose(leading_angle_deg(A, np.diag([1.0, 3.0])), 90.0, atol=ATOL_ANGLE_DEG)
    batch = np.stack([_rotation(a) @ A @ _rotation(a).T for a in (10.0, 100.0)])
    np.testing.assert_allclose(leading_angle_deg(batch, A[None]), [10.0, 80.0], atol=ATOL_ANGLE_DEG)


def _plane_cov(normal: np.ndarray) -> np.ndarray:
    n = normal / np.linalg.norm(normal)
    return np.eye(3) - np.outer(n, n) + 1e-3 * np.outer(n, n)  # large in the plane, small normal to it


@pytest.mark.parametrize("theta", [0.0, 15.0, 60.0, 90.0])
def test_subspace_angle_between_planes(theta):
    """Two planes in R³ sharing the e1 axis, normals e3 and (0, −sin θ, cos θ): largest principal angle θ."""
    t = np.radians(theta)
    A, B = _plane_cov(np.array([0.0, 0.0, 1.0])), _plane_cov(np.array([0.0, -np.sin(t), np.cos(t)]))
    np.testing.assert_allclose(subspace_angle_deg(A, B, 2), theta, atol=ATOL_ANGLE_DEG)
    np.testing.assert_allclose(subspace_angle_deg(B, A, 2), theta, atol=ATOL_ANGLE_DEG)
    # full space: always 0
    np.testing.assert_allclose(subspace_angle_deg(A, B, 3), 0.0, atol=ATOL_ANGLE_DEG)


def test_subspace_angle_ignores_the_rotation_within_the_plane_and_k1_is_leading_angle():
    A = np.diag([5.0, 2.0, 0.1])
    B = np.diag([2.0, 5.0, 0.1])  # the same plane, its axes swapped
    np.testing.assert_allclose(subspace_angle_deg(A, B, 2), 0.0, atol=ATOL_ANGLE_DEG)
    np.testing.assert_allclose(subspace_angle_deg(A, B, 1), 90.0, atol=ATOL_ANGLE_DEG)
    rng = np.random.default_rng(6)
    M = rng.normal(size=(10, 3, 3))
    C1, C2 = M @ np.swapaxes(M, -1, -2), np.flip(M, 0) @ np.swapaxes(np.flip(M, 0), -1, -2)
    np.testing.assert_allclose(subspace_angle_deg(C1, C2, 1), leading_angle_deg(C1, C2), atol=ATOL_ANGLE_DEG)
